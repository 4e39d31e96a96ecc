"""The main run, then the same run with each method of ``compare_with`` (the embedded default compares PACT with SFT).

A comparison run keeps everything but the method: the same aligned model, data and poison draw (same seed), steps,
optimiser and evaluation. Its method is the group option ``pact_lightning/conf/method/<name>.yaml``, composed by Hydra. It trains
into ``<run dir>/compare/<method>/``, does not evaluate the reference again (it is the same model) and skips the
safety-token profile diagnostic. Each run's results.json is written once, here: the main run's gets a ``compare``
block, the wall time of every stage (``timings``) and the paired comparison of every two evaluated models on the same
prompts (``paired``: reference, main method, comparison methods), and the summary is printed once, for all runs.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from pact_lightning import card
from pact_lightning import results as run_results
from pact_lightning.app import compose_group_option
from pact_lightning.errors import ConfigError
from pact_lightning.record import FILE, CompareEntry, RunRecord
from pact_lightning.utils.timing import stage, timings

log = logging.getLogger(__name__)


def comparison_config(cfg: DictConfig, method: str, record: RunRecord) -> DictConfig:
    """``cfg`` with ``method=<method>``, writing into ``<run dir>/compare/<method>``."""
    sub = cfg.copy()
    with open_dict(sub):
        sub.method = compose_group_option("method", method, "compare_with")
        if record.safety_tokens:
            # the main run's set: the comparison logs the same safety-token diagnostics (and never rebuilds it)
            sub.method.safety_tokens = record.safety_tokens
            sub.method.num_safety_tokens = record.setting.k or cfg.method.num_safety_tokens
        sub.paths.output_dir = str(Path(cfg.paths.output_dir) / "compare" / method)
        sub.compare_with = []
        sub.hub.repo_id = None  # the main run's final/ is the one pushed
        sub.ckpt_path = "auto"  # a resumed main run resumes (or keeps) its comparison runs too
        sub.eval.reference = False  # the main run evaluated it: the same model
        sub.eval.diagnostics = False  # the per-position safety-token profile is the main run's (≈30 s on the CPU)
        sub.tags = list(cfg.tags or []) + [f"compare_{method}"]
        if OmegaConf.select(cfg, "logger.wandb") is not None:  # its own W&B run (the id follows its directory)
            main = OmegaConf.select(cfg, "logger.wandb.name") or Path(cfg.paths.output_dir).name
            sub.logger.wandb.name = f"{main}/compare_{method}"
            sub.logger.wandb.group = OmegaConf.select(cfg, "logger.wandb.group")  # the sweep's group, if any
    return sub


def check_compare_with(cfg: DictConfig) -> list[str]:
    """``compare_with`` as a list of method options that exist (pact_lightning/conf/method/), or a ConfigError naming
    it: a bare string (``compare_with=sft``) would be read letter by letter."""
    methods = OmegaConf.select(cfg, "compare_with", default=None)
    if methods is None:
        return []
    if not OmegaConf.is_list(methods) or not all(isinstance(m, str) for m in methods):
        raise ConfigError(f"compare_with={OmegaConf.to_container(methods) if OmegaConf.is_config(methods) else methods!r}"
                          " is not a list of method names; write it as a list, e.g. compare_with=[sft] or "
                          "compare_with=[sft,kl_full]")
    for method in methods:
        compose_group_option("method", method, "compare_with")  # refuses an unknown one, naming the options
    return list(methods)


def run(cfg: DictConfig, train: Callable[[DictConfig], RunRecord]) -> RunRecord:
    """``train(cfg)``, then ``train`` for each method of ``cfg.compare_with``; writes every run's results.json (once
    per run directory) and prints the joint summary. The main run's record is written even when a comparison run
    fails. With ``ckpt_path=auto`` a run whose results.json exists is complete (it is written last): it is left as it
    is."""
    check_compare_with(cfg)  # before anything runs: a bad name would otherwise fail after the whole main run
    done = Path(cfg.paths.output_dir) / FILE
    if cfg.ckpt_path == "auto" and done.is_file():
        log.info("ckpt_path=auto: %s exists, this run is complete; nothing to do (a new run needs another "
                 "hydra.run.dir, or overwrite=true)", done)
        return RunRecord.read(done)
    start = time.perf_counter()
    record = train(cfg)
    try:
        for method in cfg.compare_with or []:
            with stage(f"compare_{method}"):
                sub = train(comparison_config(cfg, method, record))
            if rank_zero_only.rank == 0:
                run_results.write(sub.run_dir, sub)
            # with its post-hoc model (posthoc=), e.g. sft+safelora
            record.compare = {**(record.compare or {}), method: CompareEntry.of_run(sub), **(sub.compare or {})}
    finally:
        record.timings = {**timings(), "total": round(time.perf_counter() - start, 1)}
        if rank_zero_only.rank == 0:
            record.paired = record.paired_comparisons()
            run_results.write(cfg.paths.output_dir, record)
            run_results.print_summary(record)
    if cfg.hub.repo_id and rank_zero_only.rank == 0 and record.final_dir:
        card.push(Path(record.final_dir), cfg.hub)  # last: everything is on disk whether or not it succeeds
    return record
