"""Benchmark of the Quantum ESPRESSO readers: dpconv against dpdata on the same files.

Two inputs are built in a temporary directory by repeating real frames:

* ``relax.out`` (+ ``relax.in``): our own pw.x 6.7 relax of CH4
  (``tests/data/qe/ch4_relax.out``, 5 ionic steps): the header is kept and the
  text from the first ``!    total energy`` line to the end is repeated. dpconv
  reads every frame; dpdata reads the whole file but returns ONE frame (input
  geometry, first forces, last energy), so the frame counts differ on purpose.
* ``oh-md.*``: the corpus cp.x trajectory ``qe_cp_traj_oh_md`` (191 atoms):
  the frames of ``.pos``/``.for`` and the lines of ``.evp`` are repeated (steps
  repeat too, identically in every file, which both readers accept).

Usage::

    python benchmarks/bench_qe.py            # about 200 MB per input
    python benchmarks/bench_qe.py --mb 100
    python benchmarks/bench_qe.py --mb 1000  # the 1 GB runs the issue asks for
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _harness import Case, repeat_file, run_cases

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _fixtures() -> str:
    sys.path.insert(0, os.path.join(ROOT, "src"))
    from dpconv.testing import fixtures_dir

    return fixtures_dir()


def build_relax(dst_dir: str, target_bytes: int) -> str:
    """A pw.x relax output of many ionic steps (and its input beside it); returns its path."""
    src = os.path.join(ROOT, "tests", "data", "qe", "ch4_relax.out")
    with open(src, "rb") as fh:
        blob = fh.read()
    head = blob.index(b"\n!    total energy") + 1
    out = os.path.join(dst_dir, "relax.out")
    repeat_file(src, out, target_bytes, header_bytes=head)
    shutil.copy(os.path.join(ROOT, "tests", "data", "qe", "ch4_relax.in"), os.path.join(dst_dir, "relax.in"))
    return out


def build_cp(dst_dir: str, target_bytes: int) -> str:
    """A cp.x trajectory prefix with the corpus frames repeated; returns the prefix."""
    src = os.path.join(_fixtures(), "qe_cp_traj_oh_md", "oh-md")
    prefix = os.path.join(dst_dir, "oh-md")
    shutil.copy(src + ".in", prefix + ".in")
    sizes = {ext: os.path.getsize(src + ext) for ext in (".pos", ".for", ".evp")}
    reps = max(1, int(target_bytes // sum(sizes.values())))
    for ext in sizes:
        with open(src + ext, "rb") as fh:
            body = fh.read()
        with open(prefix + ext, "wb") as out:
            for _ in range(reps):
                out.write(body)
    return prefix


def _cases(path: str, fmt: str, label: str) -> list[Case]:
    read_c = f"s = dpconv.LabeledSystem(PATH, fmt={fmt!r})\nNFRAMES = len(s)\n"
    read_d = f"s = dpdata.LabeledSystem(PATH, fmt={fmt!r})\nNFRAMES = len(s)\n"
    conv_c = (
        f"dpconv.convert(PATH, OUT, in_fmt={fmt!r}, out_fmt='deepmd/npy')\n"
        "NFRAMES = len(dpconv.LabeledSystem(OUT, fmt='deepmd/npy'))\n"
    )
    conv_d = f"s = dpdata.LabeledSystem(PATH, fmt={fmt!r})\ns.to_deepmd_npy(OUT)\nNFRAMES = len(s)\n"
    imp_c = "import warnings; warnings.simplefilter('ignore')\nimport dpconv"
    imp_d = "import warnings; warnings.simplefilter('ignore')\nimport dpdata"
    return [
        Case(label, path, read_c, read_d, imp_c, imp_d),
        Case("  convert -> npy", path, conv_c, conv_d, imp_c, imp_d),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200.0, help="size of each built input in MB (default 200)")
    ap.add_argument("--workdir", default=None, help="where to build the inputs (default: system temp)")
    args = ap.parse_args()
    target = int(args.mb * 1e6)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        relax = build_relax(tmp, target)
        prefix = build_cp(tmp, target)
        cp_mb = sum(os.path.getsize(prefix + e) for e in (".in", ".pos", ".for", ".evp")) / 1e6
        print(f"built {relax} ({os.path.getsize(relax) / 1e6:.0f} MB) and {prefix}.{{in,pos,for,evp}} ({cp_mb:.0f} MB;")
        print("the table's 'input MB' column shows 0 for the prefix, which is not a file)\n")
        print("note: dpdata's qe/pw/scf returns 1 frame of any output (it still reads the whole file)\n")
        run_cases(
            _cases(relax, "qe/pw/scf", "qe/pw/scf relax") + _cases(prefix, "qe/cp/traj", "qe/cp/traj"), workdir=tmp
        )


if __name__ == "__main__":
    main()
