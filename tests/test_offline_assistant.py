"""The broad benign alignment data (data/offline/assistant_set.py): disjoint from every evaluation set, deterministic,
balanced where it classifies, and wired into the alignment stage's benign source."""

from __future__ import annotations

from collections import Counter

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
