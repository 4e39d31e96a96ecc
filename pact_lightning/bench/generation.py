"""``python -m pact_lightning.bench generation``: batched vs one-prompt-at-a-time greedy generation on the embedded
model (target: batched ≥ 5× faster).

    python -m pact_lightning.bench generation [--num-prompts 32] [--batch-size 16] [--max-new-tokens 32] [--threads N]

Both runs answer the same prompts (the offline harmful eval split) with the same settings, in one process. Wall time
and this process's CPU time are both printed: on a shared machine the CPU time is the steadier measure (other
processes stretch the wall time, and by more with several torch threads, which wait for each other).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from pact_lightning.data.sources import OfflineHarmful
from pact_lightning.eval.generation import generate
from pact_lightning.models.loading import load_model


def timed(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int) -> tuple[list[str], float, float]:
    """The responses, the wall seconds and the CPU seconds of one generation run."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = generate(model, tokenizer, prompts, batch_size=batch_size, max_new_tokens=max_new_tokens,
                   desc=f"batch size {batch_size}")
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pact-bench generation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "model" / "smollm2_135m.yaml")
    cfg.cache_dir = None  # ${paths.cache_dir} needs the app config; None = the same default ($PACT_CACHE or ~/.cache)
    model, tokenizer = load_model(cfg, lora=False)
    prompts = [e.prompt for e in OfflineHarmful(split="eval", response="none").load()[:args.num_prompts]]
    generate(model, tokenizer, prompts[:2], max_new_tokens=2, progress=False)  # warm-up: first-call overheads

    batched, wall_b, cpu_b = timed(model, tokenizer, prompts, args.batch_size, args.max_new_tokens)
    single, wall_s, cpu_s = timed(model, tokenizer, prompts, 1, args.max_new_tokens)
    n = len(prompts)
    print(f"model: {cfg.name}, {n} prompts, max_new_tokens={args.max_new_tokens}, torch threads: "
          f"{torch.get_num_threads()}")
    for name, wall, cpu in (("one at a time", wall_s, cpu_s), (f"batched (size {args.batch_size})", wall_b, cpu_b)):
        print(f"{name:<20} wall {wall:7.1f} s ({n / wall:6.2f} prompts/s)   CPU {cpu:7.1f} s "
              f"({n / cpu:6.2f} prompts per CPU-s)")
    print(f"speed-up: {wall_s / wall_b:.1f}x wall, {cpu_s / cpu_b:.1f}x CPU (target >= 5x); identical outputs: "
          f"{sum(a == b for a, b in zip(batched, single))}/{n}")

