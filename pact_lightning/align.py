"""``python -m pact_lightning.align``: the alignment stage on its own (``train`` runs it itself when it is needed).

Builds or reuses the aligned checkpoint of ``model`` with the ``align`` recipe and prints where it is and its refusal
rates on held-out harmful and benign prompts before and after alignment.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from pact_lightning.alignment import REPORT, ensure_aligned, read_report, summary
from pact_lightning.app import CONFIG_PATH, task_wrapper
from pact_lightning.results import log_artifacts
from pact_lightning.utils.loggers import loggers
from pact_lightning.utils.timing import timings


@task_wrapper
def align(cfg: DictConfig) -> dict:
    model_cfg = ensure_aligned(cfg.align, cfg.model, cfg.paths.cache_dir, accelerator=cfg.trainer.accelerator)
    report = read_report(model_cfg.pretrained)
    print(f"{summary(report)}\ntimings (s): {timings()}")
    rates = {f"{when}/{k}": v for when in ("before", "after") for k, v in (report[when] or {"detail": {}})["detail"].items()
             if isinstance(v, (int, float))}
    run_loggers = loggers(cfg.logger)  # its own W&B run (job_type=align), with alignment.json as an artifact
    for lg in run_loggers:
        lg.log_hyperparams({"model": cfg.model.name, "aligned_dir": str(model_cfg.pretrained),
                            "align": OmegaConf.to_container(cfg.align, resolve=True)})
        lg.log_metrics(rates)
    log_artifacts(run_loggers, cfg.paths.output_dir, {}, alignment=Path(model_cfg.pretrained) / REPORT)
    for lg in run_loggers:
        lg.finalize("success")
    return report


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="align")
def main(cfg: DictConfig) -> None:
    align(cfg)


if __name__ == "__main__":
    main()
