"""``gromacs/gro``: GROMACS ``.gro`` structures and ``.gro`` trajectories (frames concatenated).

A frame is: a title line, the atom count, one fixed-column line per atom and a box line::

    %5d%-5s%5s%5d%8.3f%8.3f%8.3f[%8.4f%8.4f%8.4f]   resnr resname atomname atomnr x y z [vx vy vz]
    v1(x) v2(y) v3(z) [v1(y) v1(z) v2(x) v2(z) v3(x) v3(y)]

Positions and box are in nm (converted to Å here); velocities are ignored. As
GROMACS does, the width of a coordinate field is the distance between the decimal
points of the first atom line (8 for the usual ``%8.3f``), so files written with
more decimals read correctly even when the numbers touch.

Reading streams: the file is read in 4 MiB pieces, line ends are located with one
numpy call per piece, frames are cut out by their atom count, and the coordinates of
up to 1024 frames are decoded at once from the fixed columns (:func:`_fixed_numbers`,
exact like ``float()``; a numpy fallback handles other layouts).

Types come from elements guessed from atom names (see :func:`element_of`), or
the atom names themselves with ``format_atom_name=False``; ``names`` overrides
the guess for given atom names.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.elements import SYMBOLS as ELEMENT_SYMBOLS
from dpconv.errors import DpconvError, ParseError
from dpconv.units import NM_TO_ANGSTROM

SYMBOLS = frozenset(ELEMENT_SYMBOLS[1:])

#: GROMACS' order of the nine box numbers, as (row, column) of the cell (rows are v1, v2, v3).
BOX_ORDER = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1))
READ_CHUNK = 1 << 22  # bytes read at a time (4 MiB)
_NL = 10  # b"\n"
_SPACE = 32


# -- element names ------------------------------------------------------------------------------
def element_of(atom_name: str, resname: str = "") -> str | None:
    """The element an atom name stands for, or None when it names no element.

    The rule: leading digits are dropped (``1HB`` -> ``HB``); a single-atom residue
    whose residue name equals its atom name (how force fields name ions:
    ``NA``/``NA``, ``CL``/``CL``, ``K``/``K``) is that element read case-insensitively
    (``NA`` -> Na); otherwise the first two letters are an element when they spell
    one *with GROMACS' case* (``Cl``, ``Na``, ``Mg``; ``CL`` and ``CA`` do not), and
    else the first letter, upper-cased, is (``OW`` -> O, ``HW1`` -> H, ``CA`` -> C).
    """
    name = atom_name.strip().lstrip("0123456789")
    if not name:
        return None
    if resname and resname.strip() == atom_name.strip():
        cand = name[:2].capitalize()
        if len(name) <= 2 and cand in SYMBOLS:
            return cand
    if name[:2] in SYMBOLS and len(name) >= 2:
        return name[:2]
    first = name[0].upper()
    return first if first in SYMBOLS else None


def _type_names(
    path: str,
    pairs: Sequence[tuple[str, str]],
    names: Mapping[str, str] | None,
    format_atom_name: bool,
) -> list[str]:
    """Type name of each distinct ``(resname, atomname)`` pair."""
    out = []
    unknown = []
    for resname, atom in pairs:
        if names and atom in names:
            out.append(str(names[atom]))
        elif not format_atom_name:
            out.append(atom)
        else:
            el = element_of(atom, resname)
            if el is None:
                unknown.append(atom)
                el = atom
            out.append(el)
    if unknown:
        warnings.warn(
            f"{path}: no element for atom names {sorted(set(unknown))}; they are kept as type names "
            "(map them with names={...})",
            stacklevel=4,
        )
    return out


# -- scanning -----------------------------------------------------------------------------------
class _Batch:
    """The complete frames found in one read of the file.

    Line ``j`` of ``data`` ends at ``nl[j]``; the title of frame ``k`` is line ``titles[k]``,
    its count line follows, then ``natoms`` atom lines and the box line.
    """

    __slots__ = ("data", "index0", "line0", "natoms", "nl", "titles")

    def __init__(self, data: bytes, nl: np.ndarray, titles: np.ndarray, natoms: int, index0: int, line0: int) -> None:
        self.data = data
        self.nl = nl
        self.titles = titles
        self.natoms = natoms
        self.index0 = index0  # frame number of titles[0]
        self.line0 = line0  # 1-based line number of the first line of data


def _count(path: str, text: bytes, line: int, index: int) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ParseError(
            path, f"the atom count of a .gro frame on the second line, got {text[:40]!r}", line=line, frame=index
        ) from None
    if n < 0:
        raise ParseError(path, f"a non-negative atom count, got {n}", line=line, frame=index)
    return n


def _scan(path: str) -> Iterator[_Batch]:
    """Cut the file into batches of whole frames; a truncated last frame is dropped with a warning."""
    index = 0
    line0 = 1
    ref = -1
    want = READ_CHUNK
    data = b""
    eof = False
    with open(path, "rb") as fh:
        while not eof:
            more = fh.read(want)
            if more:
                data += more
            else:
                eof = True
                if data and not data.endswith(b"\n"):
                    data += b"\n"
            nl = np.flatnonzero(np.frombuffer(data, np.uint8) == _NL)
            titles: list[int] = []
            t = 0
            while t + 1 < len(nl):
                if index == 0 and b"\0" in data[: int(nl[0])]:
                    raise ParseError(path, "a text .gro file; found binary data", line=1)
                natoms = _count(path, data[int(nl[t]) + 1 : int(nl[t + 1])], line0 + t + 1, index)
                last = t + natoms + 2
                if last >= len(nl):
                    want = max(READ_CHUNK, (natoms + 3) * 80)
                    break
                if ref < 0:
                    ref = natoms
                elif natoms != ref:
                    raise ParseError(
                        path,
                        f"{ref} atoms in every frame (as in frame 0), got {natoms}",
                        line=line0 + t + 1,
                        frame=index,
                    )
                titles.append(t)
                index += 1
                t = last + 1
            if titles:
                yield _Batch(data, nl, np.array(titles, np.int64), ref, index - len(titles), line0)
                data = data[int(nl[t - 1]) + 1 :]
                line0 += t
    if not data.strip():
        if index == 0:
            raise ParseError(path, "a .gro file (title, atom count, atoms, box); the file is empty", line=1)
        return
    if index == 0:
        raise ParseError(path, "a complete .gro frame (title, atom count, atom lines, box line)", line=line0, frame=0)
    warnings.warn(f"{path}: frame {index} is truncated; dropped", stacklevel=3)


# -- parsing ------------------------------------------------------------------------------------
def _atom_rows(b: _Batch, titles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Atom lines of the frames ``titles`` as one (nframes * natoms, width) byte array (short lines
    padded with spaces), and the index of each row's line in ``b.data``."""
    n = b.natoms
    lines = (titles[:, None] + 2 + np.arange(n)).ravel()
    if n == 0:
        return np.zeros((0, 0), np.uint8), lines
    starts = b.nl[lines - 1] + 1
    lengths = b.nl[lines] - starts
    buf = np.frombuffer(b.data, np.uint8)
    width = int(lengths.max())
    if int(lengths.min()) == width:  # the usual case: one view per frame, one copy
        firsts = starts[::n].tolist()
        size = n * (width + 1)
        rows = np.concatenate([buf[s : s + size].reshape(n, width + 1) for s in firsts])
        return rows[:, :width], lines
    cols = np.arange(width)
    rows = np.empty((len(lines), width), np.uint8)
    for k in range(len(titles)):  # per frame, so the index array stays small
        sl = slice(k * n, (k + 1) * n)
        idx = np.minimum(starts[sl, None] + cols, len(buf) - 1)
        rows[sl] = np.where(cols < lengths[sl, None], buf[idx], _SPACE)
    return rows, lines


def _field_width(path: str, row: bytes, line: int, frame: int) -> int:
    """Distance between the decimal points of the first two coordinates (GROMACS' rule)."""
    p1 = row.find(b".", 20)
    p2 = row.find(b".", p1 + 1) if p1 >= 0 else -1
    if p1 < 0 or p2 < 0:
        raise ParseError(path, "an atom line with x y z from column 21 (e.g. %8.3f)", line=line, frame=frame)
    return p2 - p1


def _fixed_numbers(fields: np.ndarray) -> np.ndarray | None:
    """Values of right-aligned ``[-]ddd.ddd`` fields (rows of bytes) whose points share a column,
    exactly as ``float()`` gives them; None when the fields are not all of that shape."""
    m, w = fields.shape
    if m == 0:
        return np.zeros(0)
    dots = np.flatnonzero(fields[0] == 46)
    if len(dots) != 1 or w > 16:
        return None
    p = int(dots[0])
    cols = np.ascontiguousarray(fields.T)  # one contiguous row per column
    if not (cols[p] == 46).all():
        return None
    mant = np.zeros(m)  # integer-valued, exact below 2**53
    neg = np.zeros(m, bool)
    started = np.zeros(m, bool)  # a sign or digit was seen
    weight = 1.0
    for c in range(w - 1, -1, -1):  # right to left: weights 1, 10, 100, ...
        if c == p:
            continue
        col = cols[c]
        digit = (col >= 48) & (col <= 57)
        if c > p:
            if not digit.all():  # decimals: digits only
                return None
        else:
            minus = col == 45
            if not (digit | minus | (col == 32)).all():
                return None
            neg |= minus
        mant += np.where(digit, col - 48.0, 0.0) * weight
        weight *= 10.0
    # left to right: after the first sign or digit only digits may follow (no inner blanks or signs)
    anydigit = np.full(m, p + 1 < w)  # decimals, when there are any, are digits
    for c in range(p):
        col = cols[c]
        digit = (col >= 48) & (col <= 57)
        if (started & ~digit).any():
            return None
        started |= digit | (col == 45)
        anydigit |= digit
    if not anydigit.all():
        return None
    values = mant / 10.0 ** (w - 1 - p)
    return np.where(neg, -values, values)


def _coords(path: str, b: _Batch, titles: np.ndarray, rows: np.ndarray, lines: np.ndarray) -> np.ndarray:
    n, nf = b.natoms, len(titles)
    if n == 0:
        return np.zeros((nf, 0, 3))
    frame0 = b.index0 + int(np.searchsorted(b.titles, titles[0]))
    w = _field_width(path, rows[0].tobytes(), b.line0 + int(lines[0]), frame0)
    if rows.shape[1] < 20 + 3 * w:  # the longest line is too short: report the first
        raise ParseError(
            path, f"atom lines of at least {20 + 3 * w} columns", line=b.line0 + int(lines[0]), frame=frame0
        )
    fields = np.ascontiguousarray(rows[:, 20 : 20 + 3 * w]).reshape(-1, w)
    values = _fixed_numbers(fields)
    if values is None:  # other layouts: let numpy read the fields, separated by spaces
        spaced = np.full((fields.shape[0], w + 1), _SPACE, np.uint8)
        spaced[:, :w] = fields
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                values = np.fromstring(spaced.tobytes(), dtype=np.float64, sep=" ")
        except ValueError:
            values = np.zeros(0)
        if values.size != fields.shape[0] or not np.isfinite(values).all():
            _locate_bad_number(path, b, rows, lines, w)
    return values.reshape(nf, n, 3) * NM_TO_ANGSTROM


def _locate_bad_number(path: str, b: _Batch, rows: np.ndarray, lines: np.ndarray, w: int) -> None:
    for k in range(len(rows)):
        chunk = [rows[k, 20 + i * w : 20 + (i + 1) * w].tobytes() for i in range(3)]
        try:
            ok = all(np.isfinite(float(c)) for c in chunk)
        except ValueError:
            ok = False
        if not ok:
            frame = b.index0 + int(np.searchsorted(b.titles, lines[k], side="right")) - 1
            raise ParseError(
                path,
                f"three numbers of width {w} in columns 21-{20 + 3 * w}, got {_text(rows[k])!r}",
                line=b.line0 + int(lines[k]),
                frame=frame,
            )
    raise ParseError(path, "numeric atom coordinates", line=b.line0 + int(lines[0]))


def _text(row: np.ndarray) -> str:
    return row.tobytes().decode(errors="replace").rstrip()


def _cells(path: str, b: _Batch, titles: np.ndarray) -> np.ndarray:
    boxes = (titles + b.natoms + 2).tolist()
    nl = b.nl
    texts = [b.data[int(nl[j - 1]) + 1 : int(nl[j])] for j in boxes]
    counts = {len(t.split()) for t in texts}
    values = None
    if len(counts) == 1 and counts <= {3, 9}:
        k = counts.pop()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                values = np.fromstring(b" ".join(texts), dtype=np.float64, sep=" ")
        except ValueError:
            values = None
        if values is not None and (values.size != k * len(texts) or not np.isfinite(values).all()):
            values = None
        if values is not None:
            values = values.reshape(len(texts), k)
    if values is None:  # mixed 3/9-number lines, or an error to report
        values = np.zeros((len(texts), 9))
        for i, t in enumerate(texts):
            try:
                nums = [float(x) for x in t.split()]
            except ValueError:
                nums = []
            if len(nums) not in (3, 9) or not np.isfinite(nums).all():
                raise ParseError(
                    path,
                    f"a box line of 3 or 9 numbers (nm), got {t[:80].decode(errors='replace')!r}",
                    line=b.line0 + boxes[i],
                    frame=b.index0 + int(np.searchsorted(b.titles, titles[i])),
                )
            values[i, : len(nums)] = nums
    cells = np.zeros((len(texts), 3, 3))
    for i, (r, c) in enumerate(BOX_ORDER[: values.shape[1]]):
        cells[:, r, c] = values[:, i]
    return cells * NM_TO_ANGSTROM


def _names(rows: np.ndarray) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Distinct (resname, atomname) pairs in order of first appearance, and each atom's pair index."""
    if rows.shape[0] == 0:
        return [], np.zeros(0, np.int64)
    keys = np.ascontiguousarray(rows[:, 5:15]).view("S10").ravel()
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    keys_in_order = [bytes(uniq[j]).ljust(10) for j in order]
    pairs = [(k[:5].decode(errors="replace").strip(), k[5:].decode(errors="replace").strip()) for k in keys_in_order]
    return pairs, rank[inverse.ravel()].astype(np.int64)


# -- reading --------------------------------------------------------------------------------------
def read(
    path: str,
    type_map: Sequence[str] | None = None,
    names: Mapping[str, str] | None = None,
    format_atom_name: bool = True,
    begin: int = 0,
    step: int = 1,
    chunk: int | None = None,
    **_: Any,
) -> Iterator[dict[str, Any]]:
    """Yield blocks of frames of a ``.gro`` file.

    Parameters
    ----------
    type_map:
        Not used for naming (a .gro file names its atoms); the System reorders types to it.
    names:
        Atom name -> type name (usually the element), e.g. ``{"SOD": "Na", "CLA": "Cl", "MW": "X"}``;
        wins over the guess.
    format_atom_name:
        True (default): types are elements guessed from atom names (:func:`element_of`).
        False: types are the atom names as written (``OW``, ``HW1``, ...).
    begin, step:
        Keep frames ``begin, begin + step, ...``; the others are skipped unparsed.
    chunk:
        Frames per yielded block (default: about a million atoms' worth, at most 1024).
    """
    if begin < 0 or step < 1:
        raise DpconvError(f"begin must be >= 0 and step >= 1, got begin={begin}, step={step}")
    if not os.path.isfile(path):
        raise ParseError(path, "a .gro file, not a folder")
    if os.path.getsize(path) == 0:
        raise ParseError(path, "a .gro file (title, atom count, atoms, box); the file is empty", line=1)
    base: dict[str, Any] | None = None
    ref_keys: np.ndarray | None = None
    for b in _scan(path):
        n = b.natoms
        size = chunk or int(min(1024, max(1, 1_000_000 // max(n, 1))))
        frames = b.index0 + np.arange(len(b.titles))
        keep = b.titles[(frames >= begin) & ((frames - begin) % step == 0)]
        for start in range(0, len(keep), size):
            titles = keep[start : start + size]
            rows, lines = _atom_rows(b, titles)
            coords = _coords(path, b, titles, rows, lines)
            cells = _cells(path, b, titles)
            keys = np.ascontiguousarray(rows[:, 5:15]).reshape(len(titles), n, -1) if n else None
            if base is None:
                pairs, pair_of_atom = _names(rows[:n])
                tnames = _type_names(path, pairs, names, format_atom_name)
                atom_names = list(dict.fromkeys(tnames))
                lut = np.array([atom_names.index(t) for t in tnames], np.int64)
                types = lut[pair_of_atom] if n else np.zeros(0, np.int64)
                base = {
                    "atom_names": atom_names,
                    "atom_numbs": np.bincount(types, minlength=len(atom_names)).astype(np.int64),
                    "atom_types": types,
                    "nopbc": bool(not cells[0].any()),
                }
                ref_keys = keys[0] if keys is not None else None
            if keys is not None and ref_keys is not None:
                diff = (keys != ref_keys).any(axis=2)
                if diff.any():
                    f, a = (int(x[0]) for x in np.nonzero(diff))
                    raise ParseError(
                        path,
                        "the same residue and atom names as frame 0 in every frame",
                        line=b.line0 + int(lines[f * n + a]),
                        frame=b.index0 + int(np.searchsorted(b.titles, titles[f])),
                    )
            out = dict(base)
            out["coords"] = coords
            out["cells"] = cells
            yield out
    if base is None:
        raise ParseError(path, f"frames from begin={begin}; the file has fewer")


# -- writing --------------------------------------------------------------------------------------
def _is_lower_triangular(cell: np.ndarray) -> bool:
    scale = max(float(np.abs(cell).max()), 1e-300)
    return abs(cell[0, 1]) <= 1e-12 * scale and abs(cell[0, 2]) <= 1e-12 * scale and abs(cell[1, 2]) <= 1e-12 * scale


def _rotation(cell: np.ndarray) -> np.ndarray:
    """R with ``cell @ R`` lower triangular and a positive diagonal (a proper rotation for a right-handed cell)."""
    q, r = np.linalg.qr(cell.T)
    sign = np.sign(np.diag(r))
    sign[sign == 0] = 1.0
    return q * sign


def _frame_format(data: Mapping[str, Any], resname: str, shift: int, precision: int) -> str:
    """A %-format string for the atom lines of one frame (the numbers are the only fields)."""
    w = precision + 5
    res = resname[:5].replace("%", "%%")
    names = [str(n)[:5].replace("%", "%%") for n in data["atom_names"]]
    num = f"%{w}.{precision}f"
    xyz = num * 3 + "\n"
    parts = []
    for i, t in enumerate(np.asarray(data["atom_types"]).tolist()):
        parts.append(f"{1:5d}{res:<5s}{names[t]:>5s}{(i + 1 + shift) % 100000:5d}" + xyz)
    return "".join(parts)


def _box_line(cell_nm: np.ndarray, nopbc: bool) -> str:
    if nopbc:
        return f"{0.0:10.5f}{0.0:10.5f}{0.0:10.5f}\n"
    vals = [float(cell_nm[r, c]) + 0.0 for r, c in BOX_ORDER]  # + 0.0: no "-0.00000"
    if not any(vals[3:]):
        vals = vals[:3]
    return "".join(f"{v:10.5f}" for v in vals) + "\n"


def write(
    path: str,
    blocks: Iterable[Mapping[str, Any]],
    resname: str = "MOL",
    shift: int = 0,
    precision: int = 3,
    title: str = "written by dpconv",
    **_: Any,
) -> None:
    """Write every frame, one after the other, to one ``.gro`` file.

    Parameters
    ----------
    resname:
        Residue name of every atom (one residue, number 1), at most 5 characters.
    shift:
        Added to the 1-based atom numbers (dpdata's ``shift``).
    precision:
        Decimals of the coordinates (GROMACS' ``-ndec``); fields are ``precision + 5`` wide.
    title:
        Title line; `` t= <frame>`` is not added (GROMACS reads a time only when present).

    Cells that are not lower triangular (GROMACS needs v1 along x and v2 in the xy
    plane) are rotated together with the coordinates, with a warning. A non-periodic
    system gets a zero box (GROMACS' "no box").
    """
    if not 0 <= precision <= 10:
        raise DpconvError(f"precision must be between 0 and 10, got {precision}")
    w = precision + 5
    limit_hi = 10.0 ** (w - precision - 1) - 0.5 * 10.0**-precision
    limit_lo = -(10.0 ** (w - precision - 2)) + 0.5 * 10.0**-precision
    warned = False
    frame = 0
    with open(path, "w") as fh:
        fmt = None
        for block in blocks:
            if fmt is None:
                fmt = _frame_format(block, resname, shift, precision)
            natoms = len(block["atom_types"])
            nopbc = bool(block.get("nopbc", False))
            cells = np.asarray(block["cells"], np.float64)
            coords = np.asarray(block["coords"], np.float64)
            for c, x in zip(cells, coords):
                if not nopbc and not _is_lower_triangular(c):
                    rot = _rotation(c)
                    c, x = c @ rot, x @ rot
                    if not warned:
                        warnings.warn(
                            f"{path}: cells that are not lower triangular were rotated (with the coordinates) "
                            "because GROMACS needs v1 along x and v2 in the xy plane",
                            stacklevel=3,
                        )
                        warned = True
                x_nm = x / NM_TO_ANGSTROM
                if x_nm.size and (x_nm.max() >= limit_hi or x_nm.min() <= limit_lo):
                    raise DpconvError(
                        f"{path}: frame {frame} has coordinates outside ({limit_lo:g}, {limit_hi:g}) nm, "
                        f"which do not fit GROMACS' {w}-column fields"
                    )
                fh.write(f"{title} frame {frame}\n{natoms:5d}\n")
                fh.write(fmt % tuple(x_nm.ravel().tolist()))
                fh.write(_box_line(c / NM_TO_ANGSTROM, nopbc))
                frame += 1
