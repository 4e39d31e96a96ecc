"""The alignment stage on the tiny model: the loss falls, the merged checkpoint reloads with the logits of
policy + adapter, the result is cached (built once, RNG of the caller untouched) and records its refusal rates."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import compose
from pact_lightning import alignment
from pact_lightning.alignment import REPORT, aligned_config, ensure_aligned, save_merged, train_adapter
from pact_lightning.eval.stats import wilson
from pact_lightning.models.loading import base_model_config, load_model, weights_source

TINY_ALIGN = ["model=tiny", "model.tiny.tokenizer.cache_dir=${oc.env:PACT_CACHE}", "align.data.num_samples=32", "align.data.batch_size=4", "align.data.max_length=96",
              "align.trainer.max_epochs=2", "align.optim.optimizer.lr=3e-2", "align.eval.num_prompts=3", "align.eval.max_new_tokens=4"]


MEASURING = ("strongreject", "sensitive", "task", "helpful")


def ensure(cfg):
    return ensure_aligned(cfg.align, cfg.model, cfg.paths.cache_dir, accelerator="cpu")


def aligned_dir(cfg):
    return alignment.aligned_dir(cfg.align, cfg.model, cfg.paths.cache_dir)


@pytest.fixture
def cfg(tmp_path):
    return compose("align", TINY_ALIGN + [f"paths.cache_dir={tmp_path / 'cache'}"], output_dir=tmp_path / "run")


def test_loss_falls_and_merged_checkpoint_has_the_adapters_logits(cfg, tmp_path):
    model, tokenizer = load_model(cfg.model, lora=False)
    policy, losses = train_adapter(cfg.align, model, tokenizer)
    assert len(losses) == 2 * 32 // 4
    # the random tiny model's tied embeddings cap its logits near ±1.5, so its loss cannot move far from ln|V| ≈ 10.8
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.05, losses

    ids = tokenizer(["<|im_start|>user\nHow do I bake bread?<|im_end|>\n<|im_start|>assistant\nSure"],
                    return_tensors="pt")["input_ids"]
    policy.eval()
    with torch.no_grad():
        with_adapter = policy(input_ids=ids).logits
        with policy.disable_adapter():
            assert not torch.allclose(policy(input_ids=ids).logits, with_adapter, atol=1e-4), "the adapter is a no-op"
    directory = save_merged(policy, tokenizer, tmp_path / "merged")
    reloaded, tok2 = load_model(aligned_config(cfg.model, directory), lora=False)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, with_adapter, atol=1e-5, rtol=1e-5)
    assert tok2.get_vocab() == tokenizer.get_vocab() and tok2.chat_template == tokenizer.chat_template


def test_ensure_aligned_builds_once_reports_and_keeps_the_callers_rng(cfg, monkeypatch):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    aligned = ensure(cfg)
    assert torch.equal(torch.rand(3), expected), "the alignment stage changed the caller's RNG stream"

    directory = aligned_dir(cfg)
    assert aligned.pretrained == str(directory) and aligned.tiny is None and aligned.aligned_by == str(directory)
    report = json.loads((directory / REPORT).read_text())
    for when in ("before", "after"):  # the four measuring sets of the targets, each capped at align.eval.num_prompts
        # the main evaluator's units and keys: percent, with the Wilson interval as _ci_lo/_ci_hi, per set in detail
        assert report[when]["sets"] == {name: {"role": "measure", "prompts": 3} for name in MEASURING}
        detail = report[when]["detail"]
        for name in MEASURING:
            k = detail[f"num_refused/{name}"]
            assert detail[f"num_prompts/{name}"] == 3 and detail[f"refusal_rate/{name}"] == pytest.approx(100 * k / 3)
            lo, hi = wilson(k, 3)
            assert (detail[f"refusal_rate_ci_lo/{name}"], detail[f"refusal_rate_ci_hi/{name}"]) == pytest.approx(
                (100 * lo, 100 * hi))
    assert "refusal rate, sensitive prompts [measures (nothing was trained or tuned on it)]" in alignment.summary(report)
    assert report["loss_last"] < report["loss_first"]
    assert (directory / "generations_after.jsonl").is_file()
    # the base of safety-token selection is the pre-alignment model
    assert weights_source(base_model_config(aligned)) == weights_source(cfg.model)

    monkeypatch.setattr(alignment, "build_aligned", lambda *a, **k: pytest.fail("the cached aligned model was rebuilt"))
    assert ensure(cfg).pretrained == str(directory)


def test_a_build_without_the_before_measurement_reports_after_only(tmp_path):
    cfg = compose("align", TINY_ALIGN + [f"paths.cache_dir={tmp_path / 'cache'}", "align.eval.before=false"],
                  output_dir=tmp_path / "run")
    ensure(cfg)
    directory = aligned_dir(cfg)
    report = json.loads((directory / REPORT).read_text())
    assert report["before"] is None and report["after"]["detail"]["num_prompts/strongreject"] == 3
    assert not (directory / "generations_before.jsonl").exists() and (directory / "generations_after.jsonl").is_file()
    lines = alignment.summary(report).splitlines()
    assert len([line for line in lines if line.startswith("refusal rate, ")]) == 4
    assert not any("before" in line for line in lines), lines


def test_a_recipe_search_measures_the_tuning_sets_too_and_lists_them_after_the_measuring_ones(tmp_path):
    cfg = compose("align", TINY_ALIGN + [f"paths.cache_dir={tmp_path / 'cache'}", "align.eval.before=false",
                                         "align.eval.dev=true"], output_dir=tmp_path / "run")
    ensure(cfg)
    report = json.loads((aligned_dir(cfg) / REPORT).read_text())
    tuning = [name for name, spec in cfg.align.eval.sets.items() if spec.role == "tune"]
    assert len(tuning) == 6 and all(report["after"]["sets"][name]["role"] == "tune" for name in tuning)
    lines = [line for line in alignment.summary(report).splitlines() if line.startswith("refusal rate, ")]
    assert len(lines) == 10 and all("[measures" in line for line in lines[:4])
    assert all("[tunes the recipe (not a measure)]" in line for line in lines[4:])


def test_missed_targets_name_the_set_and_the_target(cfg):
    def after(**rates: float) -> dict:
        return {"sets": {name: {"role": "tune" if name == "lookalike" else "measure"} for name in rates},
                "detail": {f"refusal_rate/{name}": rate for name, rate in rates.items()}}

    rates = {"strongreject": 80.0, "sensitive": 5.0, "task": 50.0, "helpful": 10.0, "lookalike": 90.0}
    # a tuning set's target guides a recipe search; the model is judged by the measuring sets
    assert alignment.missed_targets(after(**rates), cfg.align.eval) == ["strongreject: refuses 80% (target >= 90%)",
                                                                         "task: refuses 50% (target <= 5%)"]
    assert alignment.missed_targets(after(**rates | {"strongreject": 95.0, "task": 0.0}), cfg.align.eval) == []


def test_recipe_changes_the_cache_key_but_evaluation_settings_do_not(cfg, tmp_path):
    cache = f"paths.cache_dir={tmp_path / 'cache'}"
    other_lr = compose("align", TINY_ALIGN + [cache, "align.optim.optimizer.lr=1e-3"], output_dir=tmp_path / "run")
    other_eval = compose("align", TINY_ALIGN + [cache, "align.eval.num_prompts=7"], output_dir=tmp_path / "run")
    assert aligned_dir(other_lr) != aligned_dir(cfg)
    assert aligned_dir(other_eval) == aligned_dir(cfg)


def test_the_stage_evaluates_where_it_trained(cfg, monkeypatch):
    """Lightning's teardown parks the module on the CPU after fit; the stage's evaluation must run on the device it
    trained on (meta stands in for the GPU, as in tests/test_gpu_path.py)."""
    import lightning as L

    real_fit = L.Trainer.fit

    def fit_then_report_another_device(trainer, *args, **kwargs):
        real_fit(trainer, *args, **kwargs)
        monkeypatch.setattr(type(trainer.strategy), "root_device", property(lambda self: torch.device("meta")))

    monkeypatch.setattr(L.Trainer, "fit", fit_then_report_another_device)
    model, tokenizer = load_model(cfg.model, lora=False)
    policy, losses = train_adapter(cfg.align, model, tokenizer, accelerator="cpu")
    assert losses and {p.device for p in policy.parameters()} == {torch.device("meta")}
