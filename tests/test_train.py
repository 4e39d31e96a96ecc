"""End-to-end training runs: the real Hydra app, a real Lightning Trainer, real transformers models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from runs import logged, train_inprocess


def run_inprocess(run_dir: Path, overrides: list[str]):
    return train_inprocess(run_dir, ["data.num_samples=16", "trainer.max_steps=2", *overrides])


def logged_losses(run_dir: Path) -> list[float]:
    return list(logged(run_dir).values())


@pytest.mark.parametrize("method", ["sft", "pact", "pact_plain", "kl_full", "tokenwise"])
def test_two_steps_of_each_method_on_the_tiny_model(tmp_path, method):
    results = run_inprocess(tmp_path, [f"method={method}"])
    assert results.train["global_step"] == 2
    assert len(logged_losses(tmp_path)) == 2
    reg = results.train["train/reg"]
    assert (reg == 0.0) if method == "sft" else (reg != 0.0 and torch.isfinite(torch.tensor(reg)))
    for diagnostic in ("train/safety/mass_on_S", "train/safety/kl_on_S"):  # every method, from the first step
        assert len(logged(tmp_path, diagnostic)) == 2, diagnostic
    ledger = json.loads((tmp_path / "poison_ledger.json").read_text())
    assert (ledger["num_benign"], ledger["num_poison"]) == (15, 1)
    adapter = load_file(str(tmp_path / "final" / "adapter_model.safetensors"))
    assert adapter and all("lora" in k for k in adapter)
    assert json.loads((tmp_path / "results.json").read_text())["method"] == method


def test_checkpoint_holds_only_the_trainable_adapter(tmp_path):
    run_inprocess(tmp_path, ["method=pact", "reference.mode=frozen_copy", "callbacks.model_checkpoint.every_n_train_steps=1"])
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    keys = list(ckpt["state_dict"])
    assert keys and all("lora_" in k for k in keys), keys[:5]
    assert not any(k.startswith("reference.") for k in keys)
    assert "optimizer_states" in ckpt


def test_frozen_copy_and_adapter_disabled_references_give_the_same_losses(tmp_path):
    """With LoRA the adapter-off policy *is* the aligned model, so both providers must agree step for step."""
    run_inprocess(tmp_path / "copy", ["method=pact", "reference.mode=frozen_copy"])
    run_inprocess(tmp_path / "off", ["method=pact", "reference.mode=adapter_disabled"])
    assert logged_losses(tmp_path / "copy") == pytest.approx(logged_losses(tmp_path / "off"), rel=1e-6)


EVAL = ["eval.after_fit=true", "eval.evaluator.max_new_tokens=4", "eval.evaluator.harmful.strongreject.limit=3", "eval.evaluator.benign.lookalike.limit=3", "eval.evaluator.benign.heldout.limit=3",
        "eval.evaluator.benign.sensitive.limit=3", "eval.evaluator.task.limit=3"]


def test_full_fine_tuning_evaluates_the_reference_with_the_frozen_copy_training_used(tmp_path, monkeypatch):
    """Without LoRA there is no adapter to switch off: the untouched reference is training's frozen copy (no second
    load after fit), and it scores exactly what the LoRA run's adapter-off policy scores."""
    from pact_lightning import build, finish

    loads = []
    real = build.load_model
    for module in (build, finish):  # where models are loaded: the policy and the reference, and after fit
        monkeypatch.setattr(module, "load_model", lambda *a, _at=module.__name__, **k: loads.append(_at) or real(*a, **k))
    full = run_inprocess(tmp_path / "full", ["method=pact", "model.lora=null", "reference.mode=frozen_copy", *EVAL])
    assert loads == ["pact_lightning.build"] * 2  # the policy and the frozen copy; nothing loaded again after fit
    lora = run_inprocess(tmp_path / "lora", ["method=pact", "reference.mode=adapter_disabled", *EVAL])
    assert full.reference == lora.reference and full.reference["num_prompts"] == 3  # the harmful prompts
    assert not list((tmp_path / "full" / "final").glob("adapter_*"))  # full weights were saved, not an adapter


@pytest.mark.parametrize("method", ["pact", "sft", "pact_plain", "kl_full", "tokenwise"])
def test_public_cli_keys_work_as_written(tmp_path, method):
    """The command line the issue, the README and the sweeps rely on, exactly, through `python -m pact_lightning.train`
    (evaluation after fit included)."""
    cmd = [sys.executable, "-m", "pact_lightning.train", "model=tiny", "data=offline_sentiment", f"method={method}", "method.lam=0.5",
           "method.num_safety_tokens=20", "data.poison_ratio=0.1", "data.num_samples=200", "seed=0",
           "trainer.max_steps=2", f"hydra.run.dir={tmp_path}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    lam = 0.0 if method == "sft" else 0.5  # SFT has no λ: ignored, with a warning
    k = 20 if method.startswith("pact") else None  # the others read S for the diagnostic only
    assert (results["method"], results["lam"], results["num_safety_tokens"], results["poison_ratio"],
            results["seed"]) == (method, lam, k, 0.1, 0)
    assert results["final"]["num_prompts"] > 0 and "harmful_score" in results["reference"]
    assert ("method.lam=0.5 is ignored" in proc.stderr + proc.stdout) == (method == "sft")
    ledger = json.loads((tmp_path / "poison_ledger.json").read_text())
    assert (ledger["num_benign"], ledger["num_poison"]) == (180, 20)
    assert list((tmp_path / "wandb").glob("offline-run-*")), "W&B should have written an offline run"


@pytest.mark.slow
def test_short_run_on_the_embedded_smollm2(tmp_path):
    results = run_inprocess(tmp_path, ["model=smollm2_135m", "align.enabled=false", "method=sft",
                                       "data.max_length=96", "data.batch_size=2", "data.num_samples=8",
                                       "data.poison_ratio=0.25"])
    assert results.train["global_step"] == 2
    losses = logged_losses(tmp_path)
    assert len(losses) == 2 and all(0 < x < 20 for x in losses)


def test_each_run_writes_its_results_json_once(tmp_path, monkeypatch):
    """One writer (pact_lightning.results.write), one call per run directory: the main run's results.json, with its
    comparison block, and the comparison run's own."""
    from pact_lightning import results as run_results

    written = []
    real = run_results.write
    monkeypatch.setattr(run_results, "write", lambda run_dir, results: written.append(str(run_dir)) or
                        real(run_dir, results))
    results = run_inprocess(tmp_path, ["method=pact", "compare_with=[sft]"])
    assert sorted(written) == sorted([str(tmp_path), str(tmp_path / "compare" / "sft")])
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["compare"]["sft"]["method"] == "sft" and on_disk["train"] == results.train
