"""Quantum ESPRESSO formats (descriptors only; parsers are imported on first use)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "qe/pw/scf",
        "dpconv.formats.qe.pw",
        aliases=("pwscf", "qe/pw", "pw.x"),
        reads="LabeledSystem",
        globs=("*.pwo", "*.pw.out", "pw.out"),
        description="pw.x output (scf/relax/vc-relax/md), with its input for species and cell",
    ),
    FormatInfo(
        "qe/cp/traj",
        "dpconv.formats.qe.cp",
        aliases=("cp.x",),
        reads="LabeledSystem",
        description="cp.x trajectory: a prefix of <prefix>.in/.pos/.for/.evp (+ .cel, .str)",
    ),
    FormatInfo(
        "qe/pw/input",
        "dpconv.formats.qe.pwinput",
        aliases=("pwinput", "pw.in"),
        writes=True,
        description="a ready-to-run pw.x SCF input (forces and stress printed) for one frame",
    ),
]
