#!/usr/bin/env python3
"""Summarizes the JSON lines of benches/cpu_vs_onnxruntime.sh as a Markdown table.

    python3 benches/summarize_gemm.py target/cpu_vs_ort.jsonl

Per shape and configuration: the median over rounds of each round's median GOP/s, the range
over rounds, the median of the CPU-time-normalized GOP/s (`gops_per_cpu`), and the ratio of
matproof's best path to onnxruntime u8s8 (default kernels) at each; then the load per round.
"""
import json
import statistics
import sys
from collections import defaultdict


def main():
    figures = defaultdict(list)
    loads = []
    for line in open(sys.argv[1]):
        line = line.strip()
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if "round" in record:
            loads.append((record["round"], record["uptime"].split("load average:")[-1].strip()))
            continue
        shape = f'{record["m"]}x{record["k"]}x{record["n"]}'
        who = f'onnxruntime {record["types"]}' if "types" in record else f'matproof {record["path"]}'
        figures[(shape, who)].append(record)
    shapes = sorted({s for s, _ in figures}, key=lambda s: [int(x) for x in s.split("x")])
    print("| shape m×k×n | implementation | GOP/s (median of rounds) | range | GOP/s per CPU time | vs onnxruntime u8s8 |")
    print("|---|---|---|---|---|---|")
    for shape in shapes:
        ort = figures.get((shape, "onnxruntime u8s8"))
        ort_median = statistics.median(r["gops"] for r in ort) if ort else None
        for (s, who), records in sorted(figures.items()):
            if s != shape:
                continue
            gops = [r["gops"] for r in records]
            per_cpu = statistics.median(r["gops_per_cpu"] for r in records)
            median = statistics.median(gops)
            ratio = f"{median / ort_median:.2f}×" if ort_median else "—"
            print(f"| {shape} | {who} | {median:.0f} | {min(gops):.0f}–{max(gops):.0f} | {per_cpu:.0f} | {ratio} |")
    print()
    for round_no, load in loads:
        print(f"round {round_no}: load average {load}")


if __name__ == "__main__":
    main()
