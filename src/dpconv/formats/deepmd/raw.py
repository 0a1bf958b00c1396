"""``deepmd/raw``: a folder of text files, ``type.raw``, ``type_map.raw``, ``<stem>.raw``.

Each ``<stem>.raw`` has one line per frame. Numbers are written with ``%.18e``,
which round-trips float64 exactly. Writing appends block by block (streams).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.deepmd import layout
from dpconv.formats.deepmd.npy import read_header, write_header


def read(path: str, type_map: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    types, names, nopbc = read_header(path, type_map)

    def get(stem: str) -> np.ndarray | None:
        f = os.path.join(path, f"{stem}.raw")
        if not os.path.isfile(f):
            return None
        try:
            return np.loadtxt(f, dtype=np.float64, ndmin=2)
        except ValueError as exc:
            raise ParseError(f, f"rows of numbers, one row per frame ({exc})") from None

    yield layout.system_block(types, names, nopbc, layout.frame_arrays(get, None, len(types), path))


def write(path: str, blocks: Iterable[Mapping[str, Any]]) -> None:
    os.makedirs(path, exist_ok=True)
    with contextlib.ExitStack() as stack:
        handles: dict[str, Any] = {}
        for i, block in enumerate(blocks):
            if i == 0:
                write_header(path, block)
            for stem, arr in layout.flat(block).items():
                if stem not in handles:
                    handles[stem] = stack.enter_context(open(os.path.join(path, f"{stem}.raw"), "w"))
                np.savetxt(handles[stem], arr, fmt="%.18e")
