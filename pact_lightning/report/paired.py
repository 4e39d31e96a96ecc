"""Arm against arm (``report --pair-with <method>``): every run of that method paired with every other run of the same
seed, model, task, poison ratio and n, prompt by prompt, from the two runs' ``generations_final.jsonl`` (paired
bootstrap interval and exact McNemar, ``record.paired_comparison``). A sweep's arms are separate runs, each paired
only with its own reference in its results.json; this is where two arms meet on the same prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pact_lightning.eval.scoring import with_answer
from pact_lightning.record import HEADLINE, paired_comparison, read_generations
from pact_lightning.report.collect import GENERATIONS, Run


def cell(d: dict[str, Any] | None) -> str:
    """"−64.7 [−73.3, −55.3] p=1.4e-24 *": the difference in points, its 95% interval, the test (* = beyond
    noise)."""
    if d is None:
        return "–"
    return (f"{d['diff']:+.1f} [{d['ci'][0]:+.1f}, {d['ci'][1]:+.1f}] p={d['p_value']:.2g}"
            + (" *" if d["beyond_noise"] else ""))


def answers(path: Path, rescore: bool) -> list[dict[str, Any]]:
    """A run's saved answers; with ``rescore``, their refusals and answer categories decided by the current rules."""
    rows = read_generations(path)
    return [with_answer(r) for r in rows] if rescore else rows


def arm_pairs(runs: list[Run], method: str, rescore: bool = False) -> tuple[list[list[str]], list[str]]:
    """Table rows (seed, "<method> − <arm>", one cell per headline rate, over the measuring sets) and a note for each
    pair that could not be made."""
    ok = [r for r in runs if r.status == "ok"]
    group = lambda r: (r.setting.seed, r.setting.model, r.setting.task, r.setting.p, r.setting.n)  # noqa: E731
    rows, notes = [], []
    for a in sorted((r for r in ok if r.setting.method == method), key=lambda r: str(group(r))):
        others = sorted((r for r in ok if group(r) == group(a) and r.setting.method != method),
                        key=lambda r: str(r.setting.method))
        for b in others:
            name = f"{method} − {b.setting.method} (seed {b.setting.seed})"
            files = [Path(r.run_dir) / GENERATIONS for r in (a, b)]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                notes.append(f"- {name}: not paired, no {', '.join(missing)}")
                continue
            try:
                diffs = paired_comparison(*(answers(f, rescore) for f in files), a.tuning)
            except ValueError as err:  # evaluated on other prompts
                notes.append(f"- {name}: not paired, {err}")
                continue
            rows.append([str(a.setting.seed), f"{method} − {b.setting.method}",
                         *(cell(diffs.get(rate)) for rate in HEADLINE)])
    return rows, notes
