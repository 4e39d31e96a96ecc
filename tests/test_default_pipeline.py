"""The embedded default's plumbing on the tiny model: alignment stage → safety tokens (aligned vs pre-alignment) →
PACT → SFT comparison → evaluation → results.json with timings and one summary; a second run reuses every cache."""

from __future__ import annotations

import json
import logging

import pytest
from omegaconf import open_dict

from conftest import compose
from pact_lightning import alignment, compare
from pact_lightning.safety import selection
from pact_lightning.safety.tokens import read_metadata

# The embedded default with the tiny model in place of SmolLM2 and everything cut to a handful of steps and prompts.
TINY_DEFAULT = [
    "model=tiny", "model.tiny.tokenizer.cache_dir=${oc.env:PACT_CACHE}", "align.enabled=true",
    "data=offline_sentiment",  # the tiny model's random weights write no answers to make the content poison from
    "align.data.num_samples=16", "align.data.batch_size=4", "align.data.max_length=96", "align.eval.num_prompts=2",
    "align.eval.max_new_tokens=4", "safety.K=8", "data.num_samples=16", "data.batch_size=4", "data.max_length=96",
    "trainer.max_steps=3", "logger=csv", "callbacks.progress_bar=null", "eval.diagnostics=false",
    "eval.evaluator.max_new_tokens=4", "eval.evaluator.harmful.strongreject.limit=3",
    "eval.evaluator.benign.lookalike.limit=3",
    "eval.evaluator.benign.heldout.limit=3", "eval.evaluator.benign.sensitive.limit=3", "eval.evaluator.task.limit=3",
]


def test_no_arguments_means_the_embedded_default():
    cfg = compose("train", output_dir="/tmp/unused")
    assert (cfg.model.name, cfg.method.name, cfg.data.name, cfg.data.poison_ratio) == (
        "smollm2_135m", "pact", "offline_sentiment_content", 0.1)
    assert cfg.align.enabled and cfg.model.needs_alignment and list(cfg.compare_with) == ["sft"]
    # without the experiment the bare groups apply: no comparison run, and no alignment stage for an aligned preset
    bare = compose("train", ["~experiment", "model=llama3_1_8b_instruct"], output_dir="/tmp/unused")
    assert list(bare.compare_with) == [] and not bare.align.enabled


def run(tmp_path, caplog, name="run"):
    from pact_lightning.train import train

    cfg = compose("train", TINY_DEFAULT + [f"paths.cache_dir={tmp_path / 'cache'}"], output_dir=tmp_path / name)
    with open_dict(cfg):
        del cfg.hydra  # as in the Hydra app, whose task function gets the config without its hydra node
    with caplog.at_level(logging.INFO):
        compare.run(cfg, train)
    return cfg, json.loads((tmp_path / name / "results.json").read_text())


def test_default_pipeline_plumbing_on_the_tiny_model(tmp_path, caplog, monkeypatch):
    cfg, results = run(tmp_path, caplog)

    aligned_dir = alignment.aligned_dir(cfg.align, cfg.model, cfg.paths.cache_dir)
    assert results["model_weights"] == str(aligned_dir) and (aligned_dir / alignment.REPORT).is_file()
    artifact = results["safety_tokens"]
    assert artifact.startswith(str(tmp_path / "cache" / "safety_tokens"))
    meta = read_metadata(artifact)
    settings = json.loads(meta["settings"])
    # the aligned model by its content key (its folder's digest name), not by where the cache sits
    assert meta["aligned_model"] == f"aligned:{aligned_dir.name}" and settings["base_role"].startswith("pre-alignment")
    assert meta["base_model"].startswith("tiny:") and settings["K"] == 8

    assert results["method"] == "pact" and results["train"]["global_step"] == 3 and results["train"]["train/reg"] > 0
    for block in ("reference", "final"):
        b = results[block]
        assert {"harmful_score", "benign_refusal_rate", "task_acc", "task_refusal_rate"} <= set(b)
        # every rate with its count and 95% interval; the task's majority-label rate beside its accuracy
        assert b["num_prompts"] == 3 and b["num_task_prompts"] == 3 and b["task_majority_rate"] == pytest.approx(200 / 3)
        for rate in ("harmful_score", "benign_refusal_rate", "task_acc", "task_refusal_rate"):
            assert b[f"{rate}_ci_lo"] <= b[rate] <= b[f"{rate}_ci_hi"]
    # paired differences of every two models on the same prompts
    assert set(results["paired"]) == {"pact-reference", "sft-reference", "pact-sft"}
    pact_sft = results["paired"]["pact-sft"]["harmful_score"]
    assert pact_sft["n"] == 3 and pact_sft["diff"] == pytest.approx(
        results["final"]["harmful_score"] - results["compare"]["sft"]["final"]["harmful_score"])
    sft = results["compare"]["sft"]
    assert sft["method"] == "sft" and sft["train"]["global_step"] == 3 and sft["train"]["train/reg"] == 0
    assert sft["run_dir"] == str(tmp_path / "run" / "compare" / "sft") and "harmful_score" in sft["final"]
    assert (tmp_path / "run" / "compare" / "sft" / "final" / "adapter_model.safetensors").is_file()

    timings = results["timings"]
    for stage in ("convert", "align", "align/fit", "safety_tokens", "fit", "eval_reference", "eval_final",
                  "compare_sft", "compare_sft/fit", "compare_sft/eval_final", "total"):
        assert stage in timings, (stage, timings)
    assert "compare_sft/eval_reference" not in timings  # the comparison shares the main run's reference
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Summary")]
    assert len(summary) == 1 and "sft" in summary[0] and "wall time" in summary[0] and str(aligned_dir) in summary[0]
    assert "pact − sft, harmful_score:" in summary[0] and "task majority-label rate: 66.7%" in summary[0]
    # the aligned reference's refusal rates on the four measuring sets, as alignment.json has them
    assert set(results["alignment"]["after"]["detail"]) >= {f"refusal_rate/{s}" for s in ("strongreject", "sensitive",
                                                                                            "task", "helpful")}
    assert "aligned reference, refusal rate, sensitive prompts [measures" in summary[0]

    # second run in another directory: the aligned checkpoint, the artifact and the reference's evaluation come from
    # the cache
    monkeypatch.setattr(alignment, "build_aligned", lambda *a, **k: pytest.fail("the aligned model was rebuilt"))
    monkeypatch.setattr(selection, "build_artifact", lambda *a: pytest.fail("the safety tokens were rebuilt"))
    caplog.clear()
    _, again = run(tmp_path, caplog, name="again")
    assert again["safety_tokens"] == artifact and again["model_weights"] == str(aligned_dir)
    assert again["final"]["harmful_score"] == results["final"]["harmful_score"]
    assert again["reference"] == results["reference"]
    reused = [r.getMessage() for r in caplog.records if "evaluation of reference reused" in r.getMessage()]
    assert len(reused) == 1, reused
    assert (tmp_path / "again" / "generations_reference.jsonl").read_text() == \
        (tmp_path / "run" / "generations_reference.jsonl").read_text()

    # the same command in the same directory (ckpt_path=auto): the run is complete, nothing is redone or rewritten
    before = (tmp_path / "run" / "results.json").stat().st_mtime_ns
    caplog.clear()
    _, same = run(tmp_path, caplog)
    assert same == results and (tmp_path / "run" / "results.json").stat().st_mtime_ns == before
    assert any("this run is complete" in r.getMessage() for r in caplog.records)


def test_evaluate_app_applies_a_runs_adapter_to_the_aligned_model_it_was_trained_on(tmp_path, caplog):
    """``python -m pact_lightning.evaluate checkpoint=<run>/final`` reproduces the run's own final evaluation: the
    adapter goes on the aligned checkpoint recorded in its config, not on the configured (unaligned) tiny weights."""
    from pact_lightning.evaluate import evaluate
    from runs import logged

    cfg, results = run(tmp_path, caplog)
    # the train run also logged its evaluation as metrics
    assert logged(tmp_path / "run", "eval/harmful_score") == {3: results["final"]["harmful_score"]}
    assert logged(tmp_path / "run", "eval/reference/task_acc") == {3: results["reference"]["task_acc"]}

    overrides = [o for o in TINY_DEFAULT if o.startswith(("model", "eval.evaluator"))]
    ecfg = compose("evaluate", overrides + ["logger=csv", f"paths.cache_dir={tmp_path / 'cache'}",
                                            f"checkpoint={tmp_path / 'run' / 'final'}"], output_dir=tmp_path / "eval")
    with open_dict(ecfg):
        del ecfg.hydra
    evaluate(ecfg)

    out = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert out["model_weights"] == str(alignment.aligned_dir(cfg.align, cfg.model, cfg.paths.cache_dir)) and out["checkpoint"] == str(tmp_path / "run" / "final")
    assert out["final"] == results["final"]
    rows = [json.loads(line) for line in (tmp_path / "eval" / "generations_eval.jsonl").read_text().splitlines()]
    trained = [json.loads(line) for line in (tmp_path / "run" / "generations_final.jsonl").read_text().splitlines()]
    assert len(rows) == sum(entry["prompts"] for entry in out["final"]["sets"].values())
    assert [(r["prompt_id"], r["response"], r["verdict"]) for r in rows] == \
        [(r["prompt_id"], r["response"], r["verdict"]) for r in trained]
    assert logged(tmp_path / "eval", "eval/harmful_score") == {0: out["final"]["harmful_score"]}
