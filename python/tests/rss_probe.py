"""Peak RSS (VmHWM) of this process before and after passing 64 MiB int8 arrays to
matproof: a call that copied an input would raise the peak by its size.

    python python/tests/rss_probe.py commit|copy|open_job [--n 8192] \
        [--verifier URL --identity PATH --provider HEX]

One measurement per process (a peak, once raised, hides what follows). Prints one JSON
object: the arrays' size and the peak's growth in MiB over the call: `commit` (sha256),
`open_job` (full mode: A and B uploaded from the arrays' buffers; needs a node and a funded
identity) or `copy` (the control: a deliberate copy of A, which the measure must show).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

import matproof

N = 8192  # 8192 × 8192 int8 = 64 MiB per matrix


def vm_hwm_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def growth_mib(call) -> float:
    before = vm_hwm_kib()
    call()
    return (vm_hwm_kib() - before) / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("measure", choices=["commit", "open_job", "copy"])
    parser.add_argument("--n", type=int, default=N, help="the matrices' side (default 8192: 64 MiB each)")
    parser.add_argument("--verifier")
    parser.add_argument("--identity")
    parser.add_argument("--provider")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    a = rng.integers(-128, 128, (args.n, args.n), dtype=np.int8)
    b = rng.integers(-128, 128, (args.n, args.n), dtype=np.int8)
    # Warm the library (thread pools, runtime, connection) on small data so their start is
    # not counted.
    small = np.ones((64, 64), dtype=np.int8)
    matproof.commit(small, small, scheme="sha256")
    client = None
    if args.measure == "open_job":
        client = matproof.Client(args.verifier, args.identity)
        client.open_job(small, small, provider=args.provider, price=1)
    calls = {
        "commit": lambda: matproof.commit(a, b, tile=(4, 4), scheme="sha256"),
        "open_job": lambda: client.open_job(a, b, provider=args.provider, price=1),
        "copy": lambda: a.copy()[0, 0],
    }
    result = {"measure": args.measure, "input_mib": a.nbytes / 2**20, "baseline_hwm_mib": vm_hwm_kib() / 1024}
    result["growth_mib"] = growth_mib(calls[args.measure])
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
