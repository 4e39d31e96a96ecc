"""A run's results: what results.json holds, the one function that writes it, the metrics the loggers get, and the
summary printed at the end (``train``, its comparison runs and ``evaluate`` all go through here)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pact_lightning import alignment
from pact_lightning.models.loading import weights_source
from pact_lightning.setting import RunSetting
from pact_lightning.utils.io import write_json

log = logging.getLogger(__name__)

FILE = "results.json"


def run_record(cfg: DictConfig, model_cfg: DictConfig, tokens) -> dict[str, Any]:
    """The head of a training run's results.json: its setting, where it ran, the weights it fine-tuned, its S and,
    when the alignment stage built those weights, the stage's refusal rates before → after."""
    return {**RunSetting.from_config(cfg).as_results(), "run_dir": str(cfg.paths.output_dir),
            "model_weights": weights_source(model_cfg), "safety_tokens": tokens.path if tokens is not None else None,
            "alignment": alignment_rates(model_cfg)}


def alignment_rates(model_cfg: DictConfig) -> dict[str, Any] | None:
    """``before`` and ``after`` of the aligned model's alignment.json (None for a model the project did not align)."""
    if not model_cfg.get("aligned_by"):
        return None
    report = alignment.read_report(model_cfg.aligned_by)
    return {"before": report["before"], "after": report["after"]}


def judge_name(judge) -> str:
    """The judge of an evaluation as results.json records it: its class, and the model it runs if any (e.g.
    ``KeywordJudge``, ``GuardJudge(meta-llama/Llama-Guard-3-8B)``)."""
    model = getattr(judge, "name", None)
    return type(judge).__name__ + (f"({model})" if model else "")




def eval_metrics(results: dict[str, Any]) -> dict[str, float]:
    """The evaluation blocks of results.json as logger metrics: ``eval/<name>`` for the evaluated model (per set and
    category included, e.g. ``eval/harmful_score/strongreject/Violence``), ``eval/reference/<name>`` for the reference."""
    out = {}
    for block, prefix in (("final", "eval/"), ("reference", "eval/reference/")):
        values = results.get(block) or {}
        out |= {prefix + k: v for k, v in {**values, **values.get("detail", {})}.items() if isinstance(v, (int, float))}
    return out


def log_hyperparams(loggers: list, cfg: DictConfig, record: dict[str, Any], tokens) -> None:
    """The setting as flat columns (for W&B's table and parallel-coordinates views), then the whole config."""
    params = {**record, "config": OmegaConf.to_container(cfg, resolve=True),
              "safety_tokens": tokens.tokens if tokens is not None else None}
    for lg in loggers:
        lg.log_hyperparams(params)


# the rates a sweep compares (the summary, the W&B dashboard with each one's change from the reference, the model
# card, the report): safety by the judge and by content, over-refusal, utility and refusals of the task
HEADLINE = ("harmful_score", "harmful_content_rate", "benign_refusal_rate", "task_acc", "task_refusal_rate")


def summary_metrics(results: dict[str, Any]) -> dict[str, float]:
    """``reference/*`` and ``final/*`` (every overall number) and ``delta/*`` (final − reference, for the headline
    metrics): W&B's run summary, which its table and parallel-coordinates views read."""
    out = {f"{block}/{k}": v for block in ("reference", "final") for k, v in (results.get(block) or {}).items()
           if isinstance(v, (int, float))}
    for metric in HEADLINE:
        final, ref = out.get(f"final/{metric}"), out.get(f"reference/{metric}")
        if final is not None and ref is not None:
            out[f"delta/{metric}"] = final - ref
    return out


def log_eval(loggers: list, results: dict[str, Any], step: int | None = None) -> None:
    """The evaluation as ``eval/*`` metrics to every logger, and as :func:`summary_metrics` to W&B's summary."""
    for lg in loggers:
        lg.log_metrics(eval_metrics(results), step=step)
        lg.save()
    for lg in wandb_loggers(loggers):
        lg.experiment.summary.update(summary_metrics(results))


def wandb_loggers(loggers: list) -> list:
    """The W&B loggers among ``loggers`` (fast_dev_run's DummyLogger, whose experiment accepts anything, is not)."""
    return [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]


def log_artifacts(loggers: list, run_dir: str | Path, results: dict[str, Any], tokens=None,
                  alignment: str | Path | None = None) -> None:
    """The run's outputs as W&B artifacts of its run, so their lineage is kept: ``model`` (the adapter or weights in
    final/), ``safety-tokens`` (the artifact S came from), ``eval`` (this results record, the poison ledger and the
    generations) and ``alignment`` (the aligned checkpoint's alignment.json). Offline runs keep them for `wandb sync`."""
    if not wandb_loggers(loggers):
        return
    import tempfile

    run_dir = Path(run_dir)
    for lg in wandb_loggers(loggers):
        run = lg.experiment
        tag = run.id
        if results.get("final_dir") and Path(results["final_dir"]).is_dir():
            _log_artifact(run, f"model-{tag}", "model", [Path(results["final_dir"])], results)
        if tokens is not None and tokens.path:
            _log_artifact(run, f"safety-tokens-{tag}", "safety-tokens", [Path(tokens.path)], {"k": tokens.k})
        if alignment is not None and Path(alignment).is_file():
            _log_artifact(run, f"alignment-{tag}", "alignment", [Path(alignment)], {})
        if not results:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            record = write(tmp, results)  # this run's record as it stands at the end of its evaluation
            files = [record, run_dir / "poison_ledger.json", *sorted(run_dir.glob("generations_*.jsonl"))]
            # add_file stages a copy, so the temporary record may go once it is logged
            _log_artifact(run, f"eval-{tag}", "eval", [f for f in files if f.is_file()], summary_metrics(results))


def _log_artifact(run, name: str, kind: str, paths: list[Path], metadata: dict) -> None:
    import wandb

    artifact = wandb.Artifact(name, type=kind, metadata={k: v for k, v in metadata.items()
                                                         if isinstance(v, (str, int, float, bool))})
    for path in paths:
        if path.is_dir():
            artifact.add_dir(str(path))
        else:
            artifact.add_file(str(path))
    run.log_artifact(artifact)


def write(run_dir: str | Path, results: dict[str, Any]) -> Path:
    """``<run_dir>/results.json`` (atomically)."""
    return write_json(Path(run_dir) / FILE, results)


def paired_comparisons(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every pair of evaluated models of the run on the same prompts (``<a>-<b>``: the main method and each comparison
    method against the reference, and the main method against each comparison method), from their generations files;
    see ``eval.runner.paired_comparison``."""
    from pact_lightning.eval.scoring import paired_comparison, read_generations, tuning_of

    tuning = tuning_of(results.get("final") or results.get("reference"))
    run_dir, method = Path(results["run_dir"]), results.get("method") or "final"
    files = {"reference": run_dir / "generations_reference.jsonl", method: run_dir / "generations_final.jsonl"}
    files |= {m: Path(r["run_dir"]) / "generations_final.jsonl" for m, r in (results.get("compare") or {}).items()
              if r.get("run_dir")}
    rows = {name: read_generations(path) for name, path in files.items() if path.is_file()}
    others = [m for m in rows if m not in ("reference", method)]
    pairs = [(m, "reference") for m in (method, *others)] + [(method, m) for m in others]
    return {f"{a}-{b}": paired_comparison(rows[a], rows[b], tuning) for a, b in pairs if a in rows and b in rows}


def rate_with_interval(block: dict[str, Any], rate: str) -> str:
    """A rate of an evaluation block as "8.7 [5.1–14.3]" (percent and its 95% interval); "–" when it is absent."""
    if block.get(rate) is None:
        return "–"
    lo, hi = block.get(f"{rate}_ci_lo"), block.get(f"{rate}_ci_hi")
    return f"{block[rate]:.1f}" + (f" [{lo:.1f}–{hi:.1f}]" if lo is not None and hi is not None else "")


def rate_text(block: dict[str, Any], rate: str) -> str:
    """``rate`` with its interval and counts: "harmful_score=12.0 [7.7–18.2] (18/150)"."""
    from pact_lightning.eval.scoring import RATES

    num, den = RATES[rate]
    return f"{rate}={rate_with_interval(block, rate)} ({block.get(num)}/{block.get(den)})"


def answers_text(block: dict[str, Any]) -> str:
    """How the answers to the harmful prompts divide into the four categories, and the benign sets kept out of the
    rates because they tuned something: "answers: refusal=… degenerate=… no_content=… content=…; tuning sets: …"."""
    from pact_lightning.eval.scoring import CATEGORY_RATES, RATES, tuning_of

    text = "answers: " + "  ".join(f"{c}={rate_with_interval(block, r)} ({block.get(RATES[r][0])})"
                                  for c, r in CATEGORY_RATES.items())
    tuning = [f"{s} {rate_with_interval(detail_block(block, s), 'benign_refusal_rate')}" for s in tuning_of(block)
              if block.get("detail", {}).get(f"benign_refusal_rate/{s}") is not None]
    return text + ("; over-refusal on tuning sets (not in the rate): " + ", ".join(tuning) if tuning else "")


def detail_block(block: dict[str, Any], set_name: str) -> dict[str, Any]:
    """The numbers of one set of an evaluation block (``detail``'s ``<name>/<set>`` keys) as a block of its own."""
    suffix = f"/{set_name}"
    return {k[: -len(suffix)]: v for k, v in block.get("detail", {}).items() if k.endswith(suffix)}


def difference_text(pair: str, rate: str, d: dict[str, Any]) -> str:
    """A paired difference in words: its size, interval, test and verdict."""
    a, b = pair.split("-", 1)
    verdict = "beyond noise" if d["beyond_noise"] else "within noise"
    return (f"{a} − {b}, {rate}: {d['diff']:+.1f} points (95% CI {d['ci'][0]:+.1f} to {d['ci'][1]:+.1f}; "
            f"discordant {d['only_a']} vs {d['only_b']} of {d['n']}, exact McNemar p={d['p_value']:.3g}): {verdict}")


def print_summary(results: dict[str, Any]) -> None:
    """The run's setting, paths, final training metrics and evaluation of every model, and the wall time per stage."""
    setting = RunSetting.from_results(results).line()
    lines = [f"run dir: {results['run_dir']}", setting + (f" checkpoint={results['checkpoint']}"
                                                          if results.get("checkpoint") else "")]
    for key, label in (("model_weights", "model weights"), ("safety_tokens", "safety tokens"), ("final_dir", "adapter")):
        if results.get(key):
            lines.append(f"{label}: {results[key]}")
    if results.get("alignment"):
        lines += ["aligned reference, " + line for line in alignment.rate_lines(**results["alignment"])]
    compare = results.get("compare", {})
    for name, run in {results.get("method", "final"): results, **compare}.items():
        if "train" in run:
            lines.append(f"train ({name}): " + ", ".join(f"{k}={v:.4g}" for k, v in run["train"].items()
                                                        if isinstance(v, float)))
    blocks = [("reference", results.get("reference")), (results.get("method", "final"), results.get("final"))]
    for name, b in blocks + [(name, run.get("final")) for name, run in compare.items()]:
        if b:
            lines.append(f"{name:>9}: " + "  ".join(rate_text(b, rate) for rate in HEADLINE))
            if b.get("harmful_content_rate") is not None:
                lines.append(f"{'':>9}  " + answers_text(b))
    majority = next((b.get("task_majority_rate") for _, b in blocks if b and b.get("task_majority_rate")), None)
    if majority is not None:
        lines.append(f"task majority-label rate: {majority:.1f}% (always answering the most common label)")
    for pair, rates in (results.get("paired") or {}).items():
        lines += [difference_text(pair, rate, rates[rate]) for rate in HEADLINE if rate in rates]
    for name, run in compare.items():
        lines.append(f"{name} run dir: {run.get('run_dir')}")
    if results.get("timings"):
        lines.append("wall time (s): " + ", ".join(f"{k}={v}" for k, v in results["timings"].items()))
    log.info("Summary\n  %s", "\n  ".join(lines))
