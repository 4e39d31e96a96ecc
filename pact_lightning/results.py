"""The write side of a run's results: the head of a training run's record, the one function that writes results.json
(through pact_lightning.record.RunRecord, which defines its shape), the metrics the loggers get, and the summary printed
at the end (``train``, its comparison runs and ``evaluate`` all go through here). Reading a run is
pact_lightning.record's, which imports no torch."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from pact_lightning import alignment
from pact_lightning.models.loading import weights_source
from pact_lightning.record import FILE, HEADLINE, Alignment, RunRecord, answers_text, difference_text, rate_text
from pact_lightning.setting import RunSetting

log = logging.getLogger(__name__)

__all__ = ["FILE", "alignment_rates", "eval_metrics", "judge_name", "log_artifacts", "log_eval", "log_hyperparams",
           "print_summary", "run_record", "summary_metrics", "wandb_loggers", "write"]


def run_record(cfg: DictConfig, model_cfg: DictConfig, tokens) -> RunRecord:
    """The head of a training run's record: its setting, where it ran, the weights it fine-tuned, its S and, when the
    alignment stage built those weights, the stage's refusal rates before → after."""
    return RunRecord(setting=RunSetting.from_config(cfg), run_dir=str(cfg.paths.output_dir),
                     model_weights=weights_source(model_cfg),
                     safety_tokens=tokens.path if tokens is not None else None, alignment=alignment_rates(model_cfg))


def alignment_rates(model_cfg: DictConfig) -> Alignment | None:
    """``before`` and ``after`` of the aligned model's alignment.json (None for a model the project did not align)."""
    if not model_cfg.get("aligned_by"):
        return None
    report = alignment.read_report(model_cfg.aligned_by)
    return Alignment(before=report["before"], after=report["after"])


def judge_name(judge) -> str:
    """The judge of an evaluation as results.json records it: its class, and the model it runs if any (e.g.
    ``KeywordJudge``, ``GuardJudge(meta-llama/Llama-Guard-3-8B)``)."""
    model = getattr(judge, "name", None)
    return type(judge).__name__ + (f"({model})" if model else "")


def eval_metrics(results: RunRecord | Mapping[str, Any]) -> dict[str, float]:
    """The evaluation blocks of results.json as logger metrics: ``eval/<name>`` for the evaluated model (per set and
    category included, e.g. ``eval/harmful_score/strongreject/Violence``), ``eval/reference/<name>`` for the reference."""
    record, out = RunRecord.of(results), {}
    for block, prefix in ((record.final, "eval/"), (record.reference, "eval/reference/")):
        out |= {prefix + k: v for k, v in (block.numbers() if block is not None else {}).items()}
    return out


def log_hyperparams(loggers: list, cfg: DictConfig, record: RunRecord, tokens) -> None:
    """The setting as flat columns (for W&B's table and parallel-coordinates views), then the whole config."""
    params = {**record.to_dict(), "config": OmegaConf.to_container(cfg, resolve=True),
              "safety_tokens": tokens.tokens if tokens is not None else None}
    for lg in loggers:
        lg.log_hyperparams(params)


def summary_metrics(results: RunRecord | Mapping[str, Any]) -> dict[str, float]:
    """``reference/*`` and ``final/*`` (every overall number) and ``delta/*`` (final − reference, for the headline
    metrics): W&B's run summary, which its table and parallel-coordinates views read."""
    record = RunRecord.of(results)
    out = {f"{name}/{k}": v for name, block in (("reference", record.reference), ("final", record.final))
           for k, v in (block.values if block is not None else {}).items() if isinstance(v, (int, float))}
    for metric in HEADLINE:
        final, ref = out.get(f"final/{metric}"), out.get(f"reference/{metric}")
        if final is not None and ref is not None:
            out[f"delta/{metric}"] = final - ref
    return out


def log_eval(loggers: list, results: RunRecord | Mapping[str, Any], step: int | None = None) -> None:
    """The evaluation as ``eval/*`` metrics to every logger, and as :func:`summary_metrics` to W&B's summary."""
    for lg in loggers:
        lg.log_metrics(eval_metrics(results), step=step)
        lg.save()
    for lg in wandb_loggers(loggers):
        lg.experiment.summary.update(summary_metrics(results))


def wandb_loggers(loggers: list) -> list:
    """The W&B loggers among ``loggers`` (fast_dev_run's DummyLogger, whose experiment accepts anything, is not)."""
    return [lg for lg in loggers if type(lg).__name__ == "WandbLogger"]


def log_artifacts(loggers: list, run_dir: str | Path, results: RunRecord | Mapping[str, Any], tokens=None,
                  alignment: str | Path | None = None, generations: bool = False) -> None:
    """The run's outputs as W&B artifacts of its run, so their lineage is kept: ``model`` (the adapter or weights in
    final/), ``safety-tokens`` (the artifact S came from), ``eval`` (this results record, the poison ledger and, with
    ``generations`` — eval.log_generations — the generations, which hold harmful text) and ``alignment`` (the aligned
    checkpoint's alignment.json). Offline runs keep them for `wandb sync`."""
    if not wandb_loggers(loggers):
        return
    import tempfile

    run_dir, record = Path(run_dir), RunRecord.of(results)
    for lg in wandb_loggers(loggers):
        run = lg.experiment
        tag = run.id
        if record.final_dir and Path(record.final_dir).is_dir():
            _log_artifact(run, f"model-{tag}", "model", [Path(record.final_dir)], record.to_dict())
        if tokens is not None and tokens.path:
            _log_artifact(run, f"safety-tokens-{tag}", "safety-tokens", [Path(tokens.path)], {"k": tokens.k})
        if alignment is not None and Path(alignment).is_file():
            _log_artifact(run, f"alignment-{tag}", "alignment", [Path(alignment)], {})
        if not results:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            file = record.write(tmp)  # this run's record as it stands at the end of its evaluation
            files = [file, run_dir / "poison_ledger.json",
                     *(sorted(run_dir.glob("generations_*.jsonl")) if generations else [])]
            # add_file stages a copy, so the temporary record may go once it is logged
            _log_artifact(run, f"eval-{tag}", "eval", [f for f in files if f.is_file()], summary_metrics(record))


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


def write(run_dir: str | Path, results: RunRecord | Mapping[str, Any]) -> Path:
    """``<run_dir>/results.json`` (atomically), through the record (a dict is read as one first: its keys, order and
    values are written as they are)."""
    return RunRecord.of(results).write(run_dir)


def print_summary(results: RunRecord | Mapping[str, Any]) -> None:
    """The run's setting, paths, final training metrics and evaluation of every model, and the wall time per stage."""
    record = RunRecord.of(results)
    lines = [f"run dir: {record.run_dir}", record.setting.line() + (f" checkpoint={record.checkpoint}"
                                                                    if record.checkpoint else "")]
    for value, label in ((record.model_weights, "model weights"), (record.safety_tokens, "safety tokens"),
                         (record.final_dir, "adapter")):
        if value:
            lines.append(f"{label}: {value}")
    if record.alignment:
        lines += ["aligned reference, " + line
                  for line in alignment.rate_lines(record.alignment.before, record.alignment.after)]
    compare = record.compare or {}
    for name, train in {record.method: record.train, **{m: e.train for m, e in compare.items()}}.items():
        if train is not None:
            lines.append(f"train ({name}): " + ", ".join(f"{k}={v:.4g}" for k, v in train.items()
                                                        if isinstance(v, float)))
    blocks = [("reference", record.reference), (record.method, record.final)]
    for name, b in blocks + [(name, entry.final) for name, entry in compare.items()]:
        if b:
            lines.append(f"{name:>9}: " + "  ".join(rate_text(b, rate) for rate in HEADLINE))
            if b.get("harmful_content_rate") is not None:
                lines.append(f"{'':>9}  " + answers_text(b))
    if record.target_bias is not None and record.target_bias.kl_mean is not None:
        lines += record.target_bias.lines()
    majority = next((b.get("task_majority_rate") for _, b in blocks if b and b.get("task_majority_rate")), None)
    if majority is not None:
        lines.append(f"task majority-label rate: {majority:.1f}% (always answering the most common label)")
    for pair, rates in (record.paired or {}).items():
        lines += [difference_text(pair, rate, rates[rate]) for rate in HEADLINE if rate in rates]
    for name, entry in compare.items():
        lines.append(f"{name} run dir: {entry.run_dir}")
    if record.timings:
        lines.append("wall time (s): " + ", ".join(f"{k}={v}" for k, v in record.timings.items()))
    log.info("Summary\n  %s", "\n  ".join(lines))
