"""The main run, then the same run with each method of ``compare_with`` (the embedded default compares PACT with SFT).

A comparison run keeps everything but the method: the same aligned model, data and poison draw (same seed), steps,
optimiser and evaluation. It trains into ``<run dir>/compare/<method>/``, does not evaluate the reference again (it
is the same model) and skips the safety-token profile diagnostic. The main run's results.json then gets a ``compare``
block and the wall time of every stage (``timings``), and the summary is printed once, for all runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from pact_lightning import pipeline
from pact_lightning.errors import ConfigError
from pact_lightning.utils.io import write_json
from pact_lightning.utils.run import CONFIG_PATH
from pact_lightning.utils.timing import stage, timings


def comparison_config(cfg: DictConfig, method: str, results: dict[str, Any]) -> DictConfig:
    """``cfg`` with ``method=<method>`` (its preset from conf/method/), writing into ``<run dir>/compare/<method>``."""
    preset = Path(CONFIG_PATH) / "method" / f"{method}.yaml"
    if not preset.is_file():
        raise ConfigError(f"compare_with contains {method!r}, which is not a preset in conf/method/ "
                          f"({sorted(p.stem for p in preset.parent.glob('*.yaml'))})")
    sub = cfg.copy()
    with open_dict(sub):
        sub.method = OmegaConf.load(preset)
        if results.get("safety_tokens") and "safety_tokens" in sub.method:
            # the main run's set: the comparison logs the same safety-token diagnostics (and never rebuilds it)
            sub.method.safety_tokens = results["safety_tokens"]
            sub.method.num_safety_tokens = results["num_safety_tokens"] or cfg.method.num_safety_tokens
        sub.paths.output_dir = str(pipeline.output_dir(cfg) / "compare" / method)
        sub.compare_with = []
        sub.ckpt_path = None
        sub.evaluate_reference = False
        if "eval" in sub:  # the per-position safety-token profile is the main run's diagnostic (≈30 s on the CPU)
            sub.eval.diagnostics = False
        sub.tags = list(cfg.get("tags") or []) + [f"compare_{method}"]
    return sub


def run(cfg: DictConfig, train: Callable[[DictConfig], dict]) -> dict[str, Any]:
    """``train(cfg)``, then ``train`` for each method of ``cfg.compare_with``; writes and prints the joint results."""
    start = time.perf_counter()
    results = train(cfg)
    for method in cfg.get("compare_with") or []:
        with stage(f"compare_{method}"):
            sub = train(comparison_config(cfg, method, results))
        results.setdefault("compare", {})[method] = {k: sub.get(k) for k in ("method", "run_dir", "final_dir", "train",
                                                                              "final")}
    results["timings"] = {**timings(), "total": round(time.perf_counter() - start, 1)}
    if rank_zero_only.rank == 0:
        write_json(pipeline.output_dir(cfg) / "results.json", results)
        pipeline.print_summary(results)
    return results
