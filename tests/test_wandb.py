"""W&B: each run directory's own run id (a new W&B run unless the run resumes from the directory's own checkpoint), the
online/offline decision and the reason it gives, and evaluate's W&B run (the record a training run's evaluation logs).
Offline runs are read back from their transaction logs (tests/test_sweeps.py)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ROOT
from runs import run_train, train_inprocess
from test_sweeps import wandb_offline_runs

KEY = "0123456789abcdef" * 2 + "01234567"
SETTINGS = ["method=sft", "optim.optimizer.lr=1e-3", "logger=many"]


def offline_env() -> dict:
    """The environment without any W&B credential or mode: the run decides by itself (offline: no credential)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "PACT_WANDB"))}, "NETRC": os.devnull}


def wandb_ids(run_dir: Path) -> list[str]:
    """The ids of the offline W&B runs written in ``run_dir``, oldest first."""
    return [p.name.rsplit("-", 1)[-1] for p in sorted((run_dir / "wandb").glob("offline-run-*"))]


# ------------------------------------------------------------------------------------------------------- the run id

def test_a_reused_run_directory_starts_a_new_wandb_run_unless_it_resumes_its_own_checkpoint(tmp_path):
    """Issue #28.1: the id is drawn at random by a fresh start and written into the run directory; only a resume from
    that directory's own checkpoint reuses it. overwrite=true and a deleted-and-rerun point are new W&B runs."""
    run = tmp_path / "run"
    run_train(run, [*SETTINGS, "trainer.max_steps=2"], env=offline_env())
    (first,) = wandb_ids(run)
    assert (run / "wandb" / "run_id").read_text().strip() == first

    # resume (to more steps) from the directory's own checkpoint: the same W&B run, continued
    run_train(run, [*SETTINGS, "trainer.max_steps=4", "ckpt_path=last"], env=offline_env())
    assert wandb_ids(run) == [first, first]

    # overwrite=true: the old directory (with its W&B run) moves aside, the new run (another seed) is another W&B run
    run_train(run, [*SETTINGS, "trainer.max_steps=2", "seed=1", "overwrite=true"], env=offline_env())
    (aside,) = tmp_path.glob("run.replaced-*")
    assert wandb_ids(aside) == [first, first]
    (second,) = wandb_ids(run)
    assert second != first and (run / "wandb" / "run_id").read_text().strip() == second

    # the point deleted and run again: another W&B run
    shutil.rmtree(run)
    run_train(run, [*SETTINGS, "trainer.max_steps=2", "seed=1"], env=offline_env())
    (third,) = wandb_ids(run)
    assert third not in (first, second)


def test_the_run_id_file_is_reused_only_by_a_resume(tmp_path, monkeypatch):
    """A directory whose run failed before its first checkpoint still holds its id: a fresh start replaces it. A resume
    reads it back; a directory from before the id file resumes with the id its path gave then. A checkpoint of another
    directory (ckpt_path=<other run>/…) is not this directory's own: a new W&B run."""
    from omegaconf import OmegaConf

    from pact_lightning.utils.fingerprint import digest
    from pact_lightning.utils.loggers import ID_FILE, loggers, wandb_run_id

    (tmp_path / "wandb").mkdir()
    (tmp_path / ID_FILE).write_text("stale\n")
    fresh = wandb_run_id(tmp_path, resumes=False)
    assert fresh != "stale" and (tmp_path / ID_FILE).read_text().strip() == fresh
    assert wandb_run_id(tmp_path, resumes=True) == fresh
    assert wandb_run_id(tmp_path / "old", resumes=True) == digest(str((tmp_path / "old").absolute()))

    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    spec = OmegaConf.create({"wandb": {"_target_": "lightning.pytorch.loggers.WandbLogger", "save_dir": str(tmp_path),
                                       "id": None, "offline": True, "resume": "allow"}})
    own = str(tmp_path / "checkpoints" / "last.ckpt")
    assert loggers(spec.copy(), ckpt_path=own)[0]._wandb_init["id"] == fresh
    other = loggers(spec.copy(), ckpt_path=str(tmp_path.parent / "elsewhere" / "checkpoints" / "last.ckpt"))
    assert other[0]._wandb_init["id"] not in (fresh, None)
    spec.wandb.id = "chosen"  # an explicit logger.wandb.id is kept as it is
    assert loggers(spec, ckpt_path=None)[0]._wandb_init["id"] == "chosen"


# ------------------------------------------------------------------------------------------- online, offline and why

class Reply(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``body`` of ``kind`` (a W&B server's GraphQL JSON, or a captive portal's page)."""
    body, kind = b"{}", "application/json"

    def do_POST(self):
        self.send_response(200)
        self.send_header("Content-Type", self.kind)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST

    def log_message(self, *args):
        pass


class WandbServer(Reply):
    body = b'{"data": {"serverInfo": {"__typename": "ServerInfo"}}}'


class CaptivePortal(Reply):
    body, kind = b"<html><body>Accept the terms of use to continue</body></html>", "text/html"


@contextmanager
def serving(handler, port: int = 0):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_wandb_env(monkeypatch, tmp_path):
    """No W&B variable (conftest sets WANDB_MODE=offline for the session) and an empty netrc; restored afterwards,
    including the WANDB_MODE a decision sets."""
    for name in [k for k in os.environ if k.startswith("WANDB_")] + ["WANDB_MODE", "PACT_WANDB_MODE_DECIDED"]:
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    netrc = tmp_path / "netrc"
    netrc.write_text("")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    return netrc


def test_the_offline_message_says_why(no_wandb_env, monkeypatch):
    """Issue #28.6: no credential, a credential but no answer, WANDB_MODE=offline, and a host that answers but is not
    W&B each give their own reason; a W&B server with a credential is online (the probe can say yes)."""
    from pact_lightning.utils.loggers import offline_reason

    port = closed_port()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    reason = offline_reason(None)
    assert reason.startswith(f"no W&B credential for http://127.0.0.1:{port}") and "wandb login" in reason, reason

    monkeypatch.setenv("WANDB_API_KEY", KEY)
    reason = offline_reason(None)
    assert "a W&B credential was found (WANDB_API_KEY)" in reason and "is unreachable" in reason, reason

    with serving(CaptivePortal) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        reason = offline_reason(None)
        assert "answers, but it is not W&B" in reason and "HTTP 200 text/html" in reason, reason
    with serving(WandbServer) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        assert offline_reason(None) is None
        assert offline_reason(True) == "logger.wandb.offline=true"
        monkeypatch.setenv("WANDB_MODE", "offline")
        assert offline_reason(None) == "WANDB_MODE=offline is set"


def test_a_wandb_login_is_found_without_wandbs_own_netrc_reader(no_wandb_env, monkeypatch):
    """Issue #28.6: wandb < 0.24 has no ``wandb.sdk.lib.wbauth``; the key `wandb login` wrote to the netrc is found all
    the same (as machine host:port or host), and a netrc that cannot be read is named, not taken for "no key"."""
    import builtins

    from pact_lightning.utils.loggers import offline_reason, wandb_credential

    real_import = builtins.__import__

    def without_wbauth(name, globals=None, locals=None, fromlist=(), level=0):
        if name.startswith("wandb.sdk.lib") and (name.endswith("wbauth") or "wbauth" in (fromlist or ())):
            raise ImportError(f"cannot import name 'wbauth' from '{name}' (wandb < 0.24)")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", without_wbauth)  # as on wandb < 0.24
    with pytest.raises(ImportError):
        from wandb.sdk.lib import wbauth  # noqa: F401
    no_wandb_env.write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n"
                            f"machine 127.0.0.1\n  login user\n  password {KEY}\n")
    assert wandb_credential("https://api.wandb.ai") == f"{no_wandb_env} (machine api.wandb.ai)"
    assert wandb_credential("http://127.0.0.1:9") == f"{no_wandb_env} (machine 127.0.0.1)"
    assert wandb_credential("https://other.example") is None
    with serving(WandbServer) as url:
        monkeypatch.setenv("WANDB_BASE_URL", url)
        assert offline_reason(None) is None  # online with the netrc's key
        no_wandb_env.write_text("machine\n")
        reason = offline_reason(None)
        assert reason.startswith(f"no W&B credential: {no_wandb_env} cannot be read"), reason


def test_each_point_of_an_in_process_sweep_decides_again(no_wandb_env, monkeypatch):
    """Issue #28.6: the verdict of one run (WANDB_MODE, which it sets for wandb) is not a later run's: W&B unreachable
    for the first point, back for the second, which runs online. A WANDB_MODE the user set holds for every point."""
    from pact_lightning.utils.loggers import decide_wandb_mode

    port = closed_port()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert "is unreachable" in decide_wandb_mode(None) and os.environ["WANDB_MODE"] == "offline"
    with serving(WandbServer, port):
        assert decide_wandb_mode(None) is None and os.environ["WANDB_MODE"] == "online"
        monkeypatch.setenv("WANDB_MODE", "offline")
        monkeypatch.delenv("PACT_WANDB_MODE_DECIDED")
        assert decide_wandb_mode(None) == decide_wandb_mode(None) == "WANDB_MODE=offline is set"


def test_a_host_that_is_not_wandb_sends_the_run_offline_with_the_reason(tmp_path):
    """Issue #28.6: a reachable proxy or captive portal at the W&B address failed the whole run (wandb's CommError); the
    run now completes offline, says why and how to upload it."""
    with serving(CaptivePortal) as url:
        env = offline_env() | {"WANDB_API_KEY": KEY, "WANDB_BASE_URL": url}
        proc = run_train(tmp_path, [*SETTINGS, "trainer.max_steps=1"], env=env)
    output = proc.stdout + proc.stderr
    assert f"W&B runs offline: a W&B credential was found (WANDB_API_KEY) and {url} answers, but it is not W&B" in output
    assert f"wandb sync {tmp_path}/wandb/offline-run-*" in output
    assert len(wandb_ids(tmp_path)) == 1 and (tmp_path / "results.json").is_file()


# ---------------------------------------------------------------------------------------------- evaluate's W&B run

EVAL = ["eval.after_fit=true", "eval.diagnostics=false", "eval.evaluator.max_new_tokens=4",
        "eval.evaluator.task.limit=2", "eval.evaluator.harmful.strongreject.limit=2",
        *[f"eval.evaluator.benign.{name}.limit=1" for name in ("lookalike", "heldout", "sensitive")]]


def evaluate(out: Path, overrides: list[str]) -> dict:
    """``python -m pact_lightning.evaluate`` with W&B offline; its one offline W&B run, read back."""
    proc = subprocess.run([sys.executable, "-m", "pact_lightning.evaluate", *overrides, "logger=many",
                           f"hydra.run.dir={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=offline_env(), check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = wandb_offline_runs(out)
    run["bytes"] = next(run["dir"].glob("*.wandb")).read_bytes()
    run["id"] = run["dir"].name.rsplit("-", 1)[-1]
    return run


def test_evaluate_logs_the_record_summary_and_artifacts_of_a_training_runs_evaluation(tmp_path):
    """Issue #28.7: evaluate's W&B run has the record's fields (judge included) and the whole config as its config,
    final/* in its summary, and the eval artifact. Re-judging a run's answers judges its reference answers too, with
    the same judge, so the summary has reference/* and delta/* (final − reference); evaluating a checkpoint has no
    reference: no delta/*."""
    run = tmp_path / "run"
    trained = train_inprocess(run, ["method=sft", "trainer.max_steps=1", *EVAL])
    assert trained.reference is not None and (run / "generations_reference.jsonl").is_file()

    rejudged = evaluate(tmp_path / "rejudge", [f"generations={run}"])
    record = json.loads((tmp_path / "rejudge" / "results.json").read_text())
    assert {"judge", "checkpoint", "generations", "final", "reference", "config"} <= rejudged["config"]
    assert record["judge"] == "KeywordJudge" and record["reference"]["num_prompts"] > 0
    summary = rejudged["summary"]
    for metric in ("harmful_score", "task_acc"):
        assert summary[f"final/{metric}"] == record["final"][metric]
        assert summary[f"reference/{metric}"] == record["reference"][metric]
        assert summary[f"delta/{metric}"] == pytest.approx(record["final"][metric] - record["reference"][metric])
    # the same judge on the same answers: the run's own numbers again
    assert record["reference"]["harmful_score"] == trained.reference.values["harmful_score"]
    assert f"eval-{rejudged['id']}".encode() in rejudged["bytes"]
    assert b"KeywordJudge" in rejudged["bytes"]  # the judge in the run's config

    checked = evaluate(tmp_path / "checkpoint", ["model=tiny", f"checkpoint={run / 'final'}",
                                                 "eval.evaluator.max_new_tokens=4", *EVAL[3:]])
    record = json.loads((tmp_path / "checkpoint" / "results.json").read_text())
    assert {"judge", "checkpoint", "model_weights", "final", "config"} <= checked["config"]
    assert checked["summary"]["final/harmful_score"] == record["final"]["harmful_score"]
    assert not [k for k in checked["summary"] if k.startswith(("delta/", "reference/"))]
    assert f"eval-{checked['id']}".encode() in checked["bytes"]
