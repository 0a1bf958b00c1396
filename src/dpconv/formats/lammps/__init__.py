"""LAMMPS formats (descriptors only; parsers are imported on first use)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "lammps/dump",
        "dpconv.formats.lammps.dump",
        aliases=("dump",),
        reads="both",
        writes=True,
        globs=("*.dump", "dump.*", "*.lammpstrj"),
        description="LAMMPS text dump trajectory (any columns, triclinic; fx fy fz give forces)",
    ),
    FormatInfo(
        "lammps/lmp",
        "dpconv.formats.lammps.lmp",
        aliases=("lmp", "lammps/data"),
        reads="System",
        writes=True,
        globs=("*.lmp", "*.data", "data.*"),
        description="LAMMPS data file (atomic, charge, full, molecular styles; triclinic)",
    ),
]
