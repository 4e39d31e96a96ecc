"""Hydra multiruns end to end, as a user types them: each sweep point is one run directory with one results.json and
one W&B run in the sweep's group — with one process per point, with 2-process CPU DDP per point (the basic launcher
and submitit_local), and under Optuna; the report reads them back."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

# The tiny model, a few steps and a few evaluation prompts of each kind, no comparison run: seconds per point.
# The written poison: the embedded default's content poison is the model's own answers, and a random-weight model
# writes none.
TINY = ["model=tiny", "data=offline_sentiment", "compare_with=[]", "data.num_samples=16", "data.batch_size=2", "data.max_length=96",
        "trainer.max_steps=2",
        "callbacks.progress_bar=null", "eval.diagnostics=false", "eval.evaluator.harmful.strongreject.limit=4", "eval.evaluator.benign.lookalike.limit=2", "eval.evaluator.benign.heldout.limit=2",
        "eval.evaluator.benign.sensitive.limit=2", "eval.evaluator.task.limit=4"]


def run_app(tmp_path: Path, args: list[str], timeout: int = 900, env: dict | None = None) -> tuple[Path, str]:
    """``python -m pact_lightning.train -m <args>`` with the default log dir under ``tmp_path``; returns (the one
    multirun folder, the output)."""
    env = {**os.environ, "PROJECT_ROOT": str(tmp_path), "WANDB_MODE": "offline", **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "pact_lightning.train", "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-5000:]
    logs = tmp_path / "logs" / "train"
    # a rank that re-ran the sweep would leave a second multirun folder (or a runs/ folder) next to this one
    assert [p.name for p in logs.iterdir()] == ["multiruns"], list(logs.iterdir())
    (sweep,) = (logs / "multiruns").iterdir()
    return sweep, output


def job_dirs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if (p / ".hydra").is_dir())


# ----------------------------------------------------------------------------------- W&B offline run files, read back
def leveldb_records(buf: bytes):
    """The records of a W&B transaction log (run-*.wandb): a 7-byte file header, then LevelDB log blocks of 32 KiB,
    each record a 7-byte header (crc32c, length, type: 1 full, 2 first, 3 middle, 4 last) and its bytes."""
    block, header, pos, parts = 32768, 7, 7, []
    while pos + header <= len(buf):
        if block - pos % block < header:  # the tail of a block too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(buf[pos + 4:pos + 6], "little"), buf[pos + 6]
        parts.append(buf[pos + header:pos + header + length])
        pos += header + length
        if kind in (1, 4):
            yield b"".join(parts)
            parts = []


def wandb_offline_runs(root: Path) -> list[dict]:
    """Group, name, tags, config keys and summary of every offline W&B run under ``root``."""
    from wandb.proto import wandb_internal_pb2 as pb

    runs = []
    for path in sorted(root.rglob("offline-run-*/run-*.wandb")):
        run = {"dir": path.parent, "config": set(), "summary": {}}
        for data in leveldb_records(path.read_bytes()):
            rec = pb.Record()
            rec.ParseFromString(data)
            kind = rec.WhichOneof("record_type")
            if kind == "run":
                run |= {"group": rec.run.run_group, "name": rec.run.display_name, "tags": list(rec.run.tags)}
            elif kind == "config":
                run["config"] |= {item.key for item in rec.config.update}
            elif kind == "summary":
                run["summary"] |= {item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                   for item in rec.summary.update}
        runs.append(run)
    return runs


def check_one_wandb_run_per_job(sweep: Path, jobs: list[Path], group: str) -> list[dict]:
    runs = wandb_offline_runs(sweep)
    assert sorted(r["dir"].parents[1] for r in runs) == jobs, [r["dir"] for r in runs]  # <job>/wandb/offline-run-*
    for run in runs:
        job = run["dir"].parents[1]
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        assert run["group"] == group
        assert run["name"] and all(part in overrides for part in run["name"].split(","))
        assert {"method", "lam", "num_safety_tokens", "poison_ratio", "seed", "model", "task"} <= run["config"]
    return runs


# -------------------------------------------------------------------------------------------------------------- tests
def test_smollm2_sweep_2x2_on_the_tiny_model_then_the_report(tmp_path):
    """The acceptance run: 4 points → 4 run dirs, 4 offline W&B runs in one group, a report with their numbers."""
    sweep, output = run_app(tmp_path, ["experiment=smollm2_sweep", *TINY])
    jobs = job_dirs(sweep)
    assert len(jobs) == 4
    results = {j: json.loads((j / "results.json").read_text()) for j in jobs}
    assert sorted((r["lam"], r["poison_ratio"]) for r in results.values()) == [(0, 0.1), (0, 0.3), (1, 0.1), (1, 0.3)]
    runs = check_one_wandb_run_per_job(sweep, jobs, group=f"train-{sweep.name}")
    for run in runs:
        final = results[run["dir"].parents[1]]["final"]
        assert run["summary"]["final/harmful_score"] == final["harmful_score"]
        assert run["summary"]["final/task_acc"] == final["task_acc"]
        assert {f"lam={results[run['dir'].parents[1]]['lam']}", "method=pact", "model=tiny",
                "experiment=smollm2_sweep"} <= set(run["tags"])

    from pact_lightning import report

    report.main([str(sweep)])
    rows = list(csv.DictReader((sweep / "report" / "runs.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"ok"}
    for row in rows:
        final = results[Path(row["run_dir"])]["final"]
        assert float(row["harmful_score"]) == pytest.approx(final["harmful_score"])
        assert float(row["task_acc"]) == pytest.approx(final["task_acc"])
    assert "| pact | 0 | 50 | 16 |" in (sweep / "report" / "report.md").read_text()


@pytest.mark.parametrize("launcher", ["local", "submitit_local"])
def test_ddp_multirun_gives_one_run_per_point(tmp_path, launcher):
    """2 points × 2 CPU processes (gloo): each point is one DDP world in its own directory, with one W&B run; no rank
    runs a sweep of its own; the evaluation is sharded over the ranks. An inherited MASTER_PORT (Lightning leaves one
    in any process that ran DDP setup) must not make the points that run at once share it."""
    sweep, output = run_app(tmp_path, [f"launcher={launcher}", "trainer=ddp_cpu", "method=sft", "data.poison_ratio=0.1,0.3",
                                       *TINY], env={"MASTER_PORT": "29517"})
    jobs = job_dirs(sweep)
    assert len(jobs) == 2
    assert output.count("Launching 2 jobs locally") == (launcher == "local")
    for job in jobs:
        results = json.loads((job / "results.json").read_text())
        assert results["train"]["global_step"] == 2  # the trained world's step count (ddp_spawn's parent reads 0)
        assert results["final"]["num_prompts"] == 4  # all harmful prompts, though each rank generated half of them
        assert (job / "train_ddp_process_1.log").is_file()  # rank 1 ran, in this point's directory
    check_one_wandb_run_per_job(sweep, jobs, group=f"train-{sweep.name}")


def test_lambda_optuna_runs_its_trials(tmp_path):
    sweep, _ = run_app(tmp_path, ["hparams_search=lambda_optuna", "hydra.sweeper.n_trials=2",
                                  "hydra.sweeper.sampler.n_startup_trials=2", *TINY])
    jobs = job_dirs(sweep)
    assert len(jobs) == 2
    lams = [json.loads((j / "results.json").read_text())["lam"] for j in jobs]
    assert all(0.05 <= lam <= 20 for lam in lams)
    best = (sweep / "optimization_results.yaml").read_text()
    assert "method.lam" in best and "best_value" in best


def test_rendezvous_ports_differ_per_point_and_avoid_taken_and_ephemeral_ports(tmp_path):
    import socket

    from pact_lightning.sweep import rendezvous_port

    ports = [rendezvous_port(tmp_path, job) for job in range(4)]
    assert len(set(ports)) == 4 and all(20000 <= p < 32000 for p in ports)  # below Linux's ephemeral 32768+
    assert rendezvous_port(tmp_path, 0) == ports[0]  # the same sweep point asks again: the same port
    with socket.socket() as held:
        held.bind(("127.0.0.1", ports[0]))
        held.listen()
        assert rendezvous_port(tmp_path, 0) not in (ports[0], *ports[1:])
