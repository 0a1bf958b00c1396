"""Benchmark: LAMMPS dump reading and dump -> deepmd/npy conversion, dpconv vs dpdata.

Builds a dump of ``--natoms`` atoms (default 100k) in a triclinic box: a few
distinct frames are written by dpconv's ``lammps/dump`` writer (the layout LAMMPS
writes for ``dump custom ... id type x y z``, atoms listed out of id order as in
parallel runs), then repeated to about ``--mb`` megabytes. The issue asks for a
1 GB run: ``python benchmarks/bench_lammps.py --mb 1000``; the default (200 MB)
keeps a development run short.

Rows: ``lammps/dump read`` (System(...) in both tools) and ``dump->deepmd/npy``
(dpconv.convert streaming vs dpdata System(...).to_deepmd_npy).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, repeat_file, run_cases


def build_dump(path: str, natoms: int, target_mb: float, nframes: int = 3, seed: int = 0) -> None:
    from dpconv import System

    rng = np.random.default_rng(seed)
    side = (natoms / 0.08) ** (1 / 3)  # ~0.08 atoms/Å^3
    cell = np.array([[side, 0, 0], [0.1 * side, side, 0], [0.05 * side, -0.08 * side, side]])
    types = rng.integers(0, 2, natoms)
    frames = np.einsum("fni,ij->fnj", rng.uniform(size=(nframes, natoms, 3)), cell)
    s = System(
        data={
            "atom_names": ["O", "H"],
            "atom_numbs": np.bincount(types, minlength=2),
            "atom_types": types,
            "cells": np.repeat(cell[None], nframes, axis=0),
            "coords": frames,
        }
    )
    one = path + ".frames"
    s.to("lammps/dump", one)
    # shuffle the atom lines of each frame (LAMMPS writes per-processor order unless dump_modify sort id)
    with open(one) as fh:
        text = fh.read()
    out = []
    for chunk in text.split("ITEM: TIMESTEP\n")[1:]:
        head, body = chunk.split("x y z\n", 1)
        lines = body.splitlines(keepends=True)
        rng.shuffle(lines)
        out.append("ITEM: TIMESTEP\n" + head + "x y z\n" + "".join(lines))
    with open(one, "w") as fh:
        fh.write("".join(out))
    repeat_file(one, path, int(target_mb * 1e6))
    os.remove(one)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200.0, help="input size in MB (the issue asks for 1000)")
    ap.add_argument("--natoms", type=int, default=100_000)
    ap.add_argument("--workdir", default=None, help="where to build the input (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        path = os.path.join(tmp, "big.dump")
        build_dump(path, args.natoms, args.mb)
        print(f"input: {path} ({os.path.getsize(path) / 1e6:.0f} MB, {args.natoms} atoms/frame)")
        cases = [
            Case(
                "lammps/dump read",
                path,
                "s = dpconv.System(PATH, fmt='lammps/dump', type_map=['O', 'H']); NFRAMES = len(s)",
                "s = dpdata.System(PATH, fmt='lammps/dump', type_map=['O', 'H']); NFRAMES = len(s)",
            ),
            Case(
                "dump->deepmd/npy",
                path,
                "c = dpconv.convert(PATH, OUT, in_fmt='lammps/dump', out_fmt='deepmd/npy', type_map=['O', 'H'],"
                " read_kwargs={'type_map': ['O', 'H']}); NFRAMES = sum(c.values())",
                "s = dpdata.System(PATH, fmt='lammps/dump', type_map=['O', 'H']); s.to_deepmd_npy(OUT);"
                " NFRAMES = len(s)",
            ),
        ]
        run_cases(cases, workdir=tmp)


if __name__ == "__main__":
    main()
