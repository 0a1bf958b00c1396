"""Helpers shared by the VASP readers and writer: number parsing, species, rotation."""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

Buffer = bytes | mmap.mmap  # what the scanners search: a file's map, or its bytes

# a minus sign glued to the previous number ("10.000000000-0.011409000"), not an exponent
_GLUED_MINUS = re.compile(rb"(?<=[0-9.])-")


def floats(buf: bytes, count: int) -> np.ndarray | None:
    """The whitespace-separated numbers of ``buf`` as float64, or None unless exactly ``count``.

    Fortran fixed-width fields run together when a negative number fills its
    width; such glued numbers are split before giving up.
    """
    arr = _fromstring(buf)
    if arr is None or arr.size != count:
        if b"-" not in buf:
            return None
        arr = _fromstring(_GLUED_MINUS.sub(b" -", buf))
        if arr is None or arr.size != count:
            return None
    return arr


def _fromstring(buf: bytes) -> np.ndarray | None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            return np.fromstring(buf, dtype=np.float64, sep=" ")
        except (ValueError, DeprecationWarning):
            return None


def merge_species(names: Sequence[str], counts: Sequence[int]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per-species names and counts (file order) -> unique names, atom_numbs, atom_types.

    A species listed twice (POTCAR ``O H O``) becomes one type: names ``O, H``,
    and the atoms of the third block get the type of ``O``.
    """
    uniq: list[str] = []
    index = []
    for n in names:
        if n not in uniq:
            uniq.append(n)
        index.append(uniq.index(n))
    types = np.repeat(np.asarray(index, dtype=np.int64), np.asarray(counts, dtype=np.int64))
    numbs = np.bincount(types, minlength=len(uniq)).astype(np.int64)
    return uniq, numbs, types


_ELEMENT = re.compile(r"[A-Z][a-z]?")


def element_of(label: str) -> str:
    """The element symbol at the start of a POTCAR label (``Sn_d`` -> ``Sn``, ``H.75`` -> ``H``)."""
    m = _ELEMENT.match(label.strip())
    return m.group(0) if m else label.strip()


def rotate_lower_triangular(data: dict[str, Any]) -> None:
    """Rotate every frame of ``data`` in place so that its cell is lower triangular.

    The same rotation as :meth:`dpconv.system.System.rot_lower_triangular` (a
    along x, b in the xy plane, positive diagonal), done for all frames at once:
    coordinates and forces are rotated as row vectors, virials as ``R^T W R``.
    """
    cells = data["cells"]
    if len(cells) == 0:
        return
    q, r = np.linalg.qr(np.swapaxes(cells, 1, 2))
    sign = np.sign(np.diagonal(r, axis1=1, axis2=2))
    sign[sign == 0] = 1.0
    rot = q * sign[:, None, :]
    data["cells"] = cells @ rot
    for key in ("coords", "forces"):
        if key in data:
            data[key] = data[key] @ rot
    if "virials" in data:
        data["virials"] = np.swapaxes(rot, 1, 2) @ data["virials"] @ rot


def volumes(cells: np.ndarray) -> np.ndarray:
    """Cell volumes (Å^3, positive for either handedness)."""
    return np.abs(np.linalg.det(cells))


def line_at(path: str, offset: int) -> int:
    """1-based line number of byte ``offset`` of the file ``path`` (read again in chunks; errors only)."""
    n = 1
    with open(path, "rb") as fh:
        left = offset
        while left > 0:
            data = fh.read(min(left, 1 << 24))
            if not data:
                break
            n += data.count(b"\n")
            left -= len(data)
    return n


class MappedFile:
    """A read-only memory map of a file, scanned front to back with bounded resident memory.

    ``buf`` is the map (``bytes`` for files that cannot be mapped); it supports
    ``find``/``rfind``, slicing and ``re``. Pages of a map count in the
    process's resident memory once touched, so :meth:`release` hands the pages
    before an offset back (``MADV_DONTNEED``; the data stays readable from the
    page cache) and :meth:`find` searches in windows, releasing as it goes.
    """

    def __init__(self, path: str, window: int = 16 << 20) -> None:
        self.path = path
        self.window = max(window, mmap.PAGESIZE)
        self._fh = open(path, "rb")  # noqa: SIM115 - closed in close()
        self.size = os.fstat(self._fh.fileno()).st_size
        self._released = 0
        self.keep: int | None = None  # pages from here on are still needed (None: no constraint)
        self._map: mmap.mmap | None = None
        try:
            self._map = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        except (OSError, ValueError):
            self._map = None
        self.buf: bytes | mmap.mmap = self._map if self._map is not None else self._fh.read()
        self.size = len(self.buf)

    def __enter__(self) -> MappedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._map is not None:
            with contextlib.suppress(BufferError):
                self._map.close()
        self._fh.close()

    def release(self, upto: int) -> None:
        """Drop the resident pages before byte ``upto`` (and before :attr:`keep`) once a window's worth
        has accumulated. Pages read again later fault back in and stay until the next release."""
        if self.keep is not None:
            upto = min(upto, self.keep)
        if self._map is None or upto - self._released < self.window or not hasattr(self._map, "madvise"):
            return
        end = upto - upto % mmap.PAGESIZE
        if end > self._released:
            with contextlib.suppress(OSError, ValueError):
                self._map.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
            self._released = end

    def find(self, sub: bytes, start: int) -> int:
        """``buf.find(sub, start)`` in windows, releasing the pages more than a window behind."""
        pos = start
        while pos < self.size:
            stop = min(self.size, pos + self.window + len(sub))
            hit = self.buf.find(sub, pos, stop)
            if hit >= 0 or stop == self.size:
                return hit
            pos = stop - len(sub) + 1
            self.release(pos - self.window)
        return -1
