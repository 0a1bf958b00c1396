"""Reading ABACUS's ``running_<calculation>.log``: the events a run prints, in order.

Both the older layouts (``final etot is ... eV``, ``TOTAL-FORCE (eV/Angstrom)``
between ``><><`` rules) and the newer ones (``#TOTAL ENERGY# ... eV``, tables
between ``----`` rules) are recognised. A log is scanned once with one regular
expression; the few lines after a header are parsed where it is found.

Events (``Event.kind``):

``energy``  an SCF that converged: ``value`` is the total energy in eV
``unconv``  an SCF that did not converge (``convergence has not been achieved``)
``coords``  ``DIRECT|CARTESIAN COORDINATES``: ``value`` is (natoms, 3) Å, or the
            fractional coordinates when ``direct`` (converted once the cell is known)
``cell``    ``Lattice vectors: (... in unit of a_0)``: ``value`` is (3, 3) Å
``force``   ``TOTAL-FORCE (eV/Angstrom)``: (natoms, 3) eV/Å
``stress``  ``TOTAL-STRESS (KBAR)``: (3, 3) kbar
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.units import BOHR_TO_ANGSTROM

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

#: SCF results in an MD log: each pattern starts with a literal, so that ``re``
#: skips ahead with a fast substring search (one alternation of the three would
#: try a match at every position, 20x slower); the scans are merged by offset.
RESULT_RES = (
    re.compile(rb"final etot is\s+(" + _NUM.encode() + rb")\s+eV"),
    re.compile(rb"#TOTAL ENERGY#\s+(" + _NUM.encode() + rb")\s+eV"),
    re.compile(rb"onvergence has [Nn][Oo][Tt] been achieved()"),
)
#: a substring of every match of the pattern, found faster than the pattern (``#``: one memchr)
_RESULT_GATES = (None, b"#", b"been achieved")
_MAX_MATCH = 1 << 16  # longer than any result line

_EVENT_RE = re.compile(
    r"final etot is\s+(?P<etot>" + _NUM + r")\s+eV"
    r"|#TOTAL ENERGY#\s+(?P<total>" + _NUM + r")\s+eV"
    r"|(?P<unconv>[Cc]onvergence has [Nn][Oo][Tt] been achieved)"
    r"|^[ \t]*(?P<coords>DIRECT|CARTESIAN) COORDINATES(?:[ \t]*\([ \t]*UNIT[ \t]*=[ \t]*(?P<unit>"
    + _NUM
    + r")[ \t]*Bohr)?"
    r"|(?P<cell>Lattice vectors: \(Cartesian coordinate: in unit of a_0\))"
    r"|lattice constant \(Bohr\)\s*=\s*(?P<a0>" + _NUM + r")"
    r"|(?P<force>TOTAL-FORCE \(eV/Angstrom\))"
    r"|(?P<stress>TOTAL-STRESS \((?:KBAR|kbar)\))",
    re.MULTILINE,
)

_FORCE_LINE = re.compile(r"^\s*[A-Za-z][A-Za-z_]*\d*\s+" + r"\s+".join([_NUM] * 3) + r"\s*$")
_THREE_NUMS = re.compile(r"^\s*" + r"\s+".join([_NUM] * 3) + r"\s*$")


@dataclass
class Event:
    kind: str
    value: Any
    line: int  # 1-based line of the header
    direct: bool = False


def read_text(path: str) -> str:
    """The whole log as text (ParseError for binary or missing files)."""
    if not os.path.isfile(path):
        raise ParseError(path, "an ABACUS running log (file not found)")
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.strip():
        raise ParseError(path, "an ABACUS running log (the file is empty)")
    if b"\x00" in raw[:65536]:
        raise ParseError(path, "a text ABACUS running log (found NUL bytes)")
    return raw.decode("utf-8", errors="replace")


class _Lines:
    """Lazy access to the lines following a position of a text."""

    def __init__(self, text: str, pos: int) -> None:
        self.text = text
        end = text.find("\n", pos)
        self.pos = len(text) if end < 0 else end + 1

    def __iter__(self) -> Iterator[str]:
        text = self.text
        while self.pos < len(text):
            end = text.find("\n", self.pos)
            end = len(text) if end < 0 else end
            line = text[self.pos : end]
            self.pos = end + 1
            yield line


def _take_matching(lines: _Lines, pattern: re.Pattern[str], count: int, lookahead: int = 10) -> list[str] | None:
    """The first ``count`` consecutive lines matching ``pattern`` within ``lookahead`` lines of the start."""
    found: list[str] = []
    for i, line in enumerate(lines):
        if pattern.match(line):
            found.append(line)
            if len(found) == count:
                return found
        elif found or i >= lookahead:
            return None
    return None


def scan(path: str, text: str, natoms: int) -> list[Event]:
    """Every event of the log, in file order."""
    events: list[Event] = []
    a0 = 1.0  # lattice constant in bohr
    line_no = 1
    last = 0
    for m in _EVENT_RE.finditer(text):
        line_no += text.count("\n", last, m.start())
        last = m.start()
        kind = m.lastgroup
        if kind in ("etot", "total"):
            events.append(Event("energy", float(m.group(kind)), line_no))
        elif kind == "unconv":
            events.append(Event("unconv", None, line_no))
        elif kind == "a0":
            a0 = float(m.group("a0"))
        elif kind in ("coords", "unit"):
            direct = m.group("coords") == "DIRECT"
            unit = float(m.group("unit")) if m.group("unit") else a0
            rows = _take_matching(_Lines(text, m.end()), re.compile(r"^\s*tau[cd]_\S+\s"), natoms, 3)
            if rows is None:
                raise ParseError(path, f"{natoms} atom lines after the coordinates header", line=line_no)
            xyz = _numbers(path, rows, 1, line_no)
            events.append(Event("coords", xyz if direct else xyz * unit * BOHR_TO_ANGSTROM, line_no, direct))
        elif kind == "cell":
            rows = _take_matching(_Lines(text, m.end()), re.compile(r"^\s*" + r"\s+".join([_NUM] * 3)), 3, 0)
            if rows is None:
                raise ParseError(path, "3 lattice vectors after 'Lattice vectors:'", line=line_no)
            events.append(Event("cell", _numbers(path, rows, 0, line_no) * a0 * BOHR_TO_ANGSTROM, line_no))
        elif kind == "force":
            rows = _take_matching(_Lines(text, m.end()), _FORCE_LINE, natoms)
            if rows is None:
                raise ParseError(path, f"{natoms} force lines 'LABEL fx fy fz' after TOTAL-FORCE", line=line_no)
            events.append(Event("force", _numbers(path, rows, 1, line_no), line_no))
        elif kind == "stress":
            rows = _take_matching(_Lines(text, m.end()), _THREE_NUMS, 3)
            if rows is None:
                raise ParseError(path, "3 rows of 3 numbers after TOTAL-STRESS (KBAR)", line=line_no)
            events.append(Event("stress", _numbers(path, rows, 0, line_no), line_no))
    return events


def _numbers(path: str, rows: list[str], skip: int, line: int) -> np.ndarray:
    try:
        return np.array([r.split()[skip : skip + 3] for r in rows], dtype=np.float64)
    except ValueError:
        raise ParseError(path, "numbers in the block", line=line) from None


def md_energies(path: str, window: int = 1 << 24) -> np.ndarray:
    """Energy (eV) of every MD step in ``running_md.log``, NaN where the SCF did not converge.

    Scans a memory map of the file in windows of ``window`` bytes (once per kind
    of result line, skipping a kind whose gate substring is absent), and drops
    each window's pages from the process once scanned; memory is one float per
    MD step, whatever the size of the log.
    """
    if not os.path.isfile(path):
        raise ParseError(path, "the MD log running_md.log (file not found)")
    if os.path.getsize(path) == 0:
        raise ParseError(path, "an ABACUS running_md.log (the file is empty)")
    found: list[list[tuple[int, bytes]]] = [[] for _ in RESULT_RES]
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        if b"\x00" in mm[:65536]:
            raise ParseError(path, "a text ABACUS running_md.log (found NUL bytes)")
        size = len(mm)
        for start in range(0, size, window):
            end = min(size, start + window)
            stop = min(size, end + _MAX_MATCH)  # a match that starts before ``end`` ends before ``stop``
            for hits, pattern, gate in zip(found, RESULT_RES, _RESULT_GATES):
                if gate is None or mm.find(gate, start, stop) >= 0:
                    matches = pattern.finditer(mm, start, stop)  # type: ignore[arg-type]
                    hits += [(m.start(), m.group(1)) for m in matches if m.start() < end]
            release_pages(mm, start, end)
    kinds = [hits for hits in found if hits]
    if len(kinds) > 1:  # several kinds: put them in file order
        values = [v for _, v in sorted(hit for hits in kinds for hit in hits)]
    else:
        values = [v for _, v in kinds[0]] if kinds else []
    if values and all(values):
        return np.array(values, dtype=np.float64)
    return np.array([float(v) if v else np.nan for v in values], dtype=np.float64)


def release_pages(mm: mmap.mmap, start: int, end: int) -> None:
    """Drop the mapped pages of ``mm[start:end]`` from the process (they stay in the page cache).

    Pages of a memory map count in the resident size of the process: without
    this, scanning a 1 GB file would end with 1 GB resident, although a reader
    only needs the part it is working on.
    """
    start -= start % mmap.PAGESIZE
    end -= end % mmap.PAGESIZE
    if hasattr(mmap, "MADV_DONTNEED") and end > start:
        with contextlib.suppress(OSError, ValueError):
            mm.madvise(mmap.MADV_DONTNEED, start, end - start)
