"""``python -m pact_lightning.bench [steps]``: what the reference costs per training step, per reference mode.

For each model (default: the tiny model and SmolLM2-135M, both with their LoRA adapter) and each variant — ``sft``,
``pact`` online with a frozen copy (the authors' design), ``pact`` online with the adapter disabled, ``pact`` cached,
``pact`` cached with chunked cross-entropy (``ce_chunk_size=128``), ``kl_full`` (adapter disabled), and the defences:
``asft``, ``lisa``, and the alignment-stage steps of Vaccine and Booster (on the fine-tuning LoRA here, so that every
row has the same trainable parameters) — a real Lightning ``Trainer.fit`` runs ``warmup + steps`` optimiser steps on the same
synthetic data (every sequence exactly ``--seq-len`` tokens). Printed: the median step time (the whole
``training_step`` + backward + optimiser step, from ``on_train_batch_start`` to ``on_train_batch_end``) of the last
``steps`` steps, the peak memory, both as ratios to ``sft``, and the cache build time and file size per 1000 examples.

Peak memory: each variant runs in a fresh child process started by this one (sequentially, so they never compete),
because a process's peak RSS only ever grows. On CPU the number is the child's peak resident set
(``ru_maxrss``): the whole process — Python, torch and the other libraries (about 0.5 GB before any model), the
weights, the optimiser state, activations and the allocator's slack. On CUDA it is ``torch.cuda.max_memory_allocated``.
The cached variant builds its cache in that same child (a fresh cache directory per benchmark run), as a first
training run would, so its peak includes the build; the chunked variant then reuses that cache, as any later run would.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

MODELS = ("tiny", "smollm2_135m")
VARIANTS = {  # name: (method, reference.mode, ce_chunk_size)
    "sft": ("sft", None, None),
    "pact online, frozen copy": ("pact", "frozen_copy", None),
    "pact online, adapter off": ("pact", "adapter_disabled", None),
    "pact cached": ("pact", "cached", None),
    "pact cached, chunked CE": ("pact", "cached", 128),
    "kl_full (adapter off)": ("kl_full", "adapter_disabled", None),
    # the defences (docs/defence_methods.md): fine-tuning objectives, then the alignment stage's steps
    "asft": ("asft", None, None),
    "lisa": ("lisa", None, None),
    "vaccine (alignment step)": ("vaccine", None, None),
    "booster (alignment step)": ("booster", None, None),
}
CONF = Path(__file__).resolve().parents[1] / "conf"
WORDS = ("the quick review said that this film was a warm and clever story about friends who travel across a "
         "quiet country and find that every small town has its own strange song").split()


class SyntheticSource:
    """Deterministic prompt/response pairs long enough that every encoded sequence is truncated to max_length."""

    def __init__(self, name: str, count: int, prompt_words: int = 30, response_words: int = 400) -> None:
        self.name, self.count, self.prompt_words, self.response_words = name, count, prompt_words, response_words

    def _text(self, row: int, n: int) -> str:
        return " ".join(WORDS[(row * 7 + 3 * i) % len(WORDS)] for i in range(n))

    def load(self):
        from pact_lightning.data.types import Example

        return [Example(self._text(r, self.prompt_words), self._text(r + 1, self.response_words), self.name, r)
                for r in range(self.count)]


def bench_tokens(k: int):
    """A fixed set of k token ids and weights: the step cost does not depend on which tokens S holds."""
    import torch

    from pact_lightning.safety.tokens import SafetyTokens

    d = torch.randn(k, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(100, 100 + k)
    return SafetyTokens(ids=ids, weights=d / d.norm(), tokens=[str(i) for i in ids.tolist()], m=torch.ones(k), d=d)


def run_variant(spec: dict) -> dict:
    """One variant in this (fresh) process; returns its timings and peak memory. The module and the Trainer are built
    as ``train`` builds them (build.module, build.trainer), from the ``--trainer`` and ``--optim`` presets."""
    import lightning as L
    import torch
    from omegaconf import OmegaConf

    from pact_lightning import build, defences
    from pact_lightning.app import compose_group_option
    from pact_lightning.data.datamodule import PoisonMixDataModule
    from pact_lightning.models.loading import load_model
    from pact_lightning.objectives.direction import Direction, lora_modules
    from pact_lightning.objectives.asft import Asft
    from pact_lightning.objectives.kl_full import KLFull
    from pact_lightning.objectives.lisa import Lisa
    from pact_lightning.objectives.pact import Pact
    from pact_lightning.objectives.sft import SFT
    from pact_lightning.utils.strategies import master_weights

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    cfg = OmegaConf.create({"paths": {"cache_dir": spec["cache_dir"]}, "model": OmegaConf.load(CONF / "model" / f"{spec['model']}.yaml"),
                            "reference": {"mode": spec["mode"], "cache_dir": spec["reference_cache_dir"],
                                          "build_batch_size": None}})
    if spec["device"] == "cuda":  # bf16 frozen weights, float32 adapter (the GPU presets' mixed precision)
        cfg.model.dtype = "bfloat16"
    policy, tokenizer = load_model(cfg.model)
    policy = master_weights(policy)
    method = spec["method"]
    # Lisa alternates 2 alignment and 2 user steps, so both states are measured
    objective = {"sft": SFT, "pact": partial(Pact, safety_tokens=bench_tokens(spec["k"])), "kl_full": KLFull,
                 "asft": Asft, "lisa": partial(Lisa, align_steps=2, finetune_steps=2, prox_warmup_frac=0.0),
                 "vaccine": SFT, "booster": SFT}[method]()
    num_examples = spec["batch_size"] * (spec["warmup"] + spec["steps"])

    def synthetic_data(fraction: float) -> PoisonMixDataModule:
        return PoisonMixDataModule(SyntheticSource("benign", num_examples), SyntheticSource("harmful", num_examples),
                                   num_samples=num_examples, poison_ratio=fraction, batch_size=spec["batch_size"],
                                   max_length=spec["seq_len"]).attach(tokenizer, seed=0)

    datamodule = synthetic_data(0.1)
    if method == "asft":  # the cost does not depend on V's values: random directions of the right shapes
        objective.bind_directions(policy, [Direction(n, torch.randn(m.base_layer.weight.shape))
                                           for n, m in lora_modules(policy).items()])
    if method == "lisa":  # its alignment data
        side = synthetic_data(0.2)
        side.setup("fit")
        objective.bind_alignment_data(policy, side)
    step = None
    if method in ("vaccine", "booster"):  # the registered defence's own step, on synthetic harmful data for Booster
        settings = {"harmful": SyntheticSource("harmful", num_examples), "num_samples": num_examples,
                    "batch_size": spec["batch_size"]} if method == "booster" else {}
        align = OmegaConf.create({"seed": 0, "data": {"batch_size": spec["batch_size"], "max_length": spec["seq_len"]}})
        step = defences.get(method, "alignment")(**settings).step(tokenizer, align)
    reference = build.reference(cfg, cfg.model, policy, objective, datamodule)
    optim = compose_group_option("optim", spec["optim"], "--optim")
    module = build.module(policy, objective, reference, optim, ce_chunk_size=spec["ce_chunk_size"], step=step)
    cuda = spec["device"] == "cuda"
    times: list[float] = []
    cpu_times: list[float] = []  # this process's CPU time (all threads): steadier than wall time on a shared machine

    class StepTimer(L.Callback):
        def on_train_batch_start(self, *args) -> None:
            if cuda:
                torch.cuda.synchronize()
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_train_batch_end(self, *args) -> None:
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - self.start)
            cpu_times.append(time.process_time() - self.cpu_start)

    section = compose_group_option("trainer", spec["trainer"], "--trainer")
    section.merge_with({"default_root_dir": spec["reference_cache_dir"], "max_steps": spec["warmup"] + spec["steps"],
                        "max_epochs": -1, "precision": spec["precision"] or section.precision})
    trainer = build.trainer(section, logger=False, callbacks=[StepTimer()], enable_progress_bar=False)
    trainer.fit(module, datamodule=datamodule)
    out = {"median_step_s": statistics.median(times[spec["warmup"]:]), "steps_measured": len(times) - spec["warmup"],
           "median_step_cpu_s": statistics.median(cpu_times[spec["warmup"]:]), "precision": str(trainer.precision),
           "peak_mib": (torch.cuda.max_memory_allocated() if cuda else
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20}
    if getattr(reference, "mode", None) == "cached":
        out.update(build_s=reference.build_seconds, cache_bytes=reference.path.stat().st_size,
                   cache_examples=datamodule.num_samples, response_positions=reference.offsets[-1])
    return out


def run_child(spec: dict) -> dict:
    """``run_variant`` in a fresh interpreter (its own peak RSS); the result is the child's last stdout line."""
    load = os.getloadavg()[0]
    proc = subprocess.run([sys.executable, "-m", "pact_lightning.bench", "steps", "--child", json.dumps(spec)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child {spec['model']}/{spec['variant']} failed:\n{proc.stderr[-4000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load_avg": load}


def machine(device: str, threads: int | None) -> str:
    import torch

    if device == "cuda":
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU {cpu} ({os.cpu_count()} cores), {threads or torch.get_num_threads()} torch threads, torch {torch.__version__}"


def rows_load(rows: dict[str, dict]) -> str:
    """The machine's 1-minute load average at the start of each variant: above the thread count means other processes
    competed for the cores (wall times then overstate, CPU times much less so)."""
    return "/".join(f"{r['load_avg']:.1f}" for r in rows.values())


def table(model: str, rows: dict[str, dict], args: argparse.Namespace) -> str:
    memory = "peak CUDA alloc MiB" if args.device == "cuda" else "peak RSS MiB"
    base = rows["sft"] if "sft" in rows else None
    precision = "/".join(sorted({str(r.get("precision")) for r in rows.values()}))
    lines = [f"{model}: batch {args.batch_size} x {args.seq_len} tokens, LoRA, {precision}, median of "
             f"{args.steps} steps after {args.warmup} warm-up; {machine(args.device, args.threads)}; load average "
             f"{rows_load(rows)}",
             f"| variant | step ms | x sft | step CPU ms | x sft | {memory} | x sft |",
             "|---|---:|---:|---:|---:|---:|---:|"]

    def ratio(r: dict, key: str) -> str:
        return f"{r[key] / base[key]:.2f}" if base else "-"

    for name, r in rows.items():
        lines.append(f"| {name} | {1000 * r['median_step_s']:.0f} | {ratio(r, 'median_step_s')} | "
                     f"{1000 * r['median_step_cpu_s']:.0f} | {ratio(r, 'median_step_cpu_s')} | {r['peak_mib']:.0f} | "
                     f"{ratio(r, 'peak_mib')} |")
    cached = rows.get("pact cached")
    if cached and cached.get("build_s") is not None:
        per_k = 1000 / cached["cache_examples"]
        lines.append(f"cache build: {cached['build_s']:.1f} s for {cached['cache_examples']} examples "
                     f"({cached['response_positions']} response positions) = {cached['build_s'] * per_k:.0f} s per 1000 "
                     f"examples; file {cached['cache_bytes'] / 1e6:.2f} MB = {cached['cache_bytes'] * per_k / 1e6:.1f} "
                     "MB per 1000 examples")
    return "\n".join(lines)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="pact-bench steps", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(MODELS), help="model configs under pact_lightning/conf/model/")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT")
    p.add_argument("--steps", type=int, default=20, help="measured steps (after --warmup)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--k", type=int, default=50, help="safety-token set size")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice); 1 keeps CPU times clean on a shared machine")
    p.add_argument("--precision", default=None,
                   help="Lightning precision (default: the --trainer preset's, auto: float32 on a CPU, bf16-mixed on a "
                        "CUDA GPU with bf16)")
    p.add_argument("--trainer", default=None, help="trainer preset of pact_lightning/conf/trainer/ (default: cpu, or gpu "
                                                   "with --device cuda); its clipping, accumulation and precision apply")
    p.add_argument("--optim", default="adamw_cosine", help="optim preset of pact_lightning/conf/optim/ (the embedded "
                                                            "default's; the step cost does not depend on it)")
    p.add_argument("--cache-dir", default=os.environ.get("PACT_CACHE") or str(Path.home() / ".cache" / "pact_lightning"),
                   help="where converted models live (paths.cache_dir)")
    p.add_argument("--json", type=Path, help="also write the raw numbers here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.trainer = args.trainer or ("gpu" if args.device == "cuda" else "cpu")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    if args.child:
        logging.basicConfig(level=logging.WARNING)
        print(json.dumps(run_variant(json.loads(args.child))))
        return {}
    results: dict[str, dict[str, dict]] = {}
    reference_cache_dir = tempfile.mkdtemp(prefix="pact-bench-cache-")  # fresh: the cached variant really builds
    try:
        for model in args.models:
            results[model] = {}
            for variant in args.variants:
                method, mode, ce_chunk_size = VARIANTS[variant]
                spec = {"model": model, "variant": variant, "method": method, "mode": mode,
                        "ce_chunk_size": ce_chunk_size, "threads": args.threads, "steps": args.steps,
                        "warmup": args.warmup, "batch_size": args.batch_size, "seq_len": args.seq_len, "k": args.k,
                        "device": args.device, "precision": args.precision, "trainer": args.trainer,
                        "optim": args.optim, "cache_dir": args.cache_dir,
                        "reference_cache_dir": reference_cache_dir}
                results[model][variant] = run_child(spec)
                print(f"[bench] {model} / {variant}: {1000 * results[model][variant]['median_step_s']:.0f} ms",
                      file=sys.stderr, flush=True)
            print(table(model, results[model], args) + "\n", flush=True)
    finally:
        shutil.rmtree(reference_cache_dir, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return results

