"""docs/extending.md, exactly: a defence defined outside the package (tests/extending/half_lora.py, a post-hoc edit
that halves the LoRA update) selected by ``_target_`` from a config outside the package, registered on import, and run
through train, evaluate and report with no edit inside pact_lightning/."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import torch

from conftest import ROOT
from runs import run_train
from test_train import EVAL

EXTENSION = ROOT / "tests" / "extending"


def test_a_defence_from_outside_the_package_runs_through_train_evaluate_and_report(tmp_path):
    from safetensors.torch import load_file

    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(EXTENSION), os.environ.get("PYTHONPATH")]))}
    own = [f"hydra.searchpath=[file://{EXTENSION}]", "posthoc=half_lora"]
    run = tmp_path / "run"
    run_train(run, ["method=sft", "trainer.max_steps=2", *own, *EVAL, "eval.diagnostics=false"], env=env)
    main = json.loads((run / "results.json").read_text())
    sub = json.loads((run / "posthoc" / "half_lora" / "results.json").read_text())
    assert sub["method"] == "sft+half_lora" and sub["posthoc"] == {"factor": 0.5, "num_scaled": 4}
    assert main["compare"]["sft+half_lora"]["final"]["num_prompts"] == main["final"]["num_prompts"]
    assert "sft+half_lora-reference" in main["paired"]
    trained = load_file(run / "final" / "adapter_model.safetensors")
    edited = load_file(run / "posthoc" / "half_lora" / "final" / "adapter_model.safetensors")
    for key, value in trained.items():  # B halved in the 4 adapted modules, A as trained
        torch.testing.assert_close(edited[key], value * (0.5 if "lora_B" in key else 1.0), rtol=0, atol=0)
    assert any("lora_B" in k and value.abs().sum() > 0 for k, value in trained.items())  # B moved: the edit shows

    proc = subprocess.run([sys.executable, "-m", "pact_lightning.evaluate", "model=tiny", f"checkpoint={run}/final",
                           *own, "logger=csv", *EVAL[1:], f"hydra.run.dir={tmp_path / 'eval'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["posthoc"] == {"name": "half_lora", "factor": 0.5, "num_scaled": 4}
    assert evaluated["final"]["harmful_score"] == sub["final"]["harmful_score"]

    proc = subprocess.run([sys.executable, "-m", "pact_lightning.report", str(run)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader((run / "report" / "runs.csv").open()))
    assert sorted(r["method"] for r in rows) == ["sft", "sft+half_lora"]
    assert "sft+half_lora" in (run / "report" / "report.md").read_text()
