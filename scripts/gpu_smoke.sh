#!/usr/bin/env bash
# The GPU path in one command, for the day a GPU is at hand (about 10 minutes on one GPU; CI never runs it):
#   scripts/gpu_smoke.sh [output dir]
# 1. the tiny model and SmolLM2 (aligned first) in bf16 through trainer=gpu, then trainer=ddp with one device:
#    fit, generation and judging (the keyword judge) after fit;
# 2. step time and memory of sft and pact cached (python -m pact_lightning.bench --device cuda);
# 3. the device of every stage, from each run's results.json ("devices": where it trained and evaluated) and its log
#    (the alignment, safety-token and reference-cache stages), checked to be the GPU.
# It keeps the machine's CUDA torch (PACT_TORCH_EXTRA= for scripts/env.sh). GPU_TRAINER / DDP_TRAINER / BENCH_DEVICE
# override the presets (e.g. cpu / ddp_cpu / cpu with MODELS=tiny to check the script itself on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/pact_gpu_smoke}
gpu=${GPU_TRAINER:-gpu} ddp=${DDP_TRAINER:-ddp} bench_device=${BENCH_DEVICE:-cuda} models=${MODELS:-tiny smollm2_135m}
export PACT_TORCH_EXTRA=${PACT_TORCH_EXTRA-}
run() { echo "+ $*" >&2; scripts/env.sh "$@"; }
mkdir -p "$out"

if [ "$bench_device" = cuda ]; then
  run python -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU visible'; print(torch.cuda.get_device_name())"
fi
small_eval=(eval.evaluator.harmful.offline.limit=16 eval.evaluator.harmful.strongreject.limit=16
            eval.evaluator.benign.helpful.limit=8 eval.evaluator.benign.lookalike.limit=8 eval.evaluator.task.limit=16
            eval.generation.max_new_tokens=32)
for model in $models; do
  for trainer in "$gpu" "$ddp"; do
    devices=()
    [ "$trainer" = "$ddp" ] && devices=(trainer.devices=1)
    dir=$out/$model-$trainer
    rm -rf "$dir"
    /usr/bin/time -f "$model $trainer: %e s wall, %M KB peak RSS" scripts/env.sh python -m pact_lightning.train \
      model=$model trainer=$trainer "${devices[@]}" model.dtype=bfloat16 compare_with=[] data.num_samples=64 \
      trainer.max_steps=8 "${small_eval[@]}" hydra.run.dir="$dir" 2>&1 | tee "$dir.log" | tail -3
  done
done

run python -m pact_lightning.bench --device "$bench_device" --models $models --variants sft "pact cached" \
  --steps 10 --warmup 3 --json "$out/bench.json"

run python - "$out" "$bench_device" <<'PY'
import json, re, sys
from pathlib import Path

out, device = Path(sys.argv[1]), sys.argv[2]
bad = []
for results in sorted(out.glob("*/results.json")):
    run = json.loads(results.read_text())
    devices = run["devices"]
    print(f"{results.parent.name}: {devices}, harmful_score={run['final']['harmful_score']}, "
          f"task_acc={run['final']['task_acc']}")
    bad += [f"{results.parent.name} {stage} on {where}" for stage, where in devices.items()
            if stage != "precision" and not where.startswith(device)]
for log in sorted(out.glob("*.log")):
    for line in log.read_text().splitlines():
        match = re.search(r"(alignment|safety tokens|reference cache) on (\S+)", line)
        if match and not match.group(2).startswith(device):
            bad.append(f"{log.stem}: {match.group(1)} on {match.group(2)}")
print("\n".join(["device check: every stage on " + device] if not bad else ["NOT ON " + device + ":"] + bad))
sys.exit(1 if bad else 0)
PY
