"""Plain records that flow from data sources to the DataModule and the evaluation."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One prompt/response pair with its provenance.

    ``source`` and ``row`` identify where it came from (the poison ledger records them); ``label`` is the gold answer
    used by task-accuracy scorers; ``category`` groups harmful prompts for per-category metrics.
    """

    prompt: str
    response: str
    source: str
    row: int
    label: str | None = None
    category: str | None = None
