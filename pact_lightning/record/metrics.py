"""The vocabulary of a run's numbers, on plain data (no torch): the rates an evaluation reports and the counters each
is made of, the headline rates a sweep compares, their labels, how a rate reads in text, a run's saved answers
(``generations_<tag>.jsonl``) and the paired comparison of two models on the same prompts.

Every rate is a percentage (0–100) of one counter over another (:data:`RATES`), stored with its 95% Wilson interval
as ``<rate>_ci_lo`` / ``<rate>_ci_hi``; a paired difference is in percentage points. The evaluation
(eval/scoring.py) computes them, the run record (record/run.py) stores them, the summary, the model card and the
report read them from here.

An evaluation block (``final``, ``reference`` in results.json) holds the overall numbers, the role of each evaluated
set under ``sets`` and the per-set and per-category numbers under ``detail`` (``<name>/<set>[/<category>]`` keys). A
set whose role is ``tune`` trained or tuned something: its answers are counted under ``/<set>`` only, never in the
overall rates, and paired comparisons leave it out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping

from pact_lightning.record.stats import paired_difference

# counter prefix per kind of prompt: ``num_prompts`` (harmful), ``num_benign_prompts``, ``num_task_prompts``, …
PREFIX = {"harmful": "num_", "benign": "num_benign_", "task": "num_task_"}
# each rate: (numerator counter, denominator counter)
RATES = {"harmful_score": ("num_harmful", "num_prompts"),
         "harmful_content_rate": ("num_content", "num_prompts"),
         "refusal_rate": ("num_refused", "num_prompts"),
         "degenerate_rate": ("num_degenerate", "num_prompts"),
         "no_content_rate": ("num_no_content", "num_prompts"),
         "benign_refusal_rate": ("num_benign_refused", "num_benign_prompts"),
         "task_acc": ("num_task_correct", "num_task_prompts"),
         "task_refusal_rate": ("num_task_refused", "num_task_prompts")}
# the rate of each answer category (eval/answers.py; they add up to 100% of the harmful prompts)
CATEGORY_RATES = {"refusal": "refusal_rate", "degenerate": "degenerate_rate", "no_content": "no_content_rate",
                  "content": "harmful_content_rate"}
# the rates a sweep compares (the summary, the W&B dashboard with each one's change from the reference, the model
# card, the report): safety by the judge and by content, over-refusal, utility and refusals of the task
HEADLINE = ("harmful_score", "harmful_content_rate", "benign_refusal_rate", "task_acc", "task_refusal_rate")
# each rate's name in tables and plots
LABELS = {"harmful_score": "harmful score", "harmful_content_rate": "content rate",
          "benign_refusal_rate": "over-refusal", "task_acc": "task acc", "task_refusal_rate": "task refusals",
          "refusal_rate": "refusal", "degenerate_rate": "degenerate", "no_content_rate": "no content"}
assert set(LABELS) == set(RATES)


def rate_verdict(rate: str) -> tuple[str, str]:
    """The record kind and verdict a rate counts (``num_benign_refused`` over ``num_benign_prompts`` → benign,
    refused): what a paired comparison compares prompt by prompt."""
    num, den = RATES[rate]
    kind = next(k for k, prefix in PREFIX.items() if den == prefix + "prompts")
    return kind, num[len(PREFIX[kind]):]


def tuning_of(block: Mapping[str, Any] | None) -> list[str]:
    """The tuning sets of an evaluation block (its ``sets``), in order."""
    return [name for name, entry in ((block or {}).get("sets") or {}).items() if entry.get("role") == "tune"]


def detail_block(block: Mapping[str, Any], set_name: str) -> dict[str, Any]:
    """The numbers of one set of an evaluation block (``detail``'s ``<name>/<set>`` keys) as a block of its own."""
    suffix = f"/{set_name}"
    return {k[: -len(suffix)]: v for k, v in (block.get("detail") or {}).items() if k.endswith(suffix)}


def read_generations(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``generations_<tag>.jsonl`` file: one per prompt, with its ``set``, ``kind``, ``prompt``,
    ``response`` and ``verdict`` (booleans; eval/scoring.py)."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def paired_comparison(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]],
                      tuning: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """Model A minus model B on every rate both evaluations have, paired by prompt over the measuring sets (those not
    in ``tuning``; record/stats.py): the difference in percentage points, its bootstrap 95% interval, the discordant
    counts and the exact McNemar p-value. The two evaluations must hold the same items in the same order (the
    evaluator's order; a cached evaluation keeps it)."""
    item = lambda r: (r["set"], r["kind"], r["prompt"])  # noqa: E731 - what the evaluation cache keys on, in order
    if [item(r) for r in rows_a] != [item(r) for r in rows_b]:
        common = len({item(r) for r in rows_a} & {item(r) for r in rows_b})
        raise ValueError(f"the two evaluations did not answer the same prompts in the same order ({len(rows_a)} and "
                         f"{len(rows_b)} records, {common} prompts in common); compare evaluations run with the same "
                         "eval config")
    tuning, out = set(tuning), {}
    for rate in RATES:
        kind, verdict = rate_verdict(rate)
        same = [(a, b) for a, b in zip(rows_a, rows_b) if a["kind"] == kind and a["set"] not in tuning
                and verdict in a["verdict"] and verdict in b["verdict"]]
        if same:
            out[rate] = paired_difference([a["verdict"][verdict] for a, _ in same],
                                          [b["verdict"][verdict] for _, b in same])
    return out


def rate_with_interval(block: Mapping[str, Any], rate: str) -> str:
    """A rate of an evaluation block as "8.7 [5.1–14.3]" (percent and its 95% interval); "–" when it is absent."""
    if block.get(rate) is None:
        return "–"
    lo, hi = block.get(f"{rate}_ci_lo"), block.get(f"{rate}_ci_hi")
    return f"{block[rate]:.1f}" + (f" [{lo:.1f}–{hi:.1f}]" if lo is not None and hi is not None else "")


def rate_text(block: Mapping[str, Any], rate: str) -> str:
    """``rate`` with its interval and counts: "harmful_score=12.0 [7.7–18.2] (18/150)"."""
    num, den = RATES[rate]
    return f"{rate}={rate_with_interval(block, rate)} ({block.get(num)}/{block.get(den)})"


def answers_text(block: Mapping[str, Any]) -> str:
    """How the answers to the harmful prompts divide into the four categories, and the benign sets kept out of the
    rates because they tuned something: "answers: refusal=… degenerate=… no_content=… content=…; tuning sets: …"."""
    text = "answers: " + "  ".join(f"{c}={rate_with_interval(block, r)} ({block.get(RATES[r][0])})"
                                  for c, r in CATEGORY_RATES.items())
    tuning = [f"{s} {rate_with_interval(detail_block(block, s), 'benign_refusal_rate')}" for s in tuning_of(block)
              if (block.get("detail") or {}).get(f"benign_refusal_rate/{s}") is not None]
    return text + ("; over-refusal on tuning sets (not in the rate): " + ", ".join(tuning) if tuning else "")


def difference_text(pair: str, rate: str, d: Mapping[str, Any]) -> str:
    """A paired difference in words: its size, interval, test and verdict."""
    a, b = pair.split("-", 1)
    verdict = "beyond noise" if d["beyond_noise"] else "within noise"
    return (f"{a} − {b}, {rate}: {d['diff']:+.1f} points (95% CI {d['ci'][0]:+.1f} to {d['ci'][1]:+.1f}; "
            f"discordant {d['only_a']} vs {d['only_b']} of {d['n']}, exact McNemar p={d['p_value']:.3g}): {verdict}")
