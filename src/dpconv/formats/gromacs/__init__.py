"""GROMACS formats (descriptors only; the parser is imported on first use)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "gromacs/gro",
        "dpconv.formats.gromacs.gro",
        aliases=("gro",),
        reads="System",
        writes=True,
        globs=("*.gro",),
        description="GROMACS .gro structure or trajectory (nm; elements guessed from atom names)",
    ),
]
