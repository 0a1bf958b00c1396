"""DeePMD-kit's data formats (descriptors only; see the modules for the layouts)."""

from __future__ import annotations

from dpconv.registry import FormatInfo

FORMATS: list[FormatInfo] = [
    FormatInfo(
        "deepmd/npy",
        "dpconv.formats.deepmd.npy",
        aliases=("deepmd", "npy"),
        reads="both",
        writes=True,
        markers=("type.raw", "set.000"),
        description="DeePMD-kit folder: type.raw + set.NNN/*.npy",
    ),
    FormatInfo(
        "deepmd/raw",
        "dpconv.formats.deepmd.raw",
        aliases=("raw",),
        reads="both",
        writes=True,
        markers=("type.raw", "coord.raw"),
        description="DeePMD-kit folder of text *.raw files",
    ),
    FormatInfo(
        "deepmd/hdf5",
        "dpconv.formats.deepmd.hdf5",
        aliases=("hdf5",),
        reads="both",
        writes=True,
        multi=True,
        globs=("*.hdf5", "*.h5"),
        description="DeePMD-kit HDF5: one file, one or many systems",
    ),
    FormatInfo(
        "deepmd/npy/mixed",
        "dpconv.formats.deepmd.mixed",
        aliases=("deepmd/mixed",),
        reads="both",
        writes=True,
        multi=True,
        description="DeePMD-kit mixed-type folders (real_atom_types.npy), grouped by atom count",
    ),
]
