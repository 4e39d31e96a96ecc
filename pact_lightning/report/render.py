"""Rendering a sweep's runs: the per-run CSV, the paper-style table (mean ± std over seeds), the plots and report.md."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from pact_lightning.report.collect import Run, expected_points, sort_key
from pact_lightning.setting import RunSetting
from pact_lightning.utils.io import atomic_path, save_figure, subplots, write_text

SEEDLESS = RunSetting.names("seed")  # the columns of an aggregated row


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


def aggregate(runs: list[Run]) -> dict[RunSetting, dict[str, list[float]]]:
    """Setting without the seed → {metric: values over seeds} (evaluated runs only)."""
    groups: dict[RunSetting, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.status == "ok":
            seedless = replace(r.setting, seed=None)
            for m in ("harmful_score", "task_acc"):
                if getattr(r, m) is not None:
                    groups[seedless][m].append(getattr(r, m))
            groups[seedless]["seeds"].append(r.setting.seed)
    return groups


def table_rows(runs: list[Run]) -> list[dict[str, Any]]:
    rows = []
    for setting, values in sorted(aggregate(runs).items(), key=lambda kv: sort_key(kv[0].without())):
        row = {name: getattr(setting, name) for name in SEEDLESS} | {"seeds": len(values["seeds"])}
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
    for model, task in sorted({(s.model, s.task) for s in groups}, key=sort_key):
        cells = {s: v for s, v in groups.items() if (s.model, s.task) == (model, task)}
        ps = sorted({s.p for s in cells}, key=lambda p: (p is None, p))
        rows_keys = sorted({(s.method, s.lam, s.k, s.n) for s in cells}, key=sort_key)
        header = ["method", "λ", "k", "n"] + [f"HS p={fmt(p)}" for p in ps] + [f"Acc p={fmt(p)}" for p in ps] + ["seeds"]
        rows = []
        for method, lam, k, n in rows_keys:
            vals = [cells.get(RunSetting(method=method, lam=lam, k=k, p=p, n=n, model=model, task=task)) for p in ps]
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
    return markdown_table(cols, [[fmt(r.value(c)) for c in cols] for r in runs])


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def plot_vs(runs: list[Run], x: str, label: str, path: Path) -> None:
    """Final harmful score against setting ``x``: one line per setting of the other keys, mean ± std over seeds."""
    lines: dict[tuple, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        if r.status == "ok" and r.harmful_score is not None and r.value(x) is not None:
            lines[r.setting.without(x, "seed")][r.value(x)].append(r.harmful_score)
    others = RunSetting.names(x, "seed")
    varying = [i for i, c in enumerate(others) if len({key[i] for key in lines}) > 1]
    fig, ax = subplots(figsize=(6, 4))
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
    save_figure(fig, path)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (harmful score, accuracy) points no other point beats on both (lower harmful score, higher accuracy)."""
    front, best_acc = [], -math.inf
    for hs, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if acc > best_acc:
            front.append((hs, acc))
            best_acc = acc
    return front


def plot_pareto(runs: list[Run], path: Path) -> None:
    by_method: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for setting, values in aggregate(runs).items():
        if values["harmful_score"] and values["task_acc"]:
            by_method[setting.method].append((mean_std(values["harmful_score"])[0], mean_std(values["task_acc"])[0]))
    fig, ax = subplots(figsize=(6, 4))
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
    save_figure(fig, path)


def write_report(root: Path, out: Path, runs: list[Run]) -> str:
    """Every file of the report into ``out``; returns report.md's text."""
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "runs.csv", [r.row() for r in runs], list(Run(status="").row()))
    rows = table_rows(runs)
    write_csv(out / "table.csv", rows, list(rows[0]) if rows else SEEDLESS)
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


