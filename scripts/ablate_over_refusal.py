"""What drives PACT's over-refusal and task errors on the embedded default: PACT alone (no SFT comparison) with each
switch of the objective changed, one run per variant, then a table of each variant against the reference and against
PACT as configured, paired on the same prompts (exact McNemar; docs/method.md §5.4).

    python scripts/ablate_over_refusal.py [--out logs/ablation] [--only gate_off,lam_0.5] [override ...]

Overrides after the options (e.g. ``seed=1``) apply to every variant.

Each variant runs in ``<out>/<name>-<key>``, the key a digest of what defines the run: its overrides, the seed and the
reference (the composed ``model`` and ``align`` settings, which name the aligned model). A run directory that already
holds results.json is reused only when its ``.hydra/overrides.yaml`` is the one this run would pass; another seed, other
overrides or another reference get a directory of their own, and a mismatching directory is refused, never reused.
The aligned model, the safety tokens and the reference's evaluation come from the cache of an earlier default run.
For the gate and the tilt, the three-seed factorial (``experiment=target_factorial``, then ``python -m
pact_lightning.report target``; docs/method.md §4.2) replaces this script's one-seed answer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

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


FIXED = ["compare_with=[]", "eval.diagnostics=false"]  # every variant's, before its own


def run_key(overrides: list[str], reference: dict) -> str:
    """Digest of what defines a variant's run: its overrides in order (later ones win) and ``reference`` (the seed
    and the aligned model's settings, :func:`composed_reference`)."""
    text = json.dumps({"overrides": overrides, "reference": reference}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def composed_reference(overrides: list[str]) -> dict:
    """The seed and the ``model``/``align`` settings the train app would compose with ``overrides`` (no model loads):
    the seed's default is made explicit, and a changed reference model changes the key."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    import pact_lightning.app  # noqa: F401  (registers the objectives' schemas)
    from pact_lightning.app import CONFIG_PATH

    with initialize_config_dir(config_dir=CONFIG_PATH, version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    return {"seed": cfg.seed, "model": OmegaConf.to_container(cfg.model, resolve=False),
            "align": OmegaConf.to_container(cfg.align, resolve=False)}


def check_reusable(run_dir: Path, overrides: list[str]) -> None:
    """Refuse a finished run whose recorded overrides are not ``overrides`` (a stale or foreign directory)."""
    recorded = run_dir / ".hydra" / "overrides.yaml"
    found = yaml.safe_load(recorded.read_text(encoding="utf-8")) if recorded.is_file() else None
    if found != overrides:
        raise SystemExit(f"{run_dir} holds {FILE} of another run (its .hydra/overrides.yaml: {found}; this run's: "
                         f"{overrides}); move it away or pick another --out")


def run(out: Path, name: str, overrides: list[str], reference: dict | None = None) -> Path:
    """The variant's run directory, keyed by its overrides and reference; trained and evaluated unless it already
    holds the results of this same run."""
    overrides = FIXED + overrides
    reference = composed_reference(overrides) if reference is None else reference
    run_dir = out / f"{name}-{run_key(overrides, reference)}"
    if (run_dir / FILE).is_file():
        check_reusable(run_dir, overrides)
    else:
        subprocess.run([sys.executable, "-m", "pact_lightning.train", *overrides, f"hydra.run.dir={run_dir}"],
                       check=True)
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
