"""``python -m pact_lightning.evaluate model=… checkpoint=…``: safety and utility of a base/aligned model, an adapter or a
merged checkpoint — the same evaluation ``train`` runs after fit. ``generations=<run dir | generations file | gold>``
judges answers that were already generated (a run's, or the hand-labelled gold set) again, with the configured judge
and the current answer rules, and loads no model to answer."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
import torch.distributed as dist
from omegaconf import DictConfig

from pact_lightning import build
from pact_lightning import results as run_results
from pact_lightning.app import CONFIG_PATH, task_wrapper
from pact_lightning.defences import PosthocDefence
from pact_lightning.eval.cache import cached_run
from pact_lightning.eval.scoring import block as metrics_block
from pact_lightning.errors import ConfigError
from pact_lightning.record import Evaluation, RunRecord
from pact_lightning.setting import RunSetting
from pact_lightning.models.loading import adapter_base, is_lora, load_model, weights_source
from pact_lightning.utils.loggers import loggers
from pact_lightning.utils.strategies import ProcessEnv, local_device, process_env


@task_wrapper
def evaluate(cfg: DictConfig) -> RunRecord:
    L.seed_everything(cfg.seed)
    if cfg.generations is not None:
        return rejudge(cfg)
    device = join_world(process_env(), timedelta(minutes=cfg.process_group_timeout_min))
    defence = build.posthoc(cfg)
    model, tokenizer = load_model(cfg.model, checkpoint=cfg.checkpoint, lora=False, merge_adapter=defence is None)
    model, posthoc = apply_posthoc(defence, cfg, model) if defence is not None else (model, None)
    model.to(device)
    evaluator = build.evaluator(cfg.eval)
    out = cfg.paths.output_dir
    rank0 = not dist.is_initialized() or dist.get_rank() == 0
    metrics = cached_run(evaluator, model, tokenizer, out, "eval", cfg.eval.cache_dir if cfg.eval.cache else None,
                         broadcast=broadcast_from_rank0, is_writer=rank0)
    results = RunRecord(setting=RunSetting(model=cfg.model.name), run_dir=str(out),
                        model_weights=model.name_or_path or weights_source(cfg.model), checkpoint=cfg.checkpoint,
                        judge=run_results.judge_name(evaluator.judge), final=Evaluation.from_dict(metrics_block(metrics)),
                        posthoc=posthoc)
    if rank0:
        run_results.write(out, results)
        log_run(cfg, results)
        run_results.print_summary(results)
    return results


def log_run(cfg: DictConfig, results: RunRecord) -> None:
    """The evaluation's own logger runs, with what a training run logs of its evaluation (pact_lightning/results.py):
    the record's fields (model, checkpoint, judge, …) and the whole config as W&B's config; ``eval/*`` metrics;
    ``final/*`` — and ``reference/*`` and ``delta/*`` when a reference was judged (``generations=<run dir>``) — in
    the summary; the ``eval`` artifact (results.json and the generations). ``checkpoint=`` evaluates no reference, so
    its run has no ``delta/*``: compare it with its training run's reference in the report."""
    run_loggers = loggers(cfg.logger)
    run_results.log_hyperparams(run_loggers, cfg, results, None)
    run_results.log_eval(run_loggers, results)
    run_results.log_artifacts(run_loggers, cfg.paths.output_dir, results, generations=bool(cfg.eval.log_generations))
    for lg in run_loggers:
        lg.finalize("success")


def rejudge(cfg: DictConfig) -> RunRecord:
    """The saved answers of ``cfg.generations`` judged again (``Evaluator.rejudge``): results.json names the answers
    it read and, for a run directory, the run's ``final/`` as its checkpoint, so that ``report --rejudge`` pairs it
    with that run. With ``eval.reference`` (the default), a run directory's reference answers
    (``generations_reference.jsonl``) are judged again too, by the same judge: the record's ``reference``, and the W&B
    run's ``delta/*``."""
    from pact_lightning.eval.scoring import read_generations

    path, rows = saved_answers(cfg.generations)
    evaluator = build.evaluator(cfg.eval)
    out = cfg.paths.output_dir
    metrics = evaluator.rejudge(rows, out, "eval")
    run_dir = path.parent if path.name == "generations_final.jsonl" else None
    saved_reference = run_dir / "generations_reference.jsonl" if run_dir is not None else None
    reference = None
    if cfg.eval.reference and saved_reference is not None and saved_reference.is_file():
        reference = Evaluation.from_dict(metrics_block(evaluator.rejudge(read_generations(saved_reference), out,
                                                                         "reference")))
    results = RunRecord(run_dir=str(out), generations=str(path), judge=run_results.judge_name(evaluator.judge),
                        checkpoint=str(run_dir / "final") if run_dir is not None else None,
                        final=Evaluation.from_dict(metrics_block(metrics)), reference=reference)
    run_results.write(out, results)
    log_run(cfg, results)
    run_results.print_summary(results)
    return results


def saved_answers(spec: str) -> tuple[Path, list[dict]]:
    """``generations=``: ``gold`` (the packaged gold set), a run directory (its ``generations_final.jsonl``) or a
    ``generations_*.jsonl`` file; its path and records."""
    from pact_lightning.eval import gold
    from pact_lightning.eval.scoring import read_generations

    if spec == "gold":
        return gold.FILE, gold.load()
    path = Path(spec).expanduser()
    path = path / "generations_final.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise ConfigError(f"generations={spec}: no such file; pass a run directory (it holds generations_final.jsonl), "
                          "a generations_*.jsonl file, or gold (the hand-labelled gold set)")
    return path, read_generations(path)


def apply_posthoc(defence: PosthocDefence, cfg: DictConfig, model) -> tuple[Any, dict]:
    """A post-hoc defence (``posthoc=``) on the adapter ``checkpoint``, against the pre-alignment weights: those the
    alignment stage started from when the adapter's base is an aligned checkpoint it built, else ``model.base``.
    Returns the model with the edited adapter merged (so the evaluation cache keys on the edited weights) and what the
    edit did."""
    from pact_lightning import alignment
    from pact_lightning.finish import posthoc_edit

    if not is_lora(model):
        raise ConfigError(f"posthoc={defence.name} edits a LoRA adapter, but checkpoint={cfg.checkpoint} is not "
                          "one (no adapter_config.json); pass a run's final/ folder")
    base = adapter_base(Path(cfg.checkpoint))
    model_cfg = cfg.model
    if base is not None and (Path(base) / alignment.REPORT).is_file():
        model_cfg = alignment.aligned_config(cfg.model, Path(base))
    report = posthoc_edit(defence, model, model_cfg)
    return model.merge_and_unload(), {"name": defence.name, **report}


def broadcast_from_rank0(obj):
    """``obj`` as rank 0 has it, on every rank (itself when there is no process group)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def join_world(env: ProcessEnv, timeout: timedelta) -> torch.device:
    """This process's device, and — launched as one of several (torchrun, or srun, which sets no WORLD_SIZE) — the
    process group over which the evaluation shards its prompts; a rank waits ``timeout`` for the others at each
    collective (NCCL's own default is 10 minutes, less than one rank's share of a long evaluation can take)."""
    device = local_device(env)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if env.world_size > 1 and not dist.is_initialized():
        if env.cluster is not None:  # srun sets no MASTER_ADDR/PORT: Lightning's SLURM environment derives them
            os.environ.setdefault("MASTER_ADDR", env.cluster.main_address)
            os.environ.setdefault("MASTER_PORT", str(env.cluster.main_port))
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=env.rank, world_size=env.world_size,
                                timeout=timeout)
    return device


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
