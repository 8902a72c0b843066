#!/usr/bin/env python3
"""Peer figure for matproof's CPU int8 GEMM: onnxruntime `MatMulInteger` (MLAS kernels).

Run by hand (not in CI), in the same session as `matproof bench gemm --json` or
`cargo run --release -p matproof-benches --example cpu_gemm`:

    python3 -m venv target/ort-venv && target/ort-venv/bin/pip install onnxruntime onnx numpy
    target/ort-venv/bin/python benches/onnxruntime_gemm.py --shape 2048 --types u8s8 --runs 7

Builds a two-input ONNX graph `Y = MatMulInteger(A, B)` (no zero points, so Y = A·B exactly in
int32), runs it once and checks Y against numpy's exact product (float64 BLAS, exact at
these sizes, and a few rows in int64), then prints one JSON
line per shape and input type pair: the median and minimum seconds of the timed runs and
GOP/s (2·m·k·n / s), and the CPU seconds per run of all threads (`cpu_s`; `gops_per_cpu` is
the throughput were every thread on a CPU of its own all the time, which on a shared, loaded
machine says more about the kernel than wall time does). `u8s8` is A uint8 × B int8 (the pair MLAS has VNNI kernels for); `s8s8`
is int8 × int8. Both inputs are graph inputs, not initializers, so onnxruntime packs B on
every call, as matproof does.

Shapes: `N` (N×N×N) or `MxKxN`.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

TYPES = {"u8s8": (np.uint8, np.int8), "s8s8": (np.int8, np.int8), "u8u8": (np.uint8, np.uint8)}
ONNX_TYPE = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}


def parse_shape(text):
    parts = [int(x) for x in text.lower().split("x")]
    if len(parts) == 1:
        return parts[0], parts[0], parts[0]
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"shape {text!r}: expected N or MxKxN")
    return tuple(parts)


def build_session(a_type, b_type, threads, spinning):
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])],
        "matmul_integer",
        [
            helper.make_tensor_value_info("A", ONNX_TYPE[a_type], ["m", "k"]),
            helper.make_tensor_value_info("B", ONNX_TYPE[b_type], ["k", "n"]),
        ],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, ["m", "n"])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # By default idle worker threads sleep instead of spinning, so that the CPU time reported
    # (cpu_s) is the work done, as for matproof's rayon pool; --spinning keeps onnxruntime's
    # default (spinning), for its best wall time.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def draw(rng, dtype, shape):
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape, dtype=dtype)


def bench_one(m, k, n, types, runs, threads, rng, spinning=False):
    a_type, b_type = TYPES[types]
    session = build_session(a_type, b_type, threads, spinning)
    a = draw(rng, a_type, (m, k))
    b = draw(rng, b_type, (k, n))
    feeds = {"A": a, "B": b}
    (y,) = session.run(None, feeds)  # warm-up, and the exactness check
    # The exact product, through float64 BLAS: every entry and partial sum is an integer of
    # magnitude at most k·2^15 < 2^53, so float64 holds it exactly (numpy's int64 matmul has no
    # BLAS and takes minutes at n = 4096); spot-checked against int64 arithmetic below.
    want = a.astype(np.float64) @ b.astype(np.float64)
    exact = y.dtype == np.int32 and np.array_equal(y.astype(np.float64), want)
    rows = rng.integers(0, m, size=4)
    exact = exact and np.array_equal(y[rows].astype(np.int64), a[rows].astype(np.int64) @ b.astype(np.int64))
    if not exact:
        raise SystemExit(f"onnxruntime MatMulInteger {types} at {m}x{k}x{n} differs from the exact product")
    times = []
    cpu_start = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(time.perf_counter() - start)
    cpu_s = (time.process_time() - cpu_start) / runs
    median = statistics.median(times)
    ops = 2 * m * k * n
    return {
        "bench": "onnxruntime_matmul_integer", "types": types, "m": m, "k": k, "n": n,
        "threads": threads, "runs": runs, "median_s": median, "min_s": min(times),
        "gops": ops / median / 1e9, "gops_best": ops / min(times) / 1e9, "cpu_s": cpu_s,
        "gops_per_cpu": ops / (cpu_s / threads) / 1e9, "exact": exact,
        "onnxruntime": ort.__version__, "nproc": os.cpu_count(), "spinning": spinning,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=parse_shape, action="append",
                        help="N or MxKxN (repeatable; default 1024, 2048, 4096, 64x4096x4096)")
    parser.add_argument("--types", choices=sorted(TYPES), action="append", help="repeatable; default u8s8 and s8s8")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--spinning", action="store_true", help="let idle worker threads spin (onnxruntime's default)")
    args = parser.parse_args()
    shapes = args.shape or [(1024,) * 3, (2048,) * 3, (4096,) * 3, (64, 4096, 4096)]
    rng = np.random.default_rng(1)
    for m, k, n in shapes:
        for types in args.types or ["u8s8", "s8s8"]:
            print(json.dumps(bench_one(m, k, n, types, args.runs, args.threads, rng, args.spinning)), flush=True)


if __name__ == "__main__":
    main()
