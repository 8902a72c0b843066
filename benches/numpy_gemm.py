#!/usr/bin/env python3
"""Peer figure for `matproof bench gemm`: numpy float32 `A @ B` (OpenBLAS from PyPI).

Run by hand (not in CI), in the same session as `matproof bench gemm --n N --json`:

    python3 -m venv target/numpy-venv && target/numpy-venv/bin/pip install numpy threadpoolctl
    target/numpy-venv/bin/python benches/numpy_gemm.py --n 2048 --runs 7

Prints one JSON object like matproof's: median seconds of the timed runs and GFLOP/s
(2·n³ / s), plus which BLAS and how many threads ran. Float32 is the fair peer: it is what
users would run instead, and int8 values are exact in it for small k.
"""
import argparse
import json
import statistics
import time

import numpy as np

try:
    from threadpoolctl import threadpool_info
except ImportError:  # optional
    threadpool_info = None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    n = args.n
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, size=(n, n), dtype=np.int8).astype(np.float32)
    b = rng.integers(-128, 128, size=(n, n), dtype=np.int8).astype(np.float32)
    a @ b  # warm-up
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    blas = threadpool_info() if threadpool_info else []
    print(json.dumps({
        "bench": "numpy_f32_matmul", "n": n, "runs": args.runs, "median_s": median,
        "gflops": 2 * n ** 3 / median / 1e9, "numpy": np.__version__,
        "blas": [{k: v for k, v in info.items() if k in ("internal_api", "version", "num_threads", "architecture")} for info in blas],
    }))


if __name__ == "__main__":
    main()
