"""``siesta/output``: a SIESTA standard output (single point); the scanner shared with ``siesta/aimd_output``.

A frame starts at ``outcoor: Atomic coordinates (Ang|Bohr|fractional):`` (the
geometry of an SCF step, printed before it) and holds, in its text up to the
next such header:

* ``outcell: Unit cell vectors (Ang):`` — the cell (rows); a frame that does
  not print one keeps the previous frame's cell;
* ``siesta: E_KS(eV) =`` — the energy (the Kohn-Sham energy SIESTA prints
  with 4 decimals after each SCF; dpdata reads the same line);
* ``siesta: Atomic forces (eV/Ang):`` — forces (the first such table of the
  frame; the final summary repeats it with a ``siesta:`` prefix);
* ``siesta: Stress tensor (static) (eV/Ang**3):`` — when present, the virial.

Species names are the ``Label:`` of the ``Species number:`` lines (the
``ChemicalSpeciesLabel`` block), in species order; each atom's species index is
the 4th column of the coordinates table.

Virial sign: SIESTA prints the stress σ = (1/V) ∂E/∂ε (its ``Pressure`` line is
``-trace(σ)/3``), the opposite of the pressure-like tensor that VASP, QE and CP2K
print. DeePMD-kit's virial is ``-V σ``, so dpconv writes ``virial = -stress × V``.
dpdata 1.1.0 writes ``+stress × V`` (the wrong sign: its virial trace is
``-3 P V``); ``dpdata_virial=True`` reproduces it.

The file is scanned with ``mmap`` (C-speed ``find``) for the frame headers; each
table is converted with one ``np.array(text.split())``.
"""

from __future__ import annotations

import mmap
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dpconv import units
from dpconv.errors import ParseError

COORDS = b"outcoor: Atomic coordinates ("
CELL = b"outcell: Unit cell vectors (Ang):"
ENERGY = b"siesta: E_KS(eV) ="
FORCES = b"siesta: Atomic forces (eV/Ang):"
STRESS = b"siesta: Stress tensor (static) (eV/Ang**3):"
NOT_CONVERGED = b"did not converge"
NATOMS = re.compile(rb"initatomlists: Number of atoms, orbitals, and projectors:\s+(\d+)")
SPECIES = re.compile(rb"Species number:\s+(\d+)\s+(?:Atomic number:\s+(-?\d+)\s+)?Label:\s+(\S+)")
SPECIES_BLOCK = re.compile(rb"%block\s+chemical_?species_?label\s*\n(.*?)%endblock", re.I | re.S)
UNITS = (b"ang", b"bohr", b"frac")
ROW_HEAD = 46  # 3F14.8 coordinates and an I4 species index start each 'outcoor' row
RELEASE_BYTES = 1 << 22  # hand back the pages of the map every 4 MB read (keeps RSS flat)
CHUNK_VALUES = 1 << 16  # numbers per yielded block (frames * atoms * 3)


@dataclass
class Header:
    """What the output says once: species labels (in species order)."""

    labels: list[str]


@dataclass
class Frames:
    """Frames collected for one block."""

    index: list[int] = field(default_factory=list)
    coords: list[bytes] = field(default_factory=list)
    units: list[int] = field(default_factory=list)  # index into UNITS
    cells: list[bytes] = field(default_factory=list)
    energies: list[float] = field(default_factory=list)
    forces: list[bytes] = field(default_factory=list)
    stress: list[bytes] = field(default_factory=list)


def line_of(mm: mmap.mmap, pos: int) -> int:
    """1-based line number of byte ``pos`` (only for error messages)."""
    step = 1 << 24
    return 1 + sum(mm[i : min(i + step, pos)].count(b"\n") for i in range(0, pos, step))


def _species(mm: mmap.mmap, path: str, end: int) -> Header:
    head = mm[:end]
    found = {int(m.group(1)): m.group(3).decode() for m in SPECIES.finditer(head)}
    if not found:
        block = SPECIES_BLOCK.search(head)
        if block:
            for row in block.group(1).splitlines():
                parts = row.split(b"#", 1)[0].split()
                if len(parts) >= 3 and parts[0].isdigit():
                    found[int(parts[0])] = parts[2].decode()
    if not found:
        raise ParseError(path, "the species of the run ('Species number: ... Label: ...' lines)")
    n = max(found)
    if sorted(found) != list(range(1, n + 1)):
        raise ParseError(path, f"species numbered 1..{n}, got {sorted(found)}")
    return Header([found[i] for i in range(1, n + 1)])


def _rows_regex(mm: mmap.mmap, first: int, start: int) -> re.Pattern[bytes]:
    """A pattern matching the natoms lines of a coordinates table.

    natoms comes from ``initatomlists: Number of atoms`` or, failing that, from
    the rows of the first table up to its blank line.
    """
    m = NATOMS.search(mm[:first])
    if m:
        natoms = int(m.group(1))
    else:
        stop = mm.find(b"\n\n", start)
        natoms = mm[start : stop if stop >= 0 else len(mm)].count(b"\n") + (stop >= 0)
    return re.compile(rb"(?:[^\n]*\n){%d}" % max(natoms, 1))


def _after_lines(mm: mmap.mmap, pos: int, n: int) -> int:
    """Position after ``n`` more lines from ``pos`` (the end of the file at most)."""
    for _ in range(n):
        nl = mm.find(b"\n", pos)
        if nl < 0:
            return len(mm)
        pos = nl + 1
    return pos


def _numbers(text: bytes, ncols: int) -> np.ndarray:
    return np.array(text.replace(b"siesta:", b" ").split(), dtype=np.float64).reshape(-1, ncols)


class Reader:
    """Scans a SIESTA output frame by frame."""

    def __init__(self, path: str, dpdata_virial: bool = False) -> None:
        self.path = path
        self.sign = 1.0 if dpdata_virial else -1.0
        self.fixed_ok = False  # whether the first table reads the same by fixed width as by splitting

    def frames(self, first_only: bool) -> Iterator[dict[str, Any]]:
        path = self.path
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise ParseError(path, "a SIESTA output, got an empty file", line=1)
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                yield from self._scan(mm, first_only)
            finally:
                mm.close()

    def _scan(self, mm: mmap.mmap, first_only: bool) -> Iterator[dict[str, Any]]:
        path = self.path
        first = mm.find(COORDS)
        if first < 0:
            if b"siesta" not in mm[:65536].lower():
                raise ParseError(path, "a SIESTA output (no 'WELCOME TO SIESTA' banner, no coordinates)", line=1)
            raise ParseError(path, "an 'outcoor: Atomic coordinates' table")
        header = _species(mm, path, first)
        types: np.ndarray | None = None
        natoms = 0
        cell: bytes | None = None
        cell_from = 0
        has_stress: bool | None = None
        pending = Frames()
        per_block = 1
        dropped: list[int] = []
        unconverged: list[int] = []
        index = 0
        hdr = first
        rows_re: re.Pattern[bytes] | None = None
        released = 0
        while hdr >= 0:
            nxt = mm.find(COORDS, hdr + len(COORDS))
            end = nxt if nxt >= 0 else len(mm)
            # coordinates: natoms rows after the header
            unit_end = mm.find(b")", hdr)
            unit = mm[hdr + len(COORDS) : unit_end].strip().lower()
            start = mm.find(b"\n", hdr) + 1
            if rows_re is None:
                rows_re = _rows_regex(mm, first, start)
            m = rows_re.match(mm, start) if start > 0 else None
            if m is None or m.end() > end:
                if nxt < 0:  # the file ends inside the table
                    dropped.append(index)
                    break
                raise ParseError(path, "a complete coordinates table", line=line_of(mm, hdr), frame=index)
            stop = m.end()
            unit_code = next((i for i, u in enumerate(UNITS) if unit.startswith(u)), -1)
            if unit_code < 0:
                raise ParseError(
                    path,
                    f"coordinates in Ang, Bohr or fractional, got {unit.decode()!r}",
                    line=line_of(mm, hdr),
                    frame=index,
                )
            if types is None:
                xyz0, species = _split_coords(path, mm[start:stop], index, line_of(mm, start))
                fixed0 = _fixed_coords(mm[start:stop], len(species))
                self.fixed_ok = (
                    fixed0 is not None and np.allclose(fixed0[0], xyz0) and np.array_equal(fixed0[1], species)
                )
                if species.min() < 1 or species.max() > len(header.labels):
                    raise ParseError(
                        path, f"species indices 1..{len(header.labels)}", line=line_of(mm, start), frame=index
                    )
                types = species - 1
                natoms = len(types)
                per_block = max(1, CHUNK_VALUES // (3 * natoms))
            f = mm.find(FORCES, stop, end)
            c = mm.rfind(CELL, cell_from, f if f >= 0 else end)
            if c >= 0:
                cs = mm.find(b"\n", c) + 1
                cell_from = _after_lines(mm, cs, 3)
                cell = mm[cs:cell_from]
            e = mm.find(ENERGY, stop, end)
            s = mm.find(STRESS, f, end) if f >= 0 else -1
            if has_stress is None and f >= 0:
                has_stress = s >= 0
            if f < 0 or e < 0 or cell is None or (has_stress and s < 0):
                if nxt < 0:
                    dropped.append(index)
                    break
                what = "forces" if f < 0 else "an energy" if e < 0 else "a cell" if cell is None else "a stress"
                warnings.warn(f"{path}: frame {index} has no {what}; dropped", stacklevel=3)
                index += 1
                hdr = nxt
                continue
            if mm.find(NOT_CONVERGED, stop, f) >= 0:
                unconverged.append(index)
            else:
                eol = mm.find(b"\n", e)
                try:
                    energy = float(mm[e + len(ENERGY) : eol].split()[0])
                except (IndexError, ValueError):
                    raise ParseError(path, "'siesta: E_KS(eV) = <number>'", line=line_of(mm, e), frame=index) from None
                fs = mm.find(b"\n", f) + 1
                fe = mm.find(b"---", fs, end)
                if fe < 0:
                    if nxt < 0:
                        dropped.append(index)
                        break
                    raise ParseError(path, "a forces table closed by '----'", line=line_of(mm, f), frame=index)
                pending.index.append(index)
                pending.coords.append(mm[start:stop])
                pending.units.append(unit_code)
                pending.cells.append(cell)
                pending.energies.append(energy)
                pending.forces.append(mm[fs:fe].rsplit(b"\n", 1)[0])
                if has_stress:
                    ss = mm.find(b"\n", s) + 1
                    pending.stress.append(mm[ss : _after_lines(mm, ss, 3)])
                if first_only:
                    break
                if len(pending.index) >= per_block:
                    yield self._block(header, types, pending)
                    pending = Frames()
            index += 1
            hdr = nxt
            if min(hdr, cell_from) - released >= RELEASE_BYTES:
                released = _release(mm, released, min(hdr, cell_from))
        if first_only and mm.find(COORDS, hdr + len(COORDS)) >= 0:
            warnings.warn(
                f"{path}: the output has several steps; siesta/output reads the first "
                "(read all with siesta/aimd_output)",
                stacklevel=3,
            )
        if unconverged:
            warnings.warn(f"{path}: SCF not converged in frames {unconverged}; dropped", stacklevel=3)
        for i in dropped:
            if not pending.index and i == 0 and not unconverged:
                raise ParseError(
                    path, "a complete frame; the file ends inside frame 0", frame=0, line=line_of(mm, len(mm))
                )
            warnings.warn(f"{path}: frame {i} is truncated; dropped", stacklevel=3)
        if pending.index:
            yield self._block(header, types, pending)

    def _block(self, header: Header, types: np.ndarray | None, fr: Frames) -> dict[str, Any]:
        assert types is not None
        nf, natoms = len(fr.index), len(types)
        try:
            fixed = _fixed_forces(b"\n".join(fr.forces) + b"\n", nf * natoms)
            if fixed is None:
                fixed = _numbers(b"\n".join(fr.forces), 4)[:, 1:]
            forces = fixed.reshape(nf, natoms, 3)
        except ValueError:
            raise ParseError(
                self.path, f"{natoms} rows 'atom fx fy fz' in the forces table", frame=fr.index[0]
            ) from None
        try:
            cells = _numbers(b"".join(fr.cells), 3).reshape(nf, 3, 3)
        except ValueError:
            raise ParseError(self.path, "three rows of cell vectors", frame=fr.index[0]) from None
        parsed = _fixed_coords(b"".join(fr.coords), nf * natoms) if self.fixed_ok else None
        if parsed is None:  # not the usual layout: split each table (and name a bad one)
            parts = [_split_coords(self.path, t, i, None) for t, i in zip(fr.coords, fr.index, strict=True)]
            parsed = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        xyz, species = parsed[0].reshape(nf, natoms, 3), parsed[1].reshape(nf, natoms)
        bad = np.flatnonzero((species != types + 1).any(axis=1))
        if bad.size:
            raise ParseError(self.path, "the same atoms in every frame", frame=fr.index[int(bad[0])])
        unit = np.array(fr.units)
        coords = xyz.copy()
        coords[unit == 1] *= units.BOHR_TO_ANGSTROM
        frac = unit == 2
        if frac.any():
            coords[frac] = np.einsum("fai,fij->faj", xyz[frac], cells[frac])
        data: dict[str, Any] = {
            "atom_names": list(header.labels),
            "atom_numbs": np.bincount(types, minlength=len(header.labels)).astype(np.int64),
            "atom_types": types.astype(np.int64),
            "cells": cells,
            "coords": coords,
            "energies": np.array(fr.energies, dtype=np.float64),
            "forces": forces,
            "nopbc": False,
        }
        if fr.stress:
            try:
                stress = _numbers(b"\n".join(fr.stress), 3).reshape(nf, 3, 3)
            except ValueError:
                raise ParseError(self.path, "a 3x3 stress tensor", frame=fr.index[0]) from None
            vol = np.abs(np.linalg.det(cells))
            data["virials"] = self.sign * stress * vol[:, None, None]
        return data


def _split_coords(path: str, table: bytes, frame: int, line: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(xyz, species) of one coordinates table, split on whitespace."""
    try:
        rows = np.array(table.split(), dtype=object).reshape(-1, 6)
        return rows[:, :3].astype(np.float64), rows[:, 3].astype(np.int64)
    except ValueError:
        raise ParseError(path, "coordinate rows 'x y z species atom label'", line=line, frame=frame) from None


def _row_ends(a: np.ndarray, nrows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Start and newline position of each of the ``nrows`` lines in ``a`` (None if another count)."""
    nl = np.flatnonzero(a == 10)
    if len(nl) != nrows or nrows == 0:
        return None
    starts = np.empty(nrows, np.int64)
    starts[0] = 0
    starts[1:] = nl[:-1] + 1
    return starts, nl


def fixed_fields(chars: np.ndarray, width: int, dtype: type = np.float64) -> np.ndarray | None:
    """Numbers of fixed-width fields (Fortran ``3F14.8`` and the like) from a (rows, k*width)
    byte matrix, as (rows, k), converted by numpy in C; None when a field is not one number
    (e.g. a layout with other widths: the caller then splits the text)."""
    try:
        return np.ascontiguousarray(chars).view(f"S{width}").astype(dtype)
    except ValueError:
        return None


def _fixed_coords(blob: bytes, nrows: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(xyz, species) of many coordinate rows at once, read from their fixed-width head
    (SIESTA writes them with ``3f14.8, i4``); None when the rows do not have that layout."""
    a = np.frombuffer(blob, np.uint8)
    rows = _row_ends(a, nrows)
    if rows is None:
        return None
    starts, nl = rows
    if ((nl - starts) < ROW_HEAD).any():
        return None
    head = a[starts[:, None] + np.arange(ROW_HEAD)]
    xyz = fixed_fields(head[:, :42], 14)
    species = fixed_fields(head[:, 42:ROW_HEAD], 4, np.int64)
    if xyz is None or species is None:
        return None
    return xyz, species.ravel()


def _fixed_forces(blob: bytes, nrows: int) -> np.ndarray | None:
    """(nrows, 3) forces from the fixed-width tail of each row (``3f12.6``), or None."""
    a = np.frombuffer(blob, np.uint8)
    rows = _row_ends(a, nrows)
    if rows is None:
        return None
    starts, nl = rows
    if ((nl - starts) < 36).any():
        return None
    return fixed_fields(a[nl[:, None] - 36 + np.arange(36)], 12)


def _release(mm: mmap.mmap, start: int, upto: int) -> int:
    """Drop the mapped pages in ``[start, upto)`` from this process (already parsed and copied)."""
    end = upto - upto % mmap.PAGESIZE
    if end > start and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)
        return end
    return start


def read(
    path: str, type_map: Sequence[str] | None = None, dpdata_virial: bool = False, **_: Any
) -> Iterator[dict[str, Any]]:
    """Yield the first complete frame of a SIESTA output (a single point)."""
    del type_map  # SIESTA names every species
    yield from Reader(os.fspath(path), dpdata_virial).frames(first_only=True)
