"""The run record (pact_lightning/record): results.json as typed data, read and written back field by field, and the
vocabulary of its numbers, all without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pact_lightning.record import (HEAD, CompareEntry, Evaluation, PairedDifference, RunRecord, answers_text,
                                   difference_text, rate_text)
from pact_lightning.setting import RunSetting

# results.json of the embedded default (method=pact, compare_with=[sft]) as the code of 2026-12-07 wrote it; only its
# absolute paths were made relative
TODAY = Path(__file__).parent / "data" / "results_embedded_default.json"


def test_todays_results_json_reads_into_the_record_and_writes_back_field_by_field(tmp_path):
    text = TODAY.read_text(encoding="utf-8")
    raw = json.loads(text)
    record = RunRecord.read(TODAY)
    assert record.setting == RunSetting(method="pact", lam=1.0, k=50, p=0.1, n=200, seed=42, model="smollm2_135m",
                                        task="sentiment")
    assert record.run_dir == "logs/train/runs/2026-12-07_09-03-59" and record.judge == "KeywordJudge"
    assert record.alignment.before is None and record.alignment.after["num_strongreject"] == 150
    assert record.train["global_step"] == 50 and record.devices["precision"] == "32-true"
    assert isinstance(record.final, Evaluation) and record.final.rate("harmful_score") == 44.0
    assert record.final.interval("harmful_score") == (raw["final"]["harmful_score_ci_lo"],
                                                      raw["final"]["harmful_score_ci_hi"])
    assert record.final.tuning == ["lookalike"] and record.final.sets["strongreject"].prompts == 150
    assert record.final.of_set("heldout")["benign_refusal_rate"] == raw["final"]["detail"]["benign_refusal_rate/heldout"]
    assert record.reference.rate("refusal_rate") == 94.0
    assert isinstance(record.compare["sft"], CompareEntry) and record.compare["sft"].final.rate("task_acc") == 100.0
    assert isinstance(record.paired["pact-sft"]["harmful_score"], PairedDifference)
    assert record.paired["pact-sft"]["harmful_score"].beyond_noise is True
    assert record.timings["total"] == 299.6 and record.peak_memory_mib == {"rss": 3049.1}
    assert record.objective == 99.5 and record.extra == {}
    assert set(record.models()) == {"reference", "pact", "sft"}

    # field by field, in the same order, and byte for byte through the writer
    out = record.to_dict()
    assert out == raw and list(out) == list(raw)
    for key in raw:
        assert out[key] == raw[key], key
    assert record.to_json() == text
    record.write(tmp_path)
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == text
    assert RunRecord.read(tmp_path) == record


def test_unknown_keys_are_kept_and_written_back():
    raw = json.loads(TODAY.read_text(encoding="utf-8"))
    raw["added_by_a_newer_writer"] = {"x": 1}
    raw["compare"]["sft"]["note"] = "kept"
    raw["paired"]["pact-sft"]["task_acc"]["effect"] = 0.1
    raw["final"]["sets"]["task"]["source"] = "sst2"
    record = RunRecord.from_dict(raw)
    assert record.extra == {"added_by_a_newer_writer": {"x": 1}} and record.compare["sft"].extra == {"note": "kept"}
    assert record.to_dict() == raw


def test_records_of_other_writers_keep_their_own_keys():
    """The evaluate app's records (a model, no setting otherwise) and partial hand-written ones gain no keys."""
    evaluate = {"model": "tiny", "model_weights": "w", "checkpoint": None, "judge": "KeywordJudge", "run_dir": "out",
                "final": {"harmful_score": 5.0, "detail": {}}, "posthoc": {"name": "safelora", "cos": 0.1}}
    rejudge = {"model": None, "generations": "g.jsonl", "judge": "GuardJudge(x)", "checkpoint": None, "run_dir": "o",
               "final": {"harmful_score": 1.0}}
    for raw in (evaluate, rejudge, {"final": {"task_acc": 1.0}}, {}):
        assert RunRecord.from_dict(raw).to_dict() == raw
        assert list(RunRecord.from_dict(raw).to_dict()) == list(raw)


def test_a_record_built_in_code_names_its_head_and_leaves_out_what_it_has_not():
    record = RunRecord(setting=RunSetting(method="sft", lam=0, seed=1, model="tiny", task="sentiment"), run_dir="r")
    out = record.to_dict()
    assert list(out) == list(HEAD) and out["num_safety_tokens"] is None and out["alignment"] is None
    record.final = Evaluation.from_dict({"harmful_score": 3.0, "sets": {"a": {"kind": "harmful", "role": "tune",
                                                                             "prompts": 2}}, "detail": {}})
    record.compare = {"pact": CompareEntry(method="pact", run_dir="r/compare/pact")}
    out = record.to_dict()
    assert "reference" not in out and "judge" not in out and out["final"]["sets"]["a"]["role"] == "tune"
    assert out["compare"] == {"pact": {"method": "pact", "run_dir": "r/compare/pact", "final_dir": None,
                                       "final": None}}
    assert RunRecord.from_dict(out).to_dict() == out


def test_an_evaluation_reads_like_its_block():
    block = Evaluation.from_dict(json.loads(TODAY.read_text(encoding="utf-8"))["final"])
    assert block["harmful_score"] == block.get("harmful_score") == 44.0 and "sets" in block and "nope" not in block
    assert block.get("nope") is None and dict(block) == block.to_dict()
    assert rate_text(block, "harmful_score") == rate_text(block.to_dict(), "harmful_score")
    assert answers_text(block) == answers_text(block.to_dict())
    assert "over-refusal on tuning sets (not in the rate): lookalike" in answers_text(block)
    assert Evaluation() == Evaluation.of({}) and not Evaluation()


def test_paired_differences_read_as_text():
    record = RunRecord.read(TODAY)
    d = record.paired["pact-sft"]["harmful_score"]
    assert difference_text("pact-sft", "harmful_score", d) == difference_text("pact-sft", "harmful_score",
                                                                              d.to_dict())
    assert "within noise" in difference_text("pact-sft", "task_acc", record.paired["pact-sft"]["task_acc"])


def test_a_broken_results_json_is_named(tmp_path):
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="results.json is not valid JSON"):
        RunRecord.read(tmp_path)
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="a run record is a JSON object"):
        RunRecord.read(tmp_path / "results.json")
    (tmp_path / "results.json").write_text('{"final": 3}')
    with pytest.raises(ValueError, match="an evaluation block is a JSON object"):
        RunRecord.read(tmp_path)


def test_the_record_and_its_vocabulary_import_no_torch():
    code = ("import sys, pact_lightning.record, pact_lightning.card, pact_lightning.sweep, pact_lightning.report; "
            "print(sorted(m for m in ('torch', 'lightning', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
