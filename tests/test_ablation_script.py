"""scripts/ablate_over_refusal.py keys each variant's directory on what defines its run and never reuses another
run's results (issue #27, item 5). No model runs: the run directories are fakes."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest
import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ablate_over_refusal.py"
spec = importlib.util.spec_from_file_location("ablate_over_refusal", SCRIPT)
ablate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ablate)

REF = {"seed": 0, "model": {"name": "smollm2_135m"}, "align": {"enabled": True}}


def fake_run(run_dir: Path, overrides: list[str]) -> None:
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run_dir / "results.json").write_text("{}")


@pytest.fixture
def trains(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, check: calls.append(cmd))
    return calls


def test_seed_overrides_and_reference_each_get_their_own_directory(tmp_path, trains):
    base = ablate.run(tmp_path, "gate_off", ["method.objective.gate=false"], REF)
    seeded = ablate.run(tmp_path, "gate_off", ["method.objective.gate=false", "seed=1"], REF)
    other_ref = ablate.run(tmp_path, "gate_off", ["method.objective.gate=false"], {**REF, "model": {"name": "x"}})
    assert len({base, seeded, other_ref}) == 3 and all(d.name.startswith("gate_off-") for d in (base, seeded, other_ref))
    assert len(trains) == 3 and trains[1][-1] == f"hydra.run.dir={seeded}"
    # the same run again: the same directory
    assert ablate.run(tmp_path, "gate_off", ["method.objective.gate=false"], REF) == base


def test_finished_identical_run_is_reused_without_training(tmp_path, trains):
    overrides = ablate.FIXED + ["seed=1"]
    run_dir = tmp_path / f"pact-{ablate.run_key(overrides, REF)}"
    fake_run(run_dir, overrides)
    assert ablate.run(tmp_path, "pact", ["seed=1"], REF) == run_dir
    assert trains == []


def test_directory_holding_another_runs_results_is_refused(tmp_path, trains):
    overrides = ablate.FIXED + ["seed=1"]
    run_dir = tmp_path / f"pact-{ablate.run_key(overrides, REF)}"
    fake_run(run_dir, ablate.FIXED + ["seed=0"])  # same key, other recorded overrides: stale
    with pytest.raises(SystemExit, match="another run"):
        ablate.run(tmp_path, "pact", ["seed=1"], REF)
    assert trains == []


def test_composed_reference_makes_the_default_seed_explicit():
    ref = ablate.composed_reference(["seed=7"])
    assert ref["seed"] == 7 and "name" in ref["model"]
    assert ablate.run_key(["x"], ref) != ablate.run_key(["x"], {**ref, "seed": 8})
