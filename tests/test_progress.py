"""Progress in a SLURM .out file: with stdout and stderr sent to a file (no terminal), the long stages log plain
progress lines (step/total, loss, elapsed, ETA) at progress.every_s, and the libraries' known noise stays out."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from conftest import ROOT
from runs import train_command

NOISE = ["`weights_only` was not set", "💡 Tip", "is_gradient_checkpointing", "anonymous setting"]


def run_to_file(command: list[str], out, env=None) -> str:
    with open(out, "w") as f:  # a file, as SLURM's .out: not a TTY
        proc = subprocess.run(command, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=600)
    text = out.read_text()
    assert proc.returncode == 0, text[-4000:]
    return text


def test_fit_logs_a_plain_line_per_interval_and_no_library_noise(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SILENT"} | {"WANDB_MODE": "offline"}
    # the run's own progress bar (TINY turns it off), every step due (every_s tiny), checkpoints saved twice, W&B on
    command = [c for c in train_command(tmp_path / "run", ["trainer.max_steps=4", "progress.every_s=0.001",
                                                           "callbacks.model_checkpoint.every_n_train_steps=2",
                                                           "logger=many"])
               if c != "callbacks.progress_bar=null"]
    text = run_to_file(command, tmp_path / "slurm.out", env)
    lines = re.findall(r"fit: step (\d+)/4 \((\d+)%\), loss ([\d.]+), elapsed 0:00:\d\d(, ETA \d+:\d\d:\d\d)?", text)
    assert [int(step) for step, *_ in lines] == [1, 2, 3, 4], text[-3000:]
    assert all(eta for *_, eta in lines[:-1]) and not lines[-1][-1]  # an ETA until the last step
    assert lines[-1][1] == "100"
    for noise in NOISE:
        assert noise not in text, noise
    assert "━" not in text  # no Rich bar


def test_alignment_and_its_generation_log_one_line_each_at_a_long_interval(tmp_path):
    command = [sys.executable, "-m", "pact_lightning.align", "model=tiny",
               "model.tiny.tokenizer.cache_dir=${oc.env:PACT_CACHE}", "align.data.num_samples=16",
               "align.data.batch_size=4", "align.data.max_length=96", "align.eval.num_prompts=2",
               "align.eval.max_new_tokens=2", "align.eval.before=false", "logger=csv", "progress.every_s=3600",
               f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"]
    text = run_to_file(command, tmp_path / "slurm.out")
    # only the final line of each stage: the interval has not passed before its end
    assert re.findall(r"alignment: step (\d+)/(\d+) \(100%\), loss [\d.]+, elapsed", text) == [("4", "4")], text[-3000:]
    sets = re.findall(r"alignment: after, (\w+) prompts: prompt 2/2 \(100%\), elapsed", text)
    assert sets == ["strongreject", "sensitive", "task", "helpful"]
    assert "is_gradient_checkpointing" not in text


def test_a_terminal_gets_bars_and_lines_come_at_the_interval(monkeypatch, caplog):
    from lightning.pytorch.callbacks import RichProgressBar

    from pact_lightning.utils import progress

    monkeypatch.setitem(progress._settings, "plain", False)
    assert isinstance(progress.progress_bar(), RichProgressBar)
    monkeypatch.setitem(progress._settings, "plain", True)
    assert isinstance(progress.progress_bar("alignment"), progress.PlainProgressBar)
    clock = iter([0.0, 10.0, 20.0, 31.0, 40.0, 62.0, 70.0, 75.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    caplog.set_level("INFO", logger=progress.__name__)
    with progress.Lines("fit", 100, every_s=30) as lines:  # starts at t=0
        for step, loss in ((10, 2.0), (20, 1.5), (31, 1.25), (40, 1.0), (62, 0.5), (70, 0.25)):
            lines.set(step, loss=loss)
    assert [r.getMessage() for r in caplog.records] == [
        "fit: step 31/100 (31%), loss 1.25, elapsed 0:00:31, ETA 0:01:09",
        "fit: step 62/100 (62%), loss 0.5, elapsed 0:01:02, ETA 0:00:38",
        "fit: step 70/100 (70%), loss 0.25, elapsed 0:01:15, ETA 0:00:32"]  # the end, though no interval passed
