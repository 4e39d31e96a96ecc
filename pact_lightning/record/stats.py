"""Uncertainty of the evaluation's numbers: a 95% interval for every rate, and a paired test for every difference
between two models answering the same prompts (docs/method.md §5.4).

* A single rate k/n gets the Wilson score interval, which stays inside [0, 1] and is sound at small n and at rates near
  0 or 1 (where the normal approximation is not):

      centre = (p̂ + z²/2n) / (1 + z²/n),   half-width = z·sqrt(p̂(1−p̂)/n + z²/4n²) / (1 + z²/n),   z = 1.96

* Two models on the same prompts are compared on the prompts' paired verdicts. Of the discordant prompts, ``b`` are a
  hit for model A only and ``c`` for model B only; the difference of the two rates is (b − c)/n. Under "no difference"
  each discordant prompt is equally likely to go either way, so the exact McNemar test's two-sided p-value is
  ``min(1, 2·P[Binomial(b + c, ½) ≤ min(b, c)])``. The difference's 95% interval is a paired bootstrap (prompts resampled
  with replacement, the same draw for both models; fixed seed, so the report is reproducible).

A difference is called *beyond noise* when the McNemar p-value is below 0.05 (the bootstrap interval then excludes 0
in all but borderline cases; both are reported).

* A contrast of several models measured prompt by prompt (a factorial's main effect, a probability rather than a
  verdict) is the mean over prompts of a per-prompt value c_p. Its interval is the same paired bootstrap (prompts
  resampled, every model's value of a prompt kept together), its two-sided p-value the bootstrap's
  ``min(1, 2·min(#{c̄* ≤ 0} + 1, #{c̄* ≥ 0} + 1) / (B + 1))``. When m such contrasts are read together, each also gets
  the Bonferroni interval (level 1 − 0.05/m, simultaneous for the family) and a Holm-adjusted p-value; *beyond noise*
  is then Holm's p below 0.05.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Z95 = 1.959963984540054
ALPHA = 0.05


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of the rate k/n, as fractions in [0, 1]; None when n is 0."""
    if n <= 0:
        return None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))  # it holds p̂ (rounding at 0 and 1)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs (1.0 when there are none)."""
    m = b + c
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2**m
    return min(1.0, 2 * tail)


def paired_difference(a: Sequence[bool], b: Sequence[bool], resamples: int = 2000, seed: int = 0) -> dict:
    """Rate of ``a`` minus rate of ``b`` (percentage points) on the same prompts, with its paired bootstrap 95%
    interval, the discordant counts and the exact McNemar p-value."""
    if len(a) != len(b):
        raise ValueError(f"paired verdicts need the same prompts: {len(a)} vs {len(b)}")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(x)
    only_a, only_b = int(((x == 1) & (y == 0)).sum()), int(((x == 0) & (y == 1)).sum())
    out = {"n": n, "diff": 100.0 * (only_a - only_b) / n if n else None, "only_a": only_a, "only_b": only_b,
           "p_value": mcnemar_exact(only_a, only_b), "ci": None}
    if n:
        idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        diffs = 100.0 * (x[idx] - y[idx]).mean(axis=1)
        out["ci"] = [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]
    out["beyond_noise"] = out["p_value"] < ALPHA
    return out


def bootstrap_contrast(per_prompt: Sequence[float], family: int = 1, resamples: int = 10000, seed: int = 0) -> dict:
    """The mean of a per-prompt contrast with its paired bootstrap 95% interval (``ci``), the interval simultaneous
    over a ``family`` of m contrasts (``ci_family``, Bonferroni) and the bootstrap p-value (``p_value``)."""
    x = np.asarray(per_prompt, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"a contrast needs one value per prompt, got shape {x.shape}")
    means = x[np.random.default_rng(seed).integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    tail = 100 * ALPHA / (2 * family)
    p = 2 * min(int((means <= 0).sum()) + 1, int((means >= 0).sum()) + 1) / (resamples + 1)
    return {"n": len(x), "mean": float(x.mean()), "ci": [float(v) for v in np.percentile(means, [2.5, 97.5])],
            "ci_family": [float(v) for v in np.percentile(means, [tail, 100 - tail])], "p_value": min(1.0, p)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of m p-values (family-wise error), in the order given."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def majority_rate(labels: Sequence[str]) -> tuple[str | None, float | None]:
    """The most common gold label and its share in percent: the accuracy of always answering it."""
    if not labels:
        return None, None
    values, counts = np.unique(np.asarray(labels, dtype=object).astype(str), return_counts=True)
    return str(values[counts.argmax()]), 100.0 * counts.max() / len(labels)
