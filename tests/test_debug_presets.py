"""`debug=fdr|limit|overfit` (pact_lightning/conf/debug/), each run for real through the training app."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT
from runs import logged


def train(run_dir, overrides, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "pact_lightning.train", *overrides, f"hydra.run.dir={run_dir}",
                           "callbacks.progress_bar=null"], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc


def test_fdr_steps_the_tiny_model_once_without_evaluation(tmp_path):
    train(tmp_path, ["debug=fdr"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"].startswith("tiny") and results["train"]["global_step"] == 1
    assert "final" not in results and "compare" not in results
    assert not list(tmp_path.rglob("generations_*.jsonl"))


def test_limit_runs_a_few_batches_and_a_small_evaluation(tmp_path):
    train(tmp_path, ["debug=limit", "model=tiny", "data=offline_sentiment", "data.num_samples=24", "data.batch_size=4", "data.max_length=96",
                     "logger=csv"])
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["train"]["global_step"] == 3 and "compare" not in results
    final = results["final"]
    # the measuring sets: 4 real harmful, 2 + 2 benign (the tuning sets are counted apart, under detail)
    assert (final["num_prompts"], final["num_benign_prompts"], final["num_task_prompts"]) == (4, 4, 4)


def test_overfit_drives_the_training_loss_to_about_zero(tmp_path):
    # full fine-tuning of the tiny model: its rank-8 LoRA is too small to memorise even two batches
    train(tmp_path, ["debug=overfit", "model=tiny", "model.lora=null", "method=sft", "~experiment", "logger=csv",
                     "data.max_length=96"])
    losses = logged(tmp_path)
    first, last = losses[min(losses)], losses[max(losses)]
    assert first > 1.0 and last < 0.05, (first, last)
