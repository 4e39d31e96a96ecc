"""The package's layering (imports only point down), and the one vocabulary of a run's setting."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT, compose
from pact_lightning.setting import RunSetting

PACKAGE = ROOT / "pact_lightning"
# Lower layers never import higher ones; a module may import its own layer. Data flows data → models → objective.
# A run's setting and record (results.json, the vocabulary of its numbers) sit just above the utilities: everything
# may read them, and they import no torch (test_report.py runs the report without it).
# Defences sit with the other building blocks below build, which assembles a run from them; the alignment stage is
# built with build's module and Trainer, and build runs it: one layer.
LAYERS = [
    {"errors", "utils", "schema"},
    {"setting", "record"},
    {"data"},
    {"objectives"},
    {"models"},
    {"safety", "eval", "defences"},
    {"build", "finish", "alignment", "results", "card", "compare", "sweep", "app", "rundir"},
    {"train", "evaluate", "align", "safety_tokens", "bench"},
    {"report"},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def top(module: str) -> str | None:
    """``pact_lightning.models.loading`` → ``models``; None outside the package or for the package itself."""
    parts = module.split(".")
    return parts[1] if parts[0] == "pact_lightning" and len(parts) > 1 else None


def imports(path: Path) -> set[str]:
    """Every pact_lightning module ``path`` imports, at any depth (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return {m for m in out if m.startswith("pact_lightning.")}


def test_every_module_belongs_to_a_layer():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert names == set(LAYER), f"add the new module to LAYERS: {sorted(names ^ set(LAYER))}"


def upward_imports(package: Path) -> list[str]:
    """Every import in ``package``'s modules of a module in a higher layer than the importer's."""
    upward = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if own == "__init__":
            continue
        for module in imports(path):
            other = top(module)
            if other in LAYER and LAYER[other] > LAYER[own]:
                upward.append(f"{rel} imports {module}")
    return upward


def test_imports_point_down_the_layers():
    upward = upward_imports(PACKAGE)
    assert not upward, "\n".join(upward)


@pytest.mark.parametrize("importer,source", [
    ("setting.py", "from pact_lightning.build import module\n"),                       # the record's layer reads build
    ("record/run.py", "def f():\n    import pact_lightning.models.loading\n"),        # a function-level import
    ("build.py", "from pact_lightning import train\n"),                                # build reads the entry point
    ("evaluate.py", "from pact_lightning.report.collect import Run\n"),                # an entry point reads the report
])
def test_the_layering_test_sees_an_upward_import(tmp_path, importer, source):
    package = tmp_path / "pact_lightning"
    (package / importer).parent.mkdir(parents=True, exist_ok=True)
    (package / importer).write_text(source)
    (package / "report.py").write_text("from pact_lightning.train import main\nfrom pact_lightning import record\n")
    found = upward_imports(package)  # "from a.b import c" names both a.b and a.b.c
    assert found and all(line.startswith(f"{importer} imports ") for line in found), found


@pytest.mark.parametrize("method,lam,k", [("pact", 0.5, 20), ("pact_plain", 0.5, 20), ("kl_full", 0.5, None),
                                          ("tokenwise", 0.5, None), ("sft", 0, None)])
def test_run_setting_from_a_config_records_what_the_run_uses(tmp_path, method, lam, k):
    """λ as configured, 0 where the objective has no regulariser; k only where the objective reads S."""
    cfg = compose("train", ["model=tiny", f"method={method}", "method.lam=0.5", "method.num_safety_tokens=20",
                            "data.poison_ratio=0.3", "seed=7"], output_dir=tmp_path)
    setting = RunSetting.from_config(cfg)
    assert setting == RunSetting(method=method, lam=lam, k=k, p=0.3, n=cfg.data.num_samples, seed=7, model="tiny",
                                 task="sentiment")
    results = setting.as_results()
    assert results["num_safety_tokens"] == k and results["poison_ratio"] == 0.3
    assert RunSetting.from_results(results) == setting
    assert setting.tags()[:2] == [f"method={method}", f"lam={lam}"] and ("k=20" in setting.tags()) == (k is not None)
    assert setting.line().startswith(f"method={method} lam={lam}")
    assert setting.without("seed", "lam") == (method, k, 0.3, cfg.data.num_samples, "tiny", "sentiment")


def test_a_config_without_a_method_gives_a_partial_setting(tmp_path):
    cfg = compose("evaluate", ["model=tiny"], output_dir=tmp_path)
    assert RunSetting.from_config(cfg) == RunSetting(seed=cfg.seed, model="tiny")
