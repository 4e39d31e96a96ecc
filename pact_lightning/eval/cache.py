"""An evaluation, cached: the same weights answering the same prompts with the same generation settings and judge give
the same numbers, so they are computed once and reused.

This is what makes a sweep evaluate its reference once: every point of a grid over λ, k, p and seeds evaluates the
same aligned model on the same prompts (in the authors' 81-point grid, 9 reference evaluations — one per model and
task — instead of 81). The key (:func:`fingerprint`) holds a digest of the evaluated weights, their dtype, the device
type and the autocast they run under, the tokenizer and chat template, every prompt of every set with its gold label,
the generation settings, the refusal markers, the task scorer and the judge; an entry ``<cache_dir>/<key>/`` holds
``metrics.json``, ``fingerprint.json`` and the generations, written atomically (the first complete entry wins). A LoRA
policy's digest leaves its adapter out, so only the untouched reference (adapter off) and merged checkpoints are
cached, never a fine-tuned adapter's answers.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from pact_lightning.eval import answers
from pact_lightning.models.loading import weights_digest
from pact_lightning.utils.fingerprint import digest, numerics, tokenizer_fingerprint
from pact_lightning.utils.io import atomic_dir, write_json

log = logging.getLogger(__name__)

# 2: intervals, task refusals and the majority-label rate; 3: answer categories, tuning sets, malformed verdicts
FORMAT = "pact_lightning.evaluation/3"


def describe(obj: Any) -> dict[str, Any]:
    """A judge or scorer as its class and public settings (what decides its verdicts). A set is sorted: its str()
    follows the process's string-hash seed, which made the key differ between processes and DDP ranks."""
    simple = (str, int, float, bool, type(None), list, tuple, dict)

    def plain(v: Any) -> Any:
        return sorted(map(str, v)) if isinstance(v, (set, frozenset)) else v if isinstance(v, simple) else str(v)

    settings = {k: plain(v) for k, v in vars(obj).items() if not k.startswith("_")}
    return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}", **settings}


def fingerprint(evaluator, model, tokenizer) -> dict[str, Any]:
    """Everything an evaluation's numbers depend on."""
    items = [(it.set, it.kind, it.example.prompt, it.example.label, it.example.category) for it in evaluator.items]
    param = next(model.parameters())
    return {"format": FORMAT, "weights": weights_digest(model), "dtype": str(param.dtype), **numerics(param.device),
            "tokenizer": tokenizer_fingerprint(tokenizer), "chat_template": digest(tokenizer.chat_template),
            "prompts": digest(items), "num_prompts": len(items),
            "generation": {**evaluator.generation, "max_new_tokens": evaluator.max_new_tokens,
                           "task_max_new_tokens": evaluator.task_max_new_tokens},
            "refusal_markers": list(evaluator.refusal_markers), "answer_rules": answers.rules_digest(),
            "tuning_sets": list(evaluator.tuning_sets), "judge": describe(evaluator.judge),
            "task_scorer": describe(evaluator.task_scorer) if evaluator.task_scorer is not None else None}


def read_entry(entry: Path, fp: dict[str, Any] | None) -> dict[str, Any] | None:
    """The metrics of the cache entry ``entry`` when it is complete and intact (its metrics, its generations and the
    fingerprint it was written for — any readable one when ``fp`` is None); None when there is none. A damaged one is
    moved aside, to ``<entry>.damaged-<time>``, with a warning naming it, and the evaluation runs (and caches) again."""
    if not entry.exists():
        return None
    try:
        metrics = json.loads((entry / "metrics.json").read_text(encoding="utf-8"))
        recorded = json.loads((entry / "fingerprint.json").read_text(encoding="utf-8"))
        if not isinstance(metrics, dict) or not isinstance(recorded, dict) or (
                fp is not None and recorded != json.loads(json.dumps(fp, default=str))):
            raise ValueError("its fingerprint.json or metrics.json does not match its key")
        if not (entry / "generations.jsonl").is_file():
            raise FileNotFoundError(f"{entry / 'generations.jsonl'} is missing")
        return metrics
    except (OSError, ValueError) as err:
        aside = entry.with_name(f"{entry.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(entry, aside)
        except OSError:
            aside = entry  # another process moved it first
        log.warning("evaluation cache entry %s is damaged (%s): moved to %s; evaluating again", entry, err, aside)
        return None


def check_entries(cache_dir: str | Path | None) -> None:
    """Before fit: move every damaged entry of ``cache_dir`` aside (:func:`read_entry`), so the evaluation after fit
    finds none. A damaged entry cannot say which model it is for, and the reference's key holds the device and dtype
    it is evaluated in after fit, so every entry is checked (two small JSON files each); a folder being written is
    a dot-named temporary (``atomic_dir``), skipped, as are entries already moved aside."""
    if cache_dir is None or not Path(cache_dir).is_dir():
        return
    for entry in sorted(Path(cache_dir).iterdir()):
        if entry.is_dir() and not entry.name.startswith(".") and ".damaged-" not in entry.name:
            read_entry(entry, None)


def cached_run(evaluator, model, tokenizer, out_dir: str | Path, tag: str, cache_dir: str | Path | None,
               broadcast: Callable[[Any], Any] = lambda obj: obj, is_writer: bool = True) -> dict[str, Any]:
    """``evaluator.run(model, tokenizer, out_dir, tag)``, or its cached result (``generations_<tag>.jsonl`` is copied
    into ``out_dir`` as the run would have written it). ``cache_dir`` None: no cache. Under DDP only ``is_writer``
    (rank 0) looks the entry up, reads and writes it; ``broadcast`` hands its cached metrics (or None) to every rank."""
    if cache_dir is None:
        return evaluator.run(model, tokenizer, out_dir, tag=tag)
    # rank 0's key and entry decide for every rank: no rank reads a file another rank's key names
    fp = fingerprint(evaluator, model, tokenizer) if is_writer else None
    entry = Path(cache_dir) / digest(fp) if is_writer else None
    cached = broadcast(read_entry(entry, fp) if is_writer else None)
    generations = Path(out_dir) / f"generations_{tag}.jsonl"
    if cached is not None:
        if is_writer:
            generations.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry / "generations.jsonl", generations)
            log.info("evaluation of %s reused from %s (the same weights, %d prompts, generation settings and judge)",
                     tag, entry, fp["num_prompts"])
        return cached
    metrics = evaluator.run(model, tokenizer, out_dir, tag=tag)
    if is_writer:
        with atomic_dir(entry, keep_existing=True) as tmp:
            write_json(tmp / "metrics.json", metrics)
            write_json(tmp / "fingerprint.json", fp)
            shutil.copyfile(generations, tmp / "generations.jsonl")
        log.info("evaluation of %s cached in %s", tag, entry)
    return metrics
