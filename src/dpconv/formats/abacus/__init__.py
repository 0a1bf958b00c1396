"""Formats of ABACUS (descriptors only; parsers are imported on first use).

The run-folder formats (md, scf, relax) have no globs or markers: every ABACUS
run folder holds an INPUT, and only its ``calculation`` tells them apart, so
give ``fmt`` explicitly.
"""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "abacus/stru",
        "dpconv.formats.abacus.stru",
        aliases=("stru",),
        reads="System",
        writes=True,
        globs=("STRU", "STRU.*", "*.stru", "STRU_ION*_D"),
        description="ABACUS structure file STRU",
    ),
    FormatInfo(
        "abacus/scf",
        "dpconv.formats.abacus.scf",
        aliases=("abacus/pw/scf", "abacus/lcao/scf"),
        reads="LabeledSystem",
        description="ABACUS SCF run folder (INPUT, STRU, OUT.<suffix>/running_scf.log)",
    ),
    FormatInfo(
        "abacus/md",
        "dpconv.formats.abacus.md",
        aliases=("abacus/pw/md", "abacus/lcao/md"),
        reads="LabeledSystem",
        description="ABACUS MD run folder (INPUT, STRU, OUT.<suffix>/MD_dump, running_md.log)",
    ),
    FormatInfo(
        "abacus/relax",
        "dpconv.formats.abacus.relax",
        aliases=("abacus/pw/relax", "abacus/lcao/relax"),
        reads="LabeledSystem",
        description="ABACUS relax/cell-relax run folder (INPUT, STRU, OUT.<suffix>/running_<calculation>.log)",
    ),
]
