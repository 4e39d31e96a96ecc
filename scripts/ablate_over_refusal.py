"""What drives PACT's over-refusal and task errors on the embedded default: PACT alone (no SFT comparison) with each
switch of the objective changed, one run per variant, then a table of each variant against the reference and against
PACT as configured, paired on the same prompts (exact McNemar; docs/method.md §5.4).

    python scripts/ablate_over_refusal.py [--out logs/ablation] [--only gate_off,lam_0.5] [override ...]

Overrides after the options (e.g. ``seed=1``) apply to every variant.

A variant whose run directory already holds results.json is not run again. The aligned model, the safety tokens and
the reference's evaluation come from the cache of an earlier default run. docs/embedded_default.md has the figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from pact_lightning.record import FILE, RunRecord, paired_comparison, read_generations

VARIANTS = {
    "pact": [],  # as configured: λ = 1, k = 50, gate on, weighted
    "gate_off": ["method.objective.gate=false"],
    "uniform_weights": ["method.objective.weighted=false"],
    "k_20": ["method.num_safety_tokens=20"],
    "k_100": ["method.num_safety_tokens=100"],
    "lam_0.5": ["method.lam=0.5"],
    "lam_0.25": ["method.lam=0.25"],
}
RATES = ("harmful_score", "benign_refusal_rate", "task_acc")


def run(out: Path, name: str, overrides: list[str]) -> Path:
    """The variant's run directory, trained and evaluated unless it already holds results.json."""
    run_dir = out / name
    if not (run_dir / FILE).is_file():
        subprocess.run([sys.executable, "-m", "pact_lightning.train", "compare_with=[]", "eval.diagnostics=false",
                        f"hydra.run.dir={run_dir}", *overrides], check=True)
    return run_dir


def cell(diff: dict) -> str:
    return f"{diff['diff']:+.1f} (p={diff['p_value']:.2g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("logs/ablation"))
    parser.add_argument("--only", default=None, help="comma-separated variant names (default: all)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every variant, e.g. seed=1")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else list(VARIANTS)
    dirs = {name: run(args.out, name, VARIANTS[name] + args.overrides)
            for name in ["pact", *[n for n in names if n != "pact"]]}
    gens = {name: read_generations(d / "generations_final.jsonl") for name, d in dirs.items()}
    reference = read_generations(dirs["pact"] / "generations_reference.jsonl")
    header = ["variant", *RATES, "task answers with ' or '",
              *(f"{r} − reference" for r in RATES), *(f"{r} − pact" for r in RATES)]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, d in dirs.items():
        final = RunRecord.read(d).final
        both = sum(" or " in r["response"] for r in gens[name] if r["kind"] == "task")
        vs_ref, vs_pact = paired_comparison(gens[name], reference), paired_comparison(gens[name], gens["pact"])
        print("| " + " | ".join([name, *(f"{final[r]:.1f}" for r in RATES), str(both),
                                 *(cell(vs_ref[r]) for r in RATES), *(cell(vs_pact[r]) for r in RATES)]) + " |")


if __name__ == "__main__":
    main()
