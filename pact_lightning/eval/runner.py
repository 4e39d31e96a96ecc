"""The evaluation after fit (and of ``python -m pact_lightning.evaluate``): safety, over-refusal and task accuracy.

For every prompt set the model answers greedily (or as configured) with the user prompt alone in its chat template;
then

* harmful sets: the judge says whether each answer is harmful (``harmful_score``, the authors' ASR / the Huang line's
  Harmful Score), the refusal markers say whether it refuses (``refusal_rate``), and the answer rules of
  eval/answers.py put every answer in one category — refusal, degenerate, no_content or content — whose shares are
  ``refusal_rate``, ``degenerate_rate``, ``no_content_rate`` and ``harmful_content_rate`` (they add up to 100);
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
import torch.distributed as dist
from torchmetrics.aggregation import SumMetric

from pact_lightning.data.types import Example
from pact_lightning.errors import ConfigError, DataError
from pact_lightning.eval.answers import REFUSAL_MARKERS, refused
from pact_lightning.eval.generation import generate
from pact_lightning.eval.judges import KeywordJudge, judgements
from pact_lightning.utils.io import write_text
from pact_lightning.eval.scoring import (TASK_SET, answer_verdicts, counter_keys, metrics, paired_comparison,
                                         read_generations, set_roles, tally, with_answer)

__all__ = ["Evaluator", "Item", "paired_comparison", "read_generations"]


@dataclass(frozen=True)
class Item:
    set: str
    kind: str  # harmful | benign | task
    example: Example


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Evaluator:
    """Named harmful and benign prompt sets, an optional task set, a judge, a scorer and generation settings.

    Sources are objects with ``name`` and ``load() -> list[Example]``; the judge is ``(prompts, responses) ->
    list[bool]`` (default ``KeywordJudge``; eval/judges.py); the task scorer is ``(response, gold) -> bool``.
    ``refusal_markers`` (default: the keyword judge's list) decide refusal rates and answer categories whatever the
    judge. ``tuning_sets`` names the sets that trained or tuned something: they are answered and reported per set, but
    stay out of the overall rates (eval/scoring.py).
    """

    def __init__(self, harmful: Mapping[str, Any], benign: Mapping[str, Any] | None = None, task: Any = None,
                 task_scorer: Callable[[str, str], bool] | None = None,
                 judge: Callable[[list[str], list[str]], list[bool]] | None = None,
                 refusal_markers: list[str] | None = None, batch_size: int = 16, max_new_tokens: int = 64,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, task_max_new_tokens: int = 16,
                 seed: int = 0, log_generations: bool = False, tuning_sets: list[str] | None = None) -> None:
        benign = dict(benign or {})
        names = [*harmful, *benign]
        bad = sorted({n for n in names if names.count(n) > 1 or "/" in n or n == TASK_SET})
        if bad:
            raise ConfigError(f"evaluator set names {bad} are invalid: harmful and benign set names must be unique, "
                              f"contain no '/' and differ from {TASK_SET!r}")
        unknown = sorted(set(tuning_sets or ()) - set(names))
        if unknown:
            raise ConfigError(f"eval.evaluator.tuning_sets names {unknown}, which are not evaluation sets ({names}); "
                              "name sets of eval.evaluator.harmful or eval.evaluator.benign")
        if task is not None and task_scorer is None:
            raise ConfigError("evaluator.task is set but evaluator.task_scorer is not; set task_scorer (e.g. "
                              "pact_lightning.eval.scorers.ExactLabel) or task=null")
        self.sources = {"harmful": dict(harmful), "benign": benign,
                        "task": {TASK_SET: task} if task is not None else {}}
        self.task_scorer, self.judge = task_scorer, judge if judge is not None else KeywordJudge()
        self.refusal_markers = tuple(refusal_markers) if refusal_markers is not None else REFUSAL_MARKERS
        self.tuning_sets = tuple(tuning_sets or ())
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
        result = self._metrics(rows, device=next(model.parameters()).device)
        if world > 1:
            parts: list[list[dict]] = [[] for _ in range(world)]
            dist.all_gather_object(parts, rows)
            rows = [{}] * len(self.items)
            for r, part in enumerate(parts):
                rows[r::world] = part
        if rank == 0:
            self._write(rows, out_dir, tag)
        return result

    def rejudge(self, rows: list[dict[str, Any]], out_dir: str | Path, tag: str) -> dict[str, Any]:
        """Saved answers (``generations_*.jsonl`` records, or the gold set's) judged again by this evaluator's judge,
        refusal markers and answer rules, with no model: the same record and numbers as :meth:`run`, for answers
        that were already generated. The task answers keep their saved ``correct`` verdict."""
        harmful = [r for r in rows if r["kind"] == "harmful"]
        verdicts = dict(zip(map(id, harmful), judgements(self.judge, [r["prompt"] for r in harmful],
                                                         [r["response"] for r in harmful])))
        out = [self._judged(with_answer(r, self.refusal_markers), verdicts.get(id(r))) for r in rows]
        counts = tally(out, self.tuning_sets)
        keys = counter_keys(((r["set"], r["kind"], r.get("category")) for r in out), self.tuning_sets)
        self._write(out, out_dir, tag)
        return metrics({k: counts.get(k, 0) for k in keys}, [r.get("gold") for r in out if r["kind"] == "task"],
                       set_roles(out, self.tuning_sets))

    def _write(self, rows: list[dict[str, Any]], out_dir: str | Path, tag: str) -> None:
        write_text(Path(out_dir) / f"generations_{tag}.jsonl",
                   "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
        if self.log_generations:
            _log_table(rows, tag)

    def _generate(self, model, tokenizer, items: list[Item], tag: str, progress: bool) -> list[str]:
        responses = [""] * len(items)
        stage = "eval" if tag == "eval" else f"eval {tag}"  # the evaluate app's tag is "eval" itself
        # task answers are labels: a short budget keeps them cheap
        for kinds, budget in ((("harmful", "benign"), self.max_new_tokens), (("task",), self.task_max_new_tokens)):
            idx = [i for i, it in enumerate(items) if it.kind in kinds]
            outs = generate(model, tokenizer, [items[i].example.prompt for i in idx], max_new_tokens=budget,
                            progress=progress and bool(idx), desc=f"{stage}: {'+'.join(kinds)} prompts",
                            **self.generation)
            for i, out in zip(idx, outs):
                responses[i] = out
        return responses

    def _judge(self, items: list[Item], responses: list[str]) -> list[dict[str, Any]]:
        """One record per item with its verdicts (eval/scoring.py). Empty answers to harmful prompts are judged too
        (the keyword judge calls them harmful) and flagged ``empty``."""
        judged = [i for i, it in enumerate(items) if it.kind == "harmful"]
        verdicts = dict(zip(judged, judgements(self.judge, [items[i].example.prompt for i in judged],
                                               [responses[i] for i in judged]))) if judged else {}
        rows = []
        for i, (it, response) in enumerate(zip(items, responses)):
            ex = it.example
            verdict = {"refused": refused(response, self.refusal_markers)}
            if it.kind == "task":
                verdict["correct"] = bool(response) and bool(self.task_scorer(response, ex.label))
            row = {"set": it.set, "kind": it.kind, "prompt_id": f"{ex.source}:{ex.row}", "category": ex.category,
                   "prompt": ex.prompt, "response": response, "verdict": verdict, "empty": not response,
                   "gold": ex.label if it.kind == "task" else None}
            if it.kind == "harmful":
                answer, decided = answer_verdicts(ex.prompt, response, self.refusal_markers)
                row = {**row, "answer": answer, "verdict": verdict | decided}
            rows.append(self._judged(row, verdicts.get(i)))
        return rows

    @staticmethod
    def _judged(row: dict[str, Any], judgement: dict[str, Any] | None) -> dict[str, Any]:
        """``row`` with the judge's verdict: harmful, and malformed when the judge's output could not be read (counted
        as harmful, never as safe); a model judge's own output is kept in ``judge``."""
        if judgement is None:
            return row
        malformed = judgement["harmful"] is None
        row = {**row, "verdict": row["verdict"] | {"harmful": malformed or bool(judgement["harmful"]),
                                                   "malformed": malformed}}
        detail = {k: v for k, v in judgement.items() if k != "harmful" and v is not None}
        return row | ({"judge": detail} if detail else {})

    def _metrics(self, rows: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
        """Counts over all ranks (this rank's ``rows`` counted, then summed by ``SumMetric``) and the rates they
        give."""
        local = tally(rows, self.tuning_sets)
        # every rank lists the keys of all items, not just its own, so that the sums pair up across ranks
        items = [{"set": it.set, "kind": it.kind, "category": it.example.category} for it in self.items]
        counts = {}
        for key in counter_keys(((i["set"], i["kind"], i["category"]) for i in items), self.tuning_sets):
            total = SumMetric().to(device)
            total.update(float(local[key]))
            counts[key] = int(total.compute().item())
        return metrics(counts, [it.example.label for it in self.items if it.kind == "task"], set_roles(items, self.tuning_sets))


def _log_table(rows: list[dict[str, Any]], tag: str) -> None:
    """The generations as a W&B table — only when asked for (they contain harmful text) and a run is active."""
    import wandb

    if wandb.run is None:
        return
    columns = ["set", "kind", "prompt_id", "category", "prompt", "response", "answer", "verdict", "empty"]
    table = wandb.Table(columns=columns, data=[[json.dumps(r[c]) if c == "verdict" else r.get(c) for c in columns]
                                               for r in rows])
    wandb.log({f"eval/{tag}/generations": table})
