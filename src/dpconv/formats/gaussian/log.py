"""``gaussian/log``: the last force evaluation of a Gaussian output (single point, ``Force``, ``Opt``).

A frame of a Gaussian log is one force evaluation: the ``Input orientation:``
(or ``Z-Matrix orientation:``) table, then ``SCF Done:`` and then the
``Forces (Hartrees/Bohr)`` table. Gaussian prints the forces in the *input*
orientation (the log says ``Axes restored to original set`` just before them),
so coordinates come from the input orientation, never from the ``Standard
orientation:`` table; a log without an input orientation (large molecules
print none unless ``Geom=PrintInputOrient``) is an error.

The file is memory-mapped and read in one forward pass: ``bytes.find`` of
the long forces header jumps from frame to frame, and each frame's input
orientation table and ``SCF Done`` line are found searching *back* from its
forces over that frame's text only (``rfind``), so the file is scanned once
and the regular expressions run only where a table starts. The tables of a
block of frames are converted at once from their fixed Fortran columns. :mod:`dpconv.formats.gaussian.md` reads every
frame with the same scanner.

Units: energy hartree → eV, forces hartree/bohr → eV/Å, coordinates are Å.
Molecules get ``nopbc=True`` and a dummy 100 Å cubic cell (what dpdata stores;
the cell of a non-periodic system carries no meaning). Rows of atomic number
-2 (``TV``, Gaussian's PBC translation vectors) become the cell, and then
``nopbc`` is False.
"""

from __future__ import annotations

import math
import mmap
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpconv import units
from dpconv.elements import SYMBOLS
from dpconv.errors import ParseError

#: Element symbols indexed by atomic number; 0 is a ghost/dummy atom ("X", as dpdata).
ELEMENTS = SYMBOLS

FORCES = b"Atomic                   Forces (Hartrees/Bohr)"
ORIENTATIONS = (b"Input orientation:", b"Z-Matrix orientation:")
STANDARD = b"Standard orientation:"
SCF_DONE = b"SCF Done:"
NOT_CONVERGED = b"Convergence criterion not met"
NORMAL_END = b"Normal termination"
ERROR_END = b"Error termination"
TV = -2  # atomic number Gaussian prints for a translation vector
DUMMY_CELL = 100.0  # Å, the cubic box dpdata gives molecules
FORCES_TABLE = re.compile(rb"Atomic {19}Forces \(Hartrees/Bohr\)[^\n]*\n[^\n]*\n -+\n((?:[^\n]*\n)*?) -")
ORIENT_TABLE = re.compile(rb"orientation:[^\n]*\n -+\n[^\n]*\n[^\n]*\n -+\n((?:[^\n]*\n)*?) -")
SCF_LINE = re.compile(rb"SCF Done:[^=\n]*=\s*(\S+)")
WINDOW = 1 << 23  # at most this many bytes read between two page releases (8 MB)
RELEASE_BYTES = 1 << 22  # hand back the pages of the map every 4 MB read (keeps RSS flat)
CHUNK_VALUES = 1 << 16  # numbers per yielded block (frames * atoms * 3), bounds memory


@dataclass
class RawFrame:
    """One force evaluation before conversion: table texts and the energy in hartree."""

    index: int
    coords: bytes
    forces: bytes
    energy: float
    converged: bool


class Scanner:
    """Finds the frames of a Gaussian log; after iteration, ``tail`` describes what followed the last one."""

    def __init__(self, mm: mmap.mmap | bytes, path: str) -> None:
        self.mm = mm
        self.path = path
        self.truncated: int | None = None  # index of a frame cut by the end of the file
        self.released = 0  # mapped bytes before this were handed back (see release)
        self.normal_end = NORMAL_END in mm[max(0, len(mm) - 8192) :]
        self.error_end = ERROR_END in mm[max(0, len(mm) - 65536) :]

    def line_of(self, pos: int) -> int:
        return line_of(self.mm, pos)

    def release(self, upto: int) -> None:
        """Drop the mapped pages before ``upto`` from this process (they were parsed and copied)."""
        start = self.released
        end = upto - upto % mmap.PAGESIZE
        if isinstance(self.mm, mmap.mmap) and end > start and hasattr(mmap, "MADV_DONTNEED"):
            self.mm.madvise(mmap.MADV_DONTNEED, start, end - start)
            self.released = end

    def _orientation(self, seg: int, f: int) -> int:
        """Start of the last input (or Z-matrix) orientation header in ``[seg, f)``, or -1.

        One backward search for the common word skips ``Standard orientation:``
        tables (which are not in the frame of the forces)."""
        mm = self.mm
        end = f
        while True:
            o = mm.rfind(b" orientation:", seg, end)
            if o < 0:
                return -1
            for head in ORIENTATIONS:
                start = o + 13 - len(head)
                if start >= seg and mm[start : o + 13] == head:
                    return start
            end = o

    def _orientation_table(self, seg: int, f: int, index: int) -> re.Match[bytes]:
        """The table of the last input (or Z-matrix) orientation in ``[seg, f)``: searched back
        from the forces, skipping ``Standard orientation:`` tables (not the forces' frame)."""
        mm = self.mm
        end = f
        while True:
            p = mm.rfind(b" orientation:", seg, end)
            if p < 0:
                break
            if mm[max(p - 8, 0) : p] != b"Standard":
                om = ORIENT_TABLE.match(mm, p + 1)
                if om is not None:
                    return om
            end = p
        hint = (
            " (only a 'Standard orientation:' table, which is not the forces' frame)"
            if mm.rfind(STANDARD, seg, f) >= 0
            else ""
        )
        raise ParseError(
            self.path,
            "an 'Input orientation:' table before the forces" + hint + "; rerun Gaussian with Geom=PrintInputOrient",
            line=self.line_of(f),
            frame=index,
        )

    def __iter__(self) -> Iterator[RawFrame]:
        """Frames in file order, from one forward pass.

        ``bytes.find`` of the long forces header (memchr-class speed) jumps from
        frame to frame; each frame's other anchors are found searching *back*
        from its forces table over that frame's text only: the last input (or
        Z-matrix) orientation, then the ``SCF Done`` line. No second scan of the
        file, and the regular expressions only run where a table starts."""
        mm = self.mm
        find, rfind = mm.find, mm.rfind
        fmatch, ematch = FORCES_TABLE.match, SCF_LINE.match
        seg = 0  # end of the last complete frame
        index = 0
        step = min(WINDOW, RELEASE_BYTES)
        f = find(FORCES)
        while f >= 0:
            fm = fmatch(mm, f)
            if fm is None:  # a cut (or malformed) forces table: skipped; the tail check below reports it
                f = find(FORCES, f + len(FORCES))
                continue
            om = self._orientation_table(seg, f, index)
            o_end = om.end(1)
            e = rfind(SCF_DONE, o_end, f)
            if e < 0:
                raise ParseError(self.path, "an 'SCF Done:' line before the forces", line=self.line_of(f), frame=index)
            em = ematch(mm, e)
            try:
                energy = float(em.group(1)) if em else math.nan
            except ValueError:
                energy = math.nan
            if math.isnan(energy):  # no number after '='
                raise ParseError(self.path, "'SCF Done:  E(...) = <number>'", line=self.line_of(e), frame=index)
            # Gaussian prints the warning just before 'SCF Done' when told to go on regardless
            converged = find(NOT_CONVERGED, max(o_end, e - 512), e) < 0
            yield RawFrame(index, om.group(1), fm.group(1), energy, converged)
            index += 1
            seg = fm.end(1)
            if seg - self.released >= step:
                self.release(seg)
            f = find(FORCES, seg)
        # what follows the last complete frame: a cut forces table, or a new geometry without
        # forces, is a cut frame unless the run ended normally (an Opt reprints the final
        # geometry without forces)
        if mm.find(FORCES, seg) >= 0 or (not self.normal_end and self._orientation(seg, len(mm)) >= 0):
            self.truncated = index


def line_of(mm: mmap.mmap | bytes, pos: int) -> int:
    """1-based line number of byte ``pos`` (only computed for error messages)."""
    step = 1 << 24
    return 1 + sum(mm[i : min(i + step, pos)].count(b"\n") for i in range(0, pos, step))


def open_log(path: str) -> tuple[Any, mmap.mmap | bytes]:
    """Open ``path`` and map it; raises ParseError for an empty file or one that is not a Gaussian log."""
    fh = open(path, "rb")  # noqa: SIM115 - closed by the caller (the map outlives this function)
    size = os.fstat(fh.fileno()).st_size
    if size == 0:
        fh.close()
        raise ParseError(path, "a Gaussian log, got an empty file", line=1)
    mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    head = mm[:65536]
    if b"Gaussian" not in head and mm.find(FORCES) < 0:
        mm.close()
        fh.close()
        raise ParseError(path, "a Gaussian log (no 'Entering Gaussian System' banner, no forces table)", line=1)
    return fh, mm


def _table_numbers(path: str, tables: list[bytes], ncol: int, what: str, first: int) -> np.ndarray:
    """The rows of several tables as one (nrows_total, ncol) array."""
    try:
        vals = np.array(b" ".join(tables).split(), dtype=np.float64)
        return vals.reshape(-1, ncol)
    except ValueError:
        pass
    for i, t in enumerate(tables):  # find the bad one for the message
        try:
            np.array(t.split(), dtype=np.float64).reshape(-1, ncol)
        except ValueError:
            raise ParseError(path, f"a {what} table of {ncol} numbers per row", frame=first + i) from None
    raise ParseError(path, f"a {what} table of {ncol} numbers per row", frame=first)


def _row_layout(table: bytes, width: int) -> tuple[int, np.ndarray] | None:
    """Row length and the bytes before the 3 numbers of each row (which name the atoms),
    when every row of ``table`` has the same length; else None."""
    if not table:
        return None
    rowlen = table.index(b"\n") + 1
    if len(table) % rowlen or rowlen <= 3 * width + 1:
        return None
    u8 = np.frombuffer(table, np.uint8).reshape(-1, rowlen)
    if not (u8[:, -1] == 10).all():
        return None
    return rowlen, u8[:, : rowlen - 1 - 3 * width].copy()


def _fixed_width(tables: list[bytes], layout: tuple[int, np.ndarray] | None, width: int) -> np.ndarray | None:
    """The 3 fixed-width numbers ending each row, (nframes, nrows, 3), parsed in C.

    Gaussian writes these tables with Fortran formats (3F12.6 and 3F15.9), so
    every row of every frame has the same length and the same leading columns
    (center and atomic numbers). None when that does not hold (the caller then
    splits on whitespace, which also finds the bad frame for the message)."""
    if layout is None:
        return None
    rowlen, ref = layout
    blob = b"".join(tables)
    nf = len(tables)
    if len(blob) != nf * ref.shape[0] * rowlen:
        return None
    u8 = np.frombuffer(blob, np.uint8).reshape(nf, ref.shape[0], rowlen)
    if not (u8[:, :, -1] == 10).all() or not (u8[:, :, : ref.shape[1]] == ref).all():
        return None
    nums = np.ascontiguousarray(u8[:, :, rowlen - 1 - 3 * width : rowlen - 1])
    try:
        return nums.view(f"S{width}").astype(np.float64).reshape(nf, ref.shape[0], 3)
    except ValueError:
        return None


class _Converter:
    """Turns chunks of raw frames into data dicts with one fixed atom list."""

    def __init__(self, path: str, first: RawFrame) -> None:
        self.path = path
        self.ccols = len(first.coords.split(b"\n", 1)[0].split())
        if self.ccols not in (5, 6):
            raise ParseError(path, "orientation rows of 5 or 6 columns", frame=first.index)
        self.nrows = first.coords.count(b"\n")
        rows = _table_numbers(path, [first.coords], self.ccols, "orientation", first.index)
        z = rows[:, 1].astype(np.int64)
        self.z = z
        self.is_tv = z == TV
        atoms_z = z[~self.is_tv]
        if atoms_z.size == 0 or atoms_z.min() < 0 or atoms_z.max() >= len(ELEMENTS):
            raise ParseError(path, "atomic numbers between 0 and 118 in the orientation table", frame=first.index)
        ntv = int(self.is_tv.sum())
        if ntv not in (0, 3):
            raise ParseError(
                path, f"0 or 3 translation vectors (TV), got {ntv} (1D/2D PBC is not supported)", frame=first.index
            )
        symbols = [ELEMENTS[int(i)] for i in atoms_z]
        self.names = sorted(set(symbols))  # sorted names, as dpdata
        index = {n: i for i, n in enumerate(self.names)}
        self.types = np.array([index[e] for e in symbols], dtype=np.int64)
        self.natoms = len(symbols)
        self.nopbc = ntv == 0
        self._layouts: tuple[tuple[int, np.ndarray] | None, tuple[int, np.ndarray] | None] | None = None
        frows = _table_numbers(path, [first.forces], 5, "forces", first.index)
        self.fkeep = frows[:, 1] != TV
        # the first frame's tables, already parsed: a one-frame block (a single point) reuses them
        self.first, self.first_xyz, self.first_f = first, rows[:, -3:], frows[self.fkeep, 2:]

    def layouts(self) -> tuple[tuple[int, np.ndarray] | None, tuple[int, np.ndarray] | None]:
        """Fixed-width row layouts of the first frame's orientation and forces tables (computed
        on the first block of several frames; a single point never needs them)."""
        if self._layouts is None:
            self._layouts = (_row_layout(self.first.coords, 12), _row_layout(self.first.forces, 15))
        return self._layouts

    def block(self, frames: list[RawFrame]) -> dict[str, Any]:
        if len(frames) == 1 and frames[0] is self.first:
            xyz, fxyz = self.first_xyz[None], self.first_f[None]
        else:
            clayout, flayout = self.layouts()
            xyz = _fixed_width([fr.coords for fr in frames], clayout, 12)
            fxyz = _fixed_width([fr.forces for fr in frames], flayout, 15) if xyz is not None else None
            if xyz is None or fxyz is None or fxyz.shape[1] != len(self.fkeep):
                xyz, fxyz = self._split_tables(frames)
            else:
                fxyz = fxyz[:, self.fkeep]
        nf = len(frames)
        coords = np.ascontiguousarray(xyz[:, ~self.is_tv])
        if self.nopbc:
            cells = np.broadcast_to(np.eye(3) * DUMMY_CELL, (nf, 3, 3)).copy()
        else:
            cells = np.ascontiguousarray(xyz[:, self.is_tv])
        forces = fxyz
        if forces.shape[1] != self.natoms:
            raise ParseError(self.path, f"{self.natoms} atoms in the forces table", frame=frames[0].index)
        energies = np.array([fr.energy for fr in frames], dtype=np.float64)
        return {
            "atom_names": list(self.names),
            "atom_numbs": np.bincount(self.types, minlength=len(self.names)).astype(np.int64),
            "atom_types": self.types.copy(),
            "cells": cells,
            "coords": coords,
            "energies": energies * units.HARTREE_TO_EV,
            "forces": forces * units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
            "nopbc": self.nopbc,
        }

    def _split_tables(self, frames: list[RawFrame]) -> tuple[np.ndarray, np.ndarray]:
        """Both tables split on whitespace (any layout), with checks that name the bad frame."""
        nf = len(frames)
        for fr in frames:
            if fr.coords.count(b"\n") != self.nrows:
                raise ParseError(self.path, f"{self.nrows} rows in the orientation table (as frame 0)", frame=fr.index)
        rows = _table_numbers(
            self.path, [fr.coords for fr in frames], self.ccols, "orientation", frames[0].index
        ).reshape(nf, self.nrows, self.ccols)
        if not (rows[:, :, 1] == self.z).all():
            bad = int(np.flatnonzero((rows[:, :, 1] != self.z).any(axis=1))[0])
            raise ParseError(self.path, "the same atoms in every frame", frame=frames[bad].index)
        frows = _table_numbers(self.path, [fr.forces for fr in frames], 5, "forces", frames[0].index)
        if len(frows) % nf:
            raise ParseError(self.path, f"{self.natoms} rows in every forces table", frame=frames[0].index)
        frows = frows.reshape(nf, -1, 5)
        return rows[:, :, -3:], frows[:, frows[0, :, 1] != TV, 2:]


def read_frames(path: str, last_only: bool) -> Iterator[dict[str, Any]]:
    """Blocks of converged frames of a Gaussian log (or only its last complete frame)."""
    fh, mm = open_log(path)
    try:
        scanner = Scanner(mm, path)
        conv: _Converter | None = None
        pending: list[RawFrame] = []
        unconverged: list[int] = []
        last: RawFrame | None = None
        nfound = 0
        per_block = 1
        for raw in scanner:
            nfound += 1
            if not raw.converged:
                unconverged.append(raw.index)
                continue
            if last_only:
                last = raw
                continue
            if conv is None:
                conv = _Converter(path, raw)
                per_block = max(1, CHUNK_VALUES // (3 * conv.natoms))
            pending.append(raw)
            if len(pending) >= per_block:
                yield conv.block(pending)
                pending = []
        if last_only and last is not None:
            pending = [last]
            conv = _Converter(path, last)
        _warn_tail(scanner, path, nfound, unconverged)
        if nfound == 0:
            _no_frames(scanner, mm, path)
        if pending and conv is not None:
            yield conv.block(pending)
    finally:
        if isinstance(mm, mmap.mmap):
            mm.close()
        fh.close()


def _warn_tail(scanner: Scanner, path: str, nfound: int, unconverged: list[int]) -> None:
    if unconverged:
        warnings.warn(f"{path}: SCF not converged in frames {unconverged}; dropped", stacklevel=3)
    if nfound == 0:
        return
    why = " (the run ended with 'Error termination')" if scanner.error_end else ""
    if scanner.truncated is not None:
        warnings.warn(f"{path}: frame {scanner.truncated} is truncated; dropped{why}", stacklevel=3)
    elif not scanner.normal_end:
        how = "an 'Error termination'" if scanner.error_end else "no 'Normal termination' line"
        warnings.warn(f"{path}: the run ends with {how}; read the {nfound} complete frames", stacklevel=3)


def _no_frames(scanner: Scanner, mm: mmap.mmap | bytes, path: str) -> None:
    if scanner.error_end:
        raise ParseError(
            path, "a 'Forces (Hartrees/Bohr)' table; the run ended with 'Error termination' before printing any"
        )
    if scanner.truncated is not None:
        f = mm.find(FORCES)
        where = f if f >= 0 else max(mm.find(h) for h in ORIENTATIONS)
        raise ParseError(
            path, "a complete frame; the file ends inside frame 0", frame=0, line=scanner.line_of(max(where, 0))
        )
    raise ParseError(path, "a 'Forces (Hartrees/Bohr)' table: run Gaussian with the Force keyword")


def read(path: str, type_map: Sequence[str] | None = None, md: bool = False, **_: Any) -> Iterator[dict[str, Any]]:
    """Yield the last complete frame (or every frame with ``md=True``, as ``gaussian/md``)."""
    del type_map  # Gaussian names every atom
    yield from read_frames(os.fspath(path), last_only=not md)
