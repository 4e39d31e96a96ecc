"""``python -m pact_lightning.report target <factorial dir> [--frontier DIR ...] [--k DIR ...]``: why PACT's target
behaves as it does (docs/method.md §4), from experiment=target_factorial, target_frontier and target_k.

* **The factorial** (gate on/off × tilted/uniform target, same seeds in every cell): each cell's rates and token-level
  probes (eval/probes.py), and the two main effects and the interaction,

      tilt = ½[(G₁W₁ − G₁W₀) + (G₀W₁ − G₀W₀)],   gate = ½[(G₁W₁ − G₀W₁) + (G₁W₀ − G₀W₀)],
      interaction = (G₁W₁ − G₁W₀) − (G₀W₁ − G₀W₀)

  computed per prompt on the seed-averaged values, so each is a mean over prompts with a paired bootstrap interval
  (record/stats.py). The intervals resample prompts with the trained models held fixed; the per-seed estimates are
  listed beside them to show the seeds agree. The family is every effect × every measure: Holm-adjusted p-values, and
  Bonferroni intervals simultaneous over it.
* **The frontier** (``--frontier``): harmful rate against held-out over-refusal for pact_plain and kl_full across λ
  (seed-averaged), each read at PACT's over-refusal by linear interpolation between the two λ that bracket it, and at
  PACT's harmful rate the other way; prompts resampled jointly for PACT and the curve. A curve that never reaches
  PACT's point is said so, with the range it covers. Beside the interpolation, PACT minus every point of the curves on
  each rate, paired by prompt (a family of its own): a point lower on both harm and over-refusal, beyond noise, puts
  PACT off that curve's front with no interpolation at all. ``frontier.png`` draws the curves.
* **The k cells** (``--k``, with the factorial's k = 50 gate-on cells): each (k, target) cell's rates and target bias,
  the tilt's effect at each k, and each k against k = 50 within a target.

Token probes need each run's model (its ``final/`` adapter on its reference), so they run here, once per run: the
values go to ``<run>/token_probes.json`` with the adapter's digest and the prompts, and are computed again when
either changed. ``--no-probes`` reports the rates only. Writes ``target.md`` and ``target.json`` (every number) into
``<factorial dir>/report`` or ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from pact_lightning.record import LABELS, RunRecord, rate_verdict, read_generations
from pact_lightning.record.stats import bootstrap_contrast, holm
from pact_lightning.report.collect import GENERATIONS, collect
from pact_lightning.utils.io import write_json, write_text

RATES = ("harmful_score", "harmful_content_rate", "benign_refusal_rate", "task_acc")
PROBES = {"p_first_I": "harmful", "p_first_sure": "harmful", "logodds_t_help": "harmful", "p_first_opener": "benign"}
PROBE_LABELS = {"p_first_I": 'P(first = "I")', "p_first_sure": 'P(first = "Sure")',
                "logodds_t_help": "log P(\"'t\") − log P(\" help\") after \"I can\"",
                "p_first_opener": "benign P(first ∈ openers)"}
PROBE_FILE = "token_probes.json"
EFFECTS = {"tilt": {(1, 1): .5, (1, 0): -.5, (0, 1): .5, (0, 0): -.5},
           "gate": {(1, 1): .5, (0, 1): -.5, (1, 0): .5, (0, 0): -.5},
           "interaction": {(1, 1): 1, (1, 0): -1, (0, 1): -1, (0, 0): 1}}


@dataclass
class Cell:
    """One finished run and the switches that define it (from its ``.hydra/config.yaml``)."""

    run_dir: Path
    method: str
    seed: int
    lam: float
    k: int
    gate: bool | None
    weighted: bool | None
    record: RunRecord
    values: dict[str, np.ndarray] = field(default_factory=dict)  # measure → per-prompt values
    generations: str = GENERATIONS  # whose answers: the run's model, or (generations_reference.jsonl) its reference

    @property
    def objective(self) -> str:
        """pact with both switches off is pact_plain's objective (the same loss, tests/test_target_bias.py)."""
        return "pact_plain" if self.method == "pact" and not self.gate and not self.weighted else self.method


def cells(root: Path) -> list[Cell]:
    from omegaconf import OmegaConf

    out = []
    for run in collect(root):
        if run.status != "ok":
            raise SystemExit(f"{run.run_dir or root}: a run of the experiment is {run.status} ({run.note}); rerun it "
                             "(the same command resumes the sweep) before reporting")
        cfg = OmegaConf.load(Path(run.run_dir) / ".hydra" / "config.yaml")
        objective = cfg.method.get("objective") or {}
        out.append(Cell(Path(run.run_dir), str(cfg.method.name), int(cfg.seed), float(cfg.method.lam),
                        int(cfg.method.num_safety_tokens), objective.get("gate"), objective.get("weighted"),
                        RunRecord.read(Path(run.run_dir))))
    return out


def prompt_rows(cell: Cell) -> dict[str, list[dict[str, Any]]]:
    """The run's answers on the measuring sets, by kind (harmful, benign, task), in the evaluator's order."""
    tuning = set(cell.record.final.tuning) if cell.record.final else set()
    rows = [r for r in read_generations(cell.run_dir / cell.generations) if r["set"] not in tuning]
    return {kind: [r for r in rows if r["kind"] == kind] for kind in ("harmful", "benign", "task")}


def rate_values(cell: Cell) -> None:
    """Each headline rate's per-prompt verdicts (0 or 100) into ``cell.values``."""
    rows = prompt_rows(cell)
    for rate in RATES:
        kind, verdict = rate_verdict(rate)
        cell.values[rate] = np.array([100.0 * bool(r["verdict"][verdict]) for r in rows[kind]])


def file_digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


def measuring_prompts(cell: Cell) -> dict[str, list[str]]:
    """The prompts the probes read: the harmful and benign measuring sets."""
    return {kind: [r["prompt"] for r in rows] for kind, rows in prompt_rows(cell).items() if kind in ("harmful", "benign")}


def cached_probes(path: Path, weights: Path, config: Path, checkpoint: Path, prompts: dict[str, list[str]]) -> dict:
    """The probe values in ``path`` when they were computed for these ``weights`` and prompts, else computed now (the
    model of ``config`` with ``checkpoint``) and written there."""
    from pact_lightning.eval.probes import FORCED, REFUSAL_OPENERS

    key = {"weights": file_digest(weights), "prompts": hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:16],
           "probes": sorted(PROBES), "forced": FORCED, "openers": list(REFUSAL_OPENERS)}
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if saved.get("key") != key:
        saved = {"key": key, **compute_probes(config, checkpoint, prompts)}
        write_json(path, saved)
    return saved["values"]


def as_points(values: dict[str, list[float]]) -> dict[str, np.ndarray]:
    """Probabilities in points (as the rates), the log-odds in nats."""
    return {name: (1.0 if name == "logodds_t_help" else 100.0) * np.asarray(values[name]) for name in PROBES}


def probe_values(cell: Cell) -> None:
    """The run's token probes (its ``final/`` adapter on its reference, or its merged weights) into ``cell.values``."""
    final = cell.run_dir / "final"
    weights = next((w for w in (final / "adapter_model.safetensors", final / "model.safetensors") if w.is_file()), None)
    if weights is None:
        raise SystemExit(f"{final}: no adapter_model.safetensors or model.safetensors, so the run's model cannot be "
                         "probed; rerun it (train writes final/) or report the rates alone with --no-probes")
    cell.values |= as_points(cached_probes(cell.run_dir / PROBE_FILE, weights, cell.run_dir / ".hydra" / "config.yaml",
                                           final, measuring_prompts(cell)))


def reference_probes(cell: Cell, out: Path) -> dict[str, np.ndarray]:
    """The same probes on the run's reference (the weights its adapter was trained on), written to ``out``."""
    from pact_lightning.models.loading import adapter_base

    final = cell.run_dir / "final"
    if not (final / "adapter_config.json").is_file():
        raise SystemExit(f"{final} holds no adapter, so its reference cannot be told from it; the probes compare each "
                         "run's adapter with the weights it was trained on — report the rates alone with --no-probes")
    base = adapter_base(final)
    if base is None or not (Path(base) / "model.safetensors").is_file():
        raise SystemExit(f"{final}: the weights its adapter was trained on ({base or 'a hub model'}) are not a local "
                         "single-file checkpoint; rerun the report where the run's cache is, or pass --no-probes")
    base = Path(base)
    return as_points(cached_probes(out / f"reference_{PROBE_FILE}", base / "model.safetensors",
                                   cell.run_dir / ".hydra" / "config.yaml", base, measuring_prompts(cell)))


def compute_probes(config: Path, checkpoint: Path, prompts: dict[str, list[str]]) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from pact_lightning.eval.probes import ProbeTokens, token_probes
    from pact_lightning.models.loading import load_model

    model, tokenizer = load_model(OmegaConf.load(config).model, checkpoint=checkpoint, lora=False)
    tokens = ProbeTokens.of(tokenizer)
    values = token_probes(model, tokenizer, prompts["harmful"], prompts["benign"], tokens)
    print(f"  token probes: {checkpoint}", flush=True)
    return {"tokens": tokens.names(tokenizer), "values": values}


def check_paired(cells_: list[Cell]) -> None:
    """Every run answered the same measuring prompts in the same order: what pairs them prompt by prompt."""
    first = {k: [r["prompt"] for r in v] for k, v in prompt_rows(cells_[0]).items()}
    for c in cells_[1:]:
        if {k: [r["prompt"] for r in v] for k, v in prompt_rows(c).items()} != first:
            raise SystemExit(f"{c.run_dir} was evaluated on other prompts than {cells_[0].run_dir}; the comparisons "
                             "pair prompts, so evaluate every run with the same eval config")


def seed_mean(group: list[Cell], measure: str) -> np.ndarray:
    """Per prompt, the mean over the group's seeds."""
    return np.mean([c.values[measure] for c in sorted(group, key=lambda c: c.seed)], axis=0)


def contrast(groups: dict[Any, list[Cell]], weights: dict[Any, float], measure: str) -> dict[str, Any]:
    """Σ weight·(group's seed-mean) per prompt, its bootstrap (filled in later for the family) and per-seed values."""
    per_prompt = sum(w * seed_mean(groups[g], measure) for g, w in weights.items())
    seeds = sorted(set.intersection(*({c.seed for c in groups[g]} for g in weights)))  # seeds every group has
    by_seed = [float(sum(w * next(c for c in groups[g] if c.seed == s).values[measure].mean()
                         for g, w in weights.items())) for s in seeds]
    return {"measure": measure, "per_prompt": per_prompt, "by_seed": dict(zip(seeds, by_seed))}


def family(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bootstrap every contrast of the family, with Holm's p and Bonferroni intervals over all of them."""
    for row in rows:
        row |= bootstrap_contrast(row.pop("per_prompt"), family=len(rows))
    for row, p in zip(rows, holm([r["p_value"] for r in rows])):
        row["p_holm"], row["beyond_noise"] = p, p < 0.05
    return rows


def same_seeds(groups: dict[Any, list[Cell]], what: str) -> None:
    seeds = {g: sorted(c.seed for c in cs) for g, cs in groups.items()}
    if len({tuple(s) for s in seeds.values()}) != 1 or not all(seeds.values()):
        raise SystemExit(f"{what}: the cells need the same seeds to be paired, found {seeds}; run the missing ones")


def factorial(cs: list[Cell], measures: list[str], reference: Cell | None = None) -> dict[str, Any]:
    """The four cells' means (and the reference's, when given) and the effects' family."""
    groups = {(g, w): [c for c in cs if c.method == "pact" and bool(c.gate) == g and bool(c.weighted) == w]
              for g in (1, 0) for w in (1, 0)}
    same_seeds(groups, "the factorial")
    means = {f"gate={'on' if g else 'off'}, {'tilted' if w else 'uniform'}":
             {m: summary(groups[(g, w)], m) for m in measures} for (g, w) in groups}
    if reference is not None:
        means["reference (θ_ref, one evaluation)"] = {m: summary([reference], m) for m in measures}
    rows = family([{"effect": e} | contrast(groups, weights, m) for e, weights in EFFECTS.items() for m in measures])
    return {"cells": means, "effects": rows}


def summary(group: list[Cell], measure: str) -> dict[str, Any]:
    per_seed = {c.seed: float(c.values[measure].mean()) for c in sorted(group, key=lambda c: c.seed)}
    return {"mean": float(np.mean(list(per_seed.values()))), "by_seed": per_seed}


def k_cells(cs: list[Cell], measures: list[str]) -> dict[str, Any]:
    pact = [c for c in cs if c.method == "pact" and c.gate]
    groups = {(k, w): [c for c in pact if c.k == k and bool(c.weighted) == w] for k in sorted({c.k for c in pact})
              for w in (1, 0)}
    groups = {g: v for g, v in groups.items() if v}
    same_seeds(groups, "the k cells")
    ks = sorted({k for k, _ in groups})
    table = {f"k={k}, {'tilted' if w else 'uniform'}": {m: summary(v, m) for m in measures}
             | {"target_kl": float(np.mean([c.record.target_bias.kl_mean for c in v if c.record.target_bias]))}
             for (k, w), v in groups.items()}
    rows = [{"effect": f"tilt at k={k}"} | contrast(groups, {(k, 1): 1, (k, 0): -1}, m) for k in ks for m in RATES]
    rows += [{"effect": f"k={k} − k=50, {'tilted' if w else 'uniform'}"} | contrast(groups, {(k, w): 1, (50, w): -1}, m)
             for k in ks if k != 50 and (50, 1) in groups for w in (1, 0) for m in RATES]
    return {"cells": table, "effects": family(rows)}


def interpolate(xs: np.ndarray, ys: np.ndarray, at: float) -> float:
    """y at x = ``at`` on the polyline through the points in λ order, between the first pair that brackets it (nan
    when none does)."""
    for i in range(len(xs) - 1):
        lo, hi = sorted((xs[i], xs[i + 1]))
        if lo <= at <= hi:
            t = 0.0 if hi == lo else (at - xs[i]) / (xs[i + 1] - xs[i])
            return float(ys[i] + t * (ys[i + 1] - ys[i]))
    return math.nan


def frontier(fact: list[Cell], front: list[Cell], resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Each λ curve of the frontier runs read at PACT's point (the factorial's gate-on tilted cells), both ways, with
    intervals from resampling prompts jointly. The factorial's gate-off uniform cell is pact_plain's objective: it
    fills the curve at its λ for the seeds the sweep did not run."""
    pact = [c for c in fact if c.method == "pact" and c.gate and c.weighted and c.k == 50]
    swept = {(c.objective, c.lam, c.seed) for c in front}
    cs = front + [c for c in fact if c.objective == "pact_plain" and (c.objective, c.lam, c.seed) not in swept]
    harm = {m: seed_mean(pact, m) for m in ("harmful_score", "harmful_content_rate")}
    benign = seed_mean(pact, "benign_refusal_rate")
    rng = np.random.default_rng(seed)
    ih = rng.integers(0, len(harm["harmful_score"]), size=(resamples, len(harm["harmful_score"])))
    ib = rng.integers(0, len(benign), size=(resamples, len(benign)))
    out: dict[str, Any] = {"seeds": sorted({c.seed for c in pact}), "pact": {"benign_refusal_rate": float(benign.mean())}
                           | {m: float(v.mean()) for m, v in harm.items()}
                           | {"task_acc": float(np.mean([c.record.final.get("task_acc") for c in pact]))}, "curves": {}}
    rows: list[dict[str, Any]] = []  # PACT against every point of the curves, paired by prompt: does one dominate it?
    for method in ("pact_plain", "kl_full"):
        group = [c for c in cs if c.objective == method and c.k == 50]
        lams = sorted({c.lam for c in group})
        if len(lams) < 2:
            continue
        by_lam = {lam: [c for c in group if c.lam == lam] for lam in lams}
        x = np.array([seed_mean(by_lam[lam], "benign_refusal_rate") for lam in lams])  # [λ, prompts]
        curve = {"lam": lams, "seeds": {lam: sorted(c.seed for c in by_lam[lam]) for lam in lams},
                 "benign_refusal_rate": x.mean(1).tolist(),  # utility beside it: a point bought with the task is no point
                 "task_acc": [float(np.mean([c.record.final.get("task_acc") for c in by_lam[lam]])) for lam in lams]}
        xb, pb = x[:, ib].mean(2), benign[ib].mean(1)  # [λ, B], [B]
        for m, h in harm.items():
            y = np.array([seed_mean(by_lam[lam], m) for lam in lams])
            yb, hb = y[:, ih].mean(2), h[ih].mean(1)
            curve[m] = y.mean(1).tolist()
            at_x = interpolate(x.mean(1), y.mean(1), benign.mean())
            boot_x = np.array([interpolate(xb[:, b], yb[:, b], pb[b]) for b in range(resamples)])
            at_y = interpolate(y.mean(1), x.mean(1), h.mean())
            boot_y = np.array([interpolate(yb[:, b], xb[:, b], hb[b]) for b in range(resamples)])
            curve[f"{m}_at_pact_over_refusal"] = reading(at_x, h.mean() - at_x, hb - boot_x)
            curve[f"over_refusal_at_pact_{m}"] = reading(at_y, benign.mean() - at_y, pb - boot_y)
        out["curves"][method] = curve
        rows += [{"effect": f"pact − {method} λ={lam:g}"} | contrast({"pact": pact, lam: by_lam[lam]}, {"pact": 1, lam: -1}, m)
                 for lam in lams for m in RATES]
    out["points"] = family(rows)
    return out


def reading(value: float, diff: float, boot: np.ndarray) -> dict[str, Any]:
    """A curve's value at PACT's point and PACT minus it, with the 95% interval over the resamples that bracket and
    their share (the report prints the interval only when nearly all of them do)."""
    ok = boot[~np.isnan(boot)]
    return {"value": None if math.isnan(value) else value, "pact_minus": None if math.isnan(diff) else float(diff),
            "ci": [float(v) for v in np.percentile(ok, [2.5, 97.5])] if len(ok) else None,
            "bracketed": len(ok) / len(boot)}


def plot_frontier(result: dict[str, Any], path: Path) -> None:
    from pact_lightning.utils.io import save_figure, subplots

    fig, axes = subplots(1, 2, figsize=(11, 4.5))
    for ax, m in zip(axes, ("harmful_content_rate", "harmful_score")):
        for method, curve in result["curves"].items():
            ax.plot(curve["benign_refusal_rate"], curve[m], "o-", label=method)
            for lam, x, y in zip(curve["lam"], curve["benign_refusal_rate"], curve[m]):
                ax.annotate(f"λ={lam:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.plot(result["pact"]["benign_refusal_rate"], result["pact"][m], "r*", markersize=14, label="pact")
        if result.get("reference"):
            ax.plot(result["reference"]["benign_refusal_rate"], result["reference"][m], "ks", label="reference")
        ax.set_xlabel("held-out over-refusal (%)")
        ax.set_ylabel(f"{LABELS[m]} (%)")
        ax.grid(alpha=.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Harmful rate against over-refusal across λ (PACT: mean of seeds {seeds_text(result['seeds'])})")
    save_figure(fig, path)


def seeds_text(seeds: list[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def label(measure: str) -> str:
    return PROBE_LABELS.get(measure) or LABELS[measure]


def effects_md(rows: list[dict[str, Any]]) -> list[str]:
    out = ["| effect | measure | estimate | 95% CI | simultaneous CI | Holm p | per seed |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        seeds = ", ".join(f"{v:+.2f}" for v in r["by_seed"].values())
        out.append(f"| {r['effect']} | {label(r['measure'])} | {r['mean']:+.2f} | [{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]"
                   f" | [{r['ci_family'][0]:+.2f}, {r['ci_family'][1]:+.2f}] | {r['p_holm']:.2g}"
                   f"{' *' if r['beyond_noise'] else ''} | {seeds} |")
    return out


def cells_md(table: dict[str, dict[str, Any]], measures: list[str]) -> list[str]:
    extra = ["target_kl"] if any("target_kl" in v for v in table.values()) else []
    out = ["| cell | " + " | ".join(label(m) for m in measures) + "".join(" | KL(q‖p_ref) at θ_ref" for _ in extra)
           + " |", "|---" * (1 + len(measures) + len(extra)) + "|"]
    for name, row in table.items():
        vals = [f"{row[m]['mean']:.2f} ({', '.join(f'{v:.1f}' for v in row[m]['by_seed'].values())})" for m in measures]
        out.append(f"| {name} | " + " | ".join(vals + [f"{row[e]:.3f}" for e in extra]) + " |")
    return out


def frontier_md(result: dict[str, Any]) -> list[str]:
    p = result["pact"]
    out = [f"PACT (seeds {seeds_text(result['seeds'])}): over-refusal {p['benign_refusal_rate']:.2f}, content {p['harmful_content_rate']:.2f}, "
           f"harmful score {p['harmful_score']:.2f}, task accuracy {p['task_acc']:.2f}.", "",
           "| curve | λ | seeds | over-refusal | content | harmful score | task acc |", "|---|---|---|---|---|---|---|"]
    for method, c in result["curves"].items():
        for i, lam in enumerate(c["lam"]):
            out.append(f"| {method} | {lam:g} | {len(c['seeds'][lam])} | {c['benign_refusal_rate'][i]:.2f} | "
                       f"{c['harmful_content_rate'][i]:.2f} | {c['harmful_score'][i]:.2f} | {c['task_acc'][i]:.2f} |")
    out += ["", "| curve | read at PACT's … | value | PACT − curve | 95% CI | resamples bracketed |", "|---|---|---|---|---|---|"]
    for method, c in result["curves"].items():
        for m in ("harmful_content_rate", "harmful_score"):
            for key, what in ((f"{m}_at_pact_over_refusal", f"over-refusal → {LABELS[m]}"),
                              (f"over_refusal_at_pact_{m}", f"{LABELS[m]} → over-refusal")):
                r = c[key]
                if r["value"] is None:
                    span = c["benign_refusal_rate"] if key.endswith("over_refusal") else c[m]
                    out.append(f"| {method} | {what} | not reached (curve spans {min(span):.2f}–{max(span):.2f}) | – | – "
                               f"| {r['bracketed']:.0%} |")
                else:  # an interval over the bracketing resamples alone would leave out the extreme ones
                    ci = (f"[{r['ci'][0]:+.2f}, {r['ci'][1]:+.2f}]" if r["ci"] and r["bracketed"] >= 0.95 else
                          "– (too few resamples bracket)")
                    out.append(f"| {method} | {what} | {r['value']:.2f} | {r['pact_minus']:+.2f} | {ci} | "
                               f"{r['bracketed']:.0%} |")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pact_lightning.report target",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("factorial", type=Path, help="the experiment=target_factorial sweep directory")
    parser.add_argument("--frontier", type=Path, action="append", default=[],
                        help="an experiment=target_frontier sweep directory (repeatable)")
    parser.add_argument("--k", type=Path, action="append", default=[],
                        help="an experiment=target_k sweep directory (repeatable)")
    parser.add_argument("--no-probes", action="store_true", help="rates only: load no model")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: <factorial>/report)")
    args = parser.parse_args(argv)
    for d in (args.factorial, *args.frontier, *args.k):
        if not d.is_dir():
            parser.error(f"{d} is not a directory")
    fact = cells(args.factorial.resolve())
    front = [c for d in args.frontier for c in cells(d.resolve())]
    ks = [c for d in args.k for c in cells(d.resolve())]
    every = fact + front + ks
    check_paired(every)
    out = (args.out or args.factorial / "report").resolve()
    reference = replace(fact[0], method="reference", generations="generations_reference.jsonl", values={})
    for c in (*every, reference):
        rate_values(c)
    measures = list(RATES)
    if not args.no_probes:
        for c in fact:
            probe_values(c)
        out.mkdir(parents=True, exist_ok=True)
        reference.values |= reference_probes(fact[0], out)
        measures += list(PROBES)
    ref = fact[0].record.reference
    result: dict[str, Any] = {"factorial": factorial(fact, measures, reference)}
    md = ["# PACT's target: the gate × tilt factorial, the λ frontier and the k cells", "",
          "Cell values: mean over seeds (each seed's value in brackets); rates in %, probabilities in points, the "
          "log-odds in nats. Effects: paired bootstrap over prompts on the seed-averaged values (10,000 resamples); "
          f"the family is every effect × measure below (m = {len(result['factorial']['effects'])}): Holm's p, and "
          "Bonferroni intervals simultaneous over it; * = beyond prompt-sampling noise (Holm p < 0.05; the trained models "
          "are held fixed, so read the per-seed column for the seeds' agreement). The interaction is the tilt's effect "
          "with the gate on minus its effect with the gate off.", "", "## Factorial cells", "",
          *cells_md(result["factorial"]["cells"], measures), "", "## Effects", "",
          *effects_md(result["factorial"]["effects"])]
    if front:
        result["frontier"] = frontier(fact, front)
        if ref:
            result["frontier"]["reference"] = {m: ref.get(m) for m in RATES}
        md += ["", "## Comparisons at equal over-refusal", "", *frontier_md(result["frontier"]), "",
               "![frontier](frontier.png)", "", "PACT minus each point of the curves, paired by prompt "
               f"(family: m = {len(result['frontier']['points'])}):", "", *effects_md(result["frontier"]["points"])]
    if ks:
        result["k"] = k_cells(fact + ks, list(RATES))
        md += ["", "## The k cells", "", *cells_md(result["k"]["cells"], list(RATES)), "",
               f"Family: m = {len(result['k']['effects'])}.", "", *effects_md(result["k"]["effects"])]
    out.mkdir(parents=True, exist_ok=True)
    if front:
        plot_frontier(result["frontier"], out / "frontier.png")
    write_json(out / "target.json", result)
    write_text(out / "target.md", "\n".join(md) + "\n")
    print("\n".join(md))
    print(f"\nwrote {out / 'target.md'}, {out / 'target.json'}")
