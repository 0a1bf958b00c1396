"""``vasp/xml``: the ionic steps (``<calculation>`` elements) of a VASP ``vasprun.xml``.

A regular-expression scan, not a DOM: the file is read in chunks, each
``<calculation> ... </calculation>`` is located with ``bytes.find``, and inside
it the reader takes, after the last ``<scstep>``, the ``<structure>``'s
``basis`` and ``positions`` (fractional), the ``forces`` and ``stress``
varrays and ``e_fr_energy`` of the calculation's own ``<energy>``. The numbers
of all calculations of a chunk are parsed with one numpy call per quantity.
The small ``<atominfo>`` element is parsed with ElementTree.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpconv import units
from dpconv.errors import ParseError
from dpconv.formats.vasp._common import (
    Buffer,
    MappedFile,
    floats,
    line_at,
    merge_species,
    rotate_lower_triangular,
    volumes,
)

_OPEN, _CLOSE = b"<calculation>", b"</calculation>"
_TAG = re.compile(rb"</?v\b[^>]*>")
_NELM = re.compile(rb'name="NELM"\s*>\s*(-?\d+)')
_EFR = re.compile(rb'<i\s+name="e_fr_energy"\s*>\s*([^<\s]+)\s*</i>')
_HEADER_LIMIT = 64 << 20


@dataclass
class Header:
    """``<atominfo>`` and ``NELM`` of a vasprun.xml."""

    atom_names: list[str]
    atom_numbs: np.ndarray
    atom_types: np.ndarray
    nelm: int | None


def parse_header(path: str, text: bytes) -> Header:
    """Atom names and types from ``<atominfo>``, NELM from ``<parameters>`` (else ``<incar>``)."""
    if not text.strip():
        raise ParseError(path, "a vasprun.xml, got an empty file", line=1)
    a = text.find(b"<atominfo")
    b = text.find(b"</atominfo>", a)
    if b"<modeling" not in text[:4096] or a < 0 or b < 0:
        raise ParseError(path, "a VASP vasprun.xml (<modeling> with an <atominfo> element)", line=1)
    line_no = text.count(b"\n", 0, a) + 1
    try:
        info = ET.fromstring(text[a : b + len(b"</atominfo>")])
        arrays = {arr.get("name"): arr for arr in info.iter("array")}
        atoms = [[c.text or "" for c in rc.iter("c")] for rc in arrays["atoms"].iter("rc")]
        type_rows = [[c.text or "" for c in rc.iter("c")] for rc in arrays["atomtypes"].iter("rc")]
        type_of_atom = np.array([int(r[1]) for r in atoms], dtype=np.int64) - 1
        names_by_type = [r[1].strip() for r in type_rows]
    except (ET.ParseError, KeyError, IndexError, ValueError) as exc:
        raise ParseError(path, f"an <atominfo> with 'atoms' and 'atomtypes' arrays ({exc})", line=line_no) from None
    if not len(type_of_atom) or type_of_atom.min() < 0 or type_of_atom.max() >= len(names_by_type):
        raise ParseError(path, "atom types in <atominfo> that index its 'atomtypes' array", line=line_no)
    uniq, _numbs, type_index = merge_species(names_by_type, [1] * len(names_by_type))
    types = type_index[type_of_atom]
    numbs = np.bincount(types, minlength=len(uniq)).astype(np.int64)
    p = text.find(b"<parameters")
    m = _NELM.search(text, p if p >= 0 else 0)
    if m is None and p >= 0:
        m = _NELM.search(text)
    return Header(uniq, numbs, types, int(m.group(1)) if m else None)


@dataclass
class _Calc:
    index: int
    energy: float
    basis: tuple[int, int]
    positions: tuple[int, int]
    forces: tuple[int, int]
    stress: tuple[int, int] | None


def read(
    path: str,
    type_map: Sequence[str] | None = None,
    *,
    convergence_check: bool = True,
    lower_triangular: bool = True,
    begin: int = 0,
    step: int = 1,
    block_frames: int = 512,
    chunk_bytes: int = 8 << 20,
) -> Iterator[dict[str, Any]]:
    """Yield blocks of at most ``block_frames`` frames of the vasprun.xml ``path``.

    Parameters
    ----------
    convergence_check:
        Drop ionic steps whose number of ``<scstep>`` reached ``NELM`` (warned);
        False keeps them (still warned).
    lower_triangular:
        Rotate each frame's cell to lower-triangular form, as dpdata does.
    begin, step:
        Keep ionic steps ``begin::step`` (counted over all steps of the file).
    """
    del type_map  # <atominfo> names the species
    if begin < 0 or step < 1:
        raise ValueError(f"begin must be >= 0 and step >= 1, got begin={begin}, step={step}")
    reader = _Reader(path, convergence_check, lower_triangular, begin, step)
    reader.block_frames = max(1, block_frames)
    reader.chunk_bytes = max(1 << 16, chunk_bytes)
    yield from reader.blocks()


class _Reader:
    def __init__(
        self,
        path: str,
        convergence_check: bool,
        lower_triangular: bool,
        begin: int,
        step: int,
    ) -> None:
        self.path = path
        self.convergence_check = convergence_check
        self.lower_triangular = lower_triangular
        self.begin = begin
        self.step = step
        self.block_frames = 512
        self.chunk_bytes = 8 << 20
        self.header: Header | None = None
        self.size = 0
        self.nsteps = 0
        self.unconverged: list[int] = []
        self.has_stress: bool | None = None

    def blocks(self) -> Iterator[dict[str, Any]]:
        with MappedFile(self.path, self.chunk_bytes) as mf:
            yield from self._scan(mf)
        self._report()

    def _scan(self, mf: MappedFile) -> Iterator[dict[str, Any]]:
        buf, size = mf.buf, mf.size
        self.size = size
        if size == 0:
            raise ParseError(self.path, "a vasprun.xml, got an empty file", line=1)
        end = buf.find(_OPEN, 0, min(size, _HEADER_LIMIT))
        self.header = parse_header(self.path, buf[: end if end >= 0 else min(size, _HEADER_LIMIT)])
        calcs: list[_Calc] = []
        done = 0  # end of the last complete calculation
        while True:
            s = mf.find(_OPEN, done)
            if s < 0:
                break
            e = mf.find(_CLOSE, s)
            if e < 0:
                break
            c = self._calc(buf, s, e)
            done = e + len(_CLOSE)
            if c is not None:
                calcs.append(c)
                if len(calcs) >= self.block_frames:
                    yield self._block(buf, calcs)
                    calcs = []
            # the varrays of pending calculations are read again when their block is parsed
            mf.keep = calcs[0].basis[0] if calcs else None
            mf.release(done)
        if calcs:
            yield self._block(buf, calcs)
        self._check_tail(buf, done)

    def _calc(self, buf: Buffer, s: int, e: int) -> _Calc | None:
        assert self.header is not None
        index = self.nsteps
        self.nsteps += 1
        if index < self.begin or (index - self.begin) % self.step:
            return None
        nsc = buf[s:e].count(b"<scstep")
        if self.header.nelm is not None and nsc >= self.header.nelm:
            self.unconverged.append(index)
            if self.convergence_check:
                return None
        last = buf.rfind(b"</scstep>", s, e)
        after = s if last < 0 else last
        st = buf.find(b"<structure", after, e)
        basis = self._varray(buf, b'name="basis"', st, e, index, "a <structure> with a 'basis' varray")
        positions = self._varray(buf, b'name="positions"', st, e, index, "a 'positions' varray")
        forces = self._varray(buf, b'name="forces"', after, e, index, "a 'forces' varray")
        try:
            stress: tuple[int, int] | None = self._varray(buf, b'name="stress"', after, e, index, "")
        except ParseError:
            stress = None
        en = buf.find(b"<energy>", max(after, st), e)
        m = _EFR.search(buf, en if en >= 0 else after, e)
        try:
            if m is None:
                raise ValueError
            energy = float(m.group(1))
        except ValueError:
            raise ParseError(
                self.path,
                'the calculation\'s <i name="e_fr_energy">',
                line=line_at(self.path, s),
                frame=index,
            ) from None
        return _Calc(index, energy, basis, positions, forces, stress)

    def _varray(self, buf: Buffer, name: bytes, start: int, e: int, index: int, what: str) -> tuple[int, int]:
        h = buf.find(name, start, e) if start >= 0 else -1
        if h >= 0:
            a = buf.find(b">", h, e) + 1
            b = buf.find(b"</varray>", a, e)
            if a > 0 and b >= 0:
                return a, b
        raise ParseError(self.path, what, line=line_at(self.path, max(start, 0)), frame=index)

    def _numbers(
        self, buf: Buffer, spans: list[tuple[int, int]], per: int, calcs: list[_Calc], what: str
    ) -> np.ndarray:
        arr = floats(_TAG.sub(b" ", b" ".join(buf[a:b] for a, b in spans)), per * len(spans))
        if arr is not None:
            return arr
        for (a, b), c in zip(spans, calcs):
            if floats(_TAG.sub(b" ", buf[a:b]), per) is None:
                raise ParseError(self.path, f"{what}: {per} numbers", line=line_at(self.path, a), frame=c.index)
        raise ParseError(self.path, what)  # pragma: no cover

    def _block(self, buf: Buffer, calcs: list[_Calc]) -> dict[str, Any]:
        assert self.header is not None
        h = self.header
        nf, na = len(calcs), len(h.atom_types)
        cells = self._numbers(buf, [c.basis for c in calcs], 9, calcs, "the 'basis' varray").reshape(nf, 3, 3)
        frac = self._numbers(buf, [c.positions for c in calcs], na * 3, calcs, "the 'positions' varray")
        forces = self._numbers(buf, [c.forces for c in calcs], na * 3, calcs, "the 'forces' varray")
        data: dict[str, Any] = {
            "atom_names": list(h.atom_names),
            "atom_numbs": h.atom_numbs.copy(),
            "atom_types": h.atom_types.copy(),
            "nopbc": False,
            "cells": cells,
            "coords": frac.reshape(nf, na, 3) @ cells,
            "energies": np.array([c.energy for c in calcs]),
            "forces": forces.reshape(nf, na, 3),
        }
        have = all(c.stress is not None for c in calcs)
        if self.has_stress is None:
            self.has_stress = have
        elif have != self.has_stress:
            warnings.warn(
                f"{self.path}: some calculations have no 'stress' varray; virials are kept only "
                "where every frame of a block has them",
                stacklevel=3,
            )
        if have:
            spans = [v for v in (c.stress for c in calcs) if v is not None]
            stress = self._numbers(buf, spans, 9, calcs, "the 'stress' varray").reshape(nf, 3, 3)
            data["virials"] = stress * (volumes(cells) * units.KBAR_TO_EV_PER_ANGSTROM3)[:, None, None]
        if self.lower_triangular:
            rotate_lower_triangular(data)
        return data

    def _check_tail(self, buf: Buffer, done: int) -> None:
        started = buf.find(_OPEN, done)
        if started < 0:
            if self.nsteps == 0:
                raise ParseError(self.path, "at least one <calculation> element", line=line_at(self.path, self.size))
            return
        if self.nsteps == 0:
            raise ParseError(
                self.path,
                "a complete <calculation>; the file ends inside the first one",
                line=line_at(self.path, self.size),
                frame=0,
            )
        warnings.warn(f"{self.path}: frame {self.nsteps} is truncated; dropped", stacklevel=4)

    def _report(self) -> None:
        if self.unconverged:
            assert self.header is not None
            what = "dropped" if self.convergence_check else "kept (convergence_check=False)"
            idx = ", ".join(map(str, self.unconverged[:20])) + (
                f", ... ({len(self.unconverged)} in all)" if len(self.unconverged) > 20 else ""
            )
            warnings.warn(
                f"{self.path}: ionic steps {idx} (counting from 0) did not converge "
                f"({self.header.nelm} = NELM electronic steps); {what}",
                stacklevel=3,
            )
