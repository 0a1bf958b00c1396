"""``lammps/dump``: LAMMPS text dump trajectories (``dump atom`` / ``dump custom``).

Reading streams: the file is memory-mapped, frames are found by scanning for the
``ITEM: TIMESTEP`` sentinel, and each frame's atom block is parsed with one numpy
call (``np.fromstring``; a ``split`` fallback for dumps with an ``element``
column). Blocks of up to ``chunk`` frames are yielded.

Per frame: atoms are sorted by ``id``; the box origin is subtracted from the
coordinates (dpdata's ``shift_orig_zero``); coordinates come from the first
complete set among ``x y z`` / ``xs ys zs`` / ``xu yu zu`` / ``xsu ysu zsu``
(unwrapped sets first when ``unwrap=True``); ``unwrap=False`` (the default)
wraps them into the cell. ``fx fy fz`` columns give ``forces`` (eV/Å, LAMMPS
``units metal`` is assumed: no conversion).

Writing emits ``ITEM: TIMESTEP / NUMBER OF ATOMS / BOX BOUNDS / ATOMS id type x y z
[fx fy fz]`` per frame; cells that are not lower triangular are rotated (with a
warning) because LAMMPS boxes are restricted triclinic.
"""

from __future__ import annotations

import mmap
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.lammps import box, common

SENTINEL = b"ITEM: TIMESTEP"
ATOMS_ITEM = b"ITEM: ATOMS"

#: coordinate column sets: key -> (columns, scaled, unwrapped)
COORD_SETS: dict[str, tuple[tuple[str, str, str], bool, bool]] = {
    "x": (("x", "y", "z"), False, False),
    "xs": (("xs", "ys", "zs"), True, False),
    "xu": (("xu", "yu", "zu"), False, True),
    "xsu": (("xsu", "ysu", "zsu"), True, True),
}
FORCE_COLUMNS = ("fx", "fy", "fz")
IMAGE_COLUMNS = ("ix", "iy", "iz")


class _Truncated(Exception):
    """A frame that ends before it is complete (internal signal)."""

    def __init__(self, why: str, offset: int) -> None:
        super().__init__(why)
        self.why = why
        self.offset = offset


# -- scanning --------------------------------------------------------------------------------
def frame_offsets(buf: mmap.mmap | bytes) -> Iterator[int]:
    """Byte offsets of every ``ITEM: TIMESTEP`` line (lazily, in file order)."""
    pos = buf.find(SENTINEL, 0)
    while pos != -1:
        if pos == 0 or buf[pos - 1 : pos] in (b"\n", b"\r"):
            yield pos
        pos = buf.find(SENTINEL, pos + len(SENTINEL))


def _line_of(buf: mmap.mmap | bytes, offset: int) -> int:
    return buf[:offset].count(b"\n") + 1


class _Frame:
    """The header of one frame and where its atom lines are."""

    __slots__ = ("body", "cell", "columns", "natoms", "nopbc", "origin", "timestep")

    def __init__(self) -> None:
        self.timestep = -1
        self.natoms = -1
        self.origin = np.zeros(3)
        self.cell = np.zeros((3, 3))
        self.nopbc = False
        self.columns: list[str] = []
        self.body = b""


def _parse_box(head: str, lines: list[str], offset: int) -> tuple[np.ndarray, np.ndarray, bool]:
    words = head.split()  # after "BOX BOUNDS"
    general = words[:2] == ["abc", "origin"]
    tilted = words[:3] == ["xy", "xz", "yz"]
    flags = words[2:] if general else words[3:] if tilted else words
    nopbc = bool(flags) and not any(f.startswith("p") for f in flags)
    if len(lines) < 3:
        raise _Truncated(f"3 BOX BOUNDS lines, got {len(lines)}", offset)
    try:
        vals = [[float(v) for v in ln.split()] for ln in lines[:3]]
    except ValueError:
        raise _Truncated(f"numbers on the BOX BOUNDS lines, got {lines[:3]}", offset) from None
    need = 4 if general else 3 if tilted else 2
    if any(len(v) < need for v in vals):
        raise _Truncated(f"{need} numbers on each BOX BOUNDS line, got {lines[:3]}", offset)
    arr = np.array([v[:need] for v in vals])
    if general:
        return arr[:, 3].copy(), arr[:, :3].copy(), nopbc
    tilt = arr[:, 2] if tilted else np.zeros(3)
    origin, cell = box.dump_bounds_to_cell(arr[:, :2], tilt)
    return origin, cell, nopbc


def _parse_header(buf: mmap.mmap, start: int, end: int) -> _Frame:
    """Parse the items before ``ITEM: ATOMS``; raises _Truncated when incomplete."""
    fr = _Frame()
    apos = buf.find(ATOMS_ITEM, start, end)
    if apos == -1:
        raise _Truncated("an 'ITEM: ATOMS' section", start)
    nl = buf.find(b"\n", apos, end)
    if nl == -1:
        raise _Truncated("atom lines after 'ITEM: ATOMS'", apos)
    try:
        head = buf[start:apos].decode("ascii")
        fr.columns = buf[apos + len(ATOMS_ITEM) : nl].decode("ascii").split()
    except UnicodeDecodeError:
        raise _Truncated("ASCII text in the frame header", start) from None
    seen_box = False
    for section in head.split("ITEM:")[1:]:
        lines = [ln.strip() for ln in section.splitlines()]
        name, values = lines[0], [ln for ln in lines[1:] if ln]
        try:
            if name == "TIMESTEP":
                fr.timestep = int(values[0])
            elif name == "NUMBER OF ATOMS":
                fr.natoms = int(values[0])
            elif name.startswith("BOX BOUNDS"):
                fr.origin, fr.cell, fr.nopbc = _parse_box(name[len("BOX BOUNDS") :], values, start)
                seen_box = True
        except (IndexError, ValueError):
            raise _Truncated(f"a value after 'ITEM: {name}'", start) from None
    if fr.natoms < 0:
        raise _Truncated("'ITEM: NUMBER OF ATOMS'", start)
    if not seen_box:
        raise _Truncated("'ITEM: BOX BOUNDS'", start)
    body_end = buf.find(b"ITEM:", nl, end)  # LAMMPS may print ITEM: TIME/UNITS before the next TIMESTEP
    fr.body = buf[nl + 1 : end if body_end == -1 else body_end]
    return fr


def _parse_atoms(fr: _Frame, numeric: bool, offset: int) -> np.ndarray:
    """The atom block as a (natoms, ncols) array: float64, or bytes strings when not ``numeric``."""
    ncols = len(fr.columns)
    need = fr.natoms * ncols
    if numeric:
        vals = fast_floats(fr.body)
        if vals is not None and vals.size == need:
            return vals.reshape(fr.natoms, ncols)
    tokens = fr.body.split()
    if len(tokens) < need:
        raise _Truncated(f"{fr.natoms} atom lines of {ncols} columns, got {len(tokens)} of {need} values", offset)
    if len(tokens) > need:
        raise ValueError(f"{fr.natoms} atom lines of {ncols} columns ({need} values), got {len(tokens)} values")
    arr = np.array(tokens).reshape(fr.natoms, ncols)
    if numeric:
        try:
            return arr.astype(np.float64)
        except ValueError as exc:
            raise ValueError(f"numbers in the atom lines ({exc})") from None
    return arr


def fast_floats(text: bytes | str) -> np.ndarray | None:
    """All whitespace-separated numbers of ``text`` in one C call, or None if any token is not a number."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            vals = np.fromstring(text, sep=" ")  # type: ignore[call-overload]
    except ValueError:  # numpy >= 2.x raises where older versions warned
        return None
    return None if caught else vals


# -- reading -----------------------------------------------------------------------------------
def _coord_choice(columns: Sequence[str], unwrap: bool) -> tuple[tuple[str, str, str], bool, bool]:
    order = ("xu", "xsu", "x", "xs") if unwrap else ("x", "xs", "xu", "xsu")
    for key in order:
        cols, scaled, unwrapped = COORD_SETS[key]
        if all(c in columns for c in cols):
            return cols, scaled, unwrapped
    raise ValueError(f"coordinate columns (x y z, xs ys zs, xu yu zu or xsu ysu zsu); got {' '.join(columns)}")


def _load_energies(energies: Any, path: str) -> np.ndarray | None:
    if energies is None:
        return None
    if isinstance(energies, (str, os.PathLike)):
        try:
            return np.loadtxt(energies, ndmin=1, dtype=np.float64)
        except (OSError, ValueError) as exc:
            raise ParseError(os.fspath(energies), f"one energy (eV) per line ({exc})") from None
    arr = np.asarray(energies, dtype=np.float64).reshape(-1)
    return arr


class _Layout:
    """What the first frame fixes for the whole trajectory."""

    def __init__(self, columns: list[str], unwrap: bool, energy_column: str | None) -> None:
        self.columns = columns
        idx = {c: i for i, c in enumerate(columns)}
        self.id_col = idx.get("id")
        self.type_col = idx.get("type")
        self.element_col = idx.get("element")
        if self.type_col is None and self.element_col is None:
            raise ValueError(f"a 'type' or 'element' column; got {' '.join(columns)}")
        cols, self.scaled, self.unwrapped = _coord_choice(columns, unwrap)
        self.coord_cols = [idx[c] for c in cols]
        self.image_cols = (
            [idx[c] for c in IMAGE_COLUMNS]
            if unwrap and not self.unwrapped and all(c in idx for c in IMAGE_COLUMNS)
            else None
        )
        self.force_cols = [idx[c] for c in FORCE_COLUMNS] if all(c in idx for c in FORCE_COLUMNS) else None
        self.energy_col = None
        if energy_column is not None:
            if energy_column not in idx:
                raise ValueError(f"the per-atom energy column {energy_column!r}; got {' '.join(columns)}")
            self.energy_col = idx[energy_column]
        # every column but 'element' must be numeric for the fast path
        self.numeric = self.element_col is None


def read(
    path: str,
    type_map: Sequence[str] | None = None,
    begin: int = 0,
    step: int = 1,
    unwrap: bool = False,
    energies: Any = None,
    energy_column: str | None = None,
    chunk: int | None = None,
    **_: Any,
) -> Iterator[dict[str, Any]]:
    """Yield blocks of frames of a LAMMPS text dump.

    Parameters
    ----------
    type_map:
        Names of LAMMPS types 1, 2, ... (``type_map[0]`` names type 1). Without it
        (and without an ``element`` column) types are named ``TYPE_0``, ``TYPE_1``, ...
    begin, step:
        Keep frames ``begin, begin + step, ...`` of the file; the others are skipped
        unparsed.
    unwrap:
        False (default): wrap coordinates into the cell. True: keep unwrapped
        coordinates (``xu``/``xsu`` columns, or ``x`` + image flags ``ix iy iz``) as written.
    energies:
        Optional per-frame energies (eV), one per frame of the file (a sequence,
        an array or a text file): with ``fx fy fz`` they make the dump a LabeledSystem.
    energy_column:
        Optional name of a per-atom energy column (e.g. ``c_pe`` from
        ``compute pe/atom``) whose sum per frame gives the energy.
    chunk:
        Frames per yielded block (default: about 2 million atoms' worth, at most 256).
    """
    if step < 1 or begin < 0:
        raise ValueError(f"begin must be >= 0 and step >= 1, got begin={begin}, step={step}")
    if os.path.getsize(path) == 0:
        raise ParseError(path, "a LAMMPS dump starting with 'ITEM: TIMESTEP'; the file is empty", line=1)
    e_all = _load_energies(energies, path)
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        lead = buf[:4096].lstrip()
        if not lead.startswith(b"ITEM:"):
            raise ParseError(path, "a LAMMPS dump: text starting with 'ITEM: TIMESTEP'", line=1)
        yield from _read_frames(path, buf, type_map, begin, step, unwrap, e_all, energy_column, chunk)


def _read_frames(
    path: str,
    buf: mmap.mmap,
    type_map: Sequence[str] | None,
    begin: int,
    step: int,
    unwrap: bool,
    e_all: np.ndarray | None,
    energy_column: str | None,
    chunk: int | None,
) -> Iterator[dict[str, Any]]:
    size = len(buf)
    starts = frame_offsets(buf)
    start = next(starts, None)
    if start is None:
        raise ParseError(path, "an 'ITEM: TIMESTEP' line: this is not a LAMMPS dump", line=1)
    layout: _Layout | None = None
    base: dict[str, Any] = {}
    ref_ids: np.ndarray | None = None
    pending: dict[str, list[Any]] = {"cells": [], "coords": [], "forces": [], "energies": []}
    per_block = chunk
    warned_wrap = False
    released = 0
    i = -1
    while start is not None:
        i += 1
        nxt = next(starts, None)
        end = size if nxt is None else nxt
        cur, start = start, nxt
        if i < begin or (i - begin) % step:
            continue
        try:
            fr = _parse_header(buf, cur, end)
            if layout is None:
                layout = _Layout(fr.columns, unwrap, energy_column)
            elif fr.columns != layout.columns:
                raise ValueError(
                    f"the same ATOMS columns in every frame: {' '.join(layout.columns)}; got {' '.join(fr.columns)}"
                )
            rows = _parse_atoms(fr, layout.numeric, cur)
        except _Truncated as exc:
            if nxt is None and i > 0:
                warnings.warn(f"{path}: frame {i} is truncated; dropped", stacklevel=3)
                break
            raise ParseError(
                path, f"frame incomplete: expected {exc.why}", line=_line_of(buf, exc.offset), frame=i
            ) from None
        except ValueError as exc:
            raise ParseError(path, f"expected {exc}", line=_line_of(buf, cur), frame=i) from None
        # -- atoms in id order
        if layout.id_col is not None:
            ids = rows[:, layout.id_col].astype(np.int64)
            order = None if bool((ids[1:] > ids[:-1]).all()) else np.argsort(ids, kind="stable")
            if order is not None:
                rows, ids = rows[order], ids[order]
        else:
            ids = None
        if ref_ids is None:
            base = _first_frame_meta(path, rows, layout, type_map, fr)
            ref_ids = ids if ids is not None else np.zeros(0, np.int64)
            if per_block is None:
                per_block = max(1, min(256, 2_000_000 // max(fr.natoms, 1)))
        else:
            _check_same_atoms(path, i, buf, cur, rows, ids, ref_ids, layout, base)
        coords, cell = _coords(rows, layout, fr)
        if not unwrap and not fr.nopbc:
            if layout.unwrapped and not warned_wrap:
                warnings.warn(
                    f"{path}: unwrapped coordinates are wrapped into the cell; pass unwrap=True to keep them",
                    stacklevel=3,
                )
                warned_wrap = True
            frac = coords @ np.linalg.inv(cell)
            frac %= 1.0
            coords = frac @ cell
        pending["cells"].append(cell)
        pending["coords"].append(coords)
        if layout.force_cols is not None:
            pending["forces"].append(rows[:, layout.force_cols].astype(np.float64))
        if layout.energy_col is not None:
            pending["energies"].append(np.float64(rows[:, layout.energy_col].astype(np.float64).sum()))
        elif e_all is not None:
            if i >= len(e_all):
                raise ParseError(path, f"an energy for frame {i}: the energies given hold only {len(e_all)}", frame=i)
            pending["energies"].append(e_all[i])
        if len(pending["coords"]) >= (per_block or 1):
            yield _block(base, pending)
        released = _release(buf, released, end)
    if pending["coords"]:
        yield _block(base, pending)


def _release(buf: mmap.mmap, done: int, upto: int) -> int:
    """Tell the kernel the pages before ``upto`` are no longer needed (keeps RSS at a few frames)."""
    upto -= upto % mmap.PAGESIZE
    if upto - done >= 64 * mmap.PAGESIZE and hasattr(buf, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        buf.madvise(mmap.MADV_DONTNEED, done, upto - done)
        return upto
    return done


def _first_frame_meta(
    path: str, rows: np.ndarray, layout: _Layout, type_map: Sequence[str] | None, fr: _Frame
) -> dict[str, Any]:
    if fr.natoms == 0:
        raise ParseError(path, "at least one atom in the first frame", frame=0)
    elements = None
    if layout.element_col is not None:
        elements = [e.decode() if isinstance(e, bytes) else str(e) for e in rows[:, layout.element_col]]
    if layout.type_col is not None:
        try:
            types = rows[:, layout.type_col].astype(np.float64).astype(np.int64)
        except ValueError:
            raise ParseError(path, "integer atom types", frame=0) from None
        if types.min() < 1:
            raise ParseError(path, f"atom types >= 1, got {types.min()}", frame=0)
        ntypes = int(types.max())
        types = types - 1
        names = common.type_names(path, ntypes, types, elements, type_map, "TYPE_")
    else:
        assert elements is not None
        names = list(dict.fromkeys(elements))
        types = np.array([names.index(e) for e in elements], dtype=np.int64)
        ntypes = len(names)
    return {
        "atom_names": names,
        "atom_numbs": np.bincount(types, minlength=ntypes).astype(np.int64),
        "atom_types": types,
        "nopbc": fr.nopbc,
    }


def _check_same_atoms(
    path: str,
    i: int,
    buf: mmap.mmap,
    cur: int,
    rows: np.ndarray,
    ids: np.ndarray | None,
    ref_ids: np.ndarray,
    layout: _Layout,
    base: dict[str, Any],
) -> None:
    ref_types = base["atom_types"]
    if len(rows) != len(ref_types):
        raise ParseError(
            path,
            f"{len(ref_types)} atoms as in frame 0 (one system keeps its atoms), got {len(rows)}",
            line=_line_of(buf, cur),
            frame=i,
        )
    if ids is not None and not np.array_equal(ids, ref_ids):
        raise ParseError(path, "the same atom ids as in frame 0", line=_line_of(buf, cur), frame=i)
    if layout.type_col is not None:
        types = rows[:, layout.type_col].astype(np.float64).astype(np.int64) - 1
        if not np.array_equal(types, ref_types):
            raise ParseError(path, "the same type for every atom id as in frame 0", line=_line_of(buf, cur), frame=i)


def _coords(rows: np.ndarray, layout: _Layout, fr: _Frame) -> tuple[np.ndarray, np.ndarray]:
    xyz = rows[:, layout.coord_cols].astype(np.float64)
    cell = fr.cell
    coords = xyz @ cell if layout.scaled else xyz - fr.origin
    if layout.image_cols is not None:
        coords = coords + rows[:, layout.image_cols].astype(np.float64) @ cell
    return coords, cell


def _block(base: Mapping[str, Any], pending: dict[str, list[Any]]) -> dict[str, Any]:
    out = dict(base)
    out["atom_names"] = list(base["atom_names"])
    out["cells"] = np.stack(pending["cells"])
    out["coords"] = np.stack(pending["coords"])
    if pending["forces"]:
        out["forces"] = np.stack(pending["forces"])
    if pending["energies"]:
        out["energies"] = np.array(pending["energies"], dtype=np.float64)
    for v in pending.values():
        v.clear()
    return out


# -- writing ------------------------------------------------------------------------------------
def write(
    path: str, blocks: Iterable[Mapping[str, Any]], timestep: int = 0, type_map: Sequence[str] | None = None, **_: Any
) -> None:
    """Write every frame; ``timestep`` numbers the first frame (then +1 per frame).

    ``type_map`` sets the LAMMPS type numbers (``type_map[0]`` is type 1); by default
    type i+1 is ``atom_names[i]``. Cells that are not lower triangular are rotated
    (coordinates and forces with them) with a warning.
    """
    warned = False
    t = int(timestep)
    with open(path, "w") as fh:
        for data in blocks:
            ltypes, _names = common.lammps_types(data, type_map)
            natoms = len(ltypes)
            ids = np.arange(1, natoms + 1, dtype=np.float64)
            forces = data.get("forces")
            nopbc = bool(data.get("nopbc", False))
            bflag = "ff ff ff" if nopbc else "pp pp pp"
            cols = "id type x y z" + (" fx fy fz" if forces is not None else "")
            line_fmt = "%d %d %.12g %.12g %.12g" + (" %.12g %.12g %.12g" if forces is not None else "") + "\n"
            frame_fmt = line_fmt * natoms
            for j in range(len(data["coords"])):
                cell = np.asarray(data["cells"][j], dtype=np.float64)
                coords = np.asarray(data["coords"][j], dtype=np.float64)
                f = None if forces is None else np.asarray(forces[j], dtype=np.float64)
                if not box.is_lower_triangular(cell):
                    if not warned:
                        warnings.warn(
                            f"{os.path.basename(path)}: cell is not lower triangular; rotating it (and the coordinates"
                            " and forces) for LAMMPS",
                            stacklevel=2,
                        )
                        warned = True
                    cell, q = box.to_lower_triangular(cell)
                    coords = coords @ q
                    f = None if f is None else f @ q
                bounds, tilt = box.cell_to_dump_bounds(cell)
                fh.write(f"ITEM: TIMESTEP\n{t}\nITEM: NUMBER OF ATOMS\n{natoms}\n")
                if np.any(tilt != 0.0):
                    fh.write(f"ITEM: BOX BOUNDS xy xz yz {bflag}\n")
                    fh.write("".join(f"{b[0]:.12g} {b[1]:.12g} {tl:.12g}\n" for b, tl in zip(bounds, tilt)))
                else:
                    fh.write(f"ITEM: BOX BOUNDS {bflag}\n")
                    fh.write("".join(f"{b[0]:.12g} {b[1]:.12g}\n" for b in bounds))
                fh.write(f"ITEM: ATOMS {cols}\n")
                parts = [ids, ltypes.astype(np.float64), coords.T]
                if f is not None:
                    parts.append(f.T)
                flat = np.vstack([np.atleast_2d(p) for p in parts]).T.ravel().tolist()
                fh.write(frame_fmt % tuple(flat))
                t += 1
