"""Benchmark: one small file at a time (the labelling workload), dpconv against dpdata.

A dataset built from many single-point calculations is read one file per call, so the per-file
cost (opening, header scans, setting up arrays, validation) matters more than bulk throughput.
For each reader of the CP2K, QE, Gaussian and SIESTA formats, this reads the corpus fixture
(``INDEX.md`` of the fixtures) ``--calls`` times with ``dpconv.LabeledSystem(path, fmt=...)``
and then with ``dpdata.LabeledSystem(path, fmt=...)``, in the same process, alternating for
``--rounds`` rounds, and prints the medians in µs per call and the ratio. Plugin discovery and
imports happen before the timing (one warm-up call each).

    python benchmarks/bench_small_files.py [--calls 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "src"))

CASES = [
    ("cp2k/output", "cp2k_output_fe_o/cp2k_output"),
    ("cp2k/aimd_output", "cp2k_aimd_stress/aimd_stress"),
    ("qe/pw/scf", "qe_pw_scf_ch4/01.out"),
    ("qe/cp/traj", "qe_cp_traj_oh_md/oh-md"),
    ("gaussian/log", "gaussian_log_methane/methane.gaussianlog"),
    ("gaussian/md", "gaussian_md_ch4/aimd_gaussian_CH4_output"),
    ("siesta/output", "siesta_output_ch4/siesta_output"),
    ("siesta/aimd_output", "siesta_aimd_si64/output"),
]


def per_call(fn, path: str, fmt: str, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(path, fmt=fmt)
    return (time.perf_counter() - t0) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100, help="reads per round and tool (default 100)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians are printed (default 5)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # both tools warn about the corpus' truncated last frames
    import dpdata

    import dpconv
    from dpconv.testing import fixtures_dir

    dpconv.registry.all_formats()
    base = fixtures_dir()
    print(f"fixtures {base}; {args.calls} calls x {args.rounds} rounds per tool; load {os.getloadavg()[0]:.2f}")
    print(f"{'format':20s} {'frames':>6s} {'dpconv us':>10s} {'dpdata us':>10s} {'speed-up':>9s}")
    for fmt, rel in CASES:
        path = os.path.join(base, rel)
        if not os.path.exists(path) and not os.path.exists(path + ".in"):
            print(f"{fmt:20s} skipped: {path} not found")
            continue
        n = len(dpconv.LabeledSystem(path, fmt=fmt))
        dpdata.LabeledSystem(path, fmt=fmt)
        ours, theirs = [], []
        for _ in range(args.rounds):
            ours.append(per_call(dpconv.LabeledSystem, path, fmt, args.calls))
            theirs.append(per_call(dpdata.LabeledSystem, path, fmt, args.calls))
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"{fmt:20s} {n:6d} {a * 1e6:10.0f} {b * 1e6:10.0f} {b / a:8.2f}x")
    print(f"load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
