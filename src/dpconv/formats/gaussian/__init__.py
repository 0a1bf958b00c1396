"""Formats of Gaussian (descriptors only; parsers are imported on first use)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "gaussian/log",
        "dpconv.formats.gaussian.log",
        reads="LabeledSystem",
        globs=("*.gaussianlog",),
        description="Gaussian log: the last force evaluation (energy, forces; nopbc)",
    ),
    FormatInfo(
        "gaussian/md",
        "dpconv.formats.gaussian.md",
        reads="LabeledSystem",
        description="Gaussian log: every force evaluation (ADMP/BOMD trajectories, optimizations)",
    ),
    FormatInfo(
        "gaussian/gjf",
        "dpconv.formats.gaussian.gjf",
        aliases=("gjf",),
        writes=True,
        description="Gaussian input (.gjf) for labelling: one file per frame",
    ),
]
