"""Benchmark the VASP readers against dpdata on big inputs built from real fixtures.

An OUTCAR is built by repeating the ionic steps of the ``vasp_outcar_h2o_md``
fixture (header, then steps 2-3 over and over, then the closing timing
report), and a vasprun.xml by repeating the ``<calculation>`` elements of
``vasp_xml_h2o_md``. Each tool runs in its own process on the same file
(see ``_harness.py``); the table gives time, peak RSS and the ratios.

Rows:
* ``vasp/outcar read``: ``dpconv.LabeledSystem`` vs ``dpdata.LabeledSystem``.
* ``outcar->deepmd/npy``: ``dpconv.convert`` (streams) vs dpdata read + ``to('deepmd/npy')``.
* ``vasp/xml read`` and ``xml->deepmd/npy``: the same for vasprun.xml.

Usage::

    python benchmarks/bench_vasp.py            # 200 MB inputs
    python benchmarks/bench_vasp.py --mb 1000  # the 1 GB runs the issue asks for
    python benchmarks/bench_vasp.py --mb 100 --only outcar
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from _harness import Case, run_cases

from dpconv.testing import fixtures_dir


def build_repeated(src: str, dst: str, target_bytes: int, start: bytes, end: bytes, after: bool) -> None:
    """Write ``dst``: ``src``'s head, its middle (``start``..``end`` markers) repeated, its tail.

    For the OUTCAR the middle runs from the end of the first energy line to the
    end of the last one (``after=True``: cut after the marker's line); for the
    XML from the first ``<calculation>`` to the end of the last ``</calculation>``.
    """
    with open(src, "rb") as fh:
        blob = fh.read()
    if after:
        a = blob.index(b"\n", blob.index(start)) + 1
        b = blob.index(b"\n", blob.rindex(end)) + 1
    else:
        a = blob.index(start)
        b = blob.rindex(end) + len(end)
    head, mid, tail = blob[:a], blob[a:b], blob[b:]
    with open(dst, "wb") as out:
        out.write(head)
        written = len(head)
        while written < target_bytes:
            out.write(mid)
            written += len(mid)
        out.write(tail)


# dpdata registers all of its plugins when imported (outside the timed region); load
# dpconv's format registry and parser modules the same way so both time the read only.
DPCONV_IMPORTS = (
    "import dpconv, dpconv.registry, dpconv.formats.vasp.outcar, dpconv.formats.vasp.xml, "
    "dpconv.formats.deepmd.npy; dpconv.registry.all_formats()"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200.0, help="size of each input in MB (issue: 1000)")
    ap.add_argument("--only", choices=("outcar", "xml"), help="run one input kind only")
    ap.add_argument("--workdir", default=None, help="where to build the inputs (default: a temp dir)")
    args = ap.parse_args()
    fx = fixtures_dir()
    target = int(args.mb * 1e6)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        cases = []
        if args.only in (None, "outcar"):
            outcar = os.path.join(tmp, "OUTCAR")
            tok = b"free  energy   TOTEN"
            build_repeated(os.path.join(fx, "vasp_outcar_h2o_md", "OUTCAR.h2o.md"), outcar, target, tok, tok, True)
            cases += [
                Case(
                    "vasp/outcar read",
                    outcar,
                    "s = dpconv.LabeledSystem(PATH, fmt='vasp/outcar'); NFRAMES = len(s)",
                    "s = dpdata.LabeledSystem(PATH, fmt='vasp/outcar'); NFRAMES = len(s)",
                    dpconv_imports=DPCONV_IMPORTS,
                ),
                Case(
                    "outcar->deepmd/npy",
                    outcar,
                    "c = dpconv.convert(PATH, OUT, in_fmt='vasp/outcar', out_fmt='deepmd/npy'); "
                    "NFRAMES = sum(c.values())",
                    "s = dpdata.LabeledSystem(PATH, fmt='vasp/outcar'); s.to('deepmd/npy', OUT); NFRAMES = len(s)",
                    dpconv_imports=DPCONV_IMPORTS,
                ),
            ]
        if args.only in (None, "xml"):
            vasprun = os.path.join(tmp, "vasprun.xml")
            build_repeated(
                os.path.join(fx, "vasp_xml_h2o_md", "vasprun.h2o.md.xml"),
                vasprun,
                target,
                b"<calculation>",
                b"</calculation>",
                False,
            )
            cases += [
                Case(
                    "vasp/xml read",
                    vasprun,
                    "s = dpconv.LabeledSystem(PATH, fmt='vasp/xml'); NFRAMES = len(s)",
                    "s = dpdata.LabeledSystem(PATH, fmt='vasp/xml'); NFRAMES = len(s)",
                    dpconv_imports=DPCONV_IMPORTS,
                ),
                Case(
                    "xml->deepmd/npy",
                    vasprun,
                    "c = dpconv.convert(PATH, OUT, in_fmt='vasp/xml', out_fmt='deepmd/npy'); NFRAMES = sum(c.values())",
                    "s = dpdata.LabeledSystem(PATH, fmt='vasp/xml'); s.to('deepmd/npy', OUT); NFRAMES = len(s)",
                    dpconv_imports=DPCONV_IMPORTS,
                ),
            ]
        run_cases(cases, workdir=tmp)


if __name__ == "__main__":
    main()
