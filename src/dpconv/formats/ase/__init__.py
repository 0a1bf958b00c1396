"""Formats through ASE (descriptors only; ASE is imported on first use, and is optional)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "ase/structure",
        "dpconv.formats.ase.structure",
        aliases=("ase",),
        reads="both",
        writes=True,
        description="any file ASE reads or writes (ase_fmt=...), through ase.Atoms; needs `pip install ase`",
    ),
]
