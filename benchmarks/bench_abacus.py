"""Benchmark the ABACUS MD reader against dpdata on a long MD run built from a real fixture.

A run folder is built from ``abacus_md_water`` (old MD_dump layout, with
VIRIAL blocks): its five MD_dump frames are repeated in turn with increasing
``MDSTEP`` numbers, and ``running_md.log`` gets, per step, the real log's lines
of one MD step (``STEP OF MOLECULAR DYNAMICS`` ... ``final etot is``). INPUT
sets ``md_dumpfreq 1`` so every logged step is dumped. The water molecule is
replicated ``--replicate`` times inside each frame (default 64: 192 atoms, a
typical AIMD cell; ``--replicate 1`` keeps the 3-atom frames), with the STRU
to match. ``--mb`` is the size of MD_dump plus log (default 200 MB; the issue
asks for 1 GB runs: ``--mb 1000``).

Rows (each tool in its own process, same folder; see ``_harness.py``):
* ``abacus/md read``: ``dpconv.LabeledSystem`` vs ``dpdata.LabeledSystem``.
* ``md->deepmd/npy``: ``dpconv.convert`` (streams) vs dpdata read + ``to('deepmd/npy')``.

Usage::

    python benchmarks/bench_abacus.py             # 200 MB
    python benchmarks/bench_abacus.py --mb 1000   # the 1 GB run of the issue
    python benchmarks/bench_abacus.py --mb 100 --replicate 1
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from _harness import Case, run_cases

from dpconv.testing import fixtures_dir

#: imported before the clock starts, as ``import dpdata`` loads all of dpdata's formats
DPCONV_IMPORTS = (
    "import dpconv, dpconv.registry, dpconv.formats.abacus.md, dpconv.formats.deepmd.npy; dpconv.registry.all_formats()"
)


def _replicate_atoms(lines: list[bytes], rep: int) -> list[bytes]:
    """MD_dump atom lines of one frame, each species' atoms repeated ``rep`` times (shifted by 0.01 per copy)."""
    rows = [ln.split() for ln in lines]
    out: list[bytes] = []
    labels = list(dict.fromkeys(r[1] for r in rows))
    for lab in labels:
        for k in range(rep):
            for r in rows:
                if r[1] != lab:
                    continue
                pos = [float(x) + 0.01 * k for x in r[2:5]]
                vals = b"  ".join(b"%.12f" % v for v in pos) + b"  " + b"  ".join(r[5:])
                out.append(b"   %d   %s   %s" % (len(out), lab, vals))
    return out


def _stru(src: str, rep: int) -> str:
    """The STRU with every species' atom count and positions repeated ``rep`` times."""
    with open(src) as fh:
        text = fh.read()
    head, pos = text.split("ATOMIC_POSITIONS")
    lines = [ln for ln in pos.splitlines() if ln.strip()]
    out = [lines[0]]
    i = 1
    while i < len(lines):
        label, mag, count = lines[i], lines[i + 1], int(lines[i + 2])
        atoms = lines[i + 3 : i + 3 + count]
        out += [label, mag, str(count * rep)]
        for k in range(rep):
            for a in atoms:
                w = a.split()
                out.append(" ".join(f"{float(x) + 0.01 * k:.12f}" for x in w[:3]) + " 1 1 1")
        i += 3 + count
    return head + "ATOMIC_POSITIONS\n" + "\n".join(out) + "\n"


def build_run(dst: str, target_bytes: int, rep: int) -> int:
    """Write the run folder; returns the number of MD steps."""
    src = os.path.join(fixtures_dir(), "abacus_md_water", "abacus.md")
    os.makedirs(os.path.join(dst, "OUT.abacus"))
    with open(os.path.join(src, "INPUT")) as fh:
        inp = re.sub(r"md_dumpfreq\s+\d+", "md_dumpfreq 1", fh.read())
    with open(os.path.join(dst, "INPUT"), "w") as fh:
        fh.write(inp)
    with open(os.path.join(dst, "STRU"), "w") as fh:
        fh.write(_stru(os.path.join(src, "STRU"), rep))

    with open(os.path.join(src, "OUT.abacus", "MD_dump"), "rb") as fh:
        dump = fh.read()
    frames = []  # frame bodies without their MDSTEP line
    for chunk in dump.split(b"MDSTEP:")[1:]:
        body = chunk.split(b"\n", 1)[1].rstrip(b"\n")
        head, atoms = body.split(b"INDEX", 1)
        index_line, atom_text = atoms.split(b"\n", 1)
        atom_lines = _replicate_atoms(atom_text.strip().split(b"\n"), rep)
        frames.append(head + b"INDEX" + index_line + b"\n" + b"\n".join(atom_lines) + b"\n\n\n")

    with open(os.path.join(src, "OUT.abacus", "running_md.log"), "rb") as fh:
        log = fh.read()
    marks = [m.end() for m in re.finditer(rb"final etot is[^\n]*\n", log)]
    log_head, step_text = log[: marks[0]], log[marks[0] : marks[1]]
    # step_text: one MD step of the real log, ending with its 'final etot is' line
    etot = re.search(rb"final etot is\s+(\S+)", step_text)
    assert etot is not None

    nsteps = 0
    written = len(log_head)
    with (
        open(os.path.join(dst, "OUT.abacus", "MD_dump"), "wb") as fd,
        open(os.path.join(dst, "OUT.abacus", "running_md.log"), "wb") as fl,
    ):
        fl.write(log_head)
        while written < target_bytes:
            frame = b"MDSTEP:  %d\n" % nsteps + frames[nsteps % len(frames)]
            fd.write(frame)
            if nsteps:
                fl.write(step_text)
                written += len(step_text)
            written += len(frame)
            nsteps += 1
    return nsteps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200.0, help="size of MD_dump + log in MB (issue: 1000)")
    ap.add_argument("--replicate", type=int, default=64, help="copies of the water molecule per frame")
    ap.add_argument("--workdir", default=None, help="where to build the run folder (default: a temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        run = os.path.join(tmp, "abacus.md")
        nsteps = build_run(run, int(args.mb * 1e6), args.replicate)
        print(f"run folder: {nsteps} MD steps of {3 * args.replicate} atoms")
        cases = [
            Case(
                "abacus/md read",
                run,
                "s = dpconv.LabeledSystem(PATH, fmt='abacus/md'); NFRAMES = len(s)",
                "s = dpdata.LabeledSystem(PATH, fmt='abacus/md'); NFRAMES = len(s)",
                dpconv_imports=DPCONV_IMPORTS,
            ),
            Case(
                "md->deepmd/npy",
                run,
                "c = dpconv.convert(PATH, OUT, in_fmt='abacus/md', out_fmt='deepmd/npy'); NFRAMES = sum(c.values())",
                "s = dpdata.LabeledSystem(PATH, fmt='abacus/md'); s.to('deepmd/npy', OUT); NFRAMES = len(s)",
                dpconv_imports=DPCONV_IMPORTS,
            ),
        ]
        run_cases(cases, workdir=tmp)


if __name__ == "__main__":
    main()
