"""Benchmark of the CP2K AIMD reader: dpconv against dpdata on the same run folders.

Two folders are built in a temporary directory by repeating real frames with
renumbered steps (the reader matches frames by step, so repeats must be new steps):

* ``v71-log``: the corpus case ``cp2k_aimd_stress`` (CP2K 7.1): ``cp2k.log`` at print
  level MEDIUM whose step-1 block (SCF, energy, forces, stress tensor, ``STEP NUMBER``
  summary) is repeated, plus ``DPGEN-pos-1.xyz`` with one frame per step. Both tools read
  energies, forces and virials from the log here, so the rows compare like with like.
* ``2023-frc``: our CP2K 2023.1 methane run (``examples/methane_cp2k``): pos, frc, ener,
  cell and stress files plus ``input.inp`` (no log). dpdata cannot read this folder (it
  needs a log, and fails on the 2023 ``MD_INI|``/``MD|`` log layout), so only dpconv runs.

Usage::

    python benchmarks/bench_cp2k.py            # about 200 MB per folder
    python benchmarks/bench_cp2k.py --mb 100
    python benchmarks/bench_cp2k.py --mb 1000  # the 1 GB runs the issue asks for
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, measure, run_cases

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _fixtures() -> str:
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from dpconv.testing import fixtures_dir

    return fixtures_dir()


def build_v71_log(dst: str, target_bytes: int) -> int:
    """Folder with a CP2K 7.1 log of many MD steps and the matching pos trajectory; returns frames."""
    src = os.path.join(_fixtures(), "cp2k_aimd_stress", "aimd_stress")
    with open(os.path.join(src, "cp2k.log")) as fh:
        log = fh.read()
    go = [m.end() for m in re.finditer(r"^ \*+ GO CP2K GO! \*+\n", log, re.M)]
    head_end = go[1]  # the initial summary closes here
    m1 = re.search(r"^ STEP NUMBER\s+=\s+1\n.*?^ \*+\n", log[head_end:], re.M | re.S)
    assert m1 is not None
    block = log[head_end : head_end + m1.end()]
    num = re.search(r"(STEP NUMBER\s+=\s+)(1)\n", block)
    assert num is not None
    pre, post = block[: num.start(2)], block[num.end(2) :]
    energy = re.search(r"POTENTIAL ENERGY\[hartree\]\s+=\s+(\S+)", post)
    assert energy is not None
    e_step = float(energy.group(1))
    with open(os.path.join(src, "DPGEN-pos-1.xyz")) as fh:
        lines = fh.read().splitlines()
    atoms = "\n".join(lines[2:]) + "\n"
    e0 = float(re.search(r"E =\s*(\S+)", lines[1]).group(1))  # type: ignore[union-attr]
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "input.inp"), dst)
    nsteps = max(1, (target_bytes - head_end) // len(block))
    with open(os.path.join(dst, "cp2k.log"), "w") as out:
        out.write(log[:head_end])
        for n in range(1, nsteps + 1):
            out.write(pre + str(n) + post)
    with open(os.path.join(dst, "DPGEN-pos-1.xyz"), "w") as out:
        for n in range(nsteps + 1):
            e = e0 if n == 0 else e_step
            out.write(f"{lines[0]}\n i = {n:8d}, time = {0.5 * n:12.3f}, E = {e:20.10f}\n{atoms}")
    return nsteps + 1


def build_2023_frc(dst: str, target_bytes: int) -> int:
    """Folder of pos/frc/ener/cell/stress files repeating the methane run's frames; returns frames."""
    src = os.path.join(ROOT, "examples", "methane_cp2k")
    os.makedirs(dst)
    shutil.copy(os.path.join(src, "input.inp"), dst)

    def frames(name: str) -> list[str]:
        with open(os.path.join(src, name)) as fh:
            lines = fh.read().splitlines()
        n = int(lines[0]) + 2
        return ["\n".join(lines[k + 2 : k + n]) + "\n" for k in range(0, len(lines) - n + 1, n)]

    pos, frc = frames("methane-pos-1.xyz"), frames("methane-frc-1.xyz")
    tables = {ext: np.loadtxt(os.path.join(src, f"methane-1.{ext}")) for ext in ("ener", "cell", "stress")}
    per_frame = sum(len(x) + 60 for x in (pos[0], frc[0])) + sum(len(" ".join(map(str, t[0]))) for t in tables.values())
    total = max(len(pos), target_bytes // per_frame)
    k = len(pos)
    with (
        open(os.path.join(dst, "methane-pos-1.xyz"), "w") as fp,
        open(os.path.join(dst, "methane-frc-1.xyz"), "w") as ff,
    ):
        for n in range(total):
            head = f"       5\n i = {n:8d}, time = {0.5 * n:12.3f}, E = {tables['ener'][n % k, 4]:20.10f}\n"
            fp.write(head + pos[n % k])
            ff.write(head + frc[n % k])
    for ext, t in tables.items():
        rows = t[np.arange(total) % k].copy()
        rows[:, 0] = np.arange(total)
        rows[:, 1] = 0.5 * np.arange(total)
        np.savetxt(os.path.join(dst, f"methane-1.{ext}"), rows, fmt="%.10f", header="Step Time ...")
    return total


DPCONV_READ = """
s = dpconv.LabeledSystem(PATH, fmt="cp2k/aimd_output")
NFRAMES = len(s)
"""
DPDATA_READ = """
s = dpdata.LabeledSystem(PATH, fmt="cp2k/aimd_output")
NFRAMES = len(s)
"""
DPCONV_CONVERT = """
dpconv.convert(PATH, OUT, in_fmt="cp2k/aimd_output", out_fmt="deepmd/npy")
NFRAMES = len(dpconv.LabeledSystem(OUT, fmt="deepmd/npy"))
"""
DPDATA_CONVERT = """
s = dpdata.LabeledSystem(PATH, fmt="cp2k/aimd_output")
s.to_deepmd_npy(OUT)
NFRAMES = len(s)
"""
WARN_OFF = "import warnings; warnings.simplefilter('ignore')\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200.0, help="size of each built folder in MB (default 200)")
    ap.add_argument("--workdir", default=None, help="where to build the inputs (default: system temp)")
    args = ap.parse_args()
    target = int(args.mb * 1e6)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        v71 = os.path.join(tmp, "v71-log")
        n71 = build_v71_log(v71, target)
        frc = os.path.join(tmp, "2023-frc")
        n23 = build_2023_frc(frc, target)
        print(f"built {v71} ({n71} frames) and {frc} ({n23} frames)\n")
        imports_c, imports_d = WARN_OFF + "import dpconv", WARN_OFF + "import dpdata"
        run_cases(
            [
                Case("cp2k/aimd v7.1 log", v71, DPCONV_READ, DPDATA_READ, imports_c, imports_d),
                Case("  convert -> npy", v71, DPCONV_CONVERT, DPDATA_CONVERT, imports_c, imports_d),
            ],
            workdir=tmp,
        )
        print("\ndpconv alone (dpdata cannot read a CP2K 2023 folder: it needs a log and fails on MD_INI|/MD|):")
        for name, code in (("cp2k/aimd 2023 frc", DPCONV_READ), ("  convert -> npy", DPCONV_CONVERT)):
            out = os.path.join(tmp, "out-" + name.strip().replace(" ", "_").replace("/", "_"))
            r = measure(frc, imports_c, code, out)
            size = sum(os.path.getsize(os.path.join(frc, f)) for f in os.listdir(frc)) / 1e6
            if "error" in r:
                print(f"{name:22} {size:9.1f}  dpconv: {r['error']}")
            else:
                print(
                    f"{name:22} {size:9.1f} {int(r['frames']):7d} {r['seconds']:9.2f} s {r['peak_mb']:10.0f} MB "
                    f"({r['frames'] / r['seconds']:,.0f} frames/s, {size / r['seconds']:.0f} MB/s)"
                )


if __name__ == "__main__":
    main()
