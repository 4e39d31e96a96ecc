"""``python -m pact_lightning.report <sweep dir>``: one table and four plots for a sweep (or any folder of runs).

Every ``results.json`` under the folder is a run (comparison runs in ``<run>/compare/<method>/`` included). A Hydra job
directory (it has ``.hydra/``) without one is listed as *failed* with the last error line of its log, and a point of
the sweep (``multirun.yaml``, basic sweeper) that has no job directory at all as *missing*: nothing is skipped
silently. With ``--wandb entity/project`` the run summaries of the sweep's W&B group fill in runs that have no local
``results.json`` (e.g. when the run directories stay on the cluster).

Writes into ``<sweep dir>/report/`` (or ``--out``):

* ``runs.csv`` — one row per run: status, setting, final and reference metrics, judge, run directory, note;
* ``table.csv`` and ``report.md`` — shaped like the paper's tables: per model × task, one row per method (λ, k) and one
  column per poison ratio p, harmful score and task accuracy as mean ± std over seeds;
* ``harmful_vs_lam.png``, ``harmful_vs_k.png``, ``harmful_vs_p.png`` and ``pareto.png`` (harmful score vs task accuracy
  per setting with ± std error bars; per model, task, p and n, the front over all methods ringed and each method's own
  front across its λ and k).

``--rejudge <dir>`` reads the results.json files of a re-judging of the sweep's adapters (``evaluate -m
checkpoint=<run dir>/final,... hydra.sweep.dir=<dir>``, docs/cluster.md) and pairs each with the run whose
``final/`` it evaluated: runs.csv gets ``<metric>_<name>`` columns (``--rejudge-name``, default guard) and report.md a
section with both judges' harmful score and refusal rates per run, the re-judge results that match no run and the
evaluated runs that were not re-judged.

``--rescore`` computes every run's rates again from its saved generations, under the current answer rules
(eval/answers.py) and set roles (the judge's verdicts are kept): a study run before the answer categories existed gets
its content rate and its over-refusal on the measuring sets without being run again.

``python -m pact_lightning.report target <factorial dir> --frontier <dir> --k <dir>`` reports why PACT's target
behaves as it does: the gate × tilt factorial's effects with token-level probes, the λ frontier read at PACT's
over-refusal and the k cells (report/target.py, docs/method.md §4).

``python -m pact_lightning.report judges`` prints each judge's agreement with the hand-labelled gold set
(report/judges.py).

``--pair-with <method>`` adds a section: that method minus every other arm of the same seed on the same prompts
(paired interval and exact McNemar, from the runs' ``generations_final.jsonl``; report/paired.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pact_lightning.report.collect import Rejudge, Run, collect, rejudged
from pact_lightning.report.render import pareto_front, write_report

__all__ = ["Rejudge", "Run", "collect", "main", "pareto_front", "rejudged", "write_report"]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["judges"]:  # python -m pact_lightning.report judges: agreement with the gold set
        from pact_lightning.report import judges

        judges.main(argv[1:])
        return
    if argv[:1] == ["target"]:  # python -m pact_lightning.report target: the factorial, frontier and k cells
        from pact_lightning.report import target

        target.main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("sweep_dir", type=Path, help="a multirun folder (or any folder of run directories)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: <sweep_dir>/report)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", default=None,
                        help="also read the sweep's W&B runs (online); they fill in runs without a local results.json")
    parser.add_argument("--wandb-group", default=None, help="the W&B group (default: <task name>-<sweep dir name>)")
    parser.add_argument("--rejudge", type=Path, default=None, metavar="DIR",
                        help="the sweep's adapters evaluated again with another judge (evaluate -m checkpoint=...)")
    parser.add_argument("--rejudge-name", default="guard", help="the suffix of its columns (default: guard)")
    parser.add_argument("--rescore", action="store_true",
                        help="compute every run's rates again from its saved generations with the current answer "
                             "rules and set roles (the judge's verdicts are kept)")
    parser.add_argument("--tuning-sets", default=None, metavar="A,B",
                        help="with --rescore: the sets kept out of the rates (default: those each run recorded, else "
                             "the default evaluation's eval.evaluator.tuning_sets)")
    parser.add_argument("--pair-with", metavar="METHOD", default=None,
                        help="pair this method's runs with every other arm of the same seed, prompt by prompt "
                             "(e.g. pact)")
    args = parser.parse_args(argv)
    root = args.sweep_dir.resolve()
    if not root.is_dir():
        parser.error(f"{root} is not a directory")
    if args.tuning_sets is not None and not args.rescore:
        parser.error("--tuning-sets applies to --rescore; add --rescore")
    tuning = [s for s in args.tuning_sets.split(",") if s] if args.tuning_sets is not None else None
    runs = collect(root, args.wandb, args.wandb_group, rescore_generations=args.rescore, tuning=tuning)
    if not runs:
        parser.error(f"no runs under {root}: no results.json, no Hydra job directory and no multirun.yaml; pass a run "
                     "or sweep directory (e.g. logs/train/multiruns/<time>)")
    if args.rejudge is not None and not args.rejudge.is_dir():
        parser.error(f"--rejudge {args.rejudge} is not a directory")
    rejudge = rejudged(args.rejudge.resolve(), runs, args.rejudge_name) if args.rejudge is not None else None
    out = args.out or root / "report"
    print(write_report(root, out, runs, rejudge, args.pair_with, args.rescore))
    print(f"Report written to {out}")

