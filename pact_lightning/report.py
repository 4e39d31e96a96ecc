"""``python -m pact_lightning.report <sweep dir>``: one table and four plots for a sweep (or any folder of runs).

Every ``results.json`` under the folder is a run (comparison runs in ``<run>/compare/<method>/`` included). A Hydra job
directory (it has ``.hydra/``) without one is listed as *failed* with the last error line of its log, and a point of
the sweep (``multirun.yaml``, basic sweeper) that has no job directory at all as *missing*: nothing is skipped
silently. With ``--wandb entity/project`` the run summaries of the sweep's W&B group fill in runs that have no local
``results.json`` (e.g. when the run directories stay on the cluster).

Writes into ``<sweep dir>/report/`` (or ``--out``):

* ``runs.csv`` — one row per run: status, setting, final and reference metrics, run directory, note;
* ``table.csv`` and ``report.md`` — shaped like the paper's tables: per model × task, one row per method (λ, k) and one
  column per poison ratio p, harmful score and task accuracy as mean ± std over seeds;
* ``harmful_vs_lam.png``, ``harmful_vs_k.png``, ``harmful_vs_p.png`` and ``pareto.png`` (harmful score vs task accuracy,
  the non-dominated front of each method).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable

from pact_lightning.utils.io import atomic_path, write_text

# results.json key → report column
SETTING_KEYS = {"model": "model", "task": "task", "method": "method", "lam": "lam", "k": "num_safety_tokens",
                "p": "poison_ratio", "n": "num_samples", "seed": "seed"}
# the same setting in a job's .hydra/config.yaml (for runs that wrote no results.json)
CONFIG_KEYS = {"model": "model.name", "task": "data.task", "method": "method.name", "lam": "method.lam",
               "k": "method.num_safety_tokens", "p": "data.poison_ratio", "n": "data.num_samples", "seed": "seed"}
METRICS = ("harmful_score", "task_acc", "refusal_rate", "benign_refusal_rate")
SKIP_DIRS = {"wandb", "checkpoints", "final", ".submitit", "report", "csv"}
ERROR_LINE = re.compile(r"^\s*(\w+\.)*\w*(Error|Exception|Interrupt)\b.*")


@dataclass
class Run:
    status: str  # ok | no_eval (trained, no evaluation) | failed | missing
    model: str | None = None
    task: str | None = None
    method: str | None = None
    lam: float | None = None
    k: int | None = None
    p: float | None = None
    n: int | None = None
    seed: int | None = None
    harmful_score: float | None = None
    task_acc: float | None = None
    refusal_rate: float | None = None
    benign_refusal_rate: float | None = None
    ref_harmful_score: float | None = None
    ref_task_acc: float | None = None
    run_dir: str = ""
    source: str = "local"
    note: str = ""

    @classmethod
    def from_results(cls, results: dict[str, Any], run_dir: Path | str, source: str = "local") -> Run:
        final, ref = results.get("final") or {}, results.get("reference") or {}
        return cls(status="ok" if final else "no_eval", **{c: results.get(k) for c, k in SETTING_KEYS.items()},
                   **{m: final.get(m) for m in METRICS}, ref_harmful_score=ref.get("harmful_score"),
                   ref_task_acc=ref.get("task_acc"), run_dir=str(run_dir), source=source)

    def setting(self, without: Iterable[str] = ()) -> tuple:
        return tuple(getattr(self, c) for c in SETTING_KEYS if c not in without)


def sort_key(values: Iterable[Any]) -> tuple:
    """Numbers in numeric order, then strings, then None (settings mix all three)."""
    return tuple((v is None, isinstance(v, str), 0 if v is None else v) for v in values)


# ----------------------------------------------------------------------------------------------------------- collect
def run_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    """(directories with a results.json, Hydra job directories without one), sorted."""
    done, failed = [], []
    for path in sorted([root, *root.rglob("*")]):
        if not path.is_dir() or SKIP_DIRS & set(path.relative_to(root).parts):
            continue
        if (path / "results.json").is_file():
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


def failed_run(run_dir: Path) -> Run:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    setting = {c: OmegaConf.select(cfg, k, default=None, throw_on_resolution_failure=False)
               for c, k in CONFIG_KEYS.items()}
    return Run(status="failed", **setting, run_dir=str(run_dir), note=last_error(run_dir))


def expected_points(root: Path) -> list[frozenset[str]] | None:
    """The override set of every point of the sweep in ``root/multirun.yaml``: the job list Hydra's BasicSweeper builds
    from the sweeper params and the command line. None for other sweepers (Optuna) and for ``glob()`` sweeps, whose
    options only the config loader knows."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType
    from omegaconf import OmegaConf

    path = root / "multirun.yaml"
    if not path.is_file():
        return None
    hydra = OmegaConf.load(path).hydra
    if not str(hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (hydra.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides(params + list(hydra.overrides.task))
    if any(o.value_type == ValueType.GLOB_CHOICE_SWEEP for o in overrides):
        return None
    (points,) = BasicSweeper.split_arguments(overrides, None)
    return [frozenset(p) for p in points]


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
        summary = dict(r.summary)  # pipeline.finish puts final/<metric> and reference/<metric> there
        results = dict(r.config) | {block: {m: summary[f"{block}/{m}"] for m in METRICS if f"{block}/{m}" in summary}
                                    for block in ("final", "reference")}
        out.append(Run.from_results(results, results.get("run_dir") or r.url, source=f"wandb:{r.id}"))
    return out


def collect(root: Path, wandb_path: str | None = None, wandb_group: str | None = None) -> list[Run]:
    done, failed = run_dirs(root)
    runs = [Run.from_results(json.loads((d / "results.json").read_text(encoding="utf-8")), d) for d in done]
    runs += [failed_run(d) for d in failed]
    runs += missing_runs(root, done + failed)
    if wandb_path:
        have = {r.run_dir for r in runs if r.status in ("ok", "no_eval")}
        remote = [r for r in wandb_runs(wandb_path, wandb_group, root.name) if r.run_dir not in have]
        filled = {r.run_dir for r in remote}
        runs = [r for r in runs if r.run_dir not in filled] + remote
    # finished runs by setting, then the failed, then the missing ones
    order = {"ok": 0, "no_eval": 0, "failed": 1, "missing": 2}
    return sorted(runs, key=lambda r: (order[r.status], sort_key(r.setting()), r.run_dir))


# ------------------------------------------------------------------------------------------------------------ tables
def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    mean, std = mean_std(values)
    return fmt(mean) if std is None else f"{fmt(mean)} ± {std:.2g}"


def aggregate(runs: list[Run]) -> dict[tuple, dict[str, list[float]]]:
    """Setting without the seed → {metric: values over seeds} (evaluated runs only)."""
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.status == "ok":
            for m in ("harmful_score", "task_acc"):
                if getattr(r, m) is not None:
                    groups[r.setting(without=("seed",))][m].append(getattr(r, m))
            groups[r.setting(without=("seed",))]["seeds"].append(r.seed)
    return groups


def table_rows(runs: list[Run]) -> list[dict[str, Any]]:
    keys = [c for c in SETTING_KEYS if c != "seed"]
    rows = []
    for setting, values in sorted(aggregate(runs).items(), key=lambda kv: sort_key(kv[0])):
        row = dict(zip(keys, setting)) | {"seeds": len(values["seeds"])}
        for m in ("harmful_score", "task_acc"):
            mean, std = mean_std(values[m]) if values[m] else (None, None)
            row |= {f"{m}_mean": mean, f"{m}_std": std}
        rows.append(row)
    return rows


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def paper_tables(runs: list[Run]) -> str:
    """Per model × task: rows = method (λ, k), columns = p; harmful score then task accuracy (mean ± std, seeds)."""
    groups = aggregate(runs)
    blocks = []
    for model, task in sorted({(s[0], s[1]) for s in groups}, key=sort_key):
        cells = {s: v for s, v in groups.items() if (s[0], s[1]) == (model, task)}
        ps = sorted({s[5] for s in cells}, key=lambda p: (p is None, p))
        rows_keys = sorted({(s[2], s[3], s[4], s[6]) for s in cells}, key=sort_key)
        header = ["method", "λ", "k", "n"] + [f"HS p={fmt(p)}" for p in ps] + [f"Acc p={fmt(p)}" for p in ps] + ["seeds"]
        rows = []
        for method, lam, k, n in rows_keys:
            vals = [cells.get((model, task, method, lam, k, p, n)) for p in ps]
            seeds = sorted({len(v["seeds"]) for v in vals if v})
            rows.append([str(method), fmt(lam), fmt(k), fmt(n)]
                        + [fmt_mean_std(v["harmful_score"]) if v else "" for v in vals]
                        + [fmt_mean_std(v["task_acc"]) if v else "" for v in vals] + ["/".join(map(str, seeds))])
        blocks.append(f"### {model} · {task}\n\nHS = harmful score (lower is better), Acc = task accuracy; "
                      f"mean ± std over seeds.\n\n" + markdown_table(header, rows))
    return "\n\n".join(blocks) if blocks else "_No evaluated runs (results.json with a `final` block)._"


def runs_table(runs: list[Run]) -> str:
    cols = ["status", "method", "lam", "k", "p", "n", "seed", "model", "task", "harmful_score", "task_acc",
            "ref_harmful_score", "ref_task_acc", "run_dir", "note"]
    return markdown_table(cols, [[fmt(getattr(r, c)) for c in cols] for r in runs])


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


# ------------------------------------------------------------------------------------------------------------- plots
def plot_vs(runs: list[Run], x: str, label: str, path: Path) -> None:
    """Final harmful score against setting ``x``: one line per setting of the other keys, mean ± std over seeds."""
    import matplotlib.pyplot as plt

    lines: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.status == "ok" and r.harmful_score is not None and getattr(r, x) is not None:
            lines[r.setting(without=(x, "seed"))][getattr(r, x)].append(r.harmful_score)
    others = [c for c in SETTING_KEYS if c not in (x, "seed")]
    varying = [i for i, c in enumerate(others) if len({key[i] for key in lines}) > 1]
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, points in sorted(lines.items(), key=lambda kv: sort_key(kv[0])):
        xs = sorted(points)
        stats = [mean_std(points[v]) for v in xs]
        ax.errorbar(xs, [m for m, _ in stats], yerr=[s or 0.0 for _, s in stats], marker="o", capsize=3,
                    label=" ".join(f"{others[i]}={fmt(key[i])}" for i in varying) or str(key[others.index("method")]))
    ax.set_xlabel(label)
    ax.set_ylabel("harmful score (final)")
    ax.set_title(f"Harmful score vs {label}")
    if lines:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no evaluated runs", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (harmful score, accuracy) points no other point beats on both (lower harmful score, higher accuracy)."""
    front, best_acc = [], -math.inf
    for hs, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best_acc:
            front.append((hs, acc))
            best_acc = acc
    return front


def plot_pareto(runs: list[Run], path: Path) -> None:
    import matplotlib.pyplot as plt

    by_method: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for setting, values in aggregate(runs).items():
        if values["harmful_score"] and values["task_acc"]:
            by_method[setting[2]].append((mean_std(values["harmful_score"])[0], mean_std(values["task_acc"])[0]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (method, points) in enumerate(sorted(by_method.items())):
        color = f"C{i}"
        ax.scatter(*zip(*points), color=color, alpha=0.5)
        ax.plot(*zip(*pareto_front(points)), color=color, marker="o", label=f"{method} (front)")
    ax.set_xlabel("harmful score (lower is better)")
    ax.set_ylabel("task accuracy (higher is better)")
    ax.set_title("Harmful score / accuracy trade-off per method")
    if by_method:
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


# -------------------------------------------------------------------------------------------------------------- main
def write_report(root: Path, out: Path, runs: list[Run]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "runs.csv", [asdict(r) for r in runs], [f.name for f in fields(Run)])
    rows = table_rows(runs)
    write_csv(out / "table.csv", rows, list(rows[0]) if rows else [c for c in SETTING_KEYS if c != "seed"])
    plots = {"harmful_vs_lam.png": ("lam", "λ"), "harmful_vs_k.png": ("k", "k (safety tokens)"),
             "harmful_vs_p.png": ("p", "poison ratio p")}
    for name, (x, label) in plots.items():
        plot_vs(runs, x, label, out / name)
    plot_pareto(runs, out / "pareto.png")
    counts = {s: sum(r.status == s for r in runs) for s in ("ok", "no_eval", "failed", "missing")}
    problems = ["- " + " ".join(x for x in (f"**{r.status}**", r.run_dir, r.note) if x)
                for r in runs if r.status in ("failed", "missing")]
    if (root / "multirun.yaml").is_file() and expected_points(root) is None:
        problems.append("- Points that never started are not listed: this sweep's points (Optuna, or a glob() sweep) "
                        "are not known in advance.")
    text = "\n\n".join([
        f"# Sweep report: {root}",
        ", ".join(f"{v} {k}" for k, v in counts.items()) + " run(s).",
        "## Paper-style table\n\n" + paper_tables(runs),
        "## Runs\n\n" + runs_table(runs),
        "## Failed and missing runs\n\n" + ("\n".join(problems) or "None."),
        "## Plots\n\n" + "\n".join(f"![{name}]({name})" for name in [*plots, "pareto.png"]),
    ]) + "\n"
    write_text(out / "report.md", text)
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder (or any folder of run directories)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: <sweep_dir>/report)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", default=None,
                        help="also read the sweep's W&B runs (online); they fill in runs without a local results.json")
    parser.add_argument("--wandb-group", default=None, help="the W&B group (default: <task name>-<sweep dir name>)")
    args = parser.parse_args(argv)
    root = args.sweep_dir.resolve()
    if not root.is_dir():
        parser.error(f"{root} is not a directory")
    runs = collect(root, args.wandb, args.wandb_group)
    out = args.out or root / "report"
    print(write_report(root, out, runs))
    print(f"Report written to {out}")


if __name__ == "__main__":
    main()
