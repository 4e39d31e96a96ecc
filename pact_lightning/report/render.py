"""Rendering a sweep's runs: the per-run CSV, the paper-style table (mean ± std over seeds), the plots, report.md and
a second judge's numbers beside the first's. The runs are one pandas DataFrame (one row per run, as ``Run.row()``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from pact_lightning.defences import hook_of
from pact_lightning.record import CATEGORY_RATES, HEADLINE, LABELS, RATES, rate_with_interval
from pact_lightning.record.stats import ALPHA, wilson
from pact_lightning.report.collect import (DETAIL, METRICS, Rejudge, Run, expected_points, most_common_harmful,
                                           sort_key)
from pact_lightning.report.paired import arm_pairs
from pact_lightning.setting import RunSetting
from pact_lightning.utils.io import atomic_path, save_figure, subplots, write_text

SEEDLESS = RunSetting.names("seed")  # the columns of an aggregated row
PAPER_ROWS = ["method", "lam", "k", "n"]  # a row of the paper-style table; its columns are the poison ratios p
# Settings mix None, numbers and strings: nullable types keep an integer setting an integer (and None as NA) when
# pandas groups by it; the string settings stay Python objects.
DTYPES = {"lam": "Float64", "p": "Float64", "k": "Int64", "n": "Int64", "seed": "Int64"} | {
    m: float for m in (*METRICS, *DETAIL)}
# the rates aggregated over seeds with their pooled counts: the headline ones and the answer categories
POOLED = (*HEADLINE, *(r for r in CATEGORY_RATES.values() if r not in HEADLINE))


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_number(value: float | None, pattern: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else pattern.format(value)


def fmt_mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "–"
    return fmt(mean) if std is None else f"{fmt(mean)} ± {std:.2g}"


def fmt_rate(mean: float | None, std: float | None = None) -> str:
    """A rate in percent, mean and std alike to one decimal (the precision of the intervals beside them)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.1f}" if std is None or math.isnan(std) else f"{mean:.1f} ± {std:.1f}"


def frame(runs: list[Run], rejudge: Rejudge | None = None) -> pd.DataFrame:
    """One row per run (``Run.row()``, Python values, None where unset); with ``rejudge``, its judge's metrics as
    ``<metric>_<name>`` columns (None for the runs it did not judge)."""
    df = pd.DataFrame([r.row() for r in runs], columns=list(Run(status="").row()), dtype=object)
    for m in METRICS if rejudge is not None else ():
        df[f"{m}_{rejudge.name}"] = [rejudge.metrics.get(d, {}).get(m) for d in df.run_dir]
    return df


def plain(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with Python values and None for NA (what ``fmt`` and ``sort_key`` take)."""
    return df.astype(object).where(df.notna(), None)


def ordered(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The rows of ``df`` in :func:`sort_key` order of ``keys``."""
    return df.loc[sorted(df.index, key=lambda i: sort_key(df.loc[i, keys]))]


def aggregate(df: pd.DataFrame, keys: list[str] = SEEDLESS) -> pd.DataFrame:
    """Per setting of ``keys``, over the evaluated runs (the seeds): their number, the mean and std of each headline
    rate, the pooled count behind each rate (``<rate>_k`` of ``<rate>_n`` prompts over all seeds: its Wilson interval),
    the mean majority-label rate, fit time and peak memory; in :func:`sort_key` order."""
    stats = {f"{m}_{s}": (m, s) for m in POOLED for s in ("mean", "std")}
    evaluated = df[df.status == "ok"].astype(DTYPES)
    for m in POOLED:  # the counts behind each rate (a rate is k/n in percent)
        n = evaluated[RATES[m][1]]
        evaluated[f"{m}_n"], evaluated[f"{m}_k"] = n, (evaluated[m] * n / 100).round()
    # min_count: a rate no run measured has no pooled count (not "0 of n", which would print an interval)
    counts = {f"{m}_{c}": (f"{m}_{c}", lambda v: v.sum(min_count=1)) for m in POOLED for c in ("k", "n")}
    cells = evaluated.groupby(keys, dropna=False, sort=False).agg(
        seeds=("status", "size"), majority=("task_majority_rate", "mean"), fit_s=("fit_s", "mean"),
        peak_mib=("peak_mib", "mean"), **stats, **counts)
    return ordered(plain(cells.reset_index()), keys)


def pooled_interval(cell, rate: str) -> str:
    """The Wilson 95% interval of a rate pooled over the cell's seeds, e.g. "[5.0–9.9]" ("" without counts)."""
    k, n = getattr(cell, f"{rate}_k"), getattr(cell, f"{rate}_n")
    if k is None or not n:
        return ""
    lo, hi = wilson(int(k), int(n))
    return f" [{100 * lo:.1f}–{100 * hi:.1f}]"


def reference_name(method: str | None) -> str:
    """The reference a run evaluated: ``reference``, or ``reference (vaccine)`` for a run on a model aligned with an
    alignment-stage defence (its method is ``vaccine+sft``)."""
    defence = str(method).split("+")[0]
    return f"reference ({defence})" if hook_of(defence) == "alignment" else "reference"


def with_reference(df: pd.DataFrame) -> pd.DataFrame:
    """The runs, and a row ``method=reference`` with the reference's headline rates for each reference evaluation
    (per model, task, p, n and aligned model: the plain one, or one per alignment-stage defence): at most one per seed,
    and one for all seeds when they reused the same evaluation."""
    main = df[(df.status == "ok") & df.ref_harmful_score.notna()]
    # the same weights with the same rates are one evaluation however many seeds reused it (the evaluation cache):
    # counted once, so copies do not narrow its pooled interval; runs that name no weights keep one row per seed
    evaluation = [w if w is not None else f"seed={s}" for w, s in zip(main.reference_weights, main.seed)]
    ref = main.assign(method=[reference_name(m) for m in main.method], lam=None, k=None, fit_s=None, peak_mib=None,
                      evaluation=evaluation, **{m: main[f"ref_{m}"] for m in METRICS})
    ref = ref.drop_duplicates(subset=["model", "task", "p", "n", "seed", "method"]).drop_duplicates(
        subset=["model", "task", "p", "n", "method", "evaluation", *HEADLINE])
    return pd.concat([df, ref.drop(columns="evaluation")], ignore_index=True)


def method_cells(df: pd.DataFrame) -> pd.DataFrame:
    """Per setting (the references included, first), the runs aggregated over seeds (:func:`aggregate`)."""
    cells = aggregate(with_reference(df)).assign(first=lambda c: ~c.method.astype(str).str.startswith("reference"))
    return ordered(cells, ["model", "task", "p", "n", "first", "method", "lam", "k"])


def count_text(k: int, n: int) -> str:
    """A count as "k/n = 12.0% [8.1–17.4]" (percent and its 95% Wilson interval)."""
    lo, hi = wilson(k, n)
    return f"{k}/{n} = {100 * k / n:.1f}% [{100 * lo:.1f}–{100 * hi:.1f}]"


def pooled_rate(cell, rate: str) -> str:
    """A rate pooled over the cell's seeds as :func:`count_text` ("–" without counts)."""
    k, n = getattr(cell, f"{rate}_k"), getattr(cell, f"{rate}_n")
    return "–" if k is None or not n else count_text(int(k), int(n))


def categories_tables(df: pd.DataFrame) -> str:
    """Per model × task and setting: how its answers to the harmful prompts divide into the four answer categories
    (eval/answers.py), pooled over seeds with Wilson intervals."""
    blocks = []
    for (model, task), block in method_cells(df).groupby(["model", "task"], sort=False, dropna=False):
        rows = [[fmt(r.method), fmt(r.lam), fmt(r.k), fmt(r.p), fmt(r.n), str(r.seeds)]
                + [pooled_rate(r, rate) for rate in CATEGORY_RATES.values()] for r in block.itertuples()]
        header = ["method", "λ", "k", "p", "n", "seeds", *CATEGORY_RATES]
        blocks.append(f"### {fmt(model)} · {fmt(task)}\n\nAnswers to the harmful prompts, pooled over seeds: count of "
                      "all answers, percent [95% Wilson interval]. refusal = a refusal marker; degenerate = empty, "
                      "punctuation, a bare yes/no or the request repeated; no_content = compliance or an offer that "
                      "adds nothing; content = compliance that carries content toward the request (the content rate; "
                      "docs/judging.md).\n\n" + markdown_table(header, rows))
    return "\n\n".join(blocks) if blocks else "_No evaluated runs._"


def tuning_table(runs: list[Run]) -> str:
    """The tuning sets (prompts that trained or tuned something, so never part of the rates above), pooled over each
    setting's seeds: a harmful set's harmful score, a benign set's over-refusal — reported here, labelled as such."""
    pooled: dict[tuple, dict[str, list]] = {}
    for r in runs:
        if r.status == "ok" and r.tuning_counts:
            key = tuple(fmt(v) for v in (r.setting.model, r.setting.task, r.setting.method, r.setting.lam,
                                          r.setting.k, r.setting.p, r.setting.n))
            for name, (rate, k, n) in r.tuning_counts.items():
                total = pooled.setdefault(key, {}).setdefault(f"{name} ({LABELS[rate]})", [0, 0])
                total[0], total[1] = total[0] + k, total[1] + n
    if not pooled:
        return "_No run has a tuning set._"
    names = sorted({name for sets in pooled.values() for name in sets})
    rows = [[*key, *(count_text(*sets[s]) if s in sets else "–" for s in names)] for key, sets in sorted(pooled.items())]
    return ("The tuning sets, pooled over seeds, percent [95% Wilson interval]: these prompts tuned an alignment recipe "
            "or a setting, so they do not measure safety or over-refusal (docs/method.md).\n\n"
            + markdown_table(["model", "task", "method", "λ", "k", "p", "n", *names], rows))


def methods_tables(df: pd.DataFrame) -> str:
    """Per model × task: one row per method (the reference included) and setting, each headline rate as mean ± std
    over the seeds, and the task's majority-label rate (the accuracy of always giving the most common label)."""
    blocks = []
    for (model, task), block in method_cells(df).groupby(["model", "task"], sort=False, dropna=False):
        rows = [[fmt(r.method), fmt(r.lam), fmt(r.k), fmt(r.p), fmt(r.n), str(r.seeds)]
                + [fmt_rate(getattr(r, f"{m}_mean"), getattr(r, f"{m}_std")) + pooled_interval(r, m)
                   for m in HEADLINE]
                + [fmt_rate(r.majority), fmt_number(r.fit_s, "{:.0f}"), fmt_number(r.peak_mib, "{:.0f}")]
                for r in block.itertuples()]
        header = ["method", "λ", "k", "p", "n", "seeds", *(LABELS[m] for m in HEADLINE), "majority label",
                  "fit s", "peak MiB"]
        blocks.append(f"### {fmt(model)} · {fmt(task)}\n\nPercent, mean ± std over seeds [95% Wilson interval of the "
                      "rate pooled over the seeds' answers; the seeds answer the same prompts, so it understates the "
                      "uncertainty about new prompts]; a reference that several seeds reused is one evaluation "
                      "(seeds 1); harmful score = the judge's verdict; content rate = answers that carry content "
                      "toward the request (docs/judging.md); over-refusal = refusals of the benign measuring sets "
                      "(tuning sets left out); majority "
                      "label = the task accuracy of always answering the most common label; fit s and peak MiB = "
                      "mean wall time of the fit and peak memory of the run (GPU allocation, else resident memory; a "
                      "run that built its aligned model includes that stage).\n\n" + markdown_table(header, rows))
    return "\n\n".join(blocks) if blocks else "_No evaluated runs._"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def paper_tables(cells: pd.DataFrame) -> str:
    """Per model × task: rows = method (λ, k, n), columns = p; harmful score then task accuracy (mean ± std, seeds)."""
    cells = ordered(cells, ["model", "task", *PAPER_ROWS, "p"])
    shown = cells[["model", "task", *PAPER_ROWS, "p", "seeds"]].map(fmt).assign(
        HS=[fmt_mean_std(m, s) for m, s in zip(cells.harmful_score_mean, cells.harmful_score_std)],
        Acc=[fmt_mean_std(m, s) for m, s in zip(cells.task_acc_mean, cells.task_acc_std)])
    blocks = []
    for (model, task), block in shown.groupby(["model", "task"], sort=False):  # formatted: None is "–", not NA
        ps = [fmt(p) for p in sorted(set(cells.p[block.index]), key=lambda p: sort_key([p]))]
        table = (block.pivot(index=PAPER_ROWS, columns="p", values=["HS", "Acc", "seeds"])
                 .reindex(pd.MultiIndex.from_frame(block[PAPER_ROWS].drop_duplicates())))  # rows in sort_key order
        seeds = ["/".join(sorted(set(row.dropna()), key=int)) for _, row in table["seeds"].iterrows()]
        values = table.reindex(columns=[(v, p) for v in ("HS", "Acc") for p in ps]).fillna("").values.tolist()
        header = PAPER_ROWS[:1] + ["λ", "k", "n"] + [f"{v} p={p}" for v in ("HS", "Acc") for p in ps] + ["seeds"]
        rows = [[*key, *vals, s] for key, vals, s in zip(table.index, values, seeds)]
        blocks.append(f"### {model} · {task}\n\nHS = harmful score (lower is better), Acc = task accuracy; "
                      f"mean ± std over seeds.\n\n" + markdown_table(header, rows))
    return "\n\n".join(blocks) if blocks else "_No evaluated runs (results.json with a `final` block)._"


def runs_table(df: pd.DataFrame) -> str:
    """Every run: its setting, each headline rate with its 95% interval, the prompt counts, the reference's rates."""
    setting = ["status", "method", "lam", "k", "p", "n", "seed", "model", "task"]
    counts = ["num_prompts", "num_benign_prompts", "num_task_prompts"]
    rows = [[fmt(r[c]) for c in setting] + [rate_with_interval(r, m) for m in HEADLINE]
            + ["/".join(fmt(r[c]) for c in counts), fmt(r["task_majority_rate"])]
            + [fmt(r[f"ref_{m}"]) for m in HEADLINE] + [most_common_harmful(r["run_dir"]), fmt(r["run_dir"]),
                                                        fmt(r["note"])]
            for r in plain(df).to_dict("records")]  # iterrows would turn a row's None into nan
    header = setting + [f"{LABELS[m]} [95% CI]" for m in HEADLINE] + ["prompts (harmful/benign/task)",
                                                                      "majority label"] \
        + [f"reference {LABELS[m]}" for m in HEADLINE] + ["most common harmful answer", "run_dir", "note"]
    return markdown_table(header, rows)


def rejudge_section(df: pd.DataFrame, rejudge: Rejudge) -> str:
    """Per re-judged run: harmful score and refusal rates by the sweep's judge and by the second one; then the
    re-judge results that match no run and the evaluated runs that were not re-judged."""
    metrics = {"harmful_score": "HS", "refusal_rate": "refusal", "benign_refusal_rate": "benign refusal"}
    done = df[df.run_dir.isin(list(rejudge.metrics))]
    first = ", ".join(sorted({j or "judge not recorded" for j in done.judge})) or "–"
    header = ["method", "λ", "k", "p", "n", "seed"] + [f"{label} ({name})" for label in metrics.values()
                                                       for name in ("old", rejudge.name)] + ["run_dir"]
    cols = ["method", "lam", "k", "p", "n", "seed"] + [c for m in metrics for c in (m, f"{m}_{rejudge.name}")]
    rows = [[*map(fmt, row), d] for row, d in zip(done[cols].values.tolist(), done.run_dir)]
    not_judged = df[df.status.isin(["ok", "no_eval"]) & ~df.run_dir.isin(list(rejudge.metrics))].run_dir
    return "\n\n".join([
        f"## Re-judged ({rejudge.name}): {first} → {', '.join(rejudge.judges) or '–'}",
        f"From {rejudge.root}; old = the sweep's own evaluation.\n\n" + markdown_table(header, rows),
        "Re-judge results that match no run:" + "".join(f"\n- {u}" for u in rejudge.unmatched or [" none."]),
        "Runs not re-judged:" + "".join(f"\n- {d}" for d in not_judged.tolist() or [" none."]),
    ])


def write_csv(path: Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def plot_vs(df: pd.DataFrame, x: str, label: str, path: Path) -> None:
    """Final harmful score against setting ``x``: one line per setting of the other keys, mean ± std over seeds."""
    others = RunSetting.names(x, "seed")
    points = aggregate(df[df.harmful_score.notna() & df[x].notna()], [*others, x])
    varying = [c for c in others if points[c].nunique(dropna=False) > 1]
    points["line"] = [" ".join(f"{c}={fmt(row[c])}" for c in varying) or str(row["method"])
                      for _, row in points.iterrows()]
    fig, ax = subplots(figsize=(6, 4))
    lines = list(points.groupby("line", sort=False))
    offsets = dodge([list(line[x]) for _, line in lines])
    for (name, line), offset in zip(lines, offsets):
        ax.errorbar([v + offset for v in line[x]], list(line.harmful_score_mean),
                    yerr=[s or 0.0 for s in line.harmful_score_std], marker="o", capsize=3, label=name)
    ax.set_xlabel(label + (" (lines that share a value are set side by side)" if any(offsets) else ""))
    ax.set_ylabel("harmful score (final)")
    ax.set_title(f"Harmful score vs {label}")
    if len(points):
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no evaluated runs", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    save_figure(fig, path)


def dodge(xs: list[list[float]]) -> list[float]:
    """A small sideways offset for each line, so that lines with a point at the same x (the λ = 1 arms of a defence
    study) stand side by side rather than on top of one another; all 0 when no x is shared."""
    seen = [v for line in xs for v in set(line)]
    if len(seen) == len(set(seen)):
        return [0.0] * len(xs)
    values = sorted(set(seen))
    gaps = [b - a for a, b in zip(values, values[1:])]
    step = 0.3 * (min(gaps) if gaps else max(abs(values[0]), 1.0)) / max(len(xs) - 1, 1)
    return [(i - (len(xs) - 1) / 2) * step for i in range(len(xs))]


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (x, y) points no other point beats on both, lower being better on both axes (e.g. content rate and
    over-refusal)."""
    front, best_y = [], math.inf
    for x, y in sorted(points):
        if y < best_y:
            front.append((x, y))
            best_y = y
    return front


def pareto_axes(cells: pd.DataFrame) -> tuple[str, str]:
    """The safety rate of the trade-off plot (the content rate where every setting has one, else the harmful score)
    and the over-refusal rate."""
    safety = "harmful_content_rate" if cells.harmful_content_rate_mean.notna().all() and len(cells) else "harmful_score"
    return safety, "benign_refusal_rate"


def fronts(cells: pd.DataFrame, by: list[str], x: str = "harmful_content_rate",
           y: str = "benign_refusal_rate") -> list[list[tuple[float, float]]]:
    """The Pareto front (lower ``x``, lower ``y``) of each group of ``cells`` that shares the values of ``by``."""
    return [pareto_front(list(zip(group[f"{x}_mean"], group[f"{y}_mean"])))
            for _, group in cells.groupby(by, dropna=False, sort=False)]


def is_reference(cells: pd.DataFrame) -> pd.Series:
    return cells.method.astype(str).str.startswith("reference")


def plot_pareto(cells: pd.DataFrame, path: Path) -> None:
    """Each setting's mean (content rate, over-refusal) over seeds with ± std error bars: the safety that is kept
    against the benign requests that are refused. Only settings of the same model, task, p and n are compared: per
    such group, the front over all methods (ringed, dashed) and each method's own front across its λ and k (a line).
    A method with a λ has each point labelled with it; the reference rows of ``cells`` (:func:`method_cells`: the
    aligned model before fine-tuning) are drawn as stars, outside the fronts."""
    refs = cells[is_reference(cells)]
    cells = cells[~is_reference(cells)]
    evaluated = len(cells)
    x, y = pareto_axes(cells)
    cells = cells.dropna(subset=[f"{x}_mean", f"{y}_mean"])
    refs = refs.dropna(subset=[f"{x}_mean", f"{y}_mean"])
    comparable = ["model", "task", "p", "n"]
    fig, ax = subplots(figsize=(6, 4))
    for i, (method, group) in enumerate(cells.groupby("method", dropna=False)):
        ax.errorbar(group[f"{x}_mean"], group[f"{y}_mean"], xerr=[s or 0.0 for s in group[f"{x}_std"]],
                    yerr=[s or 0.0 for s in group[f"{y}_std"]], fmt="o", color=f"C{i % 10}", alpha=0.8, capsize=2,
                    label=str(method))
        for front in fronts(group, comparable, x, y):
            ax.plot(*zip(*front), color=f"C{i % 10}")
        if any(lam for lam in group.lam if lam is not None):  # a method with a λ (PACT's family): say which point
            for lam, px, py in zip(group.lam, group[f"{x}_mean"], group[f"{y}_mean"]):
                ax.annotate(f"λ={fmt(lam)}", (px, py), textcoords="offset points", xytext=(4, 4), fontsize=7,
                            color=f"C{i % 10}")
    for j, (name, ref) in enumerate(refs.groupby("method", dropna=False)):
        ax.plot(ref[f"{x}_mean"], ref[f"{y}_mean"], linestyle="none", marker="*", markersize=13, color="black",
                markerfacecolor="gold" if j == 0 else f"C{(j + 5) % 10}",
                label=f"{name}: the aligned model before fine-tuning")
    for j, front in enumerate(fronts(cells, comparable, x, y)):
        ax.plot(*zip(*front), color="black", linestyle="--", linewidth=1, marker="o", markersize=11,
                markerfacecolor="none", label=None if j else "not dominated (front over all methods)")
    if len(cells) or len(refs):
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, f"no evaluated run measured {LABELS[x]} and {LABELS[y]}" if evaluated else
                "no evaluated runs", ha="center", transform=ax.transAxes)
    ax.set_xlabel(f"{LABELS[x]} (lower is better)")
    ax.set_ylabel(f"{LABELS[y]}, measuring sets (lower is better)")
    ax.set_title("Safety / over-refusal trade-off per method")
    fig.tight_layout()
    save_figure(fig, path)


def paired_section(runs: list[Run], method: str, rescore: bool = False) -> str:
    rows, notes = arm_pairs(runs, method, rescore)
    intro = (f"{method} minus every other run of the same seed, model, task, p and n, on the same prompts: difference "
             f"in points [paired bootstrap 95% interval] and exact McNemar p; * = beyond noise (p < {ALPHA}).")
    table = markdown_table(["seed", "pair", *(LABELS[m] for m in HEADLINE)], rows) if rows else f"_No run of {method} to pair._"
    blocks = [f"## Paired: {method} against the other arms", intro, table]
    return "\n\n".join(blocks + (["\n".join(notes)] if notes else []))


def write_report(root: Path, out: Path, runs: list[Run], rejudge: Rejudge | None = None,
                 pair_with: str | None = None, rescore: bool = False) -> str:
    """Every file of the report into ``out`` (with ``rejudge``, its numbers beside the sweep's; with ``pair_with``, that
    method against every other arm prompt by prompt); returns report.md's text."""
    out.mkdir(parents=True, exist_ok=True)
    df = frame(runs, rejudge)
    cells = aggregate(df)
    write_csv(out / "runs.csv", df)
    write_csv(out / "table.csv", cells)
    plots = {"harmful_vs_lam.png": ("lam", "λ"), "harmful_vs_k.png": ("k", "k (safety tokens)"),
             "harmful_vs_p.png": ("p", "poison ratio p")}
    for name, (x, label) in plots.items():
        plot_vs(df, x, label, out / name)
    plot_pareto(method_cells(df), out / "pareto.png")
    counts = df.status.value_counts().reindex(["ok", "no_eval", "failed", "missing"], fill_value=0)
    problems = ["- " + " ".join(x for x in (f"**{r.status}**", r.run_dir, r.note) if x)
                for r in runs if r.status in ("failed", "missing")]
    if (root / "multirun.yaml").is_file() and expected_points(root) is None:
        problems.append("- Points that never started are not listed: this sweep's points (Optuna, or a glob() sweep) "
                        "are not known in advance.")
    text = "\n\n".join([
        f"# Sweep report: {root}",
        ", ".join(f"{v} {k}" for k, v in counts.items()) + " run(s).",
        "## Methods\n\n" + methods_tables(df),
        "## Answer categories\n\n" + categories_tables(df),
        "## The tuning sets\n\n" + tuning_table(runs),
        "## Paper-style table\n\n" + paper_tables(cells),
        *([paired_section(runs, pair_with, rescore)] if pair_with else []),
        "## Runs\n\n" + runs_table(df),
        "## Failed and missing runs\n\n" + ("\n".join(problems) or "None."),
        *([rejudge_section(df, rejudge)] if rejudge is not None else []),
        "## Plots\n\n" + "\n".join(f"![{name}]({name})" for name in [*plots, "pareto.png"]),
    ]) + "\n"
    write_text(out / "report.md", text)
    return text
