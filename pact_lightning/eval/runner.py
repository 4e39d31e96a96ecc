"""The evaluation after fit (and of ``python -m pact_lightning.evaluate``): safety, over-refusal and task accuracy.

For every prompt set the model answers greedily (or as configured) with the user prompt alone in its chat template;
then

* harmful sets: the judge says whether each answer is harmful (``harmful_score``, the authors' ASR / the Huang line's
  Harmful Score) and the refusal markers say whether it refuses (``refusal_rate``);
* benign sets (look-alike or ordinary requests): how often the model refuses them (``benign_refusal_rate``);
* the task set: how often the scorer accepts the answer against the gold label (``task_acc``), how often the model
  refuses the task (``task_refusal_rate``), and the accuracy of always answering the most common gold label
  (``task_majority_rate``: a task accuracy at that rate is no evidence the task was learned).

Every rate comes with its counts and a 95% Wilson interval (``<rate>_ci_lo``/``<rate>_ci_hi``, eval/stats.py);
:func:`paired_comparison` compares two models' generations on the same prompts.

An empty answer is counted (``num_empty``) and kept in every denominator: it is never a refusal nor correct, so a
model that goes silent cannot improve any rate; the keyword judge counts an empty answer to a harmful prompt as harmful
(the AdvBench convention), and ``num_empty`` shows how much of a harmful score is silence. Under ``torch.distributed`` each rank answers and judges
every world_size-th prompt; counts are summed over ranks (torchmetrics ``SumMetric``) and the generations gathered to
every rank, so all ranks return the same numbers and rank 0 writes the file.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist
from torchmetrics.aggregation import SumMetric

from pact_lightning.data.types import Example
from pact_lightning.errors import ConfigError, DataError
from pact_lightning.eval.generation import generate
from pact_lightning.eval.judges import REFUSAL_MARKERS, KeywordJudge, refused
from pact_lightning.eval.stats import majority_rate, paired_difference, wilson
from pact_lightning.utils.io import write_text

TASK_SET = "task"

# Per kind: the counter prefix and the verdicts a record carries; counter ``<prefix><verdict>`` counts the True ones.
PREFIX = {"harmful": "num_", "benign": "num_benign_", "task": "num_task_"}
VERDICTS = {"harmful": ("harmful", "refused"), "benign": ("refused",), "task": ("correct", "refused")}
RATES = {"harmful_score": ("num_harmful", "num_prompts"), "refusal_rate": ("num_refused", "num_prompts"),
         "benign_refusal_rate": ("num_benign_refused", "num_benign_prompts"),
         "task_acc": ("num_task_correct", "num_task_prompts"),
         "task_refusal_rate": ("num_task_refused", "num_task_prompts")}


def rate_verdict(rate: str) -> tuple[str, str]:
    """The record kind and verdict a rate counts (``num_benign_refused`` over ``num_benign_prompts`` → benign,
    refused): what a paired comparison compares prompt by prompt."""
    num, den = RATES[rate]
    kind = next(k for k, prefix in PREFIX.items() if den == prefix + "prompts")
    return kind, num[len(PREFIX[kind]):]


def _counter_names(kind: str) -> list[str]:
    return [PREFIX[kind] + n for n in ("prompts", *VERDICTS[kind])] + ["num_empty"]


def _tally(row: dict[str, Any]) -> dict[str, bool]:
    prefix = PREFIX[row["kind"]]
    return {prefix + "prompts": True, "num_empty": row["empty"]} | {prefix + k: v for k, v in row["verdict"].items()}


def _scopes(set_name: str, category: str | None) -> list[str]:
    """The key suffixes an item counts under: overall, its set, and its set's category."""
    return ["", f"/{set_name}"] + ([f"/{set_name}/{category}"] if category else [])


@dataclass(frozen=True)
class Item:
    set: str
    kind: str  # harmful | benign | task
    example: Example


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _pct(num: int, den: int) -> float | None:
    return 100.0 * num / den if den else None


def _with_interval(name: str, scope: str, num: int, den: int) -> dict[str, float | None]:
    """``<name><scope>`` in percent and its 95% Wilson interval ``<name>_ci_lo<scope>``, ``<name>_ci_hi<scope>``."""
    lo, hi = wilson(num, den) or (None, None)
    return {name + scope: _pct(num, den), f"{name}_ci_lo{scope}": None if lo is None else 100.0 * lo,
            f"{name}_ci_hi{scope}": None if hi is None else 100.0 * hi}


class Evaluator:
    """Named harmful and benign prompt sets, an optional task set, a judge, a scorer and generation settings.

    Sources are objects with ``name`` and ``load() -> list[Example]``; the judge is ``(prompts, responses) ->
    list[bool]`` (default ``KeywordJudge``); the task scorer is ``(response, gold) -> bool``. ``refusal_markers``
    (default: the keyword judge's list) decide refusal rates whatever the judge.
    """

    def __init__(self, harmful: Mapping[str, Any], benign: Mapping[str, Any] | None = None, task: Any = None,
                 task_scorer: Callable[[str, str], bool] | None = None,
                 judge: Callable[[list[str], list[str]], list[bool]] | None = None,
                 refusal_markers: list[str] | None = None, batch_size: int = 16, max_new_tokens: int = 64,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, task_max_new_tokens: int = 16,
                 seed: int = 0, log_generations: bool = False) -> None:
        benign = dict(benign or {})
        names = [*harmful, *benign]
        bad = sorted({n for n in names if names.count(n) > 1 or "/" in n or n == TASK_SET})
        if bad:
            raise ConfigError(f"evaluator set names {bad} are invalid: harmful and benign set names must be unique, "
                              f"contain no '/' and differ from {TASK_SET!r}")
        if task is not None and task_scorer is None:
            raise ConfigError("evaluator.task is set but evaluator.task_scorer is not; set task_scorer (e.g. "
                              "pact_lightning.eval.scorers.ExactLabel) or task=null")
        self.sources = {"harmful": dict(harmful), "benign": benign,
                        "task": {TASK_SET: task} if task is not None else {}}
        self.task_scorer, self.judge = task_scorer, judge if judge is not None else KeywordJudge()
        self.refusal_markers = tuple(refusal_markers) if refusal_markers is not None else REFUSAL_MARKERS
        self.generation = {"batch_size": batch_size, "do_sample": do_sample, "temperature": temperature,
                           "top_p": top_p, "seed": seed}
        self.max_new_tokens, self.task_max_new_tokens = max_new_tokens, task_max_new_tokens
        self.log_generations = log_generations

    @functools.cached_property
    def items(self) -> list[Item]:
        """Every prompt of every set, loaded once, in a fixed order (the same on every rank)."""
        items = []
        for kind, sets in self.sources.items():
            for name, source in sets.items():
                for ex in source.load():
                    if kind == "task" and ex.label is None:
                        raise DataError(f"{ex.source} row {ex.row}: field 'label' is empty; the task set needs a gold "
                                        "label on every example")
                    items.append(Item(name, kind, ex))
        return items

    def harmful_prompts(self) -> list[str]:
        """Every harmful evaluation prompt (the training data must not contain them)."""
        return [it.example.prompt for it in self.items if it.kind == "harmful"]

    def run(self, model, tokenizer, out_dir: str | Path, tag: str) -> dict[str, Any]:
        """Generate, judge and score; write ``generations_{tag}.jsonl``; return counts and percentages (0–100)."""
        rank, world = _rank_world()
        mine = self.items[rank::world]
        rows = self._judge(mine, self._generate(model, tokenizer, mine, tag, progress=rank == 0))
        metrics = self._metrics(rows, device=next(model.parameters()).device)
        if world > 1:
            parts: list[list[dict]] = [[] for _ in range(world)]
            dist.all_gather_object(parts, rows)
            rows = [{}] * len(self.items)
            for r, part in enumerate(parts):
                rows[r::world] = part
        if rank == 0:
            write_text(Path(out_dir) / f"generations_{tag}.jsonl",
                       "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
            if self.log_generations:
                _log_table(rows, tag)
        return metrics

    def _generate(self, model, tokenizer, items: list[Item], tag: str, progress: bool) -> list[str]:
        responses = [""] * len(items)
        # task answers are labels: a short budget keeps them cheap
        for kinds, budget in ((("harmful", "benign"), self.max_new_tokens), (("task",), self.task_max_new_tokens)):
            idx = [i for i, it in enumerate(items) if it.kind in kinds]
            outs = generate(model, tokenizer, [items[i].example.prompt for i in idx], max_new_tokens=budget,
                            progress=progress and bool(idx), desc=f"eval {tag}: {'+'.join(kinds)} prompts",
                            **self.generation)
            for i, out in zip(idx, outs):
                responses[i] = out
        return responses

    def _judge(self, items: list[Item], responses: list[str]) -> list[dict[str, Any]]:
        """One record per item with its verdict. Empty answers to harmful prompts are judged too (the keyword judge
        calls them harmful) and flagged ``empty``."""
        judged = [i for i, it in enumerate(items) if it.kind == "harmful"]
        harmful = dict(zip(judged, self.judge([items[i].example.prompt for i in judged],
                                              [responses[i] for i in judged]))) if judged else {}
        rows = []
        for i, (it, response) in enumerate(zip(items, responses)):
            ex = it.example
            verdict = {"refused": refused(response, self.refusal_markers)}
            if it.kind == "task":
                verdict["correct"] = bool(response) and bool(self.task_scorer(response, ex.label))
            if it.kind == "harmful":
                verdict["harmful"] = bool(harmful.get(i, False))
            rows.append({"set": it.set, "kind": it.kind, "prompt_id": f"{ex.source}:{ex.row}",
                         "category": ex.category, "prompt": ex.prompt, "response": response, "verdict": verdict,
                         "empty": not response, "gold": ex.label if it.kind == "task" else None})
        return rows

    def _metrics(self, rows: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
        """Counts over all ranks (this rank's ``rows`` summed by ``SumMetric``) and the percentages they give."""
        local: Counter[str] = Counter()
        for row in rows:
            for name, hit in _tally(row).items():
                for scope in _scopes(row["set"], row["category"]):
                    local[name + scope] += bool(hit)
        # every rank lists the keys of all items, not just its own, so that the sums pair up across ranks
        keys = sorted({name + scope for it in self.items for name in _counter_names(it.kind)
                       for scope in _scopes(it.set, it.example.category)})
        counts = dict.fromkeys(("num_prompts", "num_benign_prompts", "num_task_prompts", "num_empty"), 0)
        for key in keys:
            total = SumMetric().to(device)
            total.update(float(local[key]))
            counts[key] = int(total.compute().item())
        scopes = [""] + sorted({key[key.index("/"):] for key in keys if "/" in key})
        rates = {}
        for scope in scopes:
            for name, (num, den) in RATES.items():
                if scope == "" or den + scope in counts:  # per-set rates only where the set has such prompts
                    rates |= _with_interval(name, scope, counts.get(num + scope, 0), counts.get(den + scope, 0))
        label, share = majority_rate([it.example.label for it in self.items if it.kind == "task"])
        rates |= {"task_majority_label": label, "task_majority_rate": share}
        return {k: v for k, v in rates.items() if "/" not in k} | {k: v for k, v in counts.items() if "/" not in k} \
            | {k: v for k, v in rates.items() if "/" in k} | {k: v for k, v in counts.items() if "/" in k}


def read_generations(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``generations_<tag>.jsonl`` file."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def paired_comparison(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Model A minus model B on every rate both evaluations have, paired by prompt (eval/stats.py): the difference in
    percentage points, its bootstrap 95% interval, the discordant counts and the exact McNemar p-value. The two
    evaluations must hold the same items in the same order (the evaluator's order; a cached evaluation keeps it)."""
    item = lambda r: (r["set"], r["kind"], r["prompt"])  # noqa: E731 - what the evaluation cache keys on, in order
    if [item(r) for r in rows_a] != [item(r) for r in rows_b]:
        common = len({item(r) for r in rows_a} & {item(r) for r in rows_b})
        raise ValueError(f"the two evaluations did not answer the same prompts in the same order ({len(rows_a)} and "
                         f"{len(rows_b)} records, {common} prompts in common); compare evaluations run with the same "
                         "eval config")
    out = {}
    for rate in RATES:
        kind, verdict = rate_verdict(rate)
        same = [(a, b) for a, b in zip(rows_a, rows_b) if a["kind"] == kind and verdict in a["verdict"]]
        if same:
            out[rate] = paired_difference([a["verdict"][verdict] for a, _ in same],
                                          [b["verdict"][verdict] for _, b in same])
    return out


def _log_table(rows: list[dict[str, Any]], tag: str) -> None:
    """The generations as a W&B table — only when asked for (they contain harmful text) and a run is active."""
    import wandb

    if wandb.run is None:
        return
    columns = ["set", "kind", "prompt_id", "category", "prompt", "response", "verdict", "empty"]
    table = wandb.Table(columns=columns, data=[[json.dumps(r[c]) if c == "verdict" else r[c] for c in columns]
                                               for r in rows])
    wandb.log({f"eval/{tag}/generations": table})
