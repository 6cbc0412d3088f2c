#!/usr/bin/env bash
# The GPU check, run on a GPU machine from the repository root of a checkout (written into
# target/gpu-harness/run.sh by `cargo xtask gpu-check`; see xtask/src/gpu_check.rs).
#
#     bash target/gpu-harness/run.sh [LOG_DIR]
#
# The whole output also goes to LOG_DIR/gpu-check.log.
# Needs: an NVIDIA driver (libcuda), NVRTC 13 and cuBLAS 13 (found below in the usual CUDA 13
# install folders and pip wheels, or already on LD_LIBRARY_PATH). Writes gpu-tests.log and
# gpu-parity.log and gpu-timings.log into LOG_DIR (default: this folder). Exit status: non-zero if any test failed.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
logs="${1:-$here}"
mkdir -p "$logs"

for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    /usr/local/cuda-13*/lib64 /opt/torch/.venv/lib/python3*/site-packages/nvidia/cu13/lib \
    /opt/torch/.venv/lib/python3*/site-packages/nvidia/cublas/lib \
    /opt/torch/.venv/lib/python3*/site-packages/nvidia/cuda_nvrtc/lib; do
    [[ -d "$d" ]] && LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export LD_LIBRARY_PATH
export VARS_REQUIRE_GPU=1
export VARS_FIXTURES="$root/fixtures/official"
export VARS_CUDA_CACHE_DIR="${VARS_CUDA_CACHE_DIR:-$here/kernel-cache}"

exec > >(tee "$logs/gpu-check.log") 2>&1
echo "== gpu-check at $(date -u +%Y-%m-%dT%H:%M:%SZ) in $root"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || true
for lib in libcuda.so.1 libnvrtc.so.13 libcublas.so.13; do
    found="$(ldconfig -p 2>/dev/null | grep -m1 "$lib" | sed 's/.*=> //')"
    if [[ -z "$found" ]]; then
        found="$(IFS=:; for d in $LD_LIBRARY_PATH; do [[ -e "$d/$lib" ]] && echo "$d/$lib" && break; done)"
    fi
    echo "$lib: ${found:-NOT FOUND}"
done

status=0
echo "== tests (kernels, shared backend suite, op families, official parity fixtures)"
timeout 240 "$here/gpu-tests" --test-threads=4 2>&1 | tee "$logs/gpu-tests.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
echo "== official parity fixtures on CUDA (reports)"
timeout 60 "$here/gpu-tests" --exact parity::official_fixtures_on_cuda --nocapture 2>&1 \
    | tee "$logs/gpu-parity.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
echo "== timings"
timeout 150 "$here/gpu-timings" 2>&1 | tee "$logs/gpu-timings.log"
[[ ${PIPESTATUS[0]} -eq 0 ]] || status=1
echo "== gpu-check finished with status $status"
exit $status
