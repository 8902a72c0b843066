#!/usr/bin/env bash
# matproof's CPU GEMM against onnxruntime's MatMulInteger, alternating, one session; run by
# hand (not in CI) from the repository root:
#
#   python3 -m venv target/ort-venv && target/ort-venv/bin/pip install onnxruntime onnx numpy
#   benches/cpu_vs_onnxruntime.sh 7 > target/cpu_vs_ort.jsonl
#   target/ort-venv/bin/python benches/summarize_gemm.py target/cpu_vs_ort.jsonl
#
# Each round runs every configuration once per shape, in turn: onnxruntime u8s8 (its default
# kernel: AMX where the CPU has it), onnxruntime u8s8 with AMX refused (AVX-512 VNNI), the
# matproof paths, and onnxruntime s8s8 (3 runs, and only in the first S8S8_ROUNDS rounds: at
# about 40 GOP/s it takes seconds a run). One JSON line per figure, plus a {"round", "uptime"}
# line per round for the load.
set -euo pipefail
rounds="${1:-7}"
runs="${RUNS:-9}"
s8s8_rounds="${S8S8_ROUNDS:-2}"
py=target/ort-venv/bin/python
shapes=(1024 2048 4096 64x4096x4096)
cc -O2 -shared -fPIC benches/onnxruntime_no_amx.c -o target/onnxruntime_no_amx.so -ldl
cargo build --release -q -p matproof-benches --example cpu_gemm
paths=()
for p in amx-int8 avx512-vnni avx2; do paths+=(--path "$p"); done
for round in $(seq 1 "$rounds"); do
  echo "{\"round\": $round, \"uptime\": \"$(uptime)\", \"date\": \"$(date -u +%FT%TZ)\"}"
  for shape in "${shapes[@]}"; do
    $py benches/onnxruntime_gemm.py --shape "$shape" --types u8s8 --runs "$runs"
    LD_PRELOAD="$PWD/target/onnxruntime_no_amx.so" $py benches/onnxruntime_gemm.py --shape "$shape" --types u8s8 \
      --runs "$runs" | sed 's/"types": "u8s8"/"types": "u8s8-no-amx"/'
    target/release/examples/cpu_gemm --shape "$shape" "${paths[@]}" --runs "$runs"
    if [ "$round" -le "$s8s8_rounds" ]; then
      $py benches/onnxruntime_gemm.py --shape "$shape" --types s8s8 --runs 3
    fi
  done
done
