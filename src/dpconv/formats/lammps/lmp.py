"""``lammps/lmp``: LAMMPS data files (what ``read_data`` reads and ``write_data`` writes).

Reading: the header gives the atom count, the number of atom types and the box
(``xlo xhi`` ... and ``xy xz yz``, or the general-triclinic ``avec bvec cvec abc
origin`` lines); the ``Atoms`` section is parsed with one numpy call. Atom styles
``atomic``, ``charge``, ``full`` and ``molecular``/``bond``/``angle`` are known,
taken from the ``Atoms # style`` comment, the ``atom_style`` kwarg, or the column
count; trailing image flags are accepted (and ignored: positions are kept as
written). Atoms are sorted by id; the box origin is subtracted. Types are named
from an ``Atom Type Labels`` section or ``Masses`` comments (``1 15.999 # O``)
when present, else from ``type_map`` (type 1 -> ``type_map[0]``), else
``Type_0``, ``Type_1``, ... (dpdata's names for data files).

Writing: one frame (``frame_idx``, default 0), atomic style, the layout of the
``conf.lmp`` the DeePMD-kit LAMMPS examples read. LAMMPS boxes are restricted
triclinic (lower-triangular cell), so other cells are rotated together with the
positions (a warning says so).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.elements import MASSES
from dpconv.errors import ParseError
from dpconv.formats.lammps import box, common
from dpconv.formats.lammps.dump import fast_floats

#: atom style -> (column of type, columns of x y z, number of columns)
STYLES: dict[str, tuple[int, tuple[int, int, int], int]] = {
    "atomic": (1, (2, 3, 4), 5),
    "charge": (1, (3, 4, 5), 6),
    "full": (2, (4, 5, 6), 7),
    "molecular": (2, (3, 4, 5), 6),
    "bond": (2, (3, 4, 5), 6),
    "angle": (2, (3, 4, 5), 6),
}

_SECTION_NAMES = (
    "Atoms",
    "Velocities",
    "Masses",
    "Ellipsoids",
    "Lines",
    "Triangles",
    "Bodies",
    "Bonds",
    "Angles",
    "Dihedrals",
    "Impropers",
)
_SECTION_RE = re.compile(
    r"^[ \t]*(" + "|".join(_SECTION_NAMES) + r"|[A-Za-z0-9]+ Coeffs|[A-Za-z]+ Type Labels)[ \t]*(#[^\n]*)?$",
    re.MULTILINE,
)
_HEADER_KEYS = (
    "atoms",
    "atom types",
    "xlo xhi",
    "ylo yhi",
    "zlo zhi",
    "xy xz yz",
    "avec",
    "bvec",
    "cvec",
    "abc origin",
)


def _header(path: str, text: str) -> dict[str, list[float]]:
    """Keyword lines of the header (the first line is a title and is skipped)."""
    out: dict[str, list[float]] = {}
    for n, raw in enumerate(text.splitlines()[1:], 2):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        for key in _HEADER_KEYS:
            if line.endswith(key):
                try:
                    out[key] = [float(v) for v in line[: -len(key)].split()]
                except ValueError:
                    raise ParseError(path, f"numbers before {key!r}", line=n) from None
                break
    return out


def _sections(text: str) -> tuple[int, dict[str, tuple[str, str, int]]]:
    """(end of the header, {name: (comment, body, line of the section title)})."""
    marks = list(_SECTION_RE.finditer(text))
    out: dict[str, tuple[str, str, int]] = {}
    for k, m in enumerate(marks):
        end = marks[k + 1].start() if k + 1 < len(marks) else len(text)
        comment = (m.group(2) or "").lstrip("#").strip()
        out[m.group(1)] = (comment, text[m.end() : end], text.count("\n", 0, m.start()) + 1)
    return (marks[0].start() if marks else len(text)), out


def _labels(body: str) -> dict[int, str]:
    """``type -> label`` from Masses comments or a Type Labels section."""
    out: dict[int, str] = {}
    for line in body.strip().splitlines():
        words = line.replace("#", " # ").split()
        if not words:
            continue
        try:
            t = int(words[0])
        except ValueError:
            continue
        if "#" in words:
            rest = words[words.index("#") + 1 :]
            if rest:
                out[t] = rest[0]
        elif len(words) >= 2 and not _is_number(words[1]):
            out[t] = words[1]
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _box(path: str, head: dict[str, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    if all(k in head for k in ("avec", "bvec", "cvec")):
        cell = np.array([head["avec"][:3], head["bvec"][:3], head["cvec"][:3]], dtype=np.float64)
        origin = np.array(head.get("abc origin", [0.0, 0.0, 0.0])[:3], dtype=np.float64)
        return origin, cell
    try:
        lohi = np.array([head[k][:2] for k in ("xlo xhi", "ylo yhi", "zlo zhi")], dtype=np.float64)
    except (KeyError, ValueError):
        raise ParseError(path, "the box lines 'xlo xhi', 'ylo yhi', 'zlo zhi' in the header") from None
    tilt = np.array(head.get("xy xz yz", [0.0, 0.0, 0.0])[:3], dtype=np.float64)
    return box.lohi_to_cell(lohi, tilt)


def _style(path: str, comment: str, given: str | None, rows: np.ndarray, line: int) -> str:
    if given not in (None, "auto"):
        style = str(given)
    elif comment:
        style = comment.split(maxsplit=1)[0]
    else:
        ncols = rows.shape[1]
        if ncols in (5, 8):
            style = "atomic"
        elif ncols in (7, 10):
            style = "full"
        elif ncols in (6, 9):
            # charge (id type q x y z) or molecular (id mol type x y z): a charge column is a float
            third = rows[:, 2]
            style = "molecular" if np.array_equal(third, np.round(third)) and (third >= 1).all() else "charge"
        else:
            raise ParseError(
                path,
                f"an Atoms section of a known style {sorted(STYLES)}; got {ncols} columns "
                "(name the style: 'Atoms # full' or atom_style='full')",
                line=line,
            )
    if style not in STYLES:
        raise ParseError(path, f"an atom style dpconv reads {sorted(STYLES)}; got {style!r}", line=line)
    return style


def read(path: str, type_map: Sequence[str] | None = None, atom_style: str | None = None, **_: Any) -> Any:
    """Yield the single frame of a LAMMPS data file (see the module docstring)."""
    try:
        with open(path, encoding="ascii") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ParseError(path, "a LAMMPS data file (ASCII text); got binary data", line=1) from None
    if not text.strip():
        raise ParseError(path, "a LAMMPS data file; the file is empty", line=1)
    hend, sections = _sections(text)
    head = _header(path, text[:hend])
    if "Atoms" not in sections or "atoms" not in head:
        raise ParseError(path, "a LAMMPS data file: an 'N atoms' header line and an 'Atoms' section", line=1)
    natoms = int(head["atoms"][0])
    ntypes = int(head.get("atom types", [0])[0])
    comment, body, sline = sections["Atoms"]
    if "#" in body:
        body = re.sub(r"#[^\n]*", "", body)
    vals = fast_floats(body)
    if vals is None:
        raise ParseError(path, "numbers in the Atoms section", line=sline)
    if natoms <= 0 or vals.size % natoms:
        raise ParseError(
            path, f"{natoms} atom lines of equal length in the Atoms section; got {vals.size} values", line=sline
        )
    rows = vals.reshape(natoms, -1)
    style = _style(path, comment, atom_style, rows, sline)
    tcol, xcols, ncols = STYLES[style]
    if rows.shape[1] not in (ncols, ncols + 3):
        raise ParseError(
            path,
            f"{ncols} columns (or {ncols + 3} with image flags) per atom for style {style!r}; got {rows.shape[1]}",
            line=sline,
        )
    order = np.argsort(rows[:, 0], kind="stable")
    rows = rows[order]
    types = rows[:, tcol].astype(np.int64)
    ntypes = max(ntypes, int(types.max()))
    if types.min() < 1:
        raise ParseError(path, f"atom types >= 1 in the Atoms section; got {types.min()}", line=sline)
    types -= 1
    labels = None
    for key in ("Atom Type Labels", "Masses"):
        if key in sections:
            lab = _labels(sections[key][1])
            if lab and all(t + 1 in lab for t in np.unique(types).tolist()):
                labels = [lab[t + 1] for t in types.tolist()]
                break
    names = common.type_names(path, ntypes, types, labels, type_map, "Type_")
    origin, cell = _box(path, head)
    coords = rows[:, list(xcols)] - origin
    yield {
        "atom_names": names,
        "atom_numbs": np.bincount(types, minlength=ntypes).astype(np.int64),
        "atom_types": types,
        "cells": cell[None],
        "coords": coords[None],
        "nopbc": False,
    }


def _fmt(x: float) -> str:
    return f"{x:.12g}"


def write(
    path: str,
    blocks: Iterable[Mapping[str, Any]],
    frame_idx: int = 0,
    type_map: Sequence[str] | None = None,
    masses: bool = True,
    **_: Any,
) -> None:
    """Write frame ``frame_idx`` as an atomic-style data file.

    ``type_map`` fixes the LAMMPS type numbers (``type_map[0]`` is type 1; it may
    hold names the system lacks); ``masses`` writes a ``Masses`` section (with the
    names as comments) when every type name is an element.
    """
    frame = None
    seen = 0
    data: Mapping[str, Any] = {}
    for block in blocks:
        n = len(block["coords"])
        if frame is None and frame_idx < seen + n:
            data, frame = block, frame_idx - seen
        seen += n
    if frame is None:
        raise ValueError(f"frame_idx {frame_idx} is out of range for {seen} frames")
    if seen > 1:
        warnings.warn(
            f"{os.path.basename(path)}: a LAMMPS data file holds one frame; wrote frame {frame_idx} of {seen}",
            stacklevel=2,
        )
    ltypes, names = common.lammps_types(data, type_map)
    cell = np.asarray(data["cells"][frame], dtype=np.float64)
    coords = np.asarray(data["coords"][frame], dtype=np.float64)
    if not box.is_lower_triangular(cell):
        warnings.warn(
            f"{os.path.basename(path)}: cell is not lower triangular; rotating it and the positions for LAMMPS",
            stacklevel=2,
        )
        cell, q = box.to_lower_triangular(cell)
        coords = coords @ q
    natoms = len(ltypes)
    out = [
        "# LAMMPS data file written by dpconv (types: " + " ".join(names) + ")",
        "",
        f"{natoms} atoms",
        f"{len(names)} atom types",
        "",
        f"0.0 {_fmt(cell[0, 0])} xlo xhi",
        f"0.0 {_fmt(cell[1, 1])} ylo yhi",
        f"0.0 {_fmt(cell[2, 2])} zlo zhi",
        f"{_fmt(cell[1, 0])} {_fmt(cell[2, 0])} {_fmt(cell[2, 1])} xy xz yz",
        "",
    ]
    if masses and all(n in MASSES for n in names):
        out += ["Masses", ""] + [f"{i} {MASSES[n]} # {n}" for i, n in enumerate(names, 1)] + [""]
    out += ["Atoms # atomic", ""]
    flat = np.column_stack([np.arange(1, natoms + 1), ltypes, coords]).ravel().tolist()
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
        fh.write(("%d %d %.12g %.12g %.12g\n" * natoms) % tuple(flat))
