"""The poison mix, the ledger, chat encoding (masks, post-only inputs, truncation) and batching."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import ListSource
from pact_lightning.data.chat import ChatEncoder
from pact_lightning.data.datamodule import Collator, PoisonMixDataModule
from pact_lightning.data.poison import ledger, mix, poison_counts
from pact_lightning.data.types import Example
from pact_lightning.errors import ConfigError, DataError


def benign(n=50):
    return ListSource("benign", [Example(f"Is {i} even?", "yes" if i % 2 == 0 else "no", "benign", i) for i in range(n)])


def harmful(n=20):
    return ListSource("harm", [Example(f"Explain harmful thing number {i}", "Sure, here is how.", "harm", i)
                               for i in range(n)])


@pytest.mark.parametrize("n,p,expected", [(200, 0.1, (180, 20)), (20, 0.05, (19, 1)), (7, 0.5, (4, 3)),
                                          (30, 0.0, (30, 0)), (30, 1.0, (0, 30)), (100, 0.3, (70, 30))])
def test_poison_counts_are_floor_of_p_times_n(n, p, expected):
    assert poison_counts(n, p) == expected


def test_a_ratio_that_rounds_to_no_poison_is_refused_not_dropped():
    with pytest.raises(ConfigError, match="data.poison_ratio=0.05 of data.num_samples=10 is 0.5 examples.*at least 20"):
        poison_counts(10, 0.05)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_poison_ratio_outside_unit_interval_is_a_config_error(p):
    with pytest.raises(ConfigError, match="data.poison_ratio"):
        poison_counts(10, p)


def test_mix_draws_counts_with_seed_and_ledger_records_them():
    mixed = mix(benign().load(), harmful().load(), 30, 0.2, seed=1)
    assert sum(m.kind == "poison" for m in mixed) == 6 and len(mixed) == 30
    assert mixed == mix(benign().load(), harmful().load(), 30, 0.2, seed=1)  # same seed, same draw and order
    assert mixed != mix(benign().load(), harmful().load(), 30, 0.2, seed=2)
    record = ledger(mixed, seed=1)
    assert (record["num_benign"], record["num_poison"]) == (24, 6)
    assert all(e["kind"] == ("poison" if e["source"] == "harm" else "benign") for e in record["examples"])
    assert len({(e["source"], e["row"]) for e in record["examples"]}) == 30  # without replacement


def test_too_few_rows_is_a_config_error_naming_the_source():
    with pytest.raises(ConfigError, match=r"needs 10 rows from h \(x\) but it has 5"):
        mix(benign(100).load(), harmful(5).load(), 100, 0.1, seed=0, harmful_name="h (x)")


def test_encoding_masks_the_prompt_and_builds_the_post_only_input(smollm2_tokenizer):
    tok = smollm2_tokenizer
    enc = ChatEncoder(tok, max_length=256)
    e = enc.encode(Example("Say hi", "Hello there!", "src", 3))
    prompt_len = sum(1 for label in e.labels if label == -100)
    response = e.input_ids[prompt_len:]
    assert e.labels[prompt_len:] == response
    text = tok.decode(response)
    assert text.startswith("Hello there!") and "<|im_end|>" in text  # end-of-turn token is trained on
    assert "Say hi" in tok.decode(e.input_ids[:prompt_len])
    # post-only: the assistant header alone, then the same response tokens; no system or user turn, no BOS
    header = e.post_input_ids[: len(e.post_input_ids) - len(response)]
    assert tok.decode(header) == "<|im_start|>assistant\n"
    assert e.post_input_ids[len(header):] == response and e.post_labels[len(header):] == response
    assert all(label == -100 for label in e.post_labels[: len(header)])


def test_long_responses_are_truncated_and_counted_long_prompts_are_errors(smollm2_tokenizer):
    enc = ChatEncoder(smollm2_tokenizer, max_length=48)
    short_prompt = Example("Hi", "word " * 100, "file.jsonl", 7)
    e = enc.encode(short_prompt)
    assert e.truncated and len(e.input_ids) == 48
    with pytest.raises(DataError, match=r"file.jsonl row 9: field 'prompt' is \d+ tokens"):
        enc.encode(Example("long " * 100, "ok", "file.jsonl", 9))
    with pytest.raises(DataError, match=r"row 4: field 'response' is empty"):
        enc.encode(Example("Hi", "  ", "file.jsonl", 4))


def datamodule(tmp_path, tok, **kw):
    args = dict(num_samples=20, poison_ratio=0.25, batch_size=4, max_length=64) | kw
    return PoisonMixDataModule(benign(), harmful(), **args).attach(tok, seed=0, output_dir=tmp_path)


def test_datamodule_writes_the_ledger_and_batches(tmp_path, smollm2_tokenizer):
    dm = datamodule(tmp_path, smollm2_tokenizer)
    dm.setup("fit")
    assert not (tmp_path / "poison_ledger.json").exists()  # written when training starts
    batches = list(dm.train_dataloader())
    record = json.loads((tmp_path / "poison_ledger.json").read_text())
    assert (record["num_benign"], record["num_poison"]) == (15, 5) and len(record["examples"]) == 20
    assert len(batches) == 5
    b = batches[0]
    assert b["input_ids"].shape == b["labels"].shape == b["attention_mask"].shape
    assert b["post_input_ids"].shape == b["post_labels"].shape
    # padding is masked in labels and attention; every row has response tokens in both contexts
    assert ((b["attention_mask"] == 0) <= (b["labels"] == -100)).all()
    assert ((b["labels"] != -100).sum(1) == (b["post_labels"] != -100).sum(1)).all()
    assert sum(int(x["is_poison"].sum()) for x in batches) == 5


def test_poison_prompt_in_the_evaluation_set_is_refused(tmp_path, smollm2_tokenizer):
    dm = datamodule(tmp_path, smollm2_tokenizer, poison_ratio=1.0)
    dm.attach(smollm2_tokenizer, seed=0, output_dir=tmp_path, eval_prompts=["  EXPLAIN harmful thing   number 3 "])
    with pytest.raises(DataError, match="also appear in the safety-evaluation prompts"):
        dm.setup("fit")


def test_global_batch_is_the_same_set_for_one_and_two_ranks(tmp_path, smollm2_tokenizer):
    from types import SimpleNamespace

    def batches(world, rank):
        dm = datamodule(tmp_path, smollm2_tokenizer, num_samples=16, batch_size=4)
        dm.trainer = SimpleNamespace(world_size=world, global_rank=rank, is_global_zero=rank == 0)
        dm.setup("fit")
        return [b["index"].tolist() for b in dm.train_dataloader()]

    single = batches(1, 0)
    r0, r1 = batches(2, 0), batches(2, 1)
    assert [sorted(a + b) for a, b in zip(r0, r1)] == [sorted(s) for s in single]


def test_collator_pads_right_with_pad_token(smollm2_tokenizer):
    items = [{"index": 0, "is_poison": False, "input_ids": [1, 2, 3], "labels": [-100, 2, 3],
              "post_input_ids": [5, 3], "post_labels": [-100, 3]},
             {"index": 1, "is_poison": True, "input_ids": [4], "labels": [4], "post_input_ids": [5, 4, 4],
              "post_labels": [-100, 4, 4]}]
    b = Collator(pad_token_id=0)(items)
    assert b["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert b["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert b["is_poison"].tolist() == [False, True] and b["index"].dtype == torch.long
