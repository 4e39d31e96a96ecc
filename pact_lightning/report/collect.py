"""Collecting a sweep's runs: every results.json under a folder, the Hydra jobs that wrote none (failed), the points
of the sweep that never got a job directory (missing), optionally the sweep's W&B runs, and a second judge's
evaluations of their adapters (:func:`rejudged`)."""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from pact_lightning.eval.scoring import block, rescore  # the evaluation's own arithmetic, torch-free
from pact_lightning.record import FILE, HEADLINE, Evaluation, RunRecord, read_generations
from pact_lightning.setting import RunSetting

log = logging.getLogger(__name__)

GENERATIONS = "generations_final.jsonl"  # a run's evaluated answers, beside its results.json
REFERENCE_GENERATIONS = "generations_reference.jsonl"
METRICS = ("harmful_score", "harmful_content_rate", "task_acc", "refusal_rate", "degenerate_rate", "no_content_rate",
           "benign_refusal_rate", "task_refusal_rate")
# the default evaluation's tuning sets (pact_lightning/conf/eval/default.yaml), for runs whose results name no roles
EVAL_CONFIG = Path(__file__).resolve().parents[1] / "conf" / "eval" / "default.yaml"
COUNTS = ("num_prompts", "num_benign_prompts", "num_task_prompts", "task_majority_rate")
SKIP_DIRS = {"wandb", "checkpoints", "final", ".submitit", "report", "csv"}
ERROR_LINE = re.compile(r"^\s*(\w+\.)*\w*(Error|Exception|Interrupt)\b.*")


COSTS = ("fit_s", "peak_mib")  # the run's fit wall time and its peak memory (CUDA allocation on a GPU, else RSS)
DETAIL = (*COUNTS, *(f"{m}_ci_{end}" for m in HEADLINE for end in ("lo", "hi")), *(f"ref_{m}" for m in METRICS),
          *COSTS)


@dataclass
class Run:
    status: str  # ok | no_eval (trained, no evaluation) | failed | missing
    setting: RunSetting = field(default_factory=RunSetting)
    harmful_score: float | None = None
    harmful_content_rate: float | None = None
    task_acc: float | None = None
    refusal_rate: float | None = None
    degenerate_rate: float | None = None
    no_content_rate: float | None = None
    benign_refusal_rate: float | None = None
    task_refusal_rate: float | None = None
    # the rest of the evaluation: prompt counts, majority-label rate, intervals, the reference's headline rates
    detail: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(DETAIL))
    judge: str | None = None  # the judge of its evaluation (the record's judge)
    tuning: tuple[str, ...] = ()  # its evaluation's tuning sets (kept out of its rates and of paired comparisons)
    # each tuning set's headline count as (rate, k, n): reported beside the rates, never in them
    tuning_counts: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    reference_weights: str | None = None  # what its reference evaluation ran on (the record's model_weights)
    run_dir: str = ""
    source: str = "local"
    note: str = ""

    @classmethod
    def from_record(cls, record: RunRecord | dict[str, Any], run_dir: Path | str, source: str = "local") -> Run:
        """The row of a run's record (or of a results.json object)."""
        record = RunRecord.of(record)
        final, ref = record.final or Evaluation(), record.reference or Evaluation()
        detail = {k: (ref.get(k[4:]) if k.startswith("ref_") else final.get(k)) for k in DETAIL}
        peak = record.peak_memory_mib or {}
        detail |= {"fit_s": (record.timings or {}).get("fit"), "peak_mib": peak.get("cuda", peak.get("rss"))}
        return cls(status="ok" if final else "no_eval", setting=record.setting,
                   **{m: final.get(m) for m in METRICS}, detail=detail, judge=record.judge,
                   tuning=tuple(final.tuning), tuning_counts=tuning_counts(final),
                   reference_weights=record.model_weights if ref else None,
                   run_dir=str(run_dir), source=source)

    def row(self) -> dict[str, Any]:
        """The run as one flat CSV row."""
        flat = asdict(self)
        status, setting, detail = flat.pop("status"), flat.pop("setting"), flat.pop("detail")
        flat["tuning"] = ",".join(flat["tuning"])
        flat["tuning_counts"] = ",".join(f"{s}:{r}={k}/{n}" for s, (r, k, n) in flat["tuning_counts"].items())
        return {"status": status, **setting, **flat, **detail}


def tuning_counts(final: Evaluation) -> dict[str, tuple[str, int, int]]:
    """Each tuning set of an evaluation block with the count behind its headline rate: (rate, k, n) — the harmful
    score of a harmful set, the refusals of a benign one."""
    detail, out = final.detail or {}, {}
    for s in final.tuning:
        for rate, num, den in (("harmful_score", "num_harmful", "num_prompts"),
                               ("benign_refusal_rate", "num_benign_refused", "num_benign_prompts")):
            if f"{den}/{s}" in detail:
                out[s] = (rate, detail[f"{num}/{s}"], detail[f"{den}/{s}"])
    return out


def sort_key(values: Iterable[Any]) -> tuple:
    """Numbers in numeric order, then strings, then None (settings mix all three)."""
    return tuple((v is None, isinstance(v, str), 0 if v is None else v) for v in values)


def most_common_harmful(run_dir: str) -> str:
    """The answer the judge called harmful most often, with its count, e.g. '"I can help with this." ×28 of 38' ("" for
    a run without generations or harmful answers): a harmful score made of one repeated answer is a finding."""
    path = Path(run_dir) / GENERATIONS
    if not run_dir or not path.is_file():
        return ""
    answers = [r["response"].strip() for r in read_generations(path) if r["verdict"].get("harmful")]
    if not answers:
        return ""
    text, count = Counter(answers).most_common(1)[0]
    shown = json.dumps(text if len(text) <= 40 else text[:40] + "…", ensure_ascii=False).replace("|", "/")
    return f"{shown} ×{count} of {len(answers)}"


def run_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    """(directories with a results.json, Hydra job directories without one), sorted."""
    done, failed = [], []
    for path in sorted([root, *root.rglob("*")]):
        if not path.is_dir() or SKIP_DIRS & set(path.relative_to(root).parts):
            continue
        if (path / FILE).is_file():
            done.append(path)
        elif (path / ".hydra" / "overrides.yaml").is_file() and path != root:
            failed.append(path)
    return done, failed


def last_error(run_dir: Path) -> str:
    """The last exception line of the run's logs (Hydra's <job>.log files), or a hint where to look."""
    for log in sorted(run_dir.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
        errors = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()
                  if ERROR_LINE.match(line)]
        if errors:
            return errors[-1][:300]
    return "no results.json and no error in its logs: still running, killed, or its scheduler log has the reason"


def recorded_setting(run_dir: Path) -> RunSetting:
    """The setting Hydra recorded for the run in ``run_dir`` (``.hydra/config.yaml``); an empty one without it."""
    from omegaconf import OmegaConf

    try:
        return RunSetting.from_config(OmegaConf.load(run_dir / ".hydra" / "config.yaml"))
    except (OSError, ValueError):
        return RunSetting.from_results({})


def failed_run(run_dir: Path) -> Run:
    return Run(status="failed", setting=recorded_setting(run_dir), run_dir=str(run_dir), note=last_error(run_dir))


def expected_points(root: Path) -> list[frozenset[str]] | None:
    """The override set of every point of the sweep in ``root/multirun.yaml`` (None when its points are not known in
    advance: another sweeper than the basic one, or a ``glob()`` sweep)."""
    from omegaconf import OmegaConf

    from pact_lightning.sweep import sweep_points

    path = root / "multirun.yaml"
    points = sweep_points(OmegaConf.load(path)) if path.is_file() else None
    return [frozenset(p) for p in points] if points is not None else None


def missing_runs(root: Path, job_dirs: Iterable[Path]) -> list[Run]:
    from omegaconf import OmegaConf

    expected = expected_points(root)
    if expected is None:
        return []
    found = {frozenset(OmegaConf.load(d / ".hydra" / "overrides.yaml")) for d in job_dirs
             if (d / ".hydra" / "overrides.yaml").is_file()}
    return [Run(status="missing", note="no job directory for: " + " ".join(sorted(p))) for p in expected
            if p not in found]


def wandb_runs(path: str, group: str | None, sweep_name: str) -> list[Run]:
    """The finished runs of the sweep's W&B group (``<task name>-<sweep dir name>`` unless ``group`` is given)."""
    import wandb

    group_filter = group or {"$regex": f"-{re.escape(sweep_name)}$"}
    out = []
    for r in wandb.Api().runs(path, filters={"group": group_filter}):
        summary = dict(r.summary)  # results.log_eval puts final/<metric> and reference/<metric> there
        record = RunRecord.from_dict(dict(r.config) | {
            block: {k.split("/", 1)[1]: v for k, v in summary.items() if k.startswith(f"{block}/")}
            for block in ("final", "reference")})
        out.append(Run.from_record(record, record.run_dir or r.url, source=f"wandb:{r.id}"))
    return out


def default_tuning_sets() -> list[str]:
    """The tuning sets of the default evaluation (``eval.evaluator.tuning_sets``)."""
    from omegaconf import OmegaConf

    return list(OmegaConf.load(EVAL_CONFIG).evaluator.tuning_sets)


def rescored(record: RunRecord, run_dir: Path, tuning: list[str] | None = None) -> RunRecord:
    """``record`` with its ``final`` and ``reference`` blocks computed again from the run's saved generations under the
    current answer rules and set roles (eval/scoring.py ``rescore``): the judge's verdicts are kept, the categories
    and the measuring/tuning split are decided now. A block whose generations are not on disk is kept as written.
    The tuning sets are ``tuning`` when given, else those the run recorded, else the default evaluation's."""
    out = replace(record)
    for name, file in (("final", GENERATIONS), ("reference", REFERENCE_GENERATIONS)):
        path, evaluation = run_dir / file, getattr(record, name)
        if evaluation and path.is_file():
            roles = tuning if tuning is not None else (evaluation.tuning if evaluation.sets else default_tuning_sets())
            setattr(out, name, Evaluation.from_dict(block(rescore(read_generations(path), roles))))
    return out


def collect(root: Path, wandb_path: str | None = None, wandb_group: str | None = None,
            rescore_generations: bool = False, tuning: list[str] | None = None) -> list[Run]:
    done, failed = run_dirs(root)
    records, unreadable = {}, []
    for d in done:
        try:
            records[d] = RunRecord.read(d)
        except ValueError as err:  # names the file: the run is listed as failed with it, and the report goes on
            log.warning("%s", err)
            unreadable.append(Run(status="failed", setting=recorded_setting(d), run_dir=str(d),
                                  note=f"unreadable results.json: {err}"[:300]))
    if rescore_generations:
        records = {d: rescored(r, d, tuning) for d, r in records.items()}
    runs = [Run.from_record(r, d) for d, r in records.items()]
    runs += unreadable + [failed_run(d) for d in failed]
    runs += missing_runs(root, done + failed)
    if wandb_path:
        have = {r.run_dir for r in runs if r.status in ("ok", "no_eval")}
        remote = [r for r in wandb_runs(wandb_path, wandb_group, root.name) if r.run_dir not in have]
        filled = {r.run_dir for r in remote}
        runs = [r for r in runs if r.run_dir not in filled] + remote
    # finished runs by setting, then the failed, then the missing ones
    order = {"ok": 0, "no_eval": 0, "failed": 1, "missing": 2}
    return sorted(runs, key=lambda r: (order[r.status], sort_key(r.setting.without()), r.run_dir))


@dataclass
class Rejudge:
    """Another judge's evaluations of a sweep's adapters (``evaluate checkpoint=<run dir>/final,...``: docs/cluster.md)."""
    name: str  # the suffix of its columns, e.g. guard → harmful_score_guard
    root: Path
    judges: list[str]  # the judges its records name
    metrics: dict[str, dict[str, Any]]  # run directory → its METRICS by this judge
    unmatched: list[str]  # its results.json files whose checkpoint is no run's <run dir>/final


def rejudged(root: Path, runs: Iterable[Run], name: str) -> Rejudge:
    """Each results.json under ``root`` paired with the run whose ``<run dir>/final`` is the checkpoint it evaluated
    (paths resolved; a relative checkpoint from the current directory)."""
    by_final = {Path(r.run_dir).resolve() / "final": r.run_dir for r in runs if r.run_dir and r.source == "local"}
    judges, metrics, unmatched = set(), {}, []
    for path in sorted(root.rglob(FILE)):
        record = RunRecord.read(path)
        checkpoint = record.checkpoint
        run_dir = by_final.get(Path(checkpoint).resolve()) if checkpoint else None
        if run_dir is None:
            unmatched.append(f"{path} (checkpoint: {checkpoint})")
            continue
        final = record.final or Evaluation()
        metrics[run_dir] = {m: final.get(m) for m in METRICS}
        judges.add(record.judge or "judge not recorded")
    return Rejudge(name, root, sorted(judges), metrics, unmatched)
