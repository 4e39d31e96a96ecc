"""The package as a user installs it: a (non-editable) wheel that carries its Hydra config tree, and whose console
scripts run from any directory, away from the checkout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

from conftest import ROOT


def test_the_wheel_ships_the_config_tree_and_runs_from_another_directory(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("pact_lightning-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pact_lightning" / "conf").rglob("*.yaml")}
    assert "pact_lightning/conf/train.yaml" in shipped and shipped <= names, sorted(shipped - names)

    site = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    # the installed copy, not the checkout: the run starts in an empty directory with only the wheel on the path
    away = tmp_path / "elsewhere"
    away.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = site / "bin" / "pact-train"
    helped = subprocess.run([str(script), "--help"], cwd=away, env=env, capture_output=True, text=True, timeout=300)
    # Hydra's help lists the config groups, read from the wheel's conf/
    assert helped.returncode == 0 and "Powered by Hydra" in helped.stdout and "method: " in helped.stdout, \
        helped.stdout[-2000:] + helped.stderr[-2000:]
    where = subprocess.run([sys.executable, "-c", "import pact_lightning; print(pact_lightning.__file__)"], cwd=away,
                           env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr

    run_dir = tmp_path / "run"
    ran = subprocess.run([str(script), "model=tiny", "trainer.max_steps=2", "eval.after_fit=false",
                          f"hydra.run.dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}",
                          f"model.tiny.tokenizer.cache_dir={os.environ['PACT_CACHE']}"],
                         cwd=away, env=env, capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-4000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["train"]["global_step"] == 2 and results["method"] == "pact"
    assert not list(away.iterdir())  # nothing written where it was started from
