"""``vasp/poscar`` (alias ``vasp/contcar``): one structure in VASP's POSCAR/CONTCAR layout.

Reading follows VASP's own rules: line 2 is one scale factor (a negative one is
the cell volume in Å^3) or three per-axis factors; the species line is optional
(VASP 4 files go straight to the counts, then names come from ``type_map``);
``Selective dynamics`` is recognised by its first letter; the coordinate mode
is Cartesian when its first letter is ``C``/``c``/``K``/``k``, Direct otherwise.
Writing produces a VASP 5 file (species line), Cartesian or Direct.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import DpconvError, ParseError
from dpconv.formats.vasp._common import merge_species, rotate_lower_triangular


def read(
    path: str,
    type_map: Sequence[str] | None = None,
    *,
    lower_triangular: bool = True,
) -> Iterator[dict[str, Any]]:
    """Yield the one frame of the POSCAR ``path``.

    Parameters
    ----------
    type_map:
        Names of the species of a VASP 4 file (no species line), in file order.
    lower_triangular:
        Rotate the cell to lower-triangular form, as dpdata does (coordinates
        rotated with it). False keeps the file's axes.
    """
    with open(path, "rb") as fh:
        raw = fh.read()
    if b"\0" in raw:
        raise ParseError(path, "a text POSCAR, got binary data", line=1)
    text = raw.decode("utf-8", "replace")
    data = parse(path, text.splitlines(), type_map)
    if lower_triangular:
        rotate_lower_triangular(data)
    yield data


def _is_int(word: str) -> bool:
    try:
        int(word)
    except ValueError:
        return False
    return True


def parse(path: str, lines: list[str], type_map: Sequence[str] | None = None) -> dict[str, Any]:
    """The data dict of the POSCAR ``lines`` (errors name ``path`` and the line)."""
    if not any(ln.strip() for ln in lines):
        raise ParseError(path, "a POSCAR, got an empty file", line=1)

    def line(i: int, what: str) -> list[str]:
        if i >= len(lines):
            raise ParseError(path, f"{what}; the file ends at line {len(lines)}", line=i + 1)
        return lines[i].split()

    def numbers(i: int, what: str, n: int | None = None) -> list[float]:
        words = line(i, what)
        try:
            vals = [float(w) for w in (words if n is None else words[:n])]
        except ValueError:
            raise ParseError(path, what, line=i + 1) from None
        if not vals or (n is not None and len(vals) != n):
            raise ParseError(path, what, line=i + 1)
        return vals

    scale = numbers(1, "the scale factor (one number, or three per-axis factors)")
    if len(scale) not in (1, 3):
        scale = scale[:1]
    raw_cell = np.array([numbers(i, "a lattice vector (three numbers)", 3) for i in (2, 3, 4)])
    if len(scale) == 3:
        if min(scale) <= 0:
            raise ParseError(path, "three positive per-axis scale factors", line=2)
        factor = np.array(scale)
    elif scale[0] < 0:
        vol = abs(np.linalg.det(raw_cell))
        if vol == 0:
            raise ParseError(path, "a non-degenerate cell (a negative scale factor is a volume)", line=3)
        factor = np.full(3, (-scale[0] / vol) ** (1.0 / 3.0))
    elif scale[0] == 0:
        raise ParseError(path, "a non-zero scale factor", line=2)
    else:
        factor = np.full(3, scale[0])
    cell = raw_cell * factor

    i = 5
    words = line(i, "the species names or the atom counts")
    if all(_is_int(w) for w in words):  # VASP 4: no species line
        names: list[str] | None = None
    else:
        names = [w.split("/")[0].split("_")[0] for w in words]  # "Fe_pv/abc123" written by some tools
        i += 1
    counts_words = line(i, "the number of atoms of each species")
    counts_line = i
    try:
        counts = [int(w) for w in counts_words]
    except ValueError:
        raise ParseError(path, "integer atom counts, one per species", line=i + 1) from None
    if not counts or min(counts) < 0:
        raise ParseError(path, "non-negative atom counts, one per species", line=i + 1)
    if names is None:
        names = _vasp4_names(path, len(counts), type_map, counts_line + 1)
    elif len(names) != len(counts):
        raise ParseError(path, f"as many atom counts as species names ({len(names)})", line=i + 1)
    i += 1
    mode = line(i, "the coordinate mode (Direct or Cartesian)")
    if mode and mode[0][0] in "sS":
        i += 1
        mode = line(i, "the coordinate mode (Direct or Cartesian)")
    cartesian = bool(mode) and mode[0][0] in "cCkK"
    i += 1
    natoms = sum(counts)
    if len(lines) < i + natoms:
        raise ParseError(path, f"{natoms} atom positions; the file ends at line {len(lines)}", line=len(lines) + 1)
    try:
        pos = np.array([[float(w) for w in lines[j].split()[:3]] for j in range(i, i + natoms)])
    except ValueError:
        bad = next(j for j in range(i, i + natoms) if not _three_numbers(lines[j]))
        raise ParseError(path, "an atom position (three numbers)", line=bad + 1) from None
    if pos.shape != (natoms, 3):
        bad = next(j for j in range(i, i + natoms) if not _three_numbers(lines[j]))
        raise ParseError(path, "an atom position (three numbers)", line=bad + 1)
    coords = pos * factor if cartesian else pos @ cell
    atom_names, atom_numbs, atom_types = merge_species(names, counts)
    return {
        "atom_names": atom_names,
        "atom_numbs": atom_numbs,
        "atom_types": atom_types,
        "cells": cell[None],
        "coords": coords[None],
        "nopbc": False,
    }


def _three_numbers(ln: str) -> bool:
    try:
        return len([float(w) for w in ln.split()[:3]]) == 3
    except ValueError:
        return False


def _vasp4_names(path: str, ntypes: int, type_map: Sequence[str] | None, line_no: int) -> list[str]:
    if type_map is not None:
        if len(type_map) < ntypes:
            raise ParseError(
                path,
                f"a type_map with at least {ntypes} names for this VASP 4 POSCAR "
                f"(it has no species line), got {list(type_map)}",
                line=line_no,
            )
        return list(type_map[:ntypes])
    warnings.warn(
        f"{path}: VASP 4 POSCAR without a species line and no type_map given; "
        f"naming the species Type_0..Type_{ntypes - 1}",
        stacklevel=4,
    )
    return [f"Type_{k}" for k in range(ntypes)]


def format_poscar(data: Mapping[str, Any], frame: int = 0, *, direct: bool = False, comment: str | None = None) -> str:
    """The text of a VASP 5 POSCAR of frame ``frame`` of ``data``.

    Atoms are written grouped by type (a stable sort), as the POSCAR layout
    requires; types with no atoms are left out.
    """
    names = list(data["atom_names"])
    types = np.asarray(data["atom_types"], dtype=np.int64)
    cell = np.asarray(data["cells"][frame], dtype=np.float64)
    coords = np.asarray(data["coords"][frame], dtype=np.float64)
    order = np.argsort(types, kind="stable")
    counts = np.bincount(types, minlength=len(names))
    present = [k for k in range(len(names)) if counts[k] > 0]
    if comment is None:
        comment = " ".join(f"{names[k]}{counts[k]}" for k in present)
    xyz = coords[order]
    if direct:
        xyz = np.linalg.solve(cell.T, xyz.T).T
    out = [comment.replace("\n", " "), "1.0"]
    out += ["".join(f"{v:23.16f}" for v in row) for row in cell]
    out.append(" ".join(f"{names[k]:>4}" for k in present))
    out.append(" ".join(f"{counts[k]:>4d}" for k in present))
    out.append("Direct" if direct else "Cartesian")
    out += ["".join(f"{v:23.16f}" for v in row) for row in xyz]
    return "\n".join(out) + "\n"


def write(
    path: str,
    blocks: Iterable[Mapping[str, Any]],
    *,
    frame_idx: int | None = None,
    direct: bool = False,
    comment: str | None = None,
) -> None:
    """Write one frame as a VASP 5 POSCAR.

    Parameters
    ----------
    frame_idx:
        Which frame to write; may be omitted when the system has one frame.
    direct:
        Write fractional (Direct) coordinates instead of Cartesian ones.
    comment:
        The first line (default: the formula, e.g. ``O2 H4``).
    """
    if frame_idx is not None and frame_idx < 0:
        raise DpconvError(f"{path}: frame_idx must be >= 0, got {frame_idx}")
    seen = 0
    chosen: tuple[Mapping[str, Any], int] | None = None
    for block in blocks:
        n = len(block["coords"])
        if frame_idx is not None and chosen is None and seen <= frame_idx < seen + n:
            chosen = (block, frame_idx - seen)
        elif frame_idx is None and chosen is None and n:
            chosen = (block, 0)
        seen += n
    if frame_idx is None and seen > 1:
        raise DpconvError(
            f"{path}: a POSCAR holds one structure but the system has {seen} frames; pass frame_idx=i, "
            "or write each frame (e.g. system.sub_system(i).to('vasp/poscar', f'POSCAR.{i}'))"
        )
    if chosen is None:
        if frame_idx is not None and seen:
            raise DpconvError(f"{path}: frame_idx={frame_idx} is out of range for {seen} frames")
        raise DpconvError(f"{path}: the system has no frames to write")
    block, k = chosen
    with open(path, "w") as fh:
        fh.write(format_poscar(block, k, direct=direct, comment=comment))
