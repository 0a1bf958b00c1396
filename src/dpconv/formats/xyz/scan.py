"""Frame scanning shared by the XYZ readers.

An XYZ frame is an atom-count line, a comment line and that many atom lines;
there is no sentinel, so the file is memory-mapped and its newline offsets are
found window by window with numpy (``np.flatnonzero(buf == b"\\n")``). Walking
frames is then index arithmetic over those offsets: one Python step per frame,
none per atom line.
"""

from __future__ import annotations

import mmap
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dpconv.errors import ParseError

WINDOW = 32 * 1024 * 1024


@dataclass
class RawFrame:
    """One frame: its index, atom count, comment line, atom-line bytes and 1-based first line."""

    index: int
    natoms: int
    comment: str
    body: bytes
    line: int


class _Lines:
    """Newline offsets of a buffer, computed lazily in windows; old ones are dropped."""

    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.size = len(buf)
        self.nl = np.zeros(0, dtype=np.int64)  # absolute newline offsets of lines first, first+1, ...
        self.first = 0
        self.scanned = 0

    def _scan(self) -> bool:
        if self.scanned >= self.size:
            return False
        end = min(self.size, self.scanned + WINDOW)
        view = np.frombuffer(self.buf, dtype=np.uint8, count=end - self.scanned, offset=self.scanned)
        new = np.flatnonzero(view == 10).astype(np.int64) + self.scanned
        del view
        if end == self.size and (self.size == 0 or self.buf[self.size - 1] != 10):
            new = np.append(new, self.size)  # a last line without a newline
        self.nl = np.concatenate([self.nl, new])
        self.scanned = end
        return True

    def has(self, k: int) -> bool:
        """Whether line ``k`` (0-based) exists, scanning more of the file as needed."""
        while k - self.first >= len(self.nl):
            if not self._scan():
                return False
        return True

    def end(self, k: int) -> int:
        return int(self.nl[k - self.first])

    def start(self, k: int) -> int:
        return 0 if k == 0 else self.end(k - 1) + 1

    def forget_before(self, k: int) -> None:
        """Drop offsets of lines before ``k - 1`` (line k's start needs line k-1's end)."""
        drop = k - 1 - self.first
        if drop > 4096:
            self.nl = self.nl[drop:]
            self.first += drop


def iter_frames(path: str) -> Iterator[RawFrame]:
    """Yield the raw frames of an XYZ file; a truncated last frame is dropped with a warning."""
    if os.path.getsize(path) == 0:
        raise ParseError(path, "an XYZ file (atom count, comment, atom lines); the file is empty", line=1)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        lines = _Lines(buf)
        k = 0
        index = 0
        while lines.has(k):
            head = buf[lines.start(k) : lines.end(k)].strip()
            if not head:  # blank lines between or after frames
                k += 1
                continue
            try:
                natoms = int(head)
            except ValueError:
                what = head[:40].decode("ascii", "replace")
                raise ParseError(
                    path, f"an atom count (one integer) at the start of frame {index}; got {what!r}", line=k + 1
                ) from None
            if natoms < 0:
                raise ParseError(path, f"a non-negative atom count; got {natoms}", line=k + 1)
            last = k + 1 + natoms
            if not lines.has(last):
                if index > 0:
                    warnings.warn(f"{path}: frame {index} is truncated; dropped", stacklevel=3)
                    return
                raise ParseError(
                    path, f"{natoms} atom lines after the comment line; the file ends early", line=k + 1, frame=index
                )
            try:
                comment = buf[lines.start(k + 1) : lines.end(k + 1)].decode("utf-8").strip()
            except UnicodeDecodeError:
                raise ParseError(path, "a text comment line", line=k + 2, frame=index) from None
            body = buf[lines.start(k + 2) : lines.end(last)] if natoms else b""
            yield RawFrame(index, natoms, comment, body, k + 1)
            index += 1
            k = last + 1
            lines.forget_before(k)
        if index == 0:
            raise ParseError(path, "at least one XYZ frame; found only blank lines", line=1)


def atom_table(path: str, fr: RawFrame, ragged: bool = False) -> np.ndarray:
    """The atom lines of a frame as a (natoms, ncols) array of byte strings.

    With ``ragged`` (plain XYZ), lines of unequal length are cut to their first
    four fields (a per-line fallback taken only for such files).
    """
    tokens = fr.body.split()
    if fr.natoms == 0:
        return np.zeros((0, 4), dtype="S1")
    ncols = len(tokens) // fr.natoms
    if ragged and (ncols < 4 or len(tokens) != ncols * fr.natoms):
        rows = [ln.split()[:4] for ln in fr.body.splitlines() if ln.strip()]
        if len(rows) == fr.natoms and all(len(r) == 4 for r in rows):
            return np.array(rows)
    if ncols < 4 or len(tokens) != ncols * fr.natoms:
        raise ParseError(
            path,
            f"{fr.natoms} atom lines of equal length (symbol x y z ...); got {len(tokens)} values",
            line=fr.line + 2,
            frame=fr.index,
        )
    return np.array(tokens).reshape(fr.natoms, ncols)


def floats(path: str, fr: RawFrame, cols: np.ndarray, what: str) -> np.ndarray:
    """Columns of byte strings as float64, or a ParseError naming the frame."""
    try:
        return cols.astype(np.float64)
    except ValueError:
        raise ParseError(path, f"numbers in the {what} columns", line=fr.line + 2, frame=fr.index) from None
