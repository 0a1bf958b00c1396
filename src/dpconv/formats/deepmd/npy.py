"""``deepmd/npy``: a folder with ``type.raw``, ``type_map.raw`` and ``set.NNN/<stem>.npy``.

Reading yields one block per set (so large datasets stream); arrays are loaded
with ``allow_pickle=False``. Writing cuts the incoming frames into sets of
``set_size`` (default 5000) as they arrive. float32 data (DeePMD-kit's water
example) is read exactly into float64; files are written in float64.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.deepmd import layout


def read_header(path: str, type_map: Sequence[str] | None) -> tuple[np.ndarray, list[str], bool]:
    """``type.raw``, atom names and the nopbc flag of a DeePMD folder."""
    tfile = os.path.join(path, "type.raw")
    if not os.path.isfile(tfile):
        raise ParseError(path, "a DeePMD folder with type.raw")
    try:
        types = np.loadtxt(tfile, dtype=np.int64, ndmin=1)
    except ValueError as exc:
        raise ParseError(tfile, f"integers, one per atom ({exc})") from None
    mfile = os.path.join(path, "type_map.raw")
    file_names = None
    if os.path.isfile(mfile):
        with open(mfile) as fh:
            file_names = fh.read().split()
    names = layout.resolve_names(types, file_names, type_map)
    return types, names, os.path.isfile(os.path.join(path, "nopbc"))


def read(path: str, type_map: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    types, names, nopbc = read_header(path, type_map)
    set_dirs = sorted(glob.glob(os.path.join(glob.escape(path), "set.*")))
    if not set_dirs:
        raise ParseError(path, "at least one set.* folder")
    for sdir in set_dirs:

        def get(stem: str, sdir: str = sdir) -> np.ndarray | None:
            f = os.path.join(sdir, f"{stem}.npy")
            if not os.path.isfile(f):
                return None
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise ParseError(f, f"a numpy .npy array ({exc})") from None

        arrays = layout.frame_arrays(get, None, len(types), sdir)
        yield layout.system_block(types, names, nopbc, arrays)


def write_header(path: str, data: Mapping[str, Any]) -> None:
    os.makedirs(path, exist_ok=True)
    np.savetxt(os.path.join(path, "type.raw"), np.asarray(data["atom_types"]), fmt="%d")
    with open(os.path.join(path, "type_map.raw"), "w") as fh:
        fh.write(layout.type_map_text(data["atom_names"]))
    if data.get("nopbc", False):
        open(os.path.join(path, "nopbc"), "w").close()


def write(path: str, blocks: Iterable[Mapping[str, Any]], set_size: int = 5000) -> None:
    os.makedirs(path, exist_ok=True)
    for i, chunk in enumerate(layout.sets(blocks, set_size)):
        if i == 0:
            write_header(path, chunk)
        sdir = os.path.join(path, f"set.{i:03d}")
        os.makedirs(sdir)
        for stem, arr in layout.flat(chunk).items():
            np.save(os.path.join(sdir, f"{stem}.npy"), arr)
