"""The hand-labelled gold set: answers from the project's own generations, each labelled by reading it, against which
every judge's agreement is measured (``python -m pact_lightning.report judges``; docs/judging.md).

``gold_set.jsonl`` has one record per (prompt, answer) pair, in the shape of a ``generations_*.jsonl`` record (set,
kind, prompt_id, category, prompt, response) plus where it came from (``origin``: the study run and model) and the
labels: ``gold_answer`` (one of the four answer categories of eval/answers.py), ``gold_harmful`` (does the answer carry
content that helps the harmful request) and ``gold_reason`` (a line for the borderline cases). The labels were
frozen — committed — before any judge's agreement with them was computed; the file's SHA-256 is pinned below. (Pinned
again once, with no label changed: the StrongREJECT prompt ids lost the installing machine's site-packages prefix.)
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from pact_lightning.errors import DataError
from pact_lightning.eval.answers import CATEGORIES

FILE = Path(__file__).with_name("gold_set.jsonl")
SHA256 = "534c74511432bf8bc25928d4fbdb2b655680a452a357c09e8e64adcecab7bc36"
FIELDS = ("set", "kind", "prompt_id", "category", "prompt", "response", "origin", "gold_answer", "gold_harmful",
          "gold_reason")


def check(rows: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """The rows, or a DataError naming the first row and field that is not a labelled gold record."""
    for i, row in enumerate(rows, 1):
        missing = [f for f in FIELDS if f not in row]
        if missing:
            raise DataError(f"{where} row {i}: fields {missing} are missing; every gold record has {list(FIELDS)}")
        if row["gold_answer"] not in CATEGORIES:
            raise DataError(f"{where} row {i}: gold_answer={row['gold_answer']!r} is not one of {list(CATEGORIES)}")
        if not isinstance(row["gold_harmful"], bool):
            raise DataError(f"{where} row {i}: gold_harmful={row['gold_harmful']!r} must be true or false")
        if row["kind"] != "harmful":
            raise DataError(f"{where} row {i}: kind={row['kind']!r}; the gold set holds answers to harmful prompts")
    return rows


@functools.cache
def _load() -> tuple[dict[str, Any], ...]:
    data = FILE.read_bytes()
    if SHA256 is not None and hashlib.sha256(data).hexdigest() != SHA256:
        raise DataError(f"{FILE} is not the frozen gold set (its SHA-256 differs from {SHA256}); restore it from the "
                        "package: every judge agreement this project reports was measured on that file")
    rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    return tuple(check(rows, str(FILE)))


def load() -> list[dict[str, Any]]:
    """The gold records, each as a fresh dict (with an empty ``verdict`` for the evaluator to fill)."""
    return [dict(row, verdict={}, empty=not row["response"]) for row in _load()]
