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
    ran = subprocess.run([str(script), "model=tiny", "data=offline_sentiment", "trainer.max_steps=2", "eval.after_fit=false",
                          f"hydra.run.dir={run_dir}", f"paths.cache_dir={tmp_path / 'cache'}",
                          f"model.tiny.tokenizer.cache_dir={os.environ['PACT_CACHE']}"],
                         cwd=away, env=env, capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-4000:]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["train"]["global_step"] == 2 and results["method"] == "pact"
    assert not list(away.iterdir())  # nothing written where it was started from


# A stand-in python3 for scripts/env.sh: `python3 -m venv [--system-site-packages] DIR` makes DIR/bin/pip, which only
# records its arguments, and DIR/bin/python, which answers env.sh's torch question with $FAKE_TORCH
# ("<version> <cuda or cpu> <venv or system>"). Nothing is created but these files, nothing is installed.
FAKE_PYTHON3 = r"""#!/usr/bin/env bash
echo "python3 $*" >> "$FAKE_LOG"
venv=${@: -1}
mkdir -p "$venv/bin"
printf '#!/usr/bin/env bash\necho "pip $*" >> "$FAKE_LOG"\n' > "$venv/bin/pip"
printf '#!/usr/bin/env bash\necho "$FAKE_TORCH"\n' > "$venv/bin/python"
chmod +x "$venv/bin/pip" "$venv/bin/python"
"""


def test_env_script_installs_the_torch_asked_for_and_refuses_a_cpu_build_where_cuda_was_asked(tmp_path):
    """scripts/env.sh's choice of torch, with python3 and pip stubbed: the default is the CPU wheel ([dev,cpu], what CI
    runs); PACT_TORCH=system makes a venv over the interpreter's site packages and installs no torch extra; a CPU torch
    left by an earlier CPU .venv is refused when CUDA is asked for (PACT_TORCH_EXTRA=, the older spelling), and so is a
    torch pip put into a system venv."""
    stubs, venv, log = tmp_path / "stubs", tmp_path / "venv", tmp_path / "log"
    stubs.mkdir()
    (stubs / "python3").write_text(FAKE_PYTHON3)
    (stubs / "python3").chmod(0o755)

    def env_sh(torch_reported: str = "", **settings: str) -> tuple[subprocess.CompletedProcess, list[str]]:
        log.write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACT_TORCH")}
        env |= {"PATH": f"{stubs}:{os.environ['PATH']}", "PACT_VENV": str(venv), "FAKE_LOG": str(log),
                "FAKE_TORCH": torch_reported, **settings}
        proc = subprocess.run(["bash", str(ROOT / "scripts" / "env.sh"), "true"], env=env, capture_output=True,
                              text=True, timeout=60)
        return proc, log.read_text().splitlines()

    default, calls = env_sh()
    assert default.returncode == 0, default.stderr
    assert calls[0] == f"python3 -m venv {venv}"
    assert f"pip install -q -e {ROOT}[dev,cpu]" in calls
    assert (venv / ".pact-installed").read_text().strip().endswith("-cpu")
    again, calls = env_sh()  # installed: the command runs, nothing is installed again
    assert again.returncode == 0 and calls == []

    # the CPU .venv, now asked for CUDA: pip keeps its torch+cpu, which is refused (and the stamp stays the CPU one)
    kept, _ = env_sh("2.13.0+cpu cpu venv", PACT_TORCH_EXTRA="")
    assert kept.returncode == 1 and "a CPU build" in kept.stderr and "PACT_TORCH=system" in kept.stderr
    assert f"rm -rf {venv}" in kept.stderr and (venv / ".pact-installed").read_text().strip().endswith("-cpu")

    system, calls = env_sh("2.5.1+cu121 12.1 system", PACT_TORCH="system")
    assert system.returncode == 0, system.stderr
    assert calls[0] == f"python3 -m venv --system-site-packages {venv}"
    assert f"pip install -q -e {ROOT}[dev]" in calls and not any("[dev,cpu]" in c for c in calls)
    (venv / ".pact-installed").unlink()  # a fresh system venv, into which pip installed a torch after all
    shadowed, _ = env_sh("2.13.0 12.8 venv", PACT_TORCH="system")
    assert shadowed.returncode == 1 and "installed into the venv" in shadowed.stderr

    wrong, _ = env_sh(PACT_TORCH="gpu")
    assert wrong.returncode == 2 and "use cpu (the default), system (the cluster's torch) or cuda" in wrong.stderr


def test_a_missing_gguf_package_is_named_by_its_full_key_with_the_version_to_install():
    import pytest
    from omegaconf import OmegaConf

    from pact_lightning.errors import ConfigError
    from pact_lightning.models.loading import GGUF_PACKAGES, _gguf_path

    cfg = OmegaConf.create({"model": {"tiny": {"tokenizer": {"gguf": {"package": "llm-nonesuch", "file": "x.gguf"}}}}})
    with pytest.raises(ConfigError, match=r"^model\.tiny\.tokenizer\.gguf\.package='llm-nonesuch' is not installed"):
        _gguf_path(cfg.model.tiny.tokenizer.gguf)
    detached = OmegaConf.create({"gguf": {"package": "llm-nonesuch", "file": "x.gguf"}})  # a model config alone
    with pytest.raises(ConfigError, match=r"^model\.gguf\.package="):
        _gguf_path(detached.gguf)
    GGUF_PACKAGES["llm-nonesuch"] = "1.2.3"
    try:
        with pytest.raises(ConfigError, match=r"pip install --no-deps llm-nonesuch==1\.2\.3"):
            _gguf_path(detached.gguf)
    finally:
        del GGUF_PACKAGES["llm-nonesuch"]
    # the pins the error names are the ones scripts/env.sh and the README install
    for dist, version in GGUF_PACKAGES.items():
        assert f"{dist}=={version}" in (ROOT / "scripts" / "env.sh").read_text()
        assert f"{dist}=={version}" in (ROOT / "README.md").read_text()
