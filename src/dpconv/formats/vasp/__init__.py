"""VASP's formats (descriptors only; the parsers are imported on first use)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "vasp/outcar",
        "dpconv.formats.vasp.outcar",
        aliases=("outcar",),
        reads="LabeledSystem",
        globs=("OUTCAR", "OUTCAR*", "*.outcar"),
        description="VASP OUTCAR: MD/relaxation ionic steps, on-the-fly ML steps with ml=True",
    ),
    FormatInfo(
        "vasp/poscar",
        "dpconv.formats.vasp.poscar",
        aliases=("vasp/contcar", "poscar", "contcar"),
        reads="System",
        writes=True,
        globs=("POSCAR*", "CONTCAR*", "*.vasp", "*.poscar"),
        description="VASP POSCAR/CONTCAR: one structure (VASP 4 or 5, Direct or Cartesian)",
    ),
    FormatInfo(
        "vasp/xml",
        "dpconv.formats.vasp.xml",
        aliases=("vasprun", "vasp/vasprun"),
        reads="LabeledSystem",
        globs=("vasprun*.xml",),
        description="VASP vasprun.xml: ionic steps with energies, forces, stress",
    ),
]
