"""Draw the pairs of the hand-labelled gold set (pact_lightning/eval/gold_set.jsonl) from a defence study's saved
generations: answers to harmful prompts from every arm, SFT+SafeLoRA and each reference, stratified by arm and by the
answer rules' category (so that every category has enough members), in a fixed order.

    python scripts/draw_gold_set.py <study dir> --out gold_unlabelled.jsonl [--per-category 80 | --quota content=40,…]
        [--seeds 2 3]

The output has the gold set's fields with empty labels; each pair is then labelled by reading it (docs/judging.md)
and the file frozen before any judge is compared with it. ``--seeds`` picks the study seeds the arms are drawn from
(the references are one evaluation each, whatever the seed); the answer rules were written looking at other answers.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

from pact_lightning.eval.answers import CATEGORIES, categorise
from pact_lightning.record import FILE, RunRecord, read_generations


def sources(study: Path, seeds: list[int]) -> dict[str, Path]:
    """origin → generations file: every arm of the chosen seeds, SFT+SafeLoRA, and each distinct reference."""
    found: dict[str, Path] = {}
    for run in sorted(p for p in study.iterdir() if (p / FILE).is_file()):
        setting = RunRecord.read(run).setting
        method, seed = setting.method, setting.seed
        if seed in seeds:
            origin = f"{method}/seed{seed}"
            origin = origin if origin not in found else f"{origin}@{run.name}"  # a sweep of one method: many runs
            found[origin] = run / "generations_final.jsonl"
            if (run / "posthoc" / "safelora" / "generations_final.jsonl").is_file():
                found[f"{method}+safelora/seed{seed}"] = run / "posthoc" / "safelora" / "generations_final.jsonl"
        reference = f"reference ({method.split('+')[0]})" if "+" in str(method) else "reference"
        if (run / "generations_reference.jsonl").is_file():
            found.setdefault(reference, run / "generations_reference.jsonl")
    return found


def draw(files: dict[str, Path], quota: dict[str, int], seed: int = 0) -> list[dict]:
    """Up to ``quota[category]`` pairs of each rule category, dealt round-robin over the origins (each origin's pairs
    shuffled), then shuffled together so that the labeller meets them in no telling order."""
    rng = random.Random(seed)
    pools: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    seen = set()
    for origin, path in files.items():
        for row in read_generations(path):
            key = (row["prompt"], row["response"])
            if row["kind"] != "harmful" or key in seen:  # the same answer from two runs is one pair
                continue
            seen.add(key)
            pools[categorise(row["prompt"], row["response"])][origin].append({**row, "origin": origin})
    out = []
    for category in CATEGORIES:
        by_origin = pools[category]
        for rows in by_origin.values():
            rng.shuffle(rows)
        taken, origins = [], sorted(by_origin)
        while len(taken) < quota.get(category, 0) and any(by_origin[o] for o in origins):
            for origin in origins:
                if by_origin[origin] and len(taken) < quota.get(category, 0):
                    taken.append(by_origin[origin].pop())
        out += taken
    rng.shuffle(out)
    return [{"set": r["set"], "kind": r["kind"], "prompt_id": r["prompt_id"], "category": r["category"],
             "prompt": r["prompt"], "response": r["response"], "origin": r["origin"], "gold_answer": None,
             "gold_harmful": None, "gold_reason": ""} for r in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-category", type=int, default=80, help="pairs of each rule category")
    parser.add_argument("--quota", default=None, metavar="CAT=N,...",
                        help="pairs per rule category instead, e.g. content=40,no_content=20,refusal=10,degenerate=10")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
    args = parser.parse_args()
    quota = dict.fromkeys(CATEGORIES, args.per_category)
    if args.quota:
        quota = {c: int(n) for c, n in (item.split("=") for item in args.quota.split(","))}
    rows = draw(sources(args.study, args.seeds), quota)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} pairs -> {args.out}")


if __name__ == "__main__":
    main()
