#!/bin/bash
# The GPU self-check, run from the repository root with only the resnet-audit binary and the
# committed fixtures (no network, no Python):
#   tests/gpu/check.sh [--device cpu|cuda:N] [--bin PATH|PATH.gz] [--quick]
# Results: $OUT/gpu-check.json and $OUT/gpu-check.md (OUT defaults to target/gpu-check).
# Exit status: 0 every judged check passed, 1 a check failed, 2 the check could not run.
# On the CPU (`--device cpu`, which tests this script and the checks themselves) it runs quick.
set -euo pipefail
device=cuda:0
bin=target/release/resnet-audit
quick=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    *) echo "usage: $0 [--device cpu|cuda:N] [--bin PATH] [--quick]" >&2; exit 2 ;;
  esac
done
out="${OUT:-target/gpu-check}"
mkdir -p "$out"
# The carried CUDA binary is gzipped (make gpu-check-build): unpacked beside the results, not in $OUT.
if [ "${bin%.gz}" != "$bin" ] && [ -f "$bin" ]; then
  unpacked="$(mktemp -d)/resnet-audit"
  gzip -dc "$bin" > "$unpacked" && chmod +x "$unpacked"
  bin="$unpacked"
fi
[ -x "$bin" ] || { echo "no executable at $bin (make build, or make gpu-check-build for CUDA)" >&2; exit 2; }
[ -f fixtures/parity/inputs.safetensors ] || { echo "run from the repository root" >&2; exit 2; }
# A CUDA 13 runtime (cudart, cublas, cublasLt, curand) where none is on the library path: the
# one an installed PyTorch carries (its nvidia/*/lib folders), found without running Python.
if [ "$device" != cpu ] && ! ldconfig -p 2>/dev/null | grep -q 'libcublas.so.13'; then
  for lib in $(find /usr /opt /root -maxdepth 8 -path '*nvidia*' -name 'libcublas.so.13' 2>/dev/null | head -1); do
    dir=$(dirname "$lib")
    extra=$(find "$dir/../.." -maxdepth 3 -type d -name lib 2>/dev/null | tr '\n' ':')
    export LD_LIBRARY_PATH="$dir:$extra${LD_LIBRARY_PATH:-}"
    echo "gpu-check: CUDA libraries from $dir"
  done
fi
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$out/nvidia-smi.csv" || true
fi
echo "gpu-check: $bin on $device, results in $out"
start=$(date +%s)
status=0
# Bounded, so one run fits a 10-minute slot (exit 124 when cut).
timeout "${GPU_CHECK_SECONDS:-480}" "$bin" -q gpu-check --device "$device" --out "$out" "${quick[@]}" || status=$?
echo "gpu-check: $(( $(date +%s) - start )) s, exit status $status"
exit "$status"
