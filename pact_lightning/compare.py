"""The main run, then the same run with each method of ``compare_with`` (the embedded default compares PACT with SFT).

A comparison run keeps everything but the method: the same aligned model, data and poison draw (same seed), steps,
optimiser and evaluation. Its method is the group option ``pact_lightning/conf/method/<name>.yaml``, composed by Hydra. It trains
into ``<run dir>/compare/<method>/``, does not evaluate the reference again (it is the same model) and skips the
safety-token profile diagnostic. Each run's results.json is written once, here: the main run's gets a ``compare``
block, the wall time of every stage (``timings``) and the paired comparison of every two evaluated models on the same
prompts (``paired``: reference, main method, comparison methods), and the summary is printed once, for all runs.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from pact_lightning import card
from pact_lightning import results as run_results
from pact_lightning.app import compose_group_option
from pact_lightning.utils.timing import stage, timings

log = logging.getLogger(__name__)


def comparison_config(cfg: DictConfig, method: str, results: dict[str, Any]) -> DictConfig:
    """``cfg`` with ``method=<method>``, writing into ``<run dir>/compare/<method>``."""
    sub = cfg.copy()
    with open_dict(sub):
        sub.method = compose_group_option("method", method, "compare_with")
        if results.get("safety_tokens"):
            # the main run's set: the comparison logs the same safety-token diagnostics (and never rebuilds it)
            sub.method.safety_tokens = results["safety_tokens"]
            sub.method.num_safety_tokens = results["num_safety_tokens"] or cfg.method.num_safety_tokens
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


def run(cfg: DictConfig, train: Callable[[DictConfig], dict]) -> dict[str, Any]:
    """``train(cfg)``, then ``train`` for each method of ``cfg.compare_with``; writes every run's results.json and
    prints the joint summary. The main run's results are written even when a comparison run fails. With
    ``ckpt_path=auto`` a run whose results.json exists is complete (it is written last): it is left as it is."""
    done = Path(cfg.paths.output_dir) / run_results.FILE
    if cfg.ckpt_path == "auto" and done.is_file():
        log.info("ckpt_path=auto: %s exists, this run is complete; nothing to do (a new run needs another "
                 "hydra.run.dir, or overwrite=true)", done)
        return json.loads(done.read_text(encoding="utf-8"))
    start = time.perf_counter()
    results = train(cfg)
    try:
        for method in cfg.compare_with or []:
            with stage(f"compare_{method}"):
                sub = train(comparison_config(cfg, method, results))
            if rank_zero_only.rank == 0:
                run_results.write(sub["run_dir"], sub)
            results.setdefault("compare", {})[method] = {k: sub.get(k) for k in ("method", "run_dir", "final_dir",
                                                                                  "train", "final")}
            results["compare"] |= sub.get("compare") or {}  # its post-hoc model (posthoc=), e.g. sft+safelora
    finally:
        results["timings"] = {**timings(), "total": round(time.perf_counter() - start, 1)}
        if rank_zero_only.rank == 0:
            results["paired"] = run_results.paired_comparisons(results)
            run_results.write(cfg.paths.output_dir, results)
            run_results.print_summary(results)
    if cfg.hub.repo_id and rank_zero_only.rank == 0 and results.get("final_dir"):
        card.push(Path(results["final_dir"]), cfg.hub)  # last: everything is on disk whether or not it succeeds
    return results
