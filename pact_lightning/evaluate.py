"""``python -m pact_lightning.evaluate model=… checkpoint=…``: safety and utility of a base/aligned model, an adapter or a
merged checkpoint — the same evaluation ``train`` runs after fit."""

from __future__ import annotations

import os

import hydra
import lightning as L
import torch
import torch.distributed as dist
from omegaconf import DictConfig

from pact_lightning import build
from pact_lightning import results as run_results
from pact_lightning.app import CONFIG_PATH, task_wrapper
from pact_lightning.models.loading import load_model, weights_source
from pact_lightning.utils.loggers import loggers


@task_wrapper
def evaluate(cfg: DictConfig) -> dict:
    L.seed_everything(cfg.seed)
    device = _device()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():  # torchrun / srun: shard the prompts
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    model, tokenizer = load_model(cfg.model, checkpoint=cfg.checkpoint, lora=False)
    model.to(device)
    evaluator = build.evaluator(cfg.eval)
    out = cfg.paths.output_dir
    metrics = evaluator.run(model, tokenizer, out, tag="eval")
    results = {"model": cfg.model.name, "model_weights": model.name_or_path or weights_source(cfg.model),
               "checkpoint": cfg.checkpoint, "run_dir": str(out), "final": run_results.metrics_block(metrics)}
    if not dist.is_initialized() or dist.get_rank() == 0:
        run_results.write(out, results)
        for lg in loggers(cfg.logger):
            lg.log_hyperparams({"model": cfg.model.name, "checkpoint": cfg.checkpoint})
            lg.log_metrics(run_results.eval_metrics(results))
            lg.finalize("success")
        run_results.print_summary(results)
    return results


def _device() -> torch.device:
    """This process's GPU (``LOCAL_RANK`` under torchrun/srun), else the CPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(device)
    return device


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
