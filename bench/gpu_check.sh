#!/usr/bin/env bash
# The GPU check in one shot, on a machine with CUDA (NOT YET RUN ON A GPU: written and checked on
# a CPU-only machine, so expect to fix small things on its first run):
#   1. the kernel tests compiled for the GPU (TRITON_INTERPRET=0), engine-level ones included:
#      tests/backend/kernels/test_engine_kernels.py then captures and replays real CUDA graphs;
#   2. the engine's correctness tests on CUDA, where kernels "auto" means triton and decode runs
#      under CUDA graphs (checked before they start);
#   3. bench/kernels.py (attention bandwidth, decode tokens/s with and without CUDA graphs).
# Everything goes to bench/results/gpu-check-<device>/: one log per step, kernels.json, summary.txt.
#
#   bench/gpu_check.sh            # all of it
#   bench/gpu_check.sh --quick    # bench/kernels.py --quick (fewer shapes, no whole-engine runs)
#
# PYTHON (default .venv/bin/python) and STEP_TIMEOUT_S (default 1200) may be set.
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
STEP_TIMEOUT_S=${STEP_TIMEOUT_S:-1200}
bench_flags=()
[[ "${1:-}" == "--quick" ]] && bench_flags+=(--quick)

export TRITON_INTERPRET=0
device=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name(0))' 2>/dev/null) \
  || { echo "gpu_check: no CUDA device visible to $PYTHON" >&2; exit 2; }
slug=$(printf '%s' "$device" | tr '[:upper:] ' '[:lower:]-' | tr -cd 'a-z0-9._-')
out=bench/results/gpu-check-$slug
mkdir -p "$out"
summary=$out/summary.txt

{
  echo "device: $device"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "git: $(git rev-parse HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"
  "$PYTHON" -c 'import torch, triton; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, triton {triton.__version__}")'
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
} > "$summary"

failed=0
step() {  # step NAME COMMAND...: run it with a timeout, log to $out/NAME.log, note the outcome
  local name=$1 start rc
  shift
  echo "== $name: $*"
  start=$(date +%s)
  timeout "$STEP_TIMEOUT_S" "$@" > "$out/$name.log" 2>&1
  rc=$?
  tail -n 3 "$out/$name.log"
  echo "$name: exit $rc after $(($(date +%s) - start)) s" | tee -a "$summary"
  [[ $rc -eq 0 ]] || failed=1
}

# What "auto" resolves to here: the engine tests below are only a GPU check if it is triton.
step config "$PYTHON" -c '
import torch
from backend.engine_config import EngineConfig
config, cuda = EngineConfig(), torch.device("cuda")
kernels, graphs = config.resolved_kernels(cuda), config.uses_cuda_graphs(cuda)
print(f"kernels auto -> {kernels}, cuda_graphs -> {graphs}")
assert kernels == "triton" and graphs, "the engine tests would not exercise the kernels"
'
step kernel-tests "$PYTHON" -m pytest -q -p no:cacheprovider -o timeout=900 tests/backend/kernels
step engine-correctness "$PYTHON" -m pytest -q -p no:cacheprovider \
  tests/backend/test_engine_correctness.py
# --skip-engine: its CPU int8 engine run would land on the GPU here, under a CPU label.
step bench-kernels "$PYTHON" bench/kernels.py --skip-engine --out "$out/kernels.json" \
  "${bench_flags[@]}"

echo "results: $out (summary.txt)"
cat "$summary"
exit $failed
