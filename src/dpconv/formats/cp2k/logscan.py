"""Pieces of a CP2K text log (stdout), found with regular expressions on a memory map.

A CP2K log is a sequence of force evaluations. Each one prints (in this order)
its SCF iterations, the ``ENERGY| Total FORCE_EVAL`` line, the forces table and
the stress tensor, then the driver's summary (``MD| Step number``,
``STEP NUMBER =``, ``Informations at step =``). The functions here cut the log
at the energy lines and read each piece; :mod:`.output` and :mod:`.aimd` decide
which pieces make frames.

Layouts handled (all seen in real outputs):

* energy: ``energy (a.u.):`` (≤ 2022), ``energy [a.u.]:`` (2023–2024),
  ``energy [hartree]`` (2025 and later);
* forces: the ``ATOMIC FORCES in [a.u.]`` table (≤ 2024) or ``FORCES|`` rows (2025);
* stress: ``STRESS TENSOR [GPa]`` table (≤ 2022) or ``STRESS| Analytical stress
  tensor [GPa]``/``[bar]`` rows (2023 and later);
* MD summary: ``STEP NUMBER =`` (≤ 2022) or ``MD| Step number`` (2023 and later),
  the initial summary ``INITIAL POTENTIAL ENERGY`` or ``MD_INI|``.
"""

from __future__ import annotations

import bisect
import contextlib
import mmap
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from dpconv import units
from dpconv.errors import ParseError

_F = rb"[-+]?(?:\d+\.?\d*|\.\d+)(?:[EeDd][-+]?\d+)?"

RUN_START = re.compile(rb"PROGRAM STARTED AT")
RUN_END = re.compile(rb"PROGRAM ENDED AT")
ENERGY = re.compile(rb"\n ENERGY\| Total FORCE_EVAL \( *\w+ *\) energy[^\n]*?(" + _F + rb")[ \t]*\r?$", re.M)
FORCES_OLD = re.compile(
    rb"\n ATOMIC FORCES in \[a\.u\.\][^\n]*\n(?:[ \t]*\n)* # Atom +Kind +Element[^\n]*\n(.*?)^ SUM OF ATOMIC FORCES",
    re.M | re.S,
)
FORCES_NEW = re.compile(rb"\n FORCES\| Atomic forces \[hartree/bohr\][^\n]*\n(.*?)^ FORCES\| Sum", re.M | re.S)
FORCES_NEW_ROW = re.compile(rb"^ FORCES\|\s+\d+\s+(" + _F + rb")\s+(" + _F + rb")\s+(" + _F + rb")", re.M)
STRESS_OLD = re.compile(
    rb"\n STRESS TENSOR \[(\w+)\][^\n]*\n\s*\n\s+X\s+Y\s+Z\s*\n"
    rb"\s+X\s+(\S+)\s+(\S+)\s+(\S+)\s*\n\s+Y\s+(\S+)\s+(\S+)\s+(\S+)\s*\n\s+Z\s+(\S+)\s+(\S+)\s+(\S+)",
    re.M,
)
STRESS_NEW = re.compile(
    rb"\n STRESS\| (?:Analytical|Numerical) stress tensor \[(\w+)\][^\n]*\n STRESS\|\s+x\s+y\s+z\s*\n"
    rb" STRESS\|\s+x\s+(\S+)\s+(\S+)\s+(\S+)\s*\n STRESS\|\s+y\s+(\S+)\s+(\S+)\s+(\S+)\s*\n"
    rb" STRESS\|\s+z\s+(\S+)\s+(\S+)\s+(\S+)",
    re.M,
)
MD_STEP = re.compile(rb"(?:MD\| Step number|STEP NUMBER\s+=)\s+(\d+)")
MD_STEP_AT = (b"MD| Step number", b"STEP NUMBER")
MD_INIT_AT = (b"MD_INI| MD initialization", b"INITIAL POTENTIAL ENERGY")
OPT_STEP = re.compile(rb"Informations at step = +(\d+)")
OPT_AT = b"Informations at step"
NOT_CONVERGED_AT = (b"SCF run NOT converged", b"outer SCF loop FAILED to converge")
CELL = re.compile(
    rb"\n CELL\| Vector a \[angstrom\]:?\s+(" + _F + rb")\s+(" + _F + rb")\s+(" + _F + rb")[^\n]*\n"
    rb" CELL\| Vector b \[angstrom\]:?\s+(" + _F + rb")\s+(" + _F + rb")\s+(" + _F + rb")[^\n]*\n"
    rb" CELL\| Vector c \[angstrom\]:?\s+(" + _F + rb")\s+(" + _F + rb")\s+(" + _F + rb")",
    re.M,
)
# Patterns searched over the whole header start with a literal (no ``^``), so the regex engine can
# skip to candidates instead of trying every byte (10x faster on a 100 KB log). KIND_AT is matched at
# the start of each line holding the rare literal KIND_LIT.
KIND_LIT = b". Atomic kind: "
KIND_AT = re.compile(rb"[ \t]+(\d+)\. Atomic kind: (\S+)")
COORD_HEAD = re.compile(
    rb"\n MODULE \w+: +ATOMIC COORDINATES IN:? *(\S+)[^\n]*\n(?:[ \t]*\n)* *Atom +Kind +Element[^\n]*\n(?:[ \t]*\n)*",
    re.M,
)
COORD_ROWS = re.compile(rb"(?:^ +\d+ +\d+ +\S+ +\d+(?: +\S+){5} *\n)+", re.M)
RUN_TYPE = re.compile(rb"\n GLOBAL\| Run type\s+(\S+)")
PROJECT = re.compile(rb"\n GLOBAL\| Project name\s+(\S+)")
PRINT_LEVEL = re.compile(rb"\n GLOBAL\| Global print level\s+(\S+)")
PERIODICITY = re.compile(rb"\n CELL\| Periodicity\s+(\S+)")
VERSION = re.compile(rb"\n CP2K\| version string:\s+(.*?)\s*$", re.M)

_STRESS_TO_EV_A3 = {
    b"GPa": units.GPA_TO_EV_PER_ANGSTROM3,
    b"bar": units.BAR_TO_EV_PER_ANGSTROM3,
    b"kbar": units.KBAR_TO_EV_PER_ANGSTROM3,
}


@contextlib.contextmanager
def mapped(path: str) -> Iterator[bytes]:
    """The file's bytes as a read-only memory map (``b""`` for an empty file)."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            yield b""
            return
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            yield mm  # type: ignore[misc]
        finally:
            mm.close()


def floats(raw: bytes | list[bytes] | tuple[bytes, ...]) -> np.ndarray:
    """Fortran-style numbers (``1.0D-3`` too) as a float64 array."""
    if not isinstance(raw, bytes):
        raw = b" ".join(raw)
    if b"D" in raw or b"d" in raw:
        raw = raw.replace(b"D", b"E").replace(b"d", b"e")
    return np.array(raw.split(), dtype=np.float64)


def line_of(buf: bytes, pos: int) -> int:
    """1-based line number of byte offset ``pos``."""
    return int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8, count=pos) == 10)) + 1


@dataclass
class Header:
    """What the log says once per run: kinds, atoms, first geometry, run type."""

    start: int = 0  # offset of the last run's start in the file
    version: str = ""
    run_type: str = ""
    project: str = ""
    print_level: str = ""
    periodicity: str = ""  # 'XYZ', 'NONE', ... (2023 and later print it)
    kinds: dict[int, str] = field(default_factory=dict)  # kind index -> label
    atom_kinds: np.ndarray | None = None  # (natoms,) kind index per atom
    atom_elements: list[str] = field(default_factory=list)
    coord_blocks: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (offset, coords Å)
    cells: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (offset, 3x3 Å)


def is_cp2k_log(buf: bytes) -> bool:
    head = bytes(buf[:200_000])
    return b"CP2K|" in head or b"PROGRAM STARTED AT" in head or ENERGY.search(head) is not None


def read_header(path: str, buf: bytes, *, coords_until: int | None = None) -> Header:
    """Scan ``buf`` (from the last run start) for the run-wide facts.

    Coordinate blocks and cells are collected up to ``coords_until`` (all when None).
    """
    h = Header()
    starts = offsets(buf, (b"PROGRAM STARTED AT",), 0)[b"PROGRAM STARTED AT"]
    h.start = starts[-1] if starts else 0
    start = h.start
    end = len(buf) if coords_until is None else coords_until
    # run-wide facts and kinds are printed once, before the first force evaluation
    first_eval = ENERGY.search(buf, start)
    kinds_end = first_eval.start() if first_eval else len(buf)
    for rx, attr in (
        (RUN_TYPE, "run_type"),
        (PROJECT, "project"),
        (PRINT_LEVEL, "print_level"),
        (VERSION, "version"),
        (PERIODICITY, "periodicity"),
    ):
        m = rx.search(buf, start, kinds_end)
        if m:
            setattr(h, attr, m.group(1).decode(errors="replace"))
    pos = buf.find(KIND_LIT, start, kinds_end)
    while pos >= 0:
        nl = buf.rfind(b"\n", start, pos)
        m = KIND_AT.match(buf, start if nl < 0 else nl + 1)
        if m is not None and m.end() <= kinds_end:
            h.kinds[int(m.group(1))] = m.group(2).decode(errors="replace")
        pos = buf.find(KIND_LIT, pos + len(KIND_LIT), kinds_end)
    for m in COORD_HEAD.finditer(buf, start, end):
        unit = m.group(1).lower()
        scale = 1.0 if unit.startswith(b"angstrom") else units.BOHR_TO_ANGSTROM
        rows = COORD_ROWS.match(buf, m.end())
        if rows is None:
            raise ParseError(path, "rows of the ATOMIC COORDINATES table", line=line_of(buf, m.end()))
        table = np.array(bytes(rows.group(0)).split()).reshape(-1, 9)
        if h.atom_kinds is None:
            h.atom_kinds = table[:, 1].astype(np.int64)
            h.atom_elements = [str(e) for e in table[:, 2].astype(str)]
        h.coord_blocks.append((m.start(), table[:, 4:7].astype(np.float64) * scale))
    for m in CELL.finditer(buf, start, end):
        h.cells.append((m.start(), floats(m.groups()).reshape(3, 3)))
    return h


def forces_in(path: str, buf: bytes, lo: int, hi: int) -> np.ndarray | None:
    """The first forces table in ``buf[lo:hi]`` in hartree/bohr, (natoms, 3), or None."""
    m = FORCES_OLD.search(buf, lo, hi)
    if m is not None:
        body = bytes(m.group(1)).split()
        if len(body) % 6:
            raise ParseError(path, "6 columns per row of the ATOMIC FORCES table", line=line_of(buf, m.start()))
        return np.array(body).reshape(-1, 6)[:, 3:6].astype(np.float64)
    m = FORCES_NEW.search(buf, lo, hi)
    if m is not None:
        rows = FORCES_NEW_ROW.findall(bytes(m.group(1)))
        if not rows:
            raise ParseError(path, "rows of the FORCES| table", line=line_of(buf, m.start()))
        return floats([x for r in rows for x in r]).reshape(-1, 3)
    return None


def stress_in(path: str, buf: bytes, lo: int, hi: int) -> np.ndarray | None:
    """The first stress tensor in ``buf[lo:hi]`` in eV/Å^3, (3, 3), or None."""
    m = STRESS_NEW.search(buf, lo, hi) or STRESS_OLD.search(buf, lo, hi)
    if m is None:
        return None
    unit = m.group(1)
    if unit not in _STRESS_TO_EV_A3:
        raise ParseError(
            path, f"a stress unit of GPa, kbar or bar, not {unit.decode()!r}", line=line_of(buf, m.start())
        )
    return floats(m.groups()[1:]).reshape(3, 3) * _STRESS_TO_EV_A3[unit]


@dataclass
class Evaluation:
    """One force evaluation of the log."""

    index: int
    pos: int  # offset of its ENERGY| line
    end: int  # offset of the next ENERGY| line (or end of file)
    energy: float  # hartree
    converged: bool
    md_step: int | None = None  # from the MD summary after it (-1: the initial MD_INI summary)
    opt_step: int | None = None  # from 'Informations at step =' after it


def evaluations(buf: bytes, start: int = 0) -> Iterator[Evaluation]:
    """Every force evaluation after ``start``, in file order.

    The markers that follow or precede an evaluation (MD step summaries, SCF
    failures, optimiser steps) are located once for the whole file with plain
    ``find`` and assigned to evaluations by bisection.
    """
    marks = Marks(buf, start)
    released = start
    prev_end = start
    pending: re.Match[bytes] | None = None
    k = 0
    for m in ENERGY.finditer(buf, start):
        if pending is not None:
            if pending.start() - released > RELEASE_BYTES:
                released = _release(buf, released, pending.start())
            yield _evaluation(buf, k, pending, m.start(), prev_end, marks)
            prev_end = pending.end()
            k += 1
        pending = m
    if pending is not None:
        yield _evaluation(buf, k, pending, len(buf), prev_end, marks)


RELEASE_BYTES = 8 << 20


def _release(buf: bytes, lo: int, hi: int) -> int:
    """Let the kernel drop the mapped pages of ``buf[lo:hi]`` from this process (they stay in
    the page cache), so that the resident size of a long log stays bounded; returns the new mark."""
    if not isinstance(buf, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return hi
    lo -= lo % mmap.PAGESIZE
    hi -= hi % mmap.PAGESIZE
    if hi > lo:
        with contextlib.suppress(OSError, ValueError):
            buf.madvise(mmap.MADV_DONTNEED, lo, hi - lo)
    return hi


def offsets(buf: bytes, literals: tuple[bytes, ...], start: int) -> dict[bytes, list[int]]:
    """Offsets of each of ``literals`` in ``buf[start:]``: one pass in windows, releasing
    each window's mapped pages behind it (so they are not touched again)."""
    out: dict[bytes, list[int]] = {lit: [] for lit in literals}
    n = len(buf)
    for lo in range(start, n, RELEASE_BYTES):
        hi = min(n, lo + RELEASE_BYTES)
        for lit in literals:
            stop = min(n, hi + len(lit) - 1)
            p = buf.find(lit, lo, stop)
            while 0 <= p < hi:
                out[lit].append(p)
                p = buf.find(lit, p + len(lit), stop)
        _release(buf, lo, hi)
    return out


class Marks:
    """Sorted offsets of the literal markers of a log."""

    def __init__(self, buf: bytes, start: int) -> None:
        found = offsets(buf, (*MD_STEP_AT, *MD_INIT_AT, *NOT_CONVERGED_AT, OPT_AT), start)

        def merged(lits: tuple[bytes, ...]) -> list[int]:
            return sorted(p for lit in lits for p in found[lit])

        self.md_step = merged(MD_STEP_AT)
        self.md_init = merged(MD_INIT_AT)
        self.failed = merged(NOT_CONVERGED_AT)
        self.opt = merged((OPT_AT,))

    @staticmethod
    def first(offsets: list[int], lo: int, hi: int) -> int:
        """The first offset in ``[lo, hi)``, or -1."""
        i = bisect.bisect_left(offsets, lo)
        return offsets[i] if i < len(offsets) and offsets[i] < hi else -1


def _evaluation(buf: bytes, k: int, m: re.Match[bytes], end: int, prev_end: int, marks: Marks) -> Evaluation:
    converged = marks.first(marks.failed, prev_end, m.start()) < 0
    ev = Evaluation(k, m.start(), end, float(m.group(1).replace(b"D", b"E")), converged)
    s = marks.first(marks.md_step, m.end(), end)
    i = marks.first(marks.md_init, m.end(), end)
    if i >= 0 and (s < 0 or i < s):
        ev.md_step = -1
    elif s >= 0:
        sm = MD_STEP.match(buf, s)
        if sm is not None:
            ev.md_step = int(sm.group(1))
    o = marks.first(marks.opt, m.end(), end)
    if o >= 0:
        om = OPT_STEP.match(buf, o)
        if om is not None:
            ev.opt_step = int(om.group(1))
    return ev
