"""``python -m pact_lightning.train``: fine-tune the policy with PACT (or a baseline) against the frozen reference."""

from __future__ import annotations

import logging

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from pact_lightning import compare, pipeline, sweep
from pact_lightning.models.loading import load_model
from pact_lightning.utils import timing
from pact_lightning.utils.run import CONFIG_PATH, task_wrapper

log = logging.getLogger(__name__)


@task_wrapper
def train(cfg: DictConfig) -> dict:
    timing.reset()
    L.seed_everything(cfg.seed, workers=True)
    ckpt_path = pipeline.resolve_ckpt_path(cfg)  # a missing or truncated checkpoint fails before any model is loaded
    model_cfg = pipeline.aligned_model_config(cfg)
    policy, tokenizer = load_model(model_cfg)
    tokens = pipeline.safety_tokens(cfg, model_cfg, tokenizer, pipeline.objective_class(cfg))
    objective = pipeline.objective(cfg, tokens)
    evaluator = pipeline.evaluator(cfg)
    datamodule = instantiate(cfg.data).attach(tokenizer, seed=cfg.seed, output_dir=pipeline.output_dir(cfg),
                                              eval_prompts=pipeline.safety_eval_prompts(cfg, evaluator))
    reference = pipeline.reference(cfg, model_cfg, policy, objective, datamodule)
    module = pipeline.module(cfg, policy, objective, reference)
    trainer: L.Trainer = instantiate(cfg.trainer, logger=pipeline.loggers(cfg), plugins=[pipeline.AtomicCheckpointIO()],
                                     callbacks=[instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c])
    pipeline.log_run_config(trainer, cfg, model_cfg, objective, tokens)
    with timing.stage("fit"):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return pipeline.finish(cfg, model_cfg, trainer, module, tokenizer, tokens, evaluator)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float | None:
    if sweep.starts_own_ranks(cfg):  # DDP inside -m: this point trains as a single run in a child process
        return sweep.objective(cfg, sweep.run_point_as_single_run("pact_lightning.train"))
    return compare.run(cfg, train).get("objective")  # then the compare_with runs, and the summary


if __name__ == "__main__":
    main()
