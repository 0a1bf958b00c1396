"""XYZ formats (descriptors only; parsers are imported on first use)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "xyz",
        "dpconv.formats.xyz.xyz",
        reads="System",
        writes=True,
        globs=("*.xyz",),
        description="plain XYZ: symbols and positions, any number of frames",
    ),
    FormatInfo(
        "extxyz",
        "dpconv.formats.xyz.extxyz",
        aliases=("quip/gap/xyz", "mace/xyz", "nequip/xyz", "gpumd/xyz"),
        reads="both",
        writes=True,
        multi=True,
        globs=("*.extxyz",),
        description="extended XYZ (ASE, GAP, MACE): Lattice, Properties, energy, forces, virial/stress",
    ),
]
