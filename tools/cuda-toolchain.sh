#!/usr/bin/env bash
# Make a CUDA 13.0 build toolchain from PyPI wheels on a machine without a GPU, so that
# `cargo build --features cuda` (candle's CUDA backend) compiles and links here.
# Usage:  tools/cuda-toolchain.sh DIR      (once; ~1.8 GB with cuDNN; needs python3, gcc, cargo)
#         source DIR/env.sh                          (in each shell that builds with cuda)
# Then:   cargo fetch && cargo build --release --features cuda
# Kernels are compiled for sm_90a (H100/H200). The binary needs the NVIDIA driver at run time:
# on a GPU machine point LD_LIBRARY_PATH at a CUDA 13 runtime (cudart, cublas, cublasLt, curand);
# here it cannot start (no libcuda.so.1), which is expected.
set -euo pipefail
ROOT=$(mkdir -p "${1:?usage: cuda-toolchain.sh DIR}" && cd "$1" && pwd)
python3 -m venv "$ROOT/venv"
"$ROOT/venv/bin/pip" install -q \
  nvidia-cuda-nvcc==13.0.88 nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 \
  nvidia-cuda-runtime==13.0.88 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-cublas==13.0.2.14 nvidia-curand==10.4.0.35
CUDA_HOME=$(ls -d "$ROOT"/venv/lib/python3*/site-packages/nvidia/cu13)
# cuDNN for `--features cudnn` (candle links it dynamically): its own wheel and folder.
"$ROOT/venv/bin/pip" install -q nvidia-cudnn-cu13==9.28.1.4
CUDNN_SO=$(find "$ROOT"/venv/lib/python3*/site-packages/nvidia -name 'libcudnn.so.9' | head -1)
CUDNN_HOME=$(dirname "$(dirname "${CUDNN_SO:?the cuDNN wheel holds no libcudnn.so.9}")")
# The wheels ship only versioned sonames; the linker wants unversioned ones.
( cd "$CUDA_HOME/lib"
  for l in cudart cublas cublasLt nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done
  ln -sf libcurand.so.10 libcurand.so; ln -sf "$CUDNN_HOME/lib/libcudnn.so.9" libcudnn.so; mkdir -p stubs )
# No wheel ships the driver library: a link-time stub (every cu* call returns
# CUDA_ERROR_STUB_LIBRARY = 34), the same role as the toolkit's lib64/stubs/libcuda.so.
CUDARC_SRC=$(ls -d ~/.cargo/registry/src/*/cudarc-0.19.* 2>/dev/null | sort | tail -1)
[ -n "$CUDARC_SRC" ] || { echo "run 'cargo fetch' in the project first (cudarc sources needed)"; exit 1; }
grep -ohE "^pub unsafe fn cu[A-Za-z0-9_]+" "$CUDARC_SRC"/src/driver/sys/*.rs | awk '{print $4}' | sort -u \
  | awk '{print "int "$1"(void){return 34;}"}' > "$ROOT/libcuda_stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CUDA_HOME/lib/stubs/libcuda.so" "$ROOT/libcuda_stub.c"
cat > "$ROOT/env.sh" <<ENV
export CUDA_HOME="$CUDA_HOME"
export PATH="$CUDA_HOME/bin:\$PATH"
export CUDA_COMPUTE_CAP=90
export CUDNN_LIB="$CUDNN_HOME/lib"
export CPATH="$CUDNN_HOME/include:\${CPATH:-}"
export LIBRARY_PATH="$CUDA_HOME/lib:$CUDNN_HOME/lib:\${LIBRARY_PATH:-}"
ENV
echo "toolchain ready: source $ROOT/env.sh"
