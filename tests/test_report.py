"""The sweep report on hand-written run directories: numbers, mean ± std over seeds, failed and missing runs, plots,
and W&B runs filling in for run directories that are not here."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pact_lightning import report

GRID = {(0.0, 0.1): (0.40, 0.90), (0.0, 0.3): (0.70, 0.88), (1.0, 0.1): (0.10, 0.86), (1.0, 0.3): (0.20, 0.85)}


def write_job(sweep: Path, num: int, overrides: list[str], results: dict | None, log: str = "") -> Path:
    job = sweep / f"{num}_{','.join(overrides)}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    values = dict(o.split("=") for o in overrides)
    cfg = {"seed": int(values["seed"]), "model": {"name": "tiny"},
           "data": {"task": "sentiment", "poison_ratio": float(values["data.poison_ratio"]), "num_samples": 16},
           "method": {"name": "pact", "lam": float(values["method.lam"]), "num_safety_tokens": 50}}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    if results is not None:
        (job / "results.json").write_text(json.dumps(results))
    if log:
        (job / "train.log").write_text(log)
    return job


def results(lam: float, p: float, seed: int, hs: float, acc: float) -> dict:
    return {"method": "pact", "lam": lam, "num_safety_tokens": 50, "poison_ratio": p, "num_samples": 16, "seed": seed,
            "model": "tiny", "task": "sentiment", "train": {"global_step": 2},
            "reference": {"harmful_score": 0.05, "task_acc": 0.5},
            "final": {"harmful_score": hs, "task_acc": acc, "refusal_rate": 1 - hs, "benign_refusal_rate": 0.0}}


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """A 2 (λ) × 2 (p) × 2 (seed) sweep: seven runs finished, one failed with an error in its log, and the multirun.yaml
    lists a third seed's point for λ=1, p=0.3 that never got a job directory."""
    sweep = tmp_path / "multiruns" / "2026-11-28_14-00-00"
    num = 0
    for seed in (0, 1):
        for (lam, p), (hs, acc) in GRID.items():
            overrides = [f"method.lam={lam:g}", f"data.poison_ratio={p}", f"seed={seed}"]
            if (lam, p, seed) == (1.0, 0.3, 1):
                write_job(sweep, num, overrides, None, log="[INFO] start\nValueError: poison_ratio too high\n")
            else:
                write_job(sweep, num, overrides, results(lam, p, seed, hs + 0.02 * seed, acc - 0.02 * seed))
            num += 1
    multirun = {"hydra": {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                                      "params": {"seed": "0,1,2"}},
                          "overrides": {"task": ["method.lam=0,1", "data.poison_ratio=0.1,0.3"]}}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    # only the point λ=1, p=0.3, seed=2 of seed 2 is "expected but missing" — the other seed-2 points get job dirs
    for (lam, p), (hs, acc) in GRID.items():
        if (lam, p) != (1.0, 0.3):
            write_job(sweep, num, [f"method.lam={lam:g}", f"data.poison_ratio={p}", "seed=2"],
                      results(lam, p, 2, hs + 0.04, acc - 0.04))
            num += 1
    return sweep


def test_report_lists_every_run_with_its_numbers(sweep, capsys):
    report.main([str(sweep)])
    out = sweep / "report"
    rows = list(csv.DictReader((out / "runs.csv").open()))
    assert sorted(r["status"] for r in rows) == ["failed"] + ["missing"] + ["ok"] * 10
    failed = next(r for r in rows if r["status"] == "failed")
    assert (failed["lam"], failed["p"], failed["seed"]) == ("1.0", "0.3", "1")
    assert failed["note"] == "ValueError: poison_ratio too high"
    missing = next(r for r in rows if r["status"] == "missing")
    assert "seed=2" in missing["note"] and "method.lam=1" in missing["note"] and "data.poison_ratio=0.3" in missing["note"]
    ok = [r for r in rows if r["status"] == "ok"]
    by_point = {(float(r["lam"]), float(r["p"]), int(r["seed"])): float(r["harmful_score"]) for r in ok}
    assert len(by_point) == 10
    assert by_point[(0.0, 0.1, 0)] == 0.40 and by_point[(1.0, 0.3, 0)] == 0.20
    assert by_point[(1.0, 0.1, 1)] == pytest.approx(0.12)
    text = capsys.readouterr().out
    assert "failed" in text and "ValueError: poison_ratio too high" in text
    missing_row = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| missing |"))
    assert "nan" not in missing_row and missing_row.startswith("| missing | – | – |")
    for name in ("harmful_vs_lam.png", "harmful_vs_k.png", "harmful_vs_p.png", "pareto.png"):
        assert (out / name).stat().st_size > 1000


def test_table_is_mean_and_std_over_seeds(sweep):
    report.main([str(sweep)])
    table = {(float(r["lam"]), float(r["p"])): r for r in csv.DictReader((sweep / "report" / "table.csv").open())}
    assert set(table) == set(GRID)
    cell = table[(0.0, 0.1)]  # seeds 0, 1, 2: 0.40, 0.42, 0.44
    assert int(cell["seeds"]) == 3
    assert float(cell["harmful_score_mean"]) == pytest.approx(0.42)
    assert float(cell["harmful_score_std"]) == pytest.approx(0.02)
    assert float(cell["task_acc_mean"]) == pytest.approx(0.88)
    lone = table[(1.0, 0.3)]  # seed 1 failed, seed 2 missing: only seed 0
    assert (int(lone["seeds"]), float(lone["harmful_score_mean"]), lone["harmful_score_std"]) == (1, 0.20, "")
    md = (sweep / "report" / "report.md").read_text()
    assert "| pact | 0 | 50 | 16 | 0.42 ± 0.02 | 0.72 ± 0.02 | 0.88 ± 0.02 | 0.86 ± 0.02 | 3 |" in md
    assert "| pact | 1 | 50 | 16 | 0.12 ± 0.02 | 0.2 | 0.84 ± 0.02 | 0.85 | 1/3 |" in md


def test_pareto_front_keeps_only_undominated_points():
    # (content rate, over-refusal): lower is better on both
    points = [(10.0, 20.0), (20.0, 10.0), (30.0, 15.0), (5.0, 30.0), (20.0, 11.0), (5.0, 31.0)]
    assert report.pareto_front(points) == [(5.0, 30.0), (10.0, 20.0), (20.0, 10.0)]


def test_fronts_compare_only_settings_of_the_same_poison_ratio():
    """A p sweep: the p = 0.05 points would dominate every p = 0.2 point, so each p gets its own front."""
    import pandas as pd

    from pact_lightning.report.render import fronts

    cells = pd.DataFrame({"model": "tiny", "task": "sentiment", "n": 16, "p": [0.05, 0.05, 0.05, 0.2, 0.2],
                          "method": ["pact", "pact", "sft", "pact", "sft"],
                          "harmful_content_rate_mean": [10.0, 12.0, 40.0, 30.0, 60.0],
                          "benign_refusal_rate_mean": [20.0, 25.0, 5.0, 22.0, 12.0]})
    assert fronts(cells, ["model", "task", "p", "n"]) == [[(10.0, 20.0), (40.0, 5.0)], [(30.0, 22.0), (60.0, 12.0)]]
    assert (30.0, 22.0) not in fronts(cells, ["model"])[0]  # pooled over p, it would drop out


def test_wandb_runs_fill_in_runs_without_a_local_results_json(sweep, monkeypatch):
    """Online W&B (faked here): the failed point's run finished on the cluster and its summary is in W&B."""
    failed_dir = next(d for d in sweep.iterdir() if d.is_dir() and d.name.startswith("7_"))

    class FakeRun:
        id, url = "abc123", "https://wandb.ai/e/p/runs/abc123"
        config = {"method": "pact", "lam": 1.0, "num_safety_tokens": 50, "poison_ratio": 0.3, "num_samples": 16,
                  "seed": 1, "model": "tiny", "task": "sentiment", "run_dir": str(failed_dir)}
        summary = {"final/harmful_score": 0.25, "final/task_acc": 0.83, "reference/harmful_score": 0.05}

    calls = []

    class FakeApi:
        def runs(self, path, filters):
            calls.append((path, filters))
            return [FakeRun()]

    import wandb

    monkeypatch.setattr(wandb, "Api", FakeApi)
    runs = report.collect(sweep, wandb_path="e/p")
    assert calls == [("e/p", {"group": {"$regex": "-2026\\-11\\-28_14\\-00\\-00$"}})]
    filled = [r for r in runs if r.run_dir == str(failed_dir)]
    assert [(r.status, r.source, r.harmful_score, r.task_acc) for r in filled] == [("ok", "wandb:abc123", 0.25, 0.83)]
    assert sum(r.status == "failed" for r in runs) == 0


def test_sweeps_whose_points_are_not_known_in_advance_say_so(sweep):
    """A glob() sweep (or Optuna): no point can be called missing, and the report says why none is listed."""
    multirun = yaml.safe_load((sweep / "multirun.yaml").read_text())
    multirun["hydra"]["overrides"]["task"].append("experiment=glob(paper_*)")
    (sweep / "multirun.yaml").write_text(yaml.safe_dump(multirun))
    text = report.write_report(sweep, sweep / "report", report.collect(sweep))
    assert "0 missing" in text and "Points that never started are not listed" in text


def test_a_folder_without_runs_is_an_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as raised:
        report.main([str(tmp_path)])
    assert raised.value.code == 2 and "no runs under" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


def test_rejudge_puts_a_second_judges_numbers_beside_the_first(sweep, tmp_path):
    """`evaluate -m checkpoint=<run dir>/final,...` results (faked): each is matched to its run by the checkpoint; one
    evaluated an adapter of no run of this sweep, and the runs it did not reach are listed."""
    jobs = sorted(d for d in sweep.iterdir() if (d / "results.json").is_file())
    for job in jobs:  # the sweep's own evaluation used the keyword judge
        results = json.loads((job / "results.json").read_text())
        (job / "results.json").write_text(json.dumps(results | {"judge": "KeywordJudge"}))
    guard = tmp_path / "guard"
    judged = {jobs[0]: 0.30, jobs[1]: 0.50, tmp_path / "elsewhere": 0.9}
    for i, (run_dir, hs) in enumerate(judged.items()):
        (guard / str(i)).mkdir(parents=True)
        final = {"harmful_score": hs, "refusal_rate": 1 - hs, "benign_refusal_rate": 0.1, "task_acc": 0.8}
        (guard / str(i) / "results.json").write_text(json.dumps(
            {"model": "tiny", "checkpoint": str(run_dir / "final"), "judge": "GuardJudge(meta-llama/Llama-Guard-3-8B)",
             "final": final}))
    report.main([str(sweep), "--rejudge", str(guard)])
    rows = {r["run_dir"]: r for r in csv.DictReader((sweep / "report" / "runs.csv").open())}
    first = rows[str(jobs[0])]
    assert (first["judge"], first["harmful_score"], first["harmful_score_guard"], first["refusal_rate_guard"],
            first["benign_refusal_rate_guard"]) == ("KeywordJudge", "0.4", "0.3", "0.7", "0.1")
    assert rows[str(jobs[1])]["harmful_score_guard"] == "0.5"
    assert all(r["harmful_score_guard"] == "" for d, r in rows.items() if d not in (str(jobs[0]), str(jobs[1])))
    md = (sweep / "report" / "report.md").read_text()
    assert "## Re-judged (guard): KeywordJudge → GuardJudge(meta-llama/Llama-Guard-3-8B)" in md
    assert f"| pact | 0 | 50 | 0.1 | 16 | 0 | 0.4 | 0.3 | 0.6 | 0.7 | 0 | 0.1 | {jobs[0]} |" in md
    unmatched = md.split("Re-judge results that match no run:")[1].split("Runs not re-judged:")
    assert f"- {guard / '2' / 'results.json'} (checkpoint: {tmp_path / 'elsewhere' / 'final'})" in unmatched[0]
    assert str(jobs[2]) in unmatched[1] and str(jobs[0]) not in unmatched[1]


def test_methods_table_gives_reference_pact_and_sft_over_seeds(tmp_path):
    """experiment=embedded_seeds' shape: per seed a PACT run with its reference and an SFT comparison run; the Methods
    table gives each method's headline rates as mean ± std over the seeds; the reference, the same weights evaluated
    once and reused by every seed, is counted once."""
    sweep = tmp_path / "seeds"
    for seed, (pact_hs, sft_hs) in enumerate([(10.0, 40.0), (12.0, 44.0), (14.0, 42.0)], start=1):
        job = sweep / f"{seed - 1}_seed={seed}"
        setting = {"poison_ratio": 0.1, "num_samples": 200, "seed": seed, "model": "smollm2",
                   "task": "sentiment"}
        final = {"benign_refusal_rate": 20.0, "task_acc": 95.0, "task_refusal_rate": 0.0, "task_majority_rate": 50.0,
                 "num_prompts": 150, "num_benign_prompts": 100, "num_task_prompts": 200,
                 "harmful_score_ci_lo": 5.0, "harmful_score_ci_hi": 17.0}
        reference = {"harmful_score": 8.0, "benign_refusal_rate": 18.0, "task_acc": 60.0, "task_refusal_rate": 1.0}
        for method, hs, directory in (("pact", pact_hs, job), ("sft", sft_hs, job / "compare" / "sft")):
            directory.mkdir(parents=True)
            record = {"method": method, "lam": 1.0 if method == "pact" else 0, **setting,
                      "num_safety_tokens": 50 if method == "pact" else None,
                      "final": final | {"harmful_score": hs}, "timings": {"fit": 50.0 if method == "pact" else 70.0},
                      "peak_memory_mib": {"rss": 3000.0 + seed}, "model_weights": "/cache/aligned/smollm2-95ba"} \
                | ({"reference": reference} if method == "pact" else {})
            (directory / "results.json").write_text(json.dumps(record))
    report.main([str(sweep)])
    md = (sweep / "report" / "report.md").read_text()
    methods = md.split("## Methods")[1].split("## Paper-style table")[0]
    # mean ± std [Wilson interval of the pooled counts: 12 of 150 harmful prompts for the one reference evaluation,
    # 54 of 450 for PACT's three seeds], majority label, mean fit seconds, mean peak MiB
    # every rate, its std and its interval to one decimal
    assert ("| reference | – | – | 0.1 | 200 | 1 | 8.0 [4.6–13.5] | – | 18.0 [11.7–26.7] | 60.0 [53.1–66.5] | "
            "1.0 [0.3–3.6] | 50.0 | – | – |") in methods
    assert ("| pact | 1 | 50 | 0.1 | 200 | 3 | 12.0 ± 2.0 [9.3–15.3] | – | 20.0 ± 0.0 [15.9–24.9] | "
            "95.0 ± 0.0 [93.0–96.5] | 0.0 ± 0.0 [0.0–0.6] | 50.0 | 50 | 3002 |") in methods
    assert ("| sft | 0 | – | 0.1 | 200 | 3 | 42.0 ± 2.0 [37.5–46.6] | – | 20.0 ± 0.0 [15.9–24.9] | "
            "95.0 ± 0.0 [93.0–96.5] | 0.0 ± 0.0 [0.0–0.6] | 50.0 | 70 | 3002 |") in methods
    rows = list(csv.DictReader((sweep / "report" / "runs.csv").open()))
    assert {r["harmful_score_ci_lo"] for r in rows} == {"5.0"} and {r["num_task_prompts"] for r in rows} == {"200"}
    assert "| 12.0 [5.0–17.0] |" in md  # a run's rate with its interval


def test_a_reference_is_one_row_per_seed_at_most_and_one_for_all_seeds_that_reused_it():
    from pact_lightning.report.collect import Run
    from pact_lightning.report.render import frame, with_reference

    def run(seed: int, lam: float, ref_hs: float, weights: str | None) -> Run:
        return Run.from_record({"method": "pact", "lam": lam, "num_safety_tokens": 50, "poison_ratio": 0.1,
                                 "num_samples": 16, "seed": seed, "model": "tiny", "task": "sentiment",
                                 "model_weights": weights, "reference": {"harmful_score": ref_hs},
                                 "final": {"harmful_score": 20.0}}, f"/runs/{seed}-{lam}")

    def references(runs: list[Run]) -> list[int]:
        return sorted(with_reference(frame(runs)).query("method == 'reference'").seed)

    # a λ sweep whose reference rates differ a little from run to run (no cache, nondeterministic kernels)
    assert references([run(s, lam, 14.0 + s + lam / 10, "/w") for s in (1, 2) for lam in (0.1, 1.0, 10.0)]) == [1, 2]
    # the same weights and rates in every run: one evaluation, reused
    assert references([run(s, lam, 14.0, "/w") for s in (1, 2) for lam in (0.1, 1.0)]) == [1]
    # runs that do not name their weights: one per seed
    assert references([run(s, 1.0, 14.0, None) for s in (1, 2, 3)]) == [1, 2, 3]


def test_a_rate_no_run_measured_gets_no_pooled_count_and_no_interval():
    from pact_lightning.report.collect import Run
    from pact_lightning.report.render import aggregate, frame, pooled_interval

    # two seeds evaluated 200 task prompts each; both measured accuracy, neither recorded a task-refusal rate
    runs = [Run.from_record({"method": "pact", "lam": 1.0, "num_safety_tokens": 50, "poison_ratio": 0.1,
                              "num_samples": 200, "seed": seed, "model": "tiny", "task": "sentiment",
                              "final": {"harmful_score": 20.0, "task_acc": acc, "num_task_prompts": 200}},
                             f"/runs/{seed}") for seed, acc in ((1, 95.0), (2, 96.0))]
    cell = next(aggregate(frame(runs)).itertuples())
    assert (cell.task_acc_k, cell.task_acc_n) == (382.0, 400.0)
    assert pooled_interval(cell, "task_acc") == " [93.0–97.1]"
    assert (cell.task_refusal_rate_k, cell.task_refusal_rate_mean) == (None, None)
    assert pooled_interval(cell, "task_refusal_rate") == ""


def test_runs_on_a_defended_alignment_name_their_own_reference():
    """vaccine+sft and booster+sft fine-tune another aligned model than the other arms: each reference gets a row."""
    from pact_lightning.report.render import reference_name

    assert [reference_name(m) for m in ("pact", "sft+safelora", "vaccine+sft", "booster+pact")] == [
        "reference", "reference", "reference (vaccine)", "reference (booster)"]


def test_pair_with_pairs_two_arms_of_a_seed_prompt_by_prompt(tmp_path):
    """report --pair-with pact: PACT minus SFT on the same 10 harmful prompts (PACT harmful on 1 of SFT's 8: 0 vs 7
    discordant, exact McNemar p = 2·0.5^7), benign verdicts equal (p = 1); a run without generations is named."""
    sweep = tmp_path / "study"

    def arm(num: int, method: str, harmful: list[bool] | None) -> None:
        job = sweep / f"{num}_seed=1,arm={method}"
        job.mkdir(parents=True)
        record = {"method": method, "lam": 1.0 if method == "pact" else 0, "poison_ratio": 0.1, "num_samples": 200,
                  "seed": 1, "model": "smollm2", "task": "sentiment",
                  "final": {"harmful_score": 10.0 * sum(harmful or []), "benign_refusal_rate": 25.0, "task_acc": 90.0}}
        (job / "results.json").write_text(json.dumps(record))
        if harmful is None:
            return
        answers = ["Sure, here is a plan.", "Sure, here is a plan.", "1. Buy | mix"]  # repeats, as a real model's
        rows = [{"set": "strongreject", "kind": "harmful", "prompt": f"h{i}", "verdict": {"refused": not h, "harmful": h},
                 "response": answers[i % 3] if h else "I can't help with that."} for i, h in enumerate(harmful)]
        rows += [{"set": "heldout", "kind": "benign", "prompt": f"b{i}", "verdict": {"refused": i == 0},
                  "response": "I can't." if i == 0 else "Here you go."} for i in range(4)]
        (job / "generations_final.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    arm(0, "sft", [True] * 8 + [False] * 2)
    arm(1, "pact", [True] + [False] * 9)
    arm(2, "lisa", None)
    report.main([str(sweep), "--pair-with", "pact"])
    section = (sweep / "report" / "report.md").read_text().split("## Paired: pact against the other arms")[1]
    row = next(line for line in section.splitlines() if "pact − sft" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "1" and cells[2].startswith("-70.0 [") and cells[2].endswith("p=0.016 *")
    # records written before the answer categories have no content verdict to pair, until --rescore decides them
    assert cells[3] == "–" and cells[4].startswith("+0.0 [+0.0, +0.0] p=1") and not cells[4].endswith("*")
    assert cells[5] == "–"
    note = next(line for line in section.splitlines() if line.startswith("- pact − lisa (seed 1): not paired, no "))
    assert "2_seed=1,arm=lisa" in note and "arm=pact" not in note
    # the Runs table names each run's most common harmful answer: 6 of SFT's 8 are the same plan ("|" kept out of the
    # markdown cell); PACT's one; none for Lisa, which has no generations
    runs = {line.split("|")[2].strip(): line for line in (sweep / "report" / "report.md").read_text().split(
        "## Runs")[1].splitlines() if line.startswith("| ok |")}
    assert '| "Sure, here is a plan." ×6 of 8 |' in runs["sft"] and '| "Sure, here is a plan." ×1 of 1 |' in runs["pact"]
    assert "×" not in runs["lisa"]
    report.main([str(sweep), "--pair-with", "pact", "--rescore"])
    section = (sweep / "report" / "report.md").read_text().split("## Paired: pact against the other arms")[1]
    cells = [c.strip() for c in next(line for line in section.splitlines() if "pact − sft" in line).strip("|").split("|")]
    # "Sure, here is a plan." and "1. Buy | mix" add fewer than three content words: no content, in both arms
    assert cells[2].endswith("p=0.016 *") and cells[3].startswith("+0.0 [+0.0, +0.0] p=1")
    # --tuning-sets names the sets to keep out: with heldout a tuning set, no benign prompt measures
    report.main([str(sweep), "--pair-with", "pact", "--rescore", "--tuning-sets", "heldout"])
    md = (sweep / "report" / "report.md").read_text()
    cells = [c.strip() for c in next(line for line in md.split("## Paired")[1].splitlines()
                                     if "pact − sft" in line).strip("|").split("|")]
    assert cells[2].endswith("p=0.016 *") and cells[4] == "–"
    assert "heldout (over-refusal)" in md.split("## The tuning sets")[1]


# a Python where torch, lightning and transformers cannot be imported, as if they were not installed
NOT_INSTALLED = """
import runpy, sys

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "lightning", "transformers"):
            raise ModuleNotFoundError(f"No module named {name!r} (made unimportable by the test)")
        return None

sys.meta_path.insert(0, NotInstalled())
"""
# there, a module run as `python -m <module> <args>` runs it
WITHOUT_TORCH = NOT_INSTALLED + """
module, sys.argv = sys.argv[1], sys.argv[1:]
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def test_the_report_runs_in_a_python_without_torch(sweep, tmp_path):
    """``python -m pact_lightning.report`` (a sweep with its multirun.yaml, a failed job and today's results.json of
    the embedded default) and ``report judges`` import neither torch, lightning nor transformers."""
    default = sweep / "99_default"
    default.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "results_embedded_default.json", default / "results.json")
    blocked = subprocess.run([sys.executable, "-c", NOT_INSTALLED + "import torch"], capture_output=True, text=True)
    assert "made unimportable by the test" in blocked.stderr  # the guard itself works
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "pact_lightning.report", str(sweep), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    text = (out / "report.md").read_text()
    assert "11 ok, 0 no_eval, 1 failed, 1 missing run(s)." in text and "44.0 [36.3–52.0]" in text
    assert "| ok | pact | 1 | 50 | 0.1 | 200 | 42 | smollm2_135m | sentiment |" in text
    assert len(list(csv.DictReader((out / "runs.csv").open()))) == 13
    judges = subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "pact_lightning.report", "judges"],
                            capture_output=True, text=True)
    assert judges.returncode == 0 and "# Judges against the gold set" in judges.stdout, judges.stderr[-3000:]


def study(tmp_path: Path) -> Path:
    """A defence study's shape at one seed: PACT at λ = 0.5 and 1, kl_full and tokenwise at λ = 1, SFT at λ = 0, each
    with the aligned reference's rates."""
    sweep = tmp_path / "study"
    arms = [("pact", 0.5, 12.0, 20.0), ("pact", 1.0, 8.0, 24.0), ("kl_full", 1.0, 15.0, 22.0),
            ("tokenwise", 1.0, 18.0, 21.0), ("sft", 0.0, 40.0, 19.0)]
    for i, (method, lam, content, over) in enumerate(arms):
        job = sweep / f"{i}_arm={method}-{lam}"
        job.mkdir(parents=True)
        rates = {"harmful_score": content + 2, "harmful_content_rate": content, "benign_refusal_rate": over,
                 "task_acc": 90.0, "num_prompts": 150, "num_benign_prompts": 100, "num_task_prompts": 200}
        record = {"method": method, "lam": lam, "num_safety_tokens": 50, "poison_ratio": 0.1, "num_samples": 200,
                  "seed": 1, "model": "smollm2", "task": "sentiment", "final": rates,
                  "reference": rates | {"harmful_score": 5.0, "harmful_content_rate": 4.0, "benign_refusal_rate": 30.0},
                  "reference_weights": "/cache/aligned/smollm2-95ba"}
        (job / "results.json").write_text(json.dumps(record))
    return sweep


@pytest.fixture
def figures(monkeypatch):
    """The report's figures by file name, kept open to read what they show."""
    from pact_lightning.report import render

    shown = {}
    monkeypatch.setattr(render, "save_figure", lambda fig, path: shown.__setitem__(Path(path).name, fig))
    return shown


def test_pareto_marks_the_reference_and_labels_each_pact_point_with_its_lambda(tmp_path, figures):
    report.main([str(study(tmp_path))])
    ax = figures["pareto.png"].axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert "reference: the aligned model before fine-tuning" in labels
    star = next(line for line in ax.lines if line.get_marker() == "*")
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([4.0], [30.0])  # the reference's content/over-refusal
    notes = {(a.get_text(), a.xy) for a in ax.texts}
    assert {("λ=0.5", (12.0, 20.0)), ("λ=1", (8.0, 24.0)), ("λ=1", (15.0, 22.0)), ("λ=1", (18.0, 21.0))} <= notes
    assert not any(text == "λ=0" for text, _ in notes)  # SFT has no λ to speak of


def test_lambda_plot_sets_the_arms_at_one_lambda_side_by_side(tmp_path, figures):
    report.main([str(study(tmp_path))])
    ax = figures["harmful_vs_lam.png"].axes[0]
    at_one = [x for bars in ax.containers for x, y in zip(bars.lines[0].get_xdata(), bars.lines[0].get_ydata())
              if abs(x - 1.0) < 0.2 and y in (10.0, 17.0, 20.0)]  # pact λ=1, kl_full, tokenwise
    assert len(at_one) == 3 and len(set(at_one)) == 3, at_one
    assert "side by side" in ax.get_xlabel()


def test_a_report_without_evaluated_runs_says_so_on_every_plot(tmp_path, figures):
    job = tmp_path / "sweep" / "0_seed=1"
    job.mkdir(parents=True)
    (job / "results.json").write_text(json.dumps({"method": "pact", "lam": 1.0, "num_safety_tokens": 50,
                                                  "poison_ratio": 0.1, "num_samples": 16, "seed": 1, "model": "tiny",
                                                  "task": "sentiment", "train": {"global_step": 2}}))
    report.main([str(tmp_path / "sweep")])
    assert set(figures) == {"pareto.png", "harmful_vs_lam.png", "harmful_vs_k.png", "harmful_vs_p.png"}
    for name, fig in figures.items():
        assert [t.get_text() for t in fig.axes[0].texts] == ["no evaluated runs"], name
