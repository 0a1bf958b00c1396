"""Benchmark: dpconv vs dpdata on a long Gaussian trajectory log and a long SIESTA MD output.

The inputs are built in a temporary folder by repeating the complete frames of
the corpus files ``gaussian_md_ch4`` (22 ADMP steps of CH4) and
``siesta_aimd_si64`` (5 MD steps of 64 Si) to ``--mb`` megabytes each
(default 200). The issue asks for 1 GB runs: ``--mb 1000`` (dpdata then takes
minutes and several GB of memory).

Rows: reading into a LabeledSystem with each tool, and dpconv's streaming
``convert`` to deepmd/npy. Each measurement runs in a fresh process
(see ``_harness.py``); imports are outside the timed call. ``import dpdata``
registers all its formats then, while dpconv discovers its format plugins on
first use (about 0.1 s: entry points, importlib.metadata); the dpconv child
therefore runs that discovery with its imports (``registry.all_formats()``)
so that both sides are timed alike. ``--cold`` leaves it inside the timed
call. ``--repeat N`` measures every row N times (the machine is shared and
noisy; report medians).

    python benchmarks/bench_gaussian_siesta.py --mb 100 --only gaussian --repeat 3
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, run_cases

from dpconv.testing import fixtures_dir

GAUSSIAN = ("gaussian_md_ch4", "aimd_gaussian_CH4_output")
SIESTA = ("siesta_aimd_si64", "output")
FORCES = b"Atomic                   Forces (Hartrees/Bohr)"


def _repeat(dst: str, head: bytes, body: bytes, tail: bytes, target: int) -> None:
    with open(dst, "wb") as out:
        out.write(head)
        written = len(head)
        while written < target:
            out.write(body)
            written += len(body)
        out.write(tail)


def _table_end(blob: bytes, header: int) -> int:
    """End (after the newline) of the dashed forces table whose header is at ``header``."""
    opening = blob.index(b"\n -----", header)
    closing = blob.index(b"\n -----", opening + 1)
    return blob.index(b"\n", closing + 1) + 1


def build_gaussian(dst: str, target: int) -> None:
    """Header and frame 0, then frames 1..21 repeated, then a normal termination."""
    with open(os.path.join(fixtures_dir(), *GAUSSIAN), "rb") as fh:
        blob = fh.read()
    starts = [m.start() for m in re.finditer(re.escape(FORCES), blob)]
    cut0, end = _table_end(blob, starts[0]), _table_end(blob, starts[-1])
    tail = b" Normal termination of Gaussian 09 at Thu Jan  1 00:00:00 2024.\n"
    _repeat(dst, blob[:cut0], blob[cut0:end], tail, target)


def build_siesta(dst: str, target: int) -> None:
    """Header, then the 5 MD steps repeated."""
    with open(os.path.join(fixtures_dir(), *SIESTA), "rb") as fh:
        blob = fh.read()
    first = blob.index(b"outcoor: Atomic coordinates")
    first = blob.rindex(b"siesta:                 ====", 0, first)
    _repeat(dst, blob[:first], blob[first:], b"", target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200.0, help="size of each input in MB (issue target: 1000)")
    ap.add_argument("--workdir", default=None, help="where to build the inputs (default: a temp dir)")
    ap.add_argument("--only", choices=("gaussian", "siesta"), default=None, help="run the rows of one code only")
    ap.add_argument("--repeat", type=int, default=1, help="measure every row this many times (the machine is noisy)")
    ap.add_argument("--cold", action="store_true", help="time dpconv's plugin discovery inside the call")
    args = ap.parse_args()
    target = int(args.mb * 1e6)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        glog = os.path.join(tmp, "ch4_admp.log")
        sout = os.path.join(tmp, "si64_md.out")
        if args.only != "siesta":
            build_gaussian(glog, target)
        if args.only != "gaussian":
            build_siesta(sout, target)
        read = "import warnings\nwarnings.simplefilter('ignore')\ns = {cls}(PATH, fmt={fmt!r})\nNFRAMES = len(s)"
        conv = "n = dpconv.convert(PATH, OUT, in_fmt={fmt!r}, out_fmt='deepmd/npy')\nNFRAMES = sum(n.values())"
        dpd_npy = "s = dpdata.LabeledSystem(PATH, fmt={fmt!r})\ns.to('deepmd/npy', OUT)\nNFRAMES = len(s)"
        imports = "import dpconv" if args.cold else "import dpconv\ndpconv.registry.all_formats()"
        cases = []
        for name, path, fmt in (
            ("gaussian/md", glog, "gaussian/md"),
            ("siesta/aimd_output", sout, "siesta/aimd_output"),
        ):
            if args.only and not name.startswith(args.only):
                continue
            cases.append(
                Case(
                    name,
                    path,
                    read.format(cls="dpconv.LabeledSystem", fmt=fmt),
                    read.format(cls="dpdata.LabeledSystem", fmt=fmt),
                    dpconv_imports=imports,
                )
            )
            cases.append(
                Case(name + " -> npy", path, conv.format(fmt=fmt), dpd_npy.format(fmt=fmt), dpconv_imports=imports)
            )
        run_cases([c for c in cases for _ in range(max(1, args.repeat))], workdir=tmp)


if __name__ == "__main__":
    main()
