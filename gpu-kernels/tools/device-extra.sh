#!/usr/bin/env bash
# Optional second part of the device run. After /work/shared/gpu/prepare.sh, copy this file to
# .gpu-carry/extra.sh (executable); /work/shared/gpu/on-device.sh then runs it from .gpu-carry
# with $OUT as its argument (120 s in all). Each line is one `bench gemm --backend cuda` JSON
# record appended to $OUT/bench-extra.jsonl:
#   - the dp4a kernel on a chip that defaults to tensor cores (MATPROOF_GPU_GEMM=dp4a);
#   - few large tiles (256x256 at n = 8192: 1024 tiles), where leaf_thread_ms and leaf_warp_ms
#     say which leaf kernel is faster and whether LeafKernel::for_tiles picked it;
#   - n = 170, off cuBLASLt's multiple-of-4 rule: cublas_status must be "no_algorithm".
set -uo pipefail
out=${1:-.}
bench() {
  local limit=$1; shift
  timeout "$limit" ./matproof bench gemm --backend cuda --json "$@" 2>&1 | tee -a "$out/bench-extra.jsonl"
}
MATPROOF_GPU_GEMM=dp4a bench 30 --n 4096 --tile 4x4 --runs 5
bench 50 --n 8192 --tile 256x256 --runs 5
bench 20 --n 170 --tile 4x4 --runs 5
