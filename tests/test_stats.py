"""The interval and paired-test functions (eval/stats.py) against values computed by hand or by reference tools."""

from __future__ import annotations

import math

import pytest

from pact_lightning.eval.stats import majority_rate, mcnemar_exact, paired_difference, wilson


def test_wilson_known_values():
    # 5/64 by hand (z = 1.96): centre 0.10201, half-width 0.06818 → (0.0338, 0.1702)
    lo, hi = wilson(5, 64)
    assert lo == pytest.approx(0.0338, abs=1e-4) and hi == pytest.approx(0.1702, abs=1e-4)
    # the edges stay inside [0, 1] and are not degenerate (a Wald interval would be [0, 0])
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.16113, abs=1e-4)
    lo, hi = wilson(20, 20)
    assert hi == 1.0 and lo == pytest.approx(1 - 0.16113, abs=1e-4)
    assert wilson(0, 0) is None
    # symmetric around 1/2 for k = n/2
    lo, hi = wilson(50, 100)
    assert 0.5 - lo == pytest.approx(hi - 0.5)


def test_mcnemar_exact_hand_made_table():
    # discordant 1 vs 9: p = 2·P[Bin(10, ½) <= 1] = 2·11/1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    # 3 vs 3 and no discordant pairs: no evidence at all
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    # 0 vs 6: 2/64
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)


def test_paired_difference_counts_the_discordant_prompts():
    # 40 prompts: both hit on 10, A only on 12, B only on 2, neither on 16 → difference (12 − 2)/40 = 25 points
    a = [True] * 10 + [True] * 12 + [False] * 2 + [False] * 16
    b = [True] * 10 + [False] * 12 + [True] * 2 + [False] * 16
    out = paired_difference(a, b)
    assert out["n"] == 40 and out["only_a"] == 12 and out["only_b"] == 2
    assert out["diff"] == pytest.approx(25.0)
    assert out["p_value"] == pytest.approx(2 * sum(math.comb(14, i) for i in range(3)) / 2**14)
    lo, hi = out["ci"]
    assert lo < 25.0 < hi and lo > 0 and out["beyond_noise"]
    # identical verdicts: a difference of 0, interval [0, 0], not beyond noise
    same = paired_difference(a, a)
    assert same["diff"] == 0 and same["ci"] == [0.0, 0.0] and not same["beyond_noise"]
    with pytest.raises(ValueError, match="same prompts"):
        paired_difference(a, b[:-1])


def test_majority_rate():
    assert majority_rate(["positive"] * 3 + ["negative"]) == ("positive", 75.0)
    assert majority_rate([]) == (None, None)
