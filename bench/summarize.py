#!/usr/bin/env python3
"""Prints each benchmark of a Google Benchmark JSON file as overhead over the raw call.

Usage: summarize.py bench.json
Figures are medians when the run has repetitions, otherwise the single run. The overhead of a
benchmark is its time minus raw_call's time from the same run; the machines are shared and
noisy, so only figures from one run are compared with each other.
"""
import json
import sys


def main(path):
    with open(path) as f:
        report = json.load(f)
    times = {}
    for b in report["benchmarks"]:
        name = b.get("run_name", b["name"])
        aggregate = b.get("aggregate_name")
        if aggregate not in (None, "median"):
            continue
        if aggregate is None and name in times:
            continue  # keep the median when both are present
        unit = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        times[name] = b["real_time"] * unit
    raw = times.get("raw_call")
    ctx = report.get("context", {})
    print(f"host: {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} cpus "
          f"at {ctx.get('mhz_per_cpu', '?')} MHz, build {ctx.get('library_build_type', '?')}")
    if raw is None:
        print("no raw_call benchmark in this run: printing absolute times only")
    print(f"{'benchmark':48} {'time ns':>10} {'overhead ns':>12} {'x raw':>8}")
    for name, t in times.items():
        if raw is None:
            print(f"{name:48} {t:10.2f}")
        else:
            print(f"{name:48} {t:10.2f} {t - raw:12.2f} {t / raw if raw else 0:8.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
