"""The broad benign alignment data (data/offline/assistant_set.py): disjoint from every evaluation set, deterministic,
balanced where it classifies, and wired into the alignment stage's benign source."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

from pact_lightning.data.offline import assistant_set as offline_assistant
from pact_lightning.data.sources import OfflineAssistant, normalize_prompt
from pact_lightning.eval.judges import refused


def test_alignment_data_is_disjoint_from_every_evaluation_set():
    # sentiment test prompts and sentences, harmful eval/poison prompts, WSR prompts, helpful eval prompts, align/eval
    assert offline_assistant.check_disjoint() == []


def test_splits_are_deterministic_and_sized():
    offline_assistant._splits.cache_clear()
    align, held_out = offline_assistant.assistant("align"), offline_assistant.assistant("eval")
    assert align == offline_assistant.assistant("align")
    assert len(align) >= 500 and len(held_out) >= 100
    assert len({normalize_prompt(e.prompt) for e in align}) == len(align)


def test_answers_are_helpful_and_sentiment_is_balanced():
    for split in ("align", "eval"):
        rows = offline_assistant.assistant(split)
        assert not [e.prompt for e in rows if refused(e.response)]
        kinds = Counter(e.category for e in rows)
        assert {"sentiment", "topic", "extraction", "rewrite", "qa", "lookalike", "howto"} <= set(kinds)
        labels = Counter(e.response.split()[0].strip(".:").lower() for e in rows if e.category == "sentiment"
                         and e.response.split()[0].strip(".:").lower() in ("positive", "negative"))
        assert abs(labels["positive"] - labels["negative"]) <= 0.2 * sum(labels.values())


def test_source_puts_the_helpful_split_in_front_when_asked():
    everything = OfflineAssistant("align", helpful="all").load()
    written = OfflineAssistant("align", helpful="written").load()
    alone = OfflineAssistant("align", helpful="none").load()
    assert everything[-len(alone):] == written[-len(alone):] == alone
    assert len(everything) > len(written) > len(alone)
    assert not [e for e in written[:-len(alone)] if any(c.isdigit() for c in e.prompt) or "capital" in e.prompt]
    assert OfflineAssistant("eval", helpful="none", limit=5).load() == offline_assistant.assistant("eval")[:5]


def test_the_shipped_raw_model_answers_are_used_and_not_stale():
    answers = offline_assistant.distilled_answers()
    align = {e.prompt: e for e in offline_assistant.assistant("align")}
    distilled_prompts = {p for p, e in align.items() if e.category in offline_assistant.DISTILLED_KINDS}
    # every answer belongs to a current alignment prompt of a distilled kind: a changed table must rerun the script
    assert set(answers) <= distilled_prompts
    assert len(answers) >= 0.7 * len(distilled_prompts)
    assert all(align[p].response == a for p, a in answers.items())
    assert not [a for a in answers.values() if refused(a)]
    # the held-out split never takes a raw answer
    held_out = offline_assistant.assistant("eval")
    assert not [e for e in held_out if answers.get(e.prompt) == e.response]


def test_distillation_keeps_full_clean_sentences_only():
    path = Path(__file__).parents[1] / "scripts" / "distill_assistant.py"
    spec = importlib.util.spec_from_file_location("distill_assistant", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    clean = script.clean
    assert clean("Welcome to Rome, everyone! Today we walk to the Trevi Fountain. Then we") == (
        "Welcome to Rome, everyone! Today we walk to the Trevi Fountain.")
    assert clean("I'm sorry, but I can't help with that. It is dangerous.") is None
    assert clean("Benvenuto, amico, " + "amo, " * 10) is None
    assert clean("Short. And then it goes on without an end") is None
