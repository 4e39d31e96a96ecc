"""The benchmark runs end to end on the tiny model (3 steps; no timing asserts)."""

from __future__ import annotations

import json

from pact_lightning import bench
from pact_lightning.bench import steps


def test_benchmark_runs_every_variant_on_the_tiny_model(tmp_path, capsys):
    results = bench.main(["--models", "tiny", "--steps", "3", "--warmup", "1", "--json", str(tmp_path / "r.json")])
    rows = results["tiny"]
    assert list(rows) == list(steps.VARIANTS)
    assert all(r["steps_measured"] == 3 and r["median_step_s"] > 0 and r["peak_mib"] > 0 for r in rows.values())
    cached = rows["pact cached"]
    assert cached["build_s"] > 0 and cached["cache_bytes"] > 0 and cached["cache_examples"] == 4 * 4
    assert rows["pact cached, chunked CE"]["build_s"] is None  # reused the cache the previous variant built
    table = capsys.readouterr().out
    assert "| pact cached |" in table and "per 1000 examples" in table
    assert json.loads((tmp_path / "r.json").read_text()) == results
