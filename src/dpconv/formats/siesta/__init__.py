"""Formats of SIESTA (descriptors only; parsers are imported on first use)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "siesta/output",
        "dpconv.formats.siesta.output",
        reads="both",
        description="SIESTA standard output: a single point (energy, forces, stress)",
    ),
    FormatInfo(
        "siesta/aimd_output",
        "dpconv.formats.siesta.aimd",
        aliases=("siesta/aimd",),
        reads="both",
        description="SIESTA standard output of an MD run: every step (cells, energies, forces, stress)",
    ),
]
