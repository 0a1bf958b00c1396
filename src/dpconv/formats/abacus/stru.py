"""``abacus/stru``: ABACUS's structure file ``STRU`` (read and write, one frame).

Layout (keywords on lines of their own, in any order; ``#`` and ``//`` start comments)::

    ATOMIC_SPECIES
    Si 28.085 Si.upf          # label, mass, pseudopotential file (optional)
    NUMERICAL_ORBITAL         # optional, one file per species (LCAO)
    Si.orb
    LATTICE_CONSTANT
    10.2                      # bohr
    LATTICE_VECTORS
    0.5 0.5 0.0               # in units of LATTICE_CONSTANT
    ...
    ATOMIC_POSITIONS
    Direct                    # or Cartesian, Cartesian_au, Cartesian_angstrom[_center_xy|xz|yz|xyz]
    Si                        # species label
    0.0                       # starting magnetisation of the species
    2                         # number of atoms
    0.00 0.00 0.00 1 1 1      # x y z, then move flags and keyword extras (m, v, mag, angle1, ...)

Units: ``LATTICE_CONSTANT`` is in bohr; ``Cartesian`` positions are in units of
it, ``Cartesian_au`` in bohr, ``Cartesian_angstrom*`` in Å (the ``_center_*``
variants measured from the fractional point (½,½,0), (½,0,½), (0,½,½) or
(½,½,½)), ``Direct`` fractional. Move flags, velocities and magnetisation
extras are skipped. Lattices given by ``latname`` (no LATTICE_VECTORS) are not
supported. Like dpdata, the reader inverts a left-handed cell and the positions
through the origin unless ``right_handed=False``.

The writer writes frame ``frame_idx`` (default 0) with ``LATTICE_CONSTANT`` 1 Å
(in bohr) and Cartesian positions, so cells and positions are written in Å.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpconv.elements import MASSES
from dpconv.errors import DpconvError, ParseError
from dpconv.units import ANGSTROM_TO_BOHR, BOHR_TO_ANGSTROM

KEYWORDS = (
    "ATOMIC_SPECIES",
    "NUMERICAL_ORBITAL",
    "LATTICE_CONSTANT",
    "LATTICE_VECTORS",
    "LATTICE_PARAMETERS",
    "ATOMIC_POSITIONS",
    "NUMERICAL_DESCRIPTOR",
    "PAW_FILES",
    "ABFS_ORBITAL",
)

_CENTERS = {
    "xy": np.array([0.5, 0.5, 0.0]),
    "xz": np.array([0.5, 0.0, 0.5]),
    "yz": np.array([0.0, 0.5, 0.5]),
    "xyz": np.array([0.5, 0.5, 0.5]),
}


@dataclass
class Stru:
    """What a STRU file says, in dpconv units (Å)."""

    atom_names: list[str]
    masses: list[float]
    pp_files: list[str | None]
    orb_files: list[str]
    atom_types: np.ndarray  # (natoms,) int64, file order
    cell: np.ndarray  # (3, 3) Å, rows are lattice vectors
    coords: np.ndarray  # (natoms, 3) Å

    @property
    def atom_numbs(self) -> np.ndarray:
        return np.bincount(self.atom_types, minlength=len(self.atom_names)).astype(np.int64)

    def block(self) -> dict[str, Any]:
        """The one-frame data dict of this structure."""
        return {
            "atom_names": list(self.atom_names),
            "atom_numbs": self.atom_numbs,
            "atom_types": self.atom_types.copy(),
            "cells": self.cell[np.newaxis].copy(),
            "coords": self.coords[np.newaxis].copy(),
            "nopbc": False,
        }


def _clean(line: str) -> str:
    for mark in ("#", "//"):
        cut = line.find(mark)
        if cut >= 0:
            line = line[:cut]
    return line.strip()


def _split_blocks(lines: Sequence[str]) -> dict[str, list[tuple[int, str]]]:
    """Keyword -> its non-empty, comment-free lines (with 1-based line numbers)."""
    blocks: dict[str, list[tuple[int, str]]] = {}
    current: list[tuple[int, str]] | None = None
    for no, raw in enumerate(lines, 1):
        line = _clean(raw)
        if not line:
            continue
        key = line.split()[0].upper()
        if key in KEYWORDS and len(line.split()) == 1:
            current = blocks.setdefault(key, [])
            continue
        if current is None:
            continue  # text before the first keyword is a comment to ABACUS
        current.append((no, line))
    return blocks


def _floats(path: str, no: int, words: Sequence[str], n: int, what: str) -> list[float]:
    try:
        values = [float(w) for w in words[:n]]
    except ValueError:
        raise ParseError(path, f"{n} numbers ({what})", line=no) from None
    if len(values) < n:
        raise ParseError(path, f"{n} numbers ({what})", line=no)
    return values


def parse_stru(path: str, text: str | None = None) -> Stru:
    """Parse the STRU file ``path`` (or its ``text``)."""
    if text is None:
        if not os.path.isfile(path):
            raise ParseError(path, "an ABACUS STRU file (file not found)")
        with open(path, "rb") as fh:
            raw = fh.read()
        if b"\x00" in raw:
            raise ParseError(path, "a text STRU file (found NUL bytes)")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ParseError(path, "a text STRU file (not valid UTF-8)") from None
    blocks = _split_blocks(text.splitlines())
    for key in ("ATOMIC_SPECIES", "LATTICE_CONSTANT", "ATOMIC_POSITIONS"):
        if not blocks.get(key):
            raise ParseError(path, f"an ABACUS STRU file with an {key} section")

    names: list[str] = []
    masses: list[float] = []
    pps: list[str | None] = []
    for no, line in blocks["ATOMIC_SPECIES"]:
        words = line.split()
        names.append(words[0])
        masses.append(_floats(path, no, words[1:], 1, "species mass")[0] if len(words) > 1 else 1.0)
        pps.append(words[2] if len(words) > 2 else None)
    orbs = [line.split()[0] for _, line in blocks.get("NUMERICAL_ORBITAL", [])]

    no, line = blocks["LATTICE_CONSTANT"][0]
    celldm = _floats(path, no, line.split(), 1, "LATTICE_CONSTANT in bohr")[0] * BOHR_TO_ANGSTROM
    vectors = blocks.get("LATTICE_VECTORS")
    if not vectors:
        raise ParseError(path, "a LATTICE_VECTORS section (lattices given by latname are not supported)")
    if len(vectors) < 3:
        raise ParseError(path, "3 lines of LATTICE_VECTORS", line=vectors[-1][0])
    cell = np.array([_floats(path, n, ln.split(), 3, "a lattice vector") for n, ln in vectors[:3]]) * celldm

    pos_lines = blocks["ATOMIC_POSITIONS"]
    mode = pos_lines[0][1].split()[0].lower()
    types: list[int] = []
    coords: list[list[float]] = []
    i = 1
    while i < len(pos_lines):
        no, label_line = pos_lines[i]
        label = label_line.split()[0]
        if label not in names:
            raise ParseError(path, f"a species of ATOMIC_SPECIES ({', '.join(names)}), got {label!r}", line=no)
        if i + 2 >= len(pos_lines):
            raise ParseError(path, f"magnetisation and atom count lines after species {label!r}", line=no)
        no_n, count_line = pos_lines[i + 2]
        try:
            count = int(count_line.split()[0])
        except ValueError:
            raise ParseError(path, f"the number of {label} atoms", line=no_n) from None
        atom_lines = pos_lines[i + 3 : i + 3 + count]
        if len(atom_lines) < count:
            raise ParseError(path, f"{count} atom lines of species {label!r}", line=pos_lines[-1][0] + 1)
        for n, ln in atom_lines:
            coords.append(_floats(path, n, ln.split(), 3, "atom coordinates"))
        types.extend([names.index(label)] * count)
        i += 3 + count
    xyz = np.array(coords, dtype=np.float64).reshape(-1, 3)
    xyz = _to_cartesian(path, pos_lines[0][0], mode, xyz, cell, celldm)
    return Stru(names, masses, pps, orbs, np.array(types, dtype=np.int64), cell, xyz)


def _to_cartesian(path: str, no: int, mode: str, xyz: np.ndarray, cell: np.ndarray, celldm: float) -> np.ndarray:
    if mode == "direct":
        return xyz @ cell
    if mode == "cartesian":
        return xyz * celldm
    if mode == "cartesian_au":
        return xyz * BOHR_TO_ANGSTROM
    if mode == "cartesian_angstrom":
        return xyz
    if mode.startswith("cartesian_angstrom_center_") and mode.rsplit("_", 1)[1] in _CENTERS:
        return xyz + _CENTERS[mode.rsplit("_", 1)[1]] @ cell
    raise ParseError(
        path,
        "a coordinate type (Direct, Cartesian, Cartesian_au, Cartesian_angstrom, "
        f"Cartesian_angstrom_center_xy/xz/yz/xyz), got {mode!r}",
        line=no,
    )


def make_right_handed(cell: np.ndarray, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Invert cell and coordinates through the origin when the cell is left-handed (dpdata's habit)."""
    if np.linalg.det(cell) < 0:
        return -cell, -coords, True
    return cell, coords, False


def read(
    path: str, type_map: Sequence[str] | None = None, right_handed: bool = True, **_: Any
) -> Iterator[dict[str, Any]]:
    """Yield the one frame of a STRU file.

    ``right_handed`` (default True, as dpdata): a left-handed cell (det < 0, e.g.
    the fcc vectors ``0.5 0.5 0 / 0.5 0 0.5 / 0 0.5 0.5``) and the coordinates are
    inverted through the origin, giving a right-handed cell of the inverted
    structure. ``right_handed=False`` keeps the structure exactly as written.
    """
    stru = parse_stru(path)
    if right_handed:
        stru.cell, stru.coords, _flipped = make_right_handed(stru.cell, stru.coords)
    yield stru.block()


def _per_type(value: Sequence[Any] | Mapping[str, Any] | None, names: Sequence[str], what: str) -> list[Any] | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        missing = [n for n in names if n not in value]
        if missing:
            raise DpconvError(f"abacus/stru: {what} lacks an entry for {missing}")
        return [value[n] for n in names]
    if isinstance(value, str):
        value = [value]
    items = list(value)
    if len(items) != len(names):
        raise DpconvError(f"abacus/stru: {what} needs one entry per atom type {list(names)}, got {len(items)}")
    return items


def format_stru(
    data: Mapping[str, Any],
    frame_idx: int = 0,
    pp_file: Any = None,
    numerical_orbital: Any = None,
    numerical_descriptor: str | None = None,
    mass: Any = None,
    move: Any = None,
) -> str:
    """The text of a STRU file for frame ``frame_idx`` of ``data``."""
    names = list(data["atom_names"])
    types = np.asarray(data["atom_types"], dtype=np.int64)
    cell = np.asarray(data["cells"], dtype=np.float64)[frame_idx]
    coords = np.asarray(data["coords"], dtype=np.float64)[frame_idx]
    numbs = np.bincount(types, minlength=len(names))
    present = [t for t in range(len(names)) if numbs[t] > 0]
    pps = _per_type(pp_file, names, "pp_file")
    orbs = _per_type(numerical_orbital, names, "numerical_orbital")
    masses = _per_type(mass, names, "mass")
    if masses is None:
        masses = [MASSES.get(n, MASSES.get(n.rstrip("0123456789_"), 1.0)) for n in names]
    flags = None if move is None else np.asarray(move, dtype=bool).reshape(len(types), 3)

    out = ["ATOMIC_SPECIES"]
    for t in present:
        line = f"{names[t]} {float(masses[t]):.6g}"
        if pps is not None and pps[t]:
            line += f" {pps[t]}"
        out.append(line)
    out.append("")
    if orbs is not None:
        out.append("NUMERICAL_ORBITAL")
        out.extend(str(orbs[t]) for t in present)
        out.append("")
    if numerical_descriptor:
        out += ["NUMERICAL_DESCRIPTOR", str(numerical_descriptor), ""]
    out += ["LATTICE_CONSTANT", f"{ANGSTROM_TO_BOHR!r}  # 1 Angstrom in bohr", "", "LATTICE_VECTORS"]
    out.extend(" ".join(f"{x:.16g}" for x in row) for row in cell)
    out += ["", "ATOMIC_POSITIONS", "Cartesian  # in units of LATTICE_CONSTANT (Angstrom)", ""]
    for t in present:
        idx = np.flatnonzero(types == t)
        out += [names[t], "0.0", str(len(idx))]
        for a in idx:
            f = flags[a] if flags is not None else (True, True, True)
            out.append(" ".join(f"{x:.16g}" for x in coords[a]) + " " + " ".join("1" if b else "0" for b in f))
        out.append("")
    return "\n".join(out)


def write(
    path: str,
    blocks: Iterable[Mapping[str, Any]],
    frame_idx: int = 0,
    pp_file: Any = None,
    numerical_orbital: Any = None,
    numerical_descriptor: str | None = None,
    mass: Any = None,
    move: Any = None,
    **_: Any,
) -> None:
    """Write frame ``frame_idx`` of the blocks as a STRU file.

    ``pp_file``/``numerical_orbital``/``mass``: one entry per atom type (a list in
    ``atom_names`` order or a dict by name); masses default to standard atomic
    weights (1.0 for unknown names). ``move``: (natoms, 3) flags, default all 1.
    Atoms are written grouped by type, as STRU requires.
    """
    seen = 0
    for block in blocks:
        n = len(block["coords"])
        if frame_idx < seen + n:
            text = format_stru(block, frame_idx - seen, pp_file, numerical_orbital, numerical_descriptor, mass, move)
            with open(path, "w") as fh:
                fh.write(text)
            return
        seen += n
    raise DpconvError(f"abacus/stru: frame {frame_idx} requested but the system has {seen} frames")
