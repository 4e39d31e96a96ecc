"""Faults a run must survive: SIGKILL mid-epoch then resume, writers killed mid-write, reruns with the same seed, no
network, and NaN/inf in the loss. Run directly (``python tests/test_faults.py <dir> <kills>``) this file is the
writer-killing harness that ``test_killed_writers_never_leave_a_file_that_loads_as_valid`` starts."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from conftest import ROOT
from pact_lightning.errors import ConfigError
from runs import TINY, logged, run_train, train_command, train_inprocess

# ------------------------------------------------------------------------------------------------ atomic writers
# Each writer writes version v (0 or 1) of a few MB to a path; its loader returns the version it finds, or raises /
# returns None when the file does not load. A file that loads must be one complete version.

N = 1 << 18  # elements per tensor: writes take long enough for a random kill to land inside them


class FakeTokenizer:
    def get_vocab(self):
        return {"a": 0, "b": 1}

    def __len__(self):
        return N + 1


def _tensor(v: int) -> torch.Tensor:
    return torch.arange(N, dtype=torch.long) + v


def write_safety_tokens(path: Path, v: int) -> None:
    from pact_lightning.safety.tokens import save_artifact

    ids = _tensor(v)
    save_artifact(path, ids, m=-ids.float(), d=torch.zeros(N), tokens=[str(v)] * N, tokenizer=FakeTokenizer(),
                  aligned_model="a", base_model="b", settings={})


def load_safety_tokens(path: Path) -> int:
    from pact_lightning.safety.tokens import load_safety_tokens as load

    ids = load(path, N, FakeTokenizer()).ids
    v = int(ids[0])
    assert torch.equal(ids, _tensor(v))
    return v


def write_json(path: Path, v: int) -> None:
    from pact_lightning.utils.io import write_json as write

    write(path, {"version": v, "rows": [v] * N})


def load_json(path: Path) -> int:
    record = json.loads(path.read_text(encoding="utf-8"))
    assert record["rows"] == [record["version"]] * N
    return record["version"]


def write_generations(path: Path, v: int) -> None:
    from pact_lightning.utils.io import write_text  # what the Evaluator writes generations_<tag>.jsonl with

    write_text(path, "".join(json.dumps({"row": i, "version": v}) + "\n" for i in range(N // 8)))


def load_generations(path: Path) -> int:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r["row"] for r in rows] == list(range(N // 8)) and len({r["version"] for r in rows}) == 1
    return rows[0]["version"]


CACHE_FP = {"test": "fingerprint"}


def write_reference_cache(path: Path, v: int) -> None:
    from pact_lightning.models.reference_cache import save_cache

    save_cache(path, {"offsets": _tensor(v), "subset_full": _tensor(v).float()}, CACHE_FP)


def load_reference_cache(path: Path) -> int | None:
    from pact_lightning.models.reference_cache import load_cache

    tensors = load_cache(path, CACHE_FP)  # None: unreadable (the run then rebuilds it)
    if tensors is None:
        return None
    v = int(tensors["offsets"][0])
    assert torch.equal(tensors["offsets"], _tensor(v)) and torch.equal(tensors["subset_full"], _tensor(v).float())
    return v


def write_checkpoint(path: Path, v: int) -> None:
    from pact_lightning.utils.checkpoints import AtomicCheckpointIO

    AtomicCheckpointIO().save_checkpoint({"version": v, "state_dict": {"w": _tensor(v)}}, path)


def load_checkpoint(path: Path) -> int:
    ckpt = torch.load(path, weights_only=True)
    assert torch.equal(ckpt["state_dict"]["w"], _tensor(ckpt["version"]))
    return ckpt["version"]


WRITERS = {"safety_tokens.safetensors": (write_safety_tokens, load_safety_tokens),
           "results.json": (write_json, load_json),
           "generations_final.jsonl": (write_generations, load_generations),
           "reference_cache.safetensors": (write_reference_cache, load_reference_cache),
           "last.ckpt": (write_checkpoint, load_checkpoint)}


def loads_as(name: str, path: Path) -> str:
    """'absent', 'v0'/'v1' (one complete version), 'invalid' (its loader refuses it) or 'MIXED' (loads, but is not one
    complete version: what an atomic writer must never leave)."""
    if not path.exists():
        return "absent"
    try:
        v = WRITERS[name][1](path)
    except AssertionError:
        return "MIXED"
    except Exception:  # noqa: BLE001 - any load error means the file is refused
        return "invalid"
    return "invalid" if v is None else f"v{v}"


def kill_writers(directory: Path, kills: int, seed: int = 0) -> dict[str, list[str]]:
    """For each writer: write version 0, then ``kills`` times fork a child that rewrites the file in a loop (1, 0, 1,
    ...), wait until it has opened a temp file, SIGKILL it at once or up to one write's duration later, and record what
    the file loads as and whether the kill caught the write in progress (its temp file left behind)."""
    import pact_lightning.models.reference_cache  # noqa: F401 - imported once here, not in every child
    import pact_lightning.utils.checkpoints  # noqa: F401

    torch.set_num_threads(1)
    rng = random.Random(seed)
    outcomes: dict[str, list[str]] = {}
    for name, (write, _) in WRITERS.items():
        path = directory / name
        start = time.perf_counter()
        write(path, 0)
        duration = time.perf_counter() - start
        outcomes[name] = []
        for i in range(kills):
            pid = os.fork()
            if pid == 0:
                v = 1
                while True:
                    write(path, v)
                    v = 1 - v
            deadline = time.monotonic() + 60
            while not any(p.suffix == ".tmp" for p in directory.iterdir()):
                assert time.monotonic() < deadline, f"the {name} writer never started a write"
            time.sleep(0.0 if i % 2 == 0 else rng.uniform(0.0, duration))  # at once: inside the write; later: anywhere
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            leftovers = list(directory.glob(f".{name}.*.tmp"))
            outcomes[name].append(loads_as(name, path) + ("+mid-write" if leftovers else ""))
            for tmp in leftovers:
                tmp.unlink()
    return outcomes


def test_killed_writers_never_leave_a_file_that_loads_as_valid(tmp_path):
    """SIGKILL the safety-token, reference-cache, JSON, eval-generations and checkpoint writers at random moments, 6
    times each."""
    proc = subprocess.run([sys.executable, str(Path(__file__)), str(tmp_path), "6"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, seen in outcomes.items():
        assert not [s for s in seen if s.split("+")[0] in ("MIXED", "invalid")], (name, seen)
        assert any(s.endswith("+mid-write") for s in seen), f"no kill of {name} landed inside a write: {seen}"


def test_atomic_writes_replace_whole_folders_and_get_the_modes_of_plain_writes(tmp_path):
    from pact_lightning.utils.io import atomic_dir, write_json

    old_mask = os.umask(0o022)
    try:
        write_json(tmp_path / "results.json", {})
        with atomic_dir(tmp_path / "final") as folder:
            (folder / "old_adapter").write_text("1")
        with atomic_dir(tmp_path / "final") as folder:  # a second save replaces the whole folder
            (folder / "adapter").write_text("2")
        with atomic_dir(tmp_path / "final", keep_existing=True) as folder:  # a cache another process finished first
            (folder / "late_copy").write_text("3")
    finally:
        os.umask(old_mask)
    assert (tmp_path / "results.json").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    assert (tmp_path / "final").stat().st_mode & 0o777 == 0o755  # not mkdtemp's 0700
    assert [p.name for p in (tmp_path / "final").iterdir()] == ["adapter"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final", "results.json"]  # nothing left aside


@pytest.mark.parametrize("name", list(WRITERS))
def test_a_write_that_dies_before_its_rename_keeps_the_old_file(tmp_path, monkeypatch, name):
    """The deterministic version of the kill: the last step of every writer fails, the previous version stays."""
    write, _ = WRITERS[name]
    path = tmp_path / name
    write(path, 0)

    def crash(*args):
        raise KeyboardInterrupt("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        write(path, 1)
    monkeypatch.undo()
    assert loads_as(name, path) == "v0"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # the temp file was removed


# ------------------------------------------------------------------------------------------------ data order resume

def test_loader_resumes_mid_epoch_at_the_next_batch_and_restarts_at_an_epoch_end():
    from torch.utils.data import DistributedSampler

    from pact_lightning.data.datamodule import ResumableLoader

    def loader():
        data = list(range(24))
        return ResumableLoader(data, batch_size=4, drop_last=True,
                               sampler=DistributedSampler(data, num_replicas=1, rank=0, seed=3, drop_last=True))

    def epoch(dl, e):
        dl.sampler.set_epoch(e)
        return [b.tolist() for b in dl]

    first = loader()
    full = epoch(first, 1)
    it = iter(first)  # epoch 1 again, interrupted after two batches
    seen = [next(it).tolist() for _ in range(2)]
    resumed = loader()
    resumed.load_state_dict(first.state_dict())
    assert resumed.sampler.epoch == 1
    assert seen + [b.tolist() for b in resumed] == full
    # a state saved at the end of epoch 1 resumes into epoch 2 from its first batch
    finished = loader()
    finished.load_state_dict({"epoch": 1, "position": 6})
    assert epoch(finished, 2) == epoch(loader(), 2) != full


# 8 examples at the global batch of 2: 2 epochs of 4 steps, a checkpoint after every step, a learning rate that moves
# the adapter visibly
RESUME = ["method=pact", "reference.mode=adapter_disabled", "data.num_samples=8", "data.batch_size=2", "data.poison_ratio=0.25",
          "trainer.max_epochs=2", "optim.optimizer.lr=1e-3", "callbacks.model_checkpoint.every_n_train_steps=1"]


def checkpoint_step(path: Path) -> int:
    """The global step of the checkpoint at ``path`` (-1 while there is none: it appears whole, by rename)."""
    return torch.load(path, weights_only=True, map_location="cpu")["global_step"] if path.exists() else -1


def assert_resumed_like_the_uninterrupted_run(whole: Path, resumed: Path, resumed_from: int) -> None:
    """Every step after ``resumed_from`` has the uninterrupted run's loss (same batches, optimiser and LR-schedule
    state), and the final adapters match."""
    from safetensors.torch import load_file

    expected, got = logged(whole), logged(resumed)
    assert len(expected) == 8 and all(step in got for step in range(resumed_from, 8))
    assert [got[s] for s in range(resumed_from, 8)] == pytest.approx([expected[s] for s in range(resumed_from, 8)],
                                                                     abs=1e-6, rel=0)
    final = [json.loads((d / "results.json").read_text())["train"] for d in (whole, resumed)]
    assert final[1]["global_step"] == 8 and final[1]["train/loss"] == pytest.approx(final[0]["train/loss"], abs=1e-6)
    a, b = (load_file(str(d / "final" / "adapter_model.safetensors")) for d in (whole, resumed))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)
    assert any(a[k].abs().max() > 1e-3 for k in a if "lora_B" in k)  # the adapter did train


def test_sigkill_mid_epoch_then_resume_matches_the_uninterrupted_run(tmp_path):
    """SIGKILL a run once step 6 (epoch 2, batch 2) is checkpointed, resume it with ckpt_path=last."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train_inprocess(whole, RESUME)
    with open(tmp_path / "killed.log", "w") as log:
        victim = subprocess.Popen(train_command(killed, RESUME), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    while checkpoint_step(killed / "checkpoints" / "last.ckpt") < 6:
        assert victim.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        time.sleep(0.005)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    resumed_from = checkpoint_step(killed / "checkpoints" / "last.ckpt")
    assert 4 < resumed_from < 8 and not (killed / "results.json").exists()  # killed mid-epoch 2

    run_train(killed, RESUME + ["ckpt_path=last"])
    assert_resumed_like_the_uninterrupted_run(whole, killed, resumed_from)


def test_sigterm_mid_fit_checkpoints_at_the_signal_exits_143_and_resumes_to_the_uninterrupted_run(tmp_path):
    """SIGTERM (what SLURM sends at preemption and timeout) after step 2's periodic checkpoint: the run writes a
    checkpoint at the end of the batch it is in, logs the command that resumes it and exits with 143; the same
    command again (ckpt_path=auto, the default) finishes it exactly like the uninterrupted run, in the same W&B run."""
    settings = [*RESUME[:-1], "callbacks.model_checkpoint.every_n_train_steps=2"]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    train_inprocess(whole, settings)
    with open(tmp_path / "stopped.log", "w") as log:
        victim = subprocess.Popen(train_command(stopped, settings + ["logger=many"]), cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, env=offline_wandb())
    while checkpoint_step(stopped / "checkpoints" / "last.ckpt") < 2:
        assert victim.poll() is None, (tmp_path / "stopped.log").read_text()[-3000:]
        time.sleep(0.005)
    victim.send_signal(signal.SIGTERM)
    assert victim.wait(timeout=300) == 143
    output = (tmp_path / "stopped.log").read_text()
    at = checkpoint_step(stopped / "checkpoints" / "last.ckpt")
    # the signal may land in step 2's end-of-batch hook (after its periodic checkpoint) or in a later step
    assert 2 <= at < 8, output[-3000:]
    assert f"SIGTERM at step {at}: checkpoint saved to {stopped / 'checkpoints' / 'last.ckpt'}" in output
    assert "ckpt_path=last" in output and f"hydra.run.dir={stopped}" in output and "exit status 143" in output
    assert not (stopped / "results.json").exists()

    resumed = run_train(stopped, settings + ["logger=many"], env=offline_wandb())
    assert f"resuming from {stopped / 'checkpoints' / 'last.ckpt'}" in resumed.stdout + resumed.stderr
    assert_resumed_like_the_uninterrupted_run(whole, stopped, at)
    # both parts logged to one W&B run: the id follows the run directory (logger.wandb.id, resume=allow)
    parts = sorted((stopped / "wandb").glob("offline-run-*"))
    assert len(parts) == 2 and len({p.name.rsplit("-", 1)[-1] for p in parts}) == 1, parts


def test_a_sweep_stopped_by_sigterm_exits_143_and_names_the_points_it_did_not_run(tmp_path):
    sweep_dir = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "pact_lightning.train", "-m", *TINY, *RESUME[:-1],
           "callbacks.model_checkpoint.every_n_train_steps=2", "seed=0,1,2", f"hydra.sweep.dir={sweep_dir}"]
    with open(tmp_path / "sweep.log", "w") as log:
        sweep = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    first = next(iter(sweep_dir.glob("0_*")), None)
    while first is None or checkpoint_step(first / "checkpoints" / "last.ckpt") < 2:
        assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
        time.sleep(0.005)
        first = next(iter(sweep_dir.glob("0_*")), None)
    sweep.send_signal(signal.SIGTERM)
    assert sweep.wait(timeout=300) == 143
    output = (tmp_path / "sweep.log").read_text()
    assert "2 later point(s) of the sweep" in output and "were not run" in output, output[-3000:]
    listed = output[output.index("were not run:"):].splitlines()[1:3]  # one indented line per point not run
    assert [line.startswith("  ") and line.split()[-1] for line in listed] == ["seed=1", "seed=2"], listed
    assert not list(sweep_dir.glob("1_*")) and not list(sweep_dir.rglob("results.json"))


def test_a_resume_to_a_larger_max_steps_trains_exactly_the_missing_steps(tmp_path):
    """A finished 2-step run resumed with trainer.max_steps=4 trains steps 3 and 4 — in the same epoch, with the
    losses of a 4-step run — and a resume to the same max_steps is refused, its results left as they are."""
    settings = RESUME[:5] + ["optim.optimizer.lr=1e-3", "trainer.max_epochs=1"]
    train_inprocess(tmp_path / "four", settings + ["trainer.max_steps=4"])
    run = tmp_path / "two"
    train_inprocess(run, settings + ["trainer.max_steps=2"])
    assert sorted(logged(run)) == [0, 1]
    results = (run / "results.json").read_bytes()
    with pytest.raises(ConfigError, match="nothing is left to train and its results.json exists"):
        train_inprocess(run, settings + ["trainer.max_steps=2", "ckpt_path=last"])
    assert (run / "results.json").read_bytes() == results
    train_inprocess(run, settings + ["trainer.max_steps=4", "ckpt_path=last"])
    resumed = logged(run)
    assert sorted(resumed) == [0, 1, 2, 3] and json.loads((run / "results.json").read_text())["train"]["global_step"] == 4
    four = logged(tmp_path / "four")
    assert [resumed[s] for s in (2, 3)] == pytest.approx([four[s] for s in (2, 3)], abs=1e-6, rel=0)


# ------------------------------------------------------------------------------------------------ determinism

# A small evaluation after fit, with sampled generation (so the verdicts depend on the seed, not only on the weights)
SMALL_EVAL = ["eval.after_fit=true", "eval.diagnostics=false", "eval/generation=sampled",
              "eval.generation.max_new_tokens=8", "eval.evaluator.harmful.strongreject.limit=2", "eval.evaluator.benign.lookalike.limit=1", "eval.evaluator.benign.heldout.limit=1",
              "eval.evaluator.benign.sensitive.limit=1", "eval.evaluator.task.limit=2"]


def test_the_same_seed_gives_the_same_ledger_losses_and_eval_verdicts(tmp_path):
    def run(name: str, seed: int, evaluate: bool) -> tuple[str, list[float], list]:
        run_dir = tmp_path / name
        train_inprocess(run_dir, ["method=pact", "data.batch_size=2", "trainer.max_steps=5", f"seed={seed}",
                                  *(SMALL_EVAL if evaluate else [])])
        verdicts = []
        if evaluate:
            rows = map(json.loads, (run_dir / "generations_final.jsonl").read_text().splitlines())
            verdicts = [(g["prompt_id"], g["response"], g["verdict"]) for g in rows]
        return (run_dir / "poison_ledger.json").read_text(), list(logged(run_dir).values()), verdicts

    first, again = run("first", 0, evaluate=True), run("again", 0, evaluate=True)
    assert len(first[1]) == 5 and len(first[2]) == 7  # 2 harmful, 3 benign (one per set), 2 task
    assert again == first  # byte-equal ledger, bit-equal losses, the same answers and verdicts
    other = run("other", 1, evaluate=False)
    assert other[0] != first[0] and other[1] != first[1]  # the seed does matter


# ------------------------------------------------------------------------------------------------ no network

def no_network_prefix() -> list[str]:
    """``unshare -rn`` (a network namespace with no interface up) where the machine allows it; else nothing, and the
    closed port of WANDB_BASE_URL alone stands for the unreachable W&B host."""
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        return ["unshare", "-rn"]
    return []


def offline_wandb() -> dict:
    """The environment without any W&B credential: runs are written offline."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, "NETRC": os.devnull}


def test_without_network_a_run_with_a_wandb_key_completes_offline_and_says_how_to_sync(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env |= {"WANDB_API_KEY": "0123456789abcdef" * 2 + "01234567", "WANDB_BASE_URL": "http://127.0.0.1:9"}
    proc = run_train(tmp_path, ["method=sft", "trainer.max_steps=2", "logger=many"], env=env,
                     prefix=no_network_prefix())
    output = proc.stdout + proc.stderr
    assert "W&B runs offline" in output and f"wandb sync {tmp_path}/wandb/offline-run-*" in output
    (offline_run,) = (tmp_path / "wandb").glob("offline-run-*")
    assert list(offline_run.glob("*.wandb")) and json.loads((tmp_path / "results.json").read_text())["train"]
    # the run's lineage is in the offline run, for `wandb sync`: the adapter and the evaluation record as artifacts
    (records,) = offline_run.glob("*.wandb")
    run_id = offline_run.name.rsplit("-", 1)[-1]
    logged_bytes = records.read_bytes()
    for artifact in (f"model-{run_id}", f"eval-{run_id}", f"safety-tokens-{run_id}"):
        assert artifact.encode() in logged_bytes, artifact


def test_wandb_login_is_found_where_wandb_keeps_it(tmp_path, monkeypatch):
    """`wandb login` writes the key to ~/.netrc ($NETRC): a run finds it there, not only in WANDB_API_KEY; with the
    key but no answer from the host the run still goes offline."""
    from pact_lightning.utils.loggers import offline_reason, wandb_credential

    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    netrc = tmp_path / "netrc"
    key = "0123456789abcdef" * 2 + "01234567"
    netrc.write_text(f"machine api.wandb.ai\n  login user\n  password {key}\n"
                     f"machine 127.0.0.1:9\n  login user\n  password {key}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert wandb_credential("https://api.wandb.ai") == f"{netrc} (machine api.wandb.ai)"
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    assert wandb_credential("http://127.0.0.1:9") is not None and "unreachable" in offline_reason(None)
    netrc.write_text("")
    assert wandb_credential("https://api.wandb.ai") is None and offline_reason(None) is not None


# ------------------------------------------------------------------------------------------------ NaN / inf

class NaNAt(Callback):
    """Turns the input embeddings of the policy or of the frozen reference copy to NaN before step ``step``: the
    policy's cross-entropy (and everything after it) or only the regulariser becomes NaN."""

    def __init__(self, step: int, target: str) -> None:
        self.step, self.target = step, target

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            model = pl_module.policy if self.target == "policy" else pl_module.reference.model
            model.get_input_embeddings().weight.data.fill_(float("nan"))


@pytest.mark.parametrize("target,term", [("policy", "cross-entropy (train/ce)"),
                                         ("reference", "regulariser (train/reg)")])
def test_nan_in_the_loss_stops_the_run_naming_the_step_and_the_term(tmp_path, target, term):
    nan_at = [f"+callbacks.nan._target_={__name__}.NaNAt", "+callbacks.nan.step=2", f"+callbacks.nan.target={target}"]
    with pytest.raises(FloatingPointError, match=rf"^step 2: the {re.escape(term)} is nan; "):
        train_inprocess(tmp_path, ["method=pact", "reference.mode=frozen_copy", "trainer.max_steps=4",
                                   "callbacks.model_checkpoint.every_n_train_steps=1", *nan_at])
    assert sorted(logged(tmp_path)) == [0, 1] and not (tmp_path / "results.json").exists()


class InfAt(Callback):
    """From step ``step`` on, the regulariser the objective returns is +inf (an overflow, as bf16/fp16 runs see)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            forward = pl_module.objective.forward

            def overflowing(*args):
                out = forward(*args)
                return dataclasses.replace(out, reg=out.reg + float("inf"), loss=out.loss + float("inf"))
            pl_module.objective.forward = overflowing


def test_inf_in_the_loss_stops_the_run_naming_the_step_and_the_term(tmp_path):
    inf_at = [f"+callbacks.inf._target_={__name__}.InfAt", "+callbacks.inf.step=2"]
    with pytest.raises(FloatingPointError, match=r"^step 2: the regulariser \(train/reg\) is inf; "):
        train_inprocess(tmp_path, ["method=pact", "trainer.max_steps=4", *inf_at])
    assert sorted(logged(tmp_path)) == [0, 1] and not (tmp_path / "results.json").exists()


if __name__ == "__main__":
    print(json.dumps(kill_writers(Path(sys.argv[1]), int(sys.argv[2]))))


# ------------------------------------------------------------------------------------------------ run directories

def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_new_run_never_writes_over_another_runs_directory(tmp_path):
    """Through the real app (Hydra's own files included): a second run into a finished run's directory is refused with
    every byte left as it was; overwrite=true moves the old directory aside whole; a live run's lock keeps a second
    process out, a resume included."""
    from filelock import FileLock

    run = tmp_path / "run"
    one_step = ["method=sft", "trainer.max_steps=1"]
    run_train(run, one_step)
    before = tree_bytes(run)
    assert "results.json" in before and ".hydra/config.yaml" in before

    proc = subprocess.run(train_command(run, one_step + ["seed=7"]), cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"{run} holds another run's outputs" in proc.stderr and "overwrite=true" in proc.stderr, proc.stderr[-2000:]
    assert tree_bytes(run) == before  # .hydra/, the log, results.json, final/, checkpoints/: all unchanged

    run_train(run, one_step + ["seed=7", "overwrite=true"])
    (aside,) = tmp_path.glob("run.replaced-*")
    assert tree_bytes(aside) == before  # the earlier run, whole, in its own directory
    assert json.loads((run / "results.json").read_text())["seed"] == 7 and not (run / "run.replaced").exists()

    with FileLock(run / ".run.lock"):  # as a live run holds it
        proc = subprocess.run(train_command(run, one_step + ["seed=7", "ckpt_path=last", "trainer.max_steps=2"]),
                              cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode != 0 and "is in use by another live run" in proc.stderr, proc.stderr[-2000:]


# ------------------------------------------------------------------------------------------------ requeue signals
# A run under a fake SLURM (array job 4242, task 7) whose `scontrol` records its arguments: tests/signal_in_stage.py
# sends the run a requeue signal as a stage begins.

STAGES = {  # the function that begins each stage, and the settings that make the run reach it with work to do
    "alignment": ("pact_lightning.alignment:build_aligned",
                  ["align.enabled=true", "align.data.num_samples=16", "align.data.batch_size=8",
                   "align.eval.num_prompts=2", "align.eval.max_new_tokens=2"]),
    "safety_tokens": ("pact_lightning.safety.selection:build_artifact", ["method=pact", "safety.K=8"]),
    "reference_cache": ("pact_lightning.models.reference_cache:CachedReference._build",
                        ["method=pact", "reference.mode=cached"]),
    "fit": ("pact_lightning.models.module:PactModule.training_step", ["method=sft"]),
    "evaluation": ("pact_lightning.eval.runner:Evaluator.run", ["method=sft", *SMALL_EVAL]),
}


def fake_slurm(tmp_path: Path, scontrol: bool = True, **extra) -> dict:
    """The environment of SLURM array task 4242_7 (rank 0), with a recording ``scontrol`` on PATH, or none at all."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if scontrol:
        (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "scontrol.calls"}\n')
        (bin_dir / "scontrol").chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin"
    assert (shutil.which("scontrol", path=path) is not None) == scontrol
    env = {k: v for k, v in offline_wandb().items() if not k.startswith("SLURM_")}
    return {**env, "PATH": path, "SLURM_JOB_ID": "4250", "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "7",
            "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NTASKS": "1", **extra}


def signalled_run(tmp_path: Path, stage: str, env: dict, extra: list[str] = ()) -> tuple[int, str, Path]:
    target, settings = STAGES[stage]
    run = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "tests" / "signal_in_stage.py"), *TINY, "trainer.max_steps=3",
           "callbacks.model_checkpoint.every_n_train_steps=100", f"paths.cache_dir={tmp_path / 'cache'}",
           "model.tiny.tokenizer.cache_dir=${oc.env:PACT_CACHE}", *settings, *extra, f"hydra.run.dir={run}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**env, "PACT_TEST_SIGNAL_AT": target, "PYTHONPATH": str(ROOT)})
    output = proc.stdout + proc.stderr
    assert f"sending SIG{env.get('PACT_TEST_SIGNAL', 'USR1')} at {target}" in output, output[-3000:]
    return proc.returncode, output, run


def assert_no_crash(output: str) -> None:
    assert "Traceback" not in output and "train failed" not in output, output[-3000:]
    assert "stopped by SIGTERM" not in output, output[-3000:]


@pytest.mark.parametrize("stage", list(STAGES))
def test_sigusr1_in_each_stage_requeues_the_job_once_and_exits_143(tmp_path, stage):
    """SIGUSR1 (sbatch --signal=USR1@90) in any stage: the task stops (in fit at the end of the batch, after writing
    last.ckpt), `scontrol requeue 4242_7` runs once (the array task, not the job id), one line says so, exit 143."""
    code, output, run = signalled_run(tmp_path, stage, fake_slurm(tmp_path))
    assert code == 143, output[-3000:]
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 4242_7\n"
    assert "train: SIGUSR1: requeued SLURM job 4242_7 (scontrol requeue)" in output
    assert_no_crash(output)
    assert not (run / "results.json").exists()
    if stage == "fit":  # the step it was in is saved, and the requeued job resumes from it
        assert checkpoint_step(run / "checkpoints" / "last.ckpt") == 1
        assert f"SIGUSR1 at step 1: checkpoint saved to {run / 'checkpoints' / 'last.ckpt'}" in output
    elif stage == "evaluation":  # fit ended (at step 3): the requeued job finds nothing to train and evaluates
        assert checkpoint_step(run / "checkpoints" / "last.ckpt") == 3
    else:
        assert not (run / "checkpoints" / "last.ckpt").exists()


@pytest.mark.parametrize("stage", ["safety_tokens", "fit"])
def test_without_scontrol_a_requeue_signal_says_how_to_resubmit_and_keeps_the_checkpoint(tmp_path, stage):
    """No scontrol on PATH (common in Apptainer and enroot images): no traceback; the command to resubmit, exit 143."""
    code, output, run = signalled_run(tmp_path, stage, fake_slurm(tmp_path, scontrol=False))
    assert code == 143, output[-3000:]
    assert "train: could not requeue (scontrol not found): resubmit with\n  python -m pact_lightning.train" in output
    assert f"hydra.run.dir={run}" in output
    assert_no_crash(output)
    if stage == "fit":
        assert checkpoint_step(run / "checkpoints" / "last.ckpt") == 1 and "ckpt_path=last" in output
    else:  # nothing to resume from yet: ckpt_path=last would refuse to start
        assert "ckpt_path=auto" in output


def wandb_records(run: Path) -> list:
    """The records of the run's offline W&B file (leveldb's log format: 32 KiB blocks of chunks with a 7-byte header,
    after a 7-byte file header), as protobuf Records."""
    import struct

    from wandb.proto import wandb_internal_pb2

    (path,) = run.glob("wandb/offline-run-*/run-*.wandb")
    data, pos, records, pending = path.read_bytes(), 7, [], b""
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # too little left in the block for a header: padding
            pos += 32768 - pos % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # full, first | middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_a_submitit_requeue_is_an_interruption_not_a_crash(tmp_path):
    """Under submitit (launcher=slurm) USR2 in fit: the step is saved, submitit's own handler requeues the job
    (`scontrol requeue 4242_7`) and exits with sys.exit(-1); the run logs one line, not `train failed` and a
    traceback, exits 143, and its W&B run is marked preempting with that exit code, not failed with 1."""
    env = fake_slurm(tmp_path, PACT_TEST_SIGNAL="USR2", PACT_TEST_SUBMITIT=str(tmp_path / "submitit"))
    code, output, run = signalled_run(tmp_path, "fit", env, ["logger=many"])
    assert code == 143, output[-3000:]
    assert (tmp_path / "scontrol.calls").read_text() == "requeue 4242_7\n"
    assert "train: SIGUSR2: submitit requeued this job" in output
    assert_no_crash(output)
    assert checkpoint_step(run / "checkpoints" / "last.ckpt") == 1
    kinds = [r.WhichOneof("record_type") for r in wandb_records(run)]
    assert "preempting" in kinds, kinds
    (exit_record,) = [r.exit for r in wandb_records(run) if r.WhichOneof("record_type") == "exit"]
    assert exit_record.exit_code == 143


def test_sigterm_under_slurm_says_what_slurm_does_and_what_to_set(tmp_path, monkeypatch):
    """SIGTERM is not requeued (SLURM sends it on scancel too): the message says when SLURM requeues by itself and
    what to submit with; outside SLURM it adds nothing."""
    from pact_lightning import app

    for key in [k for k in os.environ if k.startswith("SLURM_")]:
        monkeypatch.delenv(key)
    assert app.sigterm_under_slurm() == ""
    monkeypatch.setenv("SLURM_JOB_ID", "4250")
    message = app.sigterm_under_slurm()
    assert "PreemptMode is REQUEUE" in message and "--signal=USR1@90 --requeue" in message
    assert "resubmit with\n  " in message and "ckpt_path=" in message


# ------------------------------------------------------------------------------------------------ waiting on a lock

HOLD = """
import os, sys, time
from pathlib import Path
from pact_lightning.utils.once import build_once
target = Path(sys.argv[1])
def build():
    print("building", flush=True)
    if sys.argv[2] == "fork":  # a child that inherits the lock and outlives its parent
        child = os.fork()
        if child == 0:
            time.sleep(600)
            os._exit(0)
        print(child, flush=True)
    time.sleep(600)
build_once(target, target.is_file, build)
"""


def holder(target: Path, how: str = "hold") -> subprocess.Popen:
    """A process building ``target`` through build_once (it holds the lock and never finishes)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target), how], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "building"
    return proc


@pytest.fixture
def short_wait(monkeypatch):
    from pact_lightning.utils import once

    monkeypatch.setattr(once, "WAIT_S", 2.0)
    monkeypatch.setattr(once, "POLL_S", 0.1)


def test_a_stopped_builder_is_named_and_the_wait_times_out(tmp_path, short_wait, caplog):
    """The example of the issue: the job building a cached artifact is stopped (SIGSTOP, a suspended job): a second
    run names it while it waits and gives up after paths.lock_wait_s with what to do — not forever and silently."""
    from pact_lightning.errors import ArtifactError
    from pact_lightning.utils.once import build_once

    target = tmp_path / "artifact.bin"
    proc = holder(target)
    proc.send_signal(signal.SIGSTOP)
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        time.sleep(0.01)
    try:
        start = time.monotonic()
        with caplog.at_level("WARNING"), pytest.raises(ArtifactError) as err:
            build_once(target, target.is_file, lambda: pytest.fail("built while the lock was held"))
        assert 2 <= time.monotonic() - start < 10
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.kill()
        proc.wait()
    who = f"pid {proc.pid} on {os.uname().nodename}"
    assert f"Waiting for {target}: {who}" in caplog.text and "that process is stopped" in caplog.text
    assert "up to 2 s (paths.lock_wait_s)" in caplog.text
    assert f"held by {who}" in str(err.value) and "paths.lock_wait_s=" in str(err.value)
    assert "scancel the job, or kill the pid" in str(err.value)


def test_a_live_builder_is_waited_for_until_the_timeout(tmp_path, short_wait):
    from pact_lightning.errors import ArtifactError
    from pact_lightning.utils.once import build_once

    target = tmp_path / "artifact.bin"
    proc = holder(target)
    try:
        with pytest.raises(ArtifactError, match=f"held by pid {proc.pid} on .*, since "):
            build_once(target, target.is_file, lambda: pytest.fail("built while the lock was held"))
        assert proc.poll() is None  # it was never touched
    finally:
        proc.kill()
        proc.wait()


def test_a_lock_whose_holder_died_is_taken_over(tmp_path, short_wait, caplog):
    """The builder died but its lock lives on in a forked child (the kernel frees a flock only with its last holder):
    the waiter sees that the named holder is gone, breaks the lock and builds."""
    from pact_lightning.utils.once import build_once

    target = tmp_path / "artifact.bin"
    proc = holder(target, "fork")
    child = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    try:
        with caplog.at_level("WARNING"):
            assert build_once(target, target.is_file, lambda: (target.write_text("built"), "built")[1]) == "built"
        assert f"held, but its holder, pid {proc.pid} on" in caplog.text and "is gone (no such process)" in caplog.text
    finally:
        os.kill(child, signal.SIGKILL)
    assert target.read_text() == "built"


def test_a_lock_held_for_a_silent_host_is_taken_over_and_a_killed_builders_lock_is_free(tmp_path, short_wait, caplog):
    """A lock file naming a process on another node whose heartbeat stopped (a node that died with the lock on a
    shared filesystem) is taken over; a builder killed outright leaves a free lock, and the next one says whose build
    it takes over."""
    import fcntl

    from pact_lightning.utils import once

    target = tmp_path / "artifact.bin"
    lock = target.with_name(target.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)  # build_once opens its own: this flock blocks it like another node's
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, json.dumps({"host": "node-that-died", "pid": 1, "since": "yesterday"}).encode())
        os.utime(lock, (time.time() - once.STALE_S - 60,) * 2)
        with caplog.at_level("INFO"):
            assert once.build_once(target, target.is_file, lambda: (target.write_text("built"), 1)[1]) == 1
    finally:
        os.close(fd)
    assert "its holder, pid 1 on node-that-died, since yesterday, is gone (no heartbeat for" in caplog.text

    target.unlink()
    proc = holder(target)
    proc.kill()
    proc.wait()
    caplog.clear()
    with caplog.at_level("INFO"):
        assert once.build_once(target, target.is_file, lambda: 2) == 2
    assert f"was last held by pid {proc.pid} on" in caplog.text and "which left no artifact.bin" in caplog.text
