"""The real training app as a subprocess (`python -m pact_lightning.train`), and what a run directory holds."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

# The tiny model on 24 examples: 6 steps an epoch at the global batch of 4.
TINY = ["model=tiny", "data.num_samples=24", "data.batch_size=4", "data.max_length=96", "eval.after_fit=false",
        "logger=csv", "callbacks.progress_bar=null", "~experiment"]


def train_command(run_dir: Path, overrides: list[str]) -> list[str]:
    return [sys.executable, "-m", "pact_lightning.train", *TINY, *overrides, f"hydra.run.dir={run_dir}"]


def run_train(run_dir: Path, overrides: list[str], env: dict | None = None, prefix: list[str] = (),
              timeout: int = 600) -> subprocess.CompletedProcess:
    """Run to completion; fails the test with the output's tail when the run fails."""
    proc = subprocess.run([*prefix, *train_command(run_dir, overrides)], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=timeout)
    assert proc.returncode == 0, f"{proc.args}\n{proc.stdout[-2000:]}\n{proc.stderr[-5000:]}"
    return proc


def logged(run_dir: Path, key: str = "train/loss") -> dict[int, float]:
    """step → value of ``key`` in the run's CSV logs (a resumed run adds a version; later versions win)."""
    values = {}
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[-1])):
        for row in csv.DictReader(path.open()):
            if row.get(key):
                values[int(row["step"])] = float(row[key])
    return values


def app_config(app: str, overrides: list[str], run_dir: Path):
    """The config the Hydra app ``app`` passes its task: composed, with no ``hydra`` node."""
    from omegaconf import open_dict

    from conftest import compose

    cfg = compose(app, overrides, output_dir=run_dir)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def train_inprocess(run_dir: Path, overrides: list[str]):
    """The tiny run in this process, as the Hydra app runs it (the run, its comparisons, results.json); its record."""
    from pact_lightning import compare
    from pact_lightning.train import train

    return compare.run(app_config("train", TINY + overrides, run_dir), train)
