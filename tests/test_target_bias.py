"""The target bias (issue #27): PACT's target against the reference at θ = θ_ref, on hand-computed cases."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch

from pact_lightning.models.reference import reference_view
from pact_lightning.objectives.base import PolicyView, ReferenceView
from pact_lightning.objectives.pact import Pact
from pact_lightning.objectives.pact_plain import PactPlain
from pact_lightning.objectives.target_bias import TargetBias
from pact_lightning.record import RunRecord
from pact_lightning.safety.selection import format_table
from pact_lightning.safety.tokens import SafetyTokens


def two_tokens(v) -> SafetyTokens:
    return SafetyTokens(ids=torch.tensor([5, 7]), weights=torch.tensor(v, dtype=torch.float32), tokens=["I", "Sorry"],
                        m=torch.tensor([0.2, 0.1]), d=torch.tensor([0.1, 0.0]))


# z / T = [0, ln 3] at T = 2: p_ref|S = [1/4, 3/4]
Z = torch.tensor([[0.0, 2 * math.log(3)]])


def test_two_tokens_known_weights_give_the_stated_logit_shift():
    # w = [3, 1]: q ∝ [3/4, 3/4] = [1/2, 1/2]; shift = T log(q/p) = [2 ln 2, 2 ln(2/3)]; KL = ½ ln(4/3)
    objective = Pact(safety_tokens=two_tokens([3.0, 1.0]), gate=False, temperature=2.0)
    bias = TargetBias(objective)
    bias.update(ReferenceView(subset_full=Z.repeat(3, 1)), torch.tensor([0, 1, 0]))
    record = bias.record(objective.safety_tokens)
    assert record.kl_mean == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    assert record.kl_by_position == pytest.approx([0.5 * math.log(4 / 3)] * 2, rel=1e-6)
    assert record.positions == [2, 1]
    assert record.gate_by_position is None
    assert [t["shift"] for t in record.tokens] == pytest.approx([2 * math.log(2), 2 * math.log(2 / 3)], rel=1e-6)
    assert [t["w"] for t in record.tokens] == [3.0, 1.0]
    up, down, zero = record.top_shifts()
    assert [t["token"] for t in up] == ["I"] and [t["token"] for t in down] == ["Sorry"] and zero == []


def test_zero_weight_token_has_minus_infinite_shift_reported_as_null():
    # v = [1, -1] → w = [1, 0]: q = [1, 0]; shift_I = 2 ln 4, shift_Sorry = −∞; KL = ln 4
    objective = Pact(safety_tokens=two_tokens([1.0, -1.0]), gate=False, temperature=2.0)
    bias = TargetBias(objective)
    bias.update(ReferenceView(subset_full=Z), torch.tensor([0]))
    record = bias.record(objective.safety_tokens)
    assert record.kl_mean == pytest.approx(math.log(4), rel=1e-6)
    assert record.tokens[0]["shift"] == pytest.approx(2 * math.log(4), rel=1e-6)
    assert record.tokens[1] == {"id": 7, "token": "Sorry", "w": 0.0, "shift": None, "zero_weight": True}
    assert [t["token"] for t in record.top_shifts()[2]] == ["Sorry"]
    assert "-inf" in format_table(objective.safety_tokens, record).splitlines()[2]


def test_gate_by_position_is_the_mean_c_t():
    # I(full) = I(post) = 1 at top_p = 0.5 (p = [.1, .9] and [.5, .5]): c_t = σ(0) · exp(−max(t − 0, 0) / 1)
    objective = Pact(safety_tokens=two_tokens([3.0, 1.0]), temperature=2.0, gate_top_p=0.5, gate_n=0, gate_tau=1.0)
    bias = TargetBias(objective)
    ref = ReferenceView(subset_full=Z.repeat(3, 1), subset_post=torch.zeros(3, 2))
    bias.update(ref, torch.tensor([0, 1, 1]))
    record = bias.record(objective.safety_tokens)
    assert record.gate_by_position == pytest.approx([0.5, 0.5 / math.e], rel=1e-6)


def test_pact_plain_kl_at_reference_is_exactly_zero():
    torch.manual_seed(0)
    objective = PactPlain(safety_tokens=two_tokens([3.0, 1.0]), temperature=2.0)
    bias = TargetBias(objective)
    for _ in range(2):
        bias.update(ReferenceView(subset_full=torch.randn(6, 2) * 5), torch.arange(6) % 4)
    record = bias.record(objective.safety_tokens)
    assert record.kl_mean == 0.0 and set(record.kl_by_position) == {0.0}
    assert [t["shift"] for t in record.tokens] == [0.0, 0.0]


def test_target_bias_is_the_regulariser_at_the_reference():
    # one formula: the regulariser with the policy at θ_ref, divided by T², is the mean KL the target bias reports
    torch.manual_seed(1)
    objective = Pact(safety_tokens=two_tokens([3.0, 1.0]), gate=False, temperature=2.0)
    logits = torch.randn(2, 5, 9)
    labels = torch.tensor([[-100, -100, 1, 2, 3], [-100, 4, 5, 6, -100]])
    batch = {"input_ids": torch.zeros(2, 5, dtype=torch.long), "attention_mask": torch.ones(2, 5), "labels": labels}
    model = lambda **_: SimpleNamespace(logits=logits)
    ref = reference_view(model, batch, frozenset({"subset_full"}), objective.safety_ids, 2.0)
    policy = PolicyView(logits, labels)
    reg, _ = objective.regularizer(policy, ref)
    bias = TargetBias(objective)
    bias.update(ref, policy.steps)
    record = bias.record(objective.safety_tokens)
    assert reg.item() / 4 == pytest.approx(record.kl_mean, rel=1e-5)
    assert record.kl_mean > 0.01  # w = [3, 1] pulls away from the reference


def test_results_json_holds_a_typed_target_bias_and_the_summary_lists_the_shifts(tmp_path, caplog):
    objective = Pact(safety_tokens=two_tokens([3.0, 1.0]), gate=False, temperature=2.0)
    bias = TargetBias(objective)
    bias.update(ReferenceView(subset_full=Z), torch.tensor([0]))
    record = RunRecord(run_dir=str(tmp_path), target_bias=bias.record(objective.safety_tokens))
    record.write(tmp_path)
    back = RunRecord.read(tmp_path)
    assert back.extra == {} and back.target_bias.kl_mean == pytest.approx(0.5 * math.log(4 / 3), rel=1e-6)
    from pact_lightning.results import print_summary

    with caplog.at_level("INFO"):
        print_summary(back)
    assert "largest up: 'I' +1.386" in caplog.text and "largest down: 'Sorry' -0.811" in caplog.text


def test_no_batch_no_block():
    assert TargetBias(Pact(safety_tokens=two_tokens([3.0, 1.0]))).record(two_tokens([3.0, 1.0])) is None


@pytest.mark.parametrize("method", ["pact", "pact_plain"])
def test_a_run_writes_the_target_bias_into_results_json(tmp_path, method):
    from runs import train_inprocess

    train_inprocess(tmp_path, [f"method={method}"])
    results = json.loads((tmp_path / "results.json").read_text())
    bias = results["target_bias"]
    assert sum(bias["positions"]) > 0 and len(bias["tokens"]) == results["num_safety_tokens"]
    if method == "pact_plain":  # q = p_ref at θ_ref
        assert bias["kl_mean"] == 0.0 and bias.get("gate_by_position") is None
    else:
        assert bias["kl_mean"] > 0 and all(0 <= g <= 1 for g in bias["gate_by_position"] if g is not None)
