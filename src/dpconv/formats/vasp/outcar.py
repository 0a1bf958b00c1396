"""``vasp/outcar``: the ionic steps of a VASP ``OUTCAR`` (MD, relaxation, on-the-fly ML).

The file is read in chunks of ``chunk_bytes``. Each ionic step ends with its
``free  energy   TOTEN`` line (``free  energy ML TOTEN`` for ``ml=True``); the
bytes since the previous such line are the step's segment. Inside it the reader
looks backwards (``bytes.rfind``, no per-line Python) for the last
``POSITION ... TOTAL-FORCE`` table, the last ``direct lattice vectors`` and
the last ``in kB`` stress row, and for the last ``Iteration  n(  m)`` line,
whose ``m`` is the number of electronic steps. The tables of all steps of a
chunk are then parsed with one numpy call each. Memory is bounded by a chunk
plus the arrays of one block of frames, whatever the file size.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpconv import units
from dpconv.errors import ParseError
from dpconv.formats.vasp._common import (
    Buffer,
    MappedFile,
    element_of,
    floats,
    line_at,
    merge_species,
    rotate_lower_triangular,
    volumes,
)

_ENERGY = {False: b"free  energy   TOTEN", True: b"free  energy ML TOTEN"}
_ITER = re.compile(rb"Iteration\s*\d*\s*\(\s*(\d+)\)")
_STARTED = {
    False: re.compile(rb"Iteration\s*\d*\s*\(|TOTAL-FORCE \(eV/Angst\)[ \t]*\r?\n"),
    True: re.compile(rb"ML FORCE on cell|TOTAL-FORCE \(eV/Angst\)[ \t]*\(ML\)"),
}
_HEADER_LIMIT = 64 << 20  # the header (POTCAR, INCAR echo) is never this long


@dataclass
class Header:
    """What the start of an OUTCAR says about the run."""

    atom_names: list[str]
    atom_numbs: np.ndarray
    atom_types: np.ndarray
    nelm: int | None

    @property
    def natoms(self) -> int:
        return len(self.atom_types)


def parse_header(path: str, text: bytes) -> Header:
    """Species (POTCAR ``TITEL``/``VRHFIN``/``POTCAR:`` lines), ``ions per type`` and ``NELM``."""
    if not text.strip():
        raise ParseError(path, "a VASP OUTCAR, got an empty file", line=1)
    m = re.search(rb"ions per type\s*=([^\n]*)", text)
    if m is None:
        raise ParseError(path, "a VASP OUTCAR: no 'ions per type' line in the header", line=1)
    line_no = text.count(b"\n", 0, m.start()) + 1
    tail = m.group(1).decode("ascii", "replace")
    try:
        counts = [int(t) for t in tail.split()]
    except ValueError:
        raise ParseError(path, f"integers after 'ions per type =', got {tail.strip()!r}", line=line_no) from None
    candidates = [
        [element_of(t.decode("ascii", "replace")) for t in re.findall(rb"TITEL\s*=\s*\S+\s+(\S+)", text)],
        [element_of(t.decode("ascii", "replace")) for t in re.findall(rb"VRHFIN\s*=\s*([^:\s]+)", text)],
    ]
    potcar = [element_of(t.decode("ascii", "replace")) for t in re.findall(rb"POTCAR:\s*\S+\s+(\S+)", text)]
    # VASP echoes the POTCAR: lines twice (the list, then once per species block)
    half = len(potcar) // 2
    candidates.append(potcar[:half] if half and potcar[:half] == potcar[half:] else potcar)
    names = next((c for c in candidates if len(c) == len(counts)), None)
    if names is None:
        found = next((c for c in candidates if c), [])
        raise ParseError(
            path,
            f"one species name per 'ions per type' count ({len(counts)}), found {found} in the "
            "POTCAR lines (VASP <= 6.3 may write a broken header; try the vasprun.xml)",
            line=line_no,
        )
    atom_names, atom_numbs, atom_types = merge_species(names, counts)
    n = re.search(rb"NELM\s*=\s*(\d+)", text)
    return Header(atom_names, atom_numbs, atom_types, int(n.group(1)) if n else None)


@dataclass
class _Step:
    index: int  # ionic step (0-based, counting every step of the file)
    energy: float
    force: tuple[int, int]  # byte range of the POSITION/TOTAL-FORCE rows
    cell: tuple[int, int] | None  # byte range of the three lattice rows
    virial: tuple[int, int] | None  # byte range of the numbers of the 'in kB' row

    @property
    def first(self) -> int:
        """The first byte the block parser reads again."""
        return min(span[0] for span in (self.force, self.cell, self.virial) if span is not None)


def read(
    path: str,
    type_map: Sequence[str] | None = None,
    *,
    ml: bool = False,
    convergence_check: bool = True,
    lower_triangular: bool = True,
    ml_virials: bool = False,
    begin: int = 0,
    step: int = 1,
    block_frames: int = 512,
    chunk_bytes: int = 8 << 20,
) -> Iterator[dict[str, Any]]:
    """Yield blocks of at most ``block_frames`` frames of the OUTCAR ``path``.

    Parameters
    ----------
    ml:
        Read the machine-learned steps of an on-the-fly ML run (``free energy ML
        TOTEN``, ``TOTAL-FORCE (ML)``) instead of the first-principles ones.
    convergence_check:
        Drop ionic steps whose electronic loop reached ``NELM`` (with a warning
        naming them); False keeps them (still warned). Not applied to ML steps.
    lower_triangular:
        Rotate each frame so that its cell is lower triangular, as dpdata does
        (coordinates, forces and virials rotated with it). False keeps VASP's axes.
    ml_virials:
        With ``ml=True``, also read the ML stress as virials (dpdata never does).
    begin, step:
        Keep ionic steps ``begin::step`` (counted over all steps of the file).
    """
    del type_map  # the OUTCAR names its species
    if begin < 0 or step < 1:
        raise ValueError(f"begin must be >= 0 and step >= 1, got begin={begin}, step={step}")
    reader = _Reader(path, ml, convergence_check, lower_triangular, ml_virials or not ml, begin, step)
    reader.block_frames = max(1, block_frames)
    reader.chunk_bytes = max(1 << 16, chunk_bytes)
    yield from reader.blocks()


class _Reader:
    def __init__(
        self,
        path: str,
        ml: bool,
        convergence_check: bool,
        lower_triangular: bool,
        virials: bool,
        begin: int,
        step: int,
    ) -> None:
        self.path = path
        self.ml = ml
        self.token = _ENERGY[ml]
        self.convergence_check = convergence_check
        self.lower_triangular = lower_triangular
        self.want_virials = virials
        self.begin = begin
        self.step = step
        self.block_frames = 512
        self.chunk_bytes = 8 << 20
        self.header: Header | None = None
        self.size = 0
        self.nsteps = 0
        self.nkept = 0
        self.unconverged: list[int] = []
        self.unlabeled: list[int] = []
        self.last_cell: np.ndarray | None = None
        self.has_virials: bool | None = None

    # -- the scan ------------------------------------------------------------------------
    def blocks(self) -> Iterator[dict[str, Any]]:
        with MappedFile(self.path, self.chunk_bytes) as mf:
            yield from self._scan(mf)
        self._report()

    def _scan(self, mf: MappedFile) -> Iterator[dict[str, Any]]:
        buf, size = mf.buf, mf.size
        if size == 0:
            raise ParseError(self.path, "a VASP OUTCAR, got an empty file", line=1)
        self.size = size
        self.header = parse_header(self.path, buf[: _header_end(buf, self.token, size)])
        steps: list[_Step] = []
        seg = 0  # end of the last energy line: start of the next ionic step's segment
        while True:
            e = mf.find(self.token, seg)
            if e < 0:
                break
            le = buf.find(b"\n", e)
            le = size if le < 0 else le
            st = self._step(buf, seg, e, le)
            seg = le
            if st is not None:
                steps.append(st)
                if len(steps) >= self.block_frames:
                    yield self._block(buf, steps)
                    steps = []
            # the tables of pending steps are read again when their block is parsed
            mf.keep = steps[0].first if steps else None
            mf.release(seg)
        if steps:
            yield self._block(buf, steps)
        self._check_tail(buf, seg)

    def _step(self, buf: Buffer, s: int, e: int, le: int) -> _Step | None:
        """Locate the tables of the ionic step whose energy line is ``buf[e:le]``; None to skip it."""
        index = self.nsteps
        self.nsteps += 1
        words = buf[e + len(self.token) : le].split()
        try:
            if words[0] != b"=" or not words[2].startswith(b"eV"):
                raise ValueError
            energy = float(words[1])
        except (IndexError, ValueError):
            if le == self.size:
                warnings.warn(f"{self.path}: frame {index} is truncated; dropped", stacklevel=4)
                self.nsteps -= 1
                return None
            raise ParseError(
                self.path, f"'{self.token.decode()}  =  <number> eV'", line=self._line(buf, e), frame=index
            ) from None
        if index < self.begin or (index - self.begin) % self.step:
            return None
        if not self.ml:
            nsc = self._electronic_steps(buf, s, e)
            if nsc is not None and self.header is not None and self.header.nelm is not None and nsc >= self.header.nelm:
                self.unconverged.append(index)
                if self.convergence_check:
                    return None
        force = self._force_rows(buf, s, e)
        if force is None:
            self.unlabeled.append(index)
            return None
        fpos = force[0]
        cell = _lattice_rows(buf, s, fpos)
        virial = self._stress_row(buf, s, fpos) if self.want_virials else None
        return _Step(index, energy, force, cell, virial)

    def _electronic_steps(self, buf: Buffer, s: int, e: int) -> int | None:
        if self.ml:
            return None
        it = buf.rfind(b"Iteration", s, e)
        while it >= 0:
            m = _ITER.match(buf, it, min(e, it + 64))
            if m:
                return int(m.group(1))
            it = buf.rfind(b"Iteration", s, it)
        return None

    def _force_rows(self, buf: Buffer, s: int, e: int) -> tuple[int, int] | None:
        pos = e
        while True:
            h = buf.rfind(b"TOTAL-FORCE", s, pos)
            if h < 0:
                return None
            hl = buf.find(b"\n", h, e)
            if hl < 0:
                return None
            if (b"(ML)" in buf[h:hl]) == self.ml:
                break
            pos = h
        r0 = buf.find(b"\n", hl + 1, e)  # the dashes under the header
        d = buf.find(b"--", r0 + 1, e) if r0 >= 0 else -1
        if d < 0:
            return None
        r1 = buf.rfind(b"\n", r0, d) + 1
        return r0 + 1, r1

    def _stress_row(self, buf: Buffer, s: int, fpos: int) -> tuple[int, int] | None:
        pos = fpos
        while True:
            h = buf.rfind(b"FORCE on cell =-STRESS", s, pos)
            if h < 0:
                return None
            if (buf[max(s, h - 3) : h] == b"ML ") == self.ml:
                break
            pos = h
        kb = buf.find(b"in kB", h, fpos)
        if kb < 0:
            return None
        end = buf.find(b"\n", kb, fpos)
        return kb + 5, end if end >= 0 else fpos

    # -- bulk parsing ----------------------------------------------------------------------
    def _block(self, buf: Buffer, steps: list[_Step]) -> dict[str, Any]:
        assert self.header is not None
        h = self.header
        nf, na = len(steps), h.natoms
        rows = self._numbers(buf, [st.force for st in steps], na * 6, steps, "the POSITION/TOTAL-FORCE table")
        table = rows.reshape(nf, na, 6)
        cells = np.empty((nf, 3, 3))
        with_cell = [i for i, st in enumerate(steps) if st.cell is not None]
        cell_spans = [c for c in (st.cell for st in steps) if c is not None]
        parsed = self._numbers(
            buf, cell_spans, 18, [steps[i] for i in with_cell], "three rows of 'direct lattice vectors'"
        )
        parsed = parsed.reshape(len(with_cell), 3, 6)[:, :, :3]
        j = 0
        for i, st in enumerate(steps):
            if st.cell is not None:
                self.last_cell = parsed[j]
                j += 1
            if self.last_cell is None:
                raise ParseError(self.path, "a 'direct lattice vectors' table before the first forces", frame=st.index)
            cells[i] = self.last_cell
        data: dict[str, Any] = {
            "atom_names": list(h.atom_names),
            "atom_numbs": h.atom_numbs.copy(),
            "atom_types": h.atom_types.copy(),
            "nopbc": False,
            "cells": cells,
            "coords": np.ascontiguousarray(table[:, :, :3]),
            "energies": np.array([st.energy for st in steps]),
            "forces": np.ascontiguousarray(table[:, :, 3:]),
        }
        if self.want_virials:
            have = all(st.virial is not None for st in steps)
            if self.has_virials is None:
                self.has_virials = have
            elif have != self.has_virials:
                warnings.warn(
                    f"{self.path}: some ionic steps print no 'in kB' stress row; virials "
                    "are kept only where every frame of a block has them",
                    stacklevel=3,
                )
            if have:
                spans = [v for v in (st.virial for st in steps) if v is not None]
                kb = self._numbers(buf, spans, 6, steps, "six numbers on the 'in kB' row")
                kb = kb.reshape(nf, 6)
                v = np.empty((nf, 3, 3))
                v[:, 0, 0], v[:, 1, 1], v[:, 2, 2] = kb[:, 0], kb[:, 1], kb[:, 2]
                v[:, 0, 1] = v[:, 1, 0] = kb[:, 3]
                v[:, 1, 2] = v[:, 2, 1] = kb[:, 4]
                v[:, 0, 2] = v[:, 2, 0] = kb[:, 5]
                data["virials"] = v * (volumes(cells) * units.KBAR_TO_EV_PER_ANGSTROM3)[:, None, None]
        if self.lower_triangular:
            rotate_lower_triangular(data)
        self.nkept += nf
        return data

    def _numbers(
        self, buf: Buffer, spans: list[tuple[int, int]], per: int, steps: list[_Step], what: str
    ) -> np.ndarray:
        if not spans:
            return np.zeros(0)
        arr = floats(b"\n".join(buf[a:b] for a, b in spans), per * len(spans))
        if arr is not None:
            return arr
        for (a, b), st in zip(spans, steps):  # find the culprit
            if floats(buf[a:b], per) is None:
                raise ParseError(
                    self.path,
                    f"{what} of {per} numbers ({per // 6 or 1} rows)",
                    line=self._line(buf, a),
                    frame=st.index,
                )
        raise ParseError(self.path, what)  # pragma: no cover - the loop finds it

    # -- the end -------------------------------------------------------------------------------
    def _check_tail(self, buf: Buffer, seg: int) -> None:
        if _STARTED[self.ml].search(buf, seg) is None:
            if self.nsteps == 0:
                what = (
                    "ML ionic steps ('free  energy ML TOTEN'); is this an on-the-fly ML run?"
                    if self.ml
                    else "at least one ionic step ('free  energy   TOTEN' line)"
                )
                raise ParseError(self.path, what, line=self._line(buf, self.size))
            return
        if self.nsteps == 0:
            raise ParseError(
                self.path,
                "a complete ionic step; the file ends inside the first one",
                line=self._line(buf, self.size),
                frame=0,
            )
        warnings.warn(f"{self.path}: frame {self.nsteps} is truncated; dropped", stacklevel=4)

    def _report(self) -> None:
        if self.unconverged:
            what = "dropped" if self.convergence_check else "kept (convergence_check=False)"
            nelm = self.header.nelm if self.header else None
            warnings.warn(
                f"{self.path}: ionic steps {_ranges(self.unconverged)} (counting from 0) did not "
                f"converge (electronic loop reached NELM={nelm}); {what}",
                stacklevel=3,
            )
        if self.unlabeled:
            warnings.warn(
                f"{self.path}: ionic steps {_ranges(self.unlabeled)} (counting from 0) have an energy "
                "but no POSITION/TOTAL-FORCE table; dropped",
                stacklevel=3,
            )

    def _line(self, buf: Buffer, pos: int) -> int:
        return line_at(self.path, pos)


def _header_end(buf: Buffer, token: bytes, size: int) -> int:
    """Where the first ionic step starts (searching the first ``_HEADER_LIMIT`` bytes only)."""
    end = min(size, _HEADER_LIMIT)
    for t in (b"Iteration", token, b"ML FORCE on cell"):  # each search stops at the previous hit
        hit = buf.find(t, 0, end)
        end = hit if hit >= 0 else end
    return end


def _lattice_rows(buf: Buffer, s: int, fpos: int) -> tuple[int, int] | None:
    c = buf.rfind(b"direct lattice vectors", s, fpos)
    if c < 0:
        return None
    a = buf.find(b"\n", c, fpos) + 1
    b = a
    for _ in range(3):
        b = buf.find(b"\n", b, fpos) + 1
        if b == 0:
            return None
    return a, b


def _ranges(idx: list[int]) -> str:
    if len(idx) > 20:
        return ", ".join(map(str, idx[:20])) + f", ... ({len(idx)} in all)"
    return ", ".join(map(str, idx))


__all__ = ["Header", "parse_header", "read"]
