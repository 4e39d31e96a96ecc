"""``python -m pact_lightning.train``: fine-tune the policy with PACT (or a baseline) against the frozen reference."""

from __future__ import annotations

from pathlib import Path

import hydra
import lightning as L
from omegaconf import DictConfig

from pact_lightning import build, compare, rundir, sweep
from pact_lightning.app import CONFIG_PATH, task_wrapper
from pact_lightning.eval.cache import check_entries
from pact_lightning.finish import finish
from pact_lightning.record import FILE, RunRecord
from pact_lightning.results import log_hyperparams, run_record
from pact_lightning.utils import timing
from pact_lightning.utils.checkpoints import check_resume, resolve_ckpt_path
from pact_lightning.utils.strategies import check_deepspeed_precision, process_env


@task_wrapper
def train(cfg: DictConfig) -> RunRecord:
    """One run: fit, then evaluate; returns its record (``compare.run`` writes it)."""
    timing.reset()
    timing.reset_peak_memory()
    L.seed_everything(cfg.seed, workers=True)
    check_deepspeed_precision(cfg.trainer)  # before the alignment stage and the model load
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path, cfg.paths.output_dir)  # checked before any model is loaded
    model_cfg = build.aligned_model_config(cfg)
    policy, tokenizer = build.policy(cfg, model_cfg)
    tokens = build.safety_tokens(cfg, model_cfg, policy, tokenizer)
    objective = build.objective(cfg, model_cfg, tokens, policy, tokenizer)
    posthoc = build.posthoc(cfg)
    build.check_posthoc(posthoc, model_cfg, policy)
    evaluator = build.evaluator(cfg.eval)
    if evaluator is not None and cfg.eval.cache and process_env().rank == 0:  # a damaged entry: moved aside now
        check_entries(cfg.eval.cache_dir)
    data = build.datamodule(cfg, tokenizer, evaluator)
    steps = build.planned_steps(cfg.trainer, data)  # refuses a setting that trains nothing
    module = build.run_module(cfg, policy, objective, build.reference(cfg, model_cfg, policy, objective, data))
    module.run_inputs = build.input_digests(cfg, policy, tokens)  # read before training changes a weight
    module.resume_allow = list(cfg.resume_allow)
    if ckpt_path is not None:  # the checkpoint must be this run's: same settings and inputs, same trainable weights
        step = check_resume(ckpt_path, module.run_config, module.trainable_shapes(), allow=list(cfg.resume_allow),
                            steps=steps, results_exist=(Path(cfg.paths.output_dir) / FILE).is_file(),
                            inputs=module.run_inputs)
        if step is not None and process_env().rank == 0:  # a finished run trained further: its results are old
            rundir.supersede(Path(cfg.paths.output_dir), cfg, step)
    trainer = build.run_trainer(cfg, ckpt_path)
    log_hyperparams(trainer.loggers, cfg, run_record(cfg, model_cfg, tokens), tokens)
    with timing.stage("fit"):
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
    return finish(cfg, model_cfg, trainer, module, tokenizer, tokens, evaluator, posthoc)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    if sweep.starts_own_ranks(cfg):  # DDP inside -m: this point trains as a single run in a child process
        return sweep.objective(cfg, sweep.run_point_as_single_run("pact_lightning.train"))
    return compare.run(cfg, train).objective  # the run, then the compare_with runs; results.json, summary


if __name__ == "__main__":
    main()
