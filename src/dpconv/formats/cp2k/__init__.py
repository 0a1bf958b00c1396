"""Formats of CP2K (descriptors only; parsers are imported on first use)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "cp2k/output",
        "dpconv.formats.cp2k.output",
        reads="LabeledSystem",
        description="CP2K log of ENERGY_FORCE / GEO_OPT / CELL_OPT runs (energies, forces, stress)",
    ),
    FormatInfo(
        "cp2k/aimd_output",
        "dpconv.formats.cp2k.aimd",
        aliases=("cp2k/aimd",),
        reads="LabeledSystem",
        globs=("*-pos-1.xyz",),
        description="CP2K MD run folder: *-pos-1.xyz, *-frc-1.xyz, *-1.ener/.cell/.stress, log, input",
    ),
    FormatInfo(
        "cp2k/input",
        "dpconv.formats.cp2k.inputfile",
        aliases=("cp2k/inp",),
        writes=True,
        description="ready-to-run CP2K ENERGY_FORCE input (forces and stress printed) for labelling",
    ),
]
