"""``abacus/md``: an ABACUS molecular-dynamics run folder.

Inputs: ``INPUT`` (for ``suffix`` and ``stru_file``), the STRU (atom names and
types), ``OUT.<suffix>/MD_dump`` (cells, positions, forces, virials of the
dumped steps) and ``OUT.<suffix>/running_md.log`` (energies).

``MD_dump`` frames::

    MDSTEP:  5
    LATTICE_CONSTANT: 1.000000000000            # bohr; newer ABACUS (>= 3.1.4): "12.41 Angstrom"
    LATTICE_VECTORS
      <3 rows, in units of LATTICE_CONSTANT>
    VIRIAL (KBAR)                               # only with cal_stress
      <3 rows, kbar>
    INDEX    LABEL    POSITIONS    FORCE (eV/Angstrom)      # newer: POSITION (Angstrom) ... VELOCITY
      0   H   x y z   fx fy fz   [vx vy vz]

Older dumps give positions in units of LATTICE_CONSTANT (bohr); newer ones say
``POSITION (Angstrom)`` and give Cartesian Å.

Parsing: the dump is memory-mapped and read in chunks of ``chunk`` frames
(default: about 65536 atoms), one block yielded per chunk. A chunk is found by
its ``MDSTEP:`` lines (one regex scan for small frames; for large ones a find
per frame that starts near where the previous frame's length predicts). One
``bytes.translate`` turns the chunk into one row of numbers per frame (words
and labels become spaces, the M of ``MDSTEP`` a line break) and one
``np.loadtxt`` reads all rows; there is no Python work per frame or per atom.
The chunk's first frame is also parsed on its own, and the bulk parse is only
taken when every frame has its layout (words, labels, line breaks, count of
numbers) and its bulk values equal its own parse. Otherwise (or to report an
error with its frame) the chunk is parsed frame by frame.

Energies: the log prints one ``final etot is ... eV`` (or ``#TOTAL ENERGY# ... eV``)
per MD step, or ``convergence has not been achieved`` when the SCF failed.
The frame ``MDSTEP: n`` takes the result of step ``n - first MDSTEP`` (with the
default ``md_dumpfreq`` bookkeeping this is dpdata's every-``md_dumpfreq``-th
energy). Frames of unconverged steps are dropped with a warning, as are frames
whose step the log does not reach (a log cut short). A truncated final frame of
the dump is dropped with a warning.

Virials: ``VIRIAL (KBAR)`` × cell volume; when the dump has no VIRIAL block
(or, as dpdata decides, the first frame's block is all zeros) there is no
``virials`` key.
"""

from __future__ import annotations

import io
import itertools
import mmap
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.abacus.inputfile import open_run
from dpconv.formats.abacus.logs import md_energies, release_pages
from dpconv.formats.abacus.stru import parse_stru
from dpconv.units import BOHR_TO_ANGSTROM, KBAR_TO_EV_PER_ANGSTROM3

SENTINEL = b"MDSTEP:"
_SENTINEL_RE = re.compile(re.escape(SENTINEL))
_ROW_MARK = b"\x01"


def _numbers_table(row_break: bytes = b"") -> bytes:
    """A ``bytes.translate`` table for the text of frames.

    Number characters are kept, ``row_break`` becomes a newline, the other bytes
    of a well-formed frame (letters, ``_:()/``, blanks) become spaces, and any
    other byte (binary garbage) an ``x``, which ``np.loadtxt`` then refuses, so
    that such a chunk is parsed frame by frame, with its precise error.
    """
    blank = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_:()/ \t\r\n")
    table = bytearray(c if c in b"0123456789.+-" else 32 if c in blank else ord("x") for c in range(256))
    if row_break:
        table[row_break[0]] = 10
    return bytes(table)


#: ``MDSTEP:`` holds the only capital M of a frame whose labels have none: mapping M to
#: a newline (and every byte that is not part of a number to a space) turns each frame
#: into one row of numbers, in one ``bytes.translate`` of the chunk
_ROWS_AT_M = _numbers_table(b"M")
#: labels with an M (Mg, Mn, ...): the sentinel is first replaced by one that starts with a marker byte
_ROWS_AT_MARK = _numbers_table(_ROW_MARK)
_NUMBERS = _numbers_table()
#: bytes deleted from a frame to get its layout (words, labels, punctuation, line breaks)
_NOT_LAYOUT = b"0123456789.+- \t\r\x0b\x0c"
_ATOM_COLS = range(2, 8)  # INDEX LABEL [x y z] [fx fy fz] [vx vy vz]


class _Header(NamedTuple):
    """The facts of one MD_dump frame header."""

    mdstep: int
    cell: np.ndarray  # (3, 3) Å
    virial: np.ndarray | None  # (3, 3) kbar, None without a VIRIAL block
    celldm: float  # LATTICE_CONSTANT in Å
    lc_angstrom: bool  # LATTICE_CONSTANT given in Å (newer dumps) rather than bohr
    pos_angstrom: bool  # POSITION column in Å rather than in units of LATTICE_CONSTANT


class _Frames(NamedTuple):
    """The parsed frames of one chunk of the dump."""

    mdstep: np.ndarray  # (nf,) int64
    cells: np.ndarray  # (nf, 3, 3) Å
    virial: np.ndarray  # (nf, 3, 3) kbar; NaN for frames without a VIRIAL block
    no_virial_at: int  # chunk offset of the first frame without a VIRIAL block (-1: none)
    coords: np.ndarray  # (nf, natoms, 3) Å
    forces: np.ndarray  # (nf, natoms, 3) eV/Å


def _parse_header(path: str, head: bytes, index: int) -> _Header:
    """One frame header: MDSTEP, LATTICE_CONSTANT, LATTICE_VECTORS, [VIRIAL], INDEX line."""
    lines = [ln for ln in head.split(b"\n") if ln.strip()]
    try:
        mdstep = int(lines[0].split()[1])
        if not lines[1].startswith(b"LATTICE_CONSTANT"):
            raise ValueError
        celldm = float(lines[1].split()[1])
        lc_angstrom = b"angstrom" in lines[1].lower()
        if not lc_angstrom:
            celldm *= BOHR_TO_ANGSTROM
        if not lines[2].startswith(b"LATTICE_VECTORS"):
            raise ValueError
        cell = np.array(b" ".join(lines[3:6]).split(), dtype=np.float64).reshape(3, 3) * celldm
        rest = lines[6:]
        virial = None
        if rest and rest[0].startswith(b"VIRIAL"):
            virial = np.array(b" ".join(rest[1:4]).split(), dtype=np.float64).reshape(3, 3)
            rest = rest[4:]
        index_line = rest[0]
        if not index_line.lstrip().startswith(b"INDEX"):
            raise ValueError
    except (IndexError, ValueError):
        raise ParseError(
            path,
            "an MD_dump frame header (MDSTEP, LATTICE_CONSTANT, LATTICE_VECTORS, [VIRIAL], INDEX line)",
            frame=index,
        ) from None
    low = index_line.lower()
    if b"position" not in low:
        raise ParseError(path, "a POSITION column in the INDEX line", frame=index)
    if b"force" not in low:
        raise ParseError(path, "forces in MD_dump (a FORCE column; run with dump_force 1)", frame=index)
    pos_angstrom = b"position (angstrom)" in low or b"positions (angstrom)" in low
    return _Header(mdstep, cell, virial, celldm, lc_angstrom, pos_angstrom)


def _frame_starts(mm: mmap.mmap, start: int, end: int, count: int, guess: bool) -> tuple[list[int], int]:
    """Offsets of up to ``count`` frames from the one at ``start``, and where the last one ends.

    With ``guess``, small frames (under 4 kB) are found by one regex scan, and
    for large ones the search for the next ``MDSTEP:`` starts 15/16 of the
    previous frame's length further on, so that their atom lines are not read
    twice. A frame shorter than that is swallowed by its predecessor; the bulk
    parse then finds more frames than starts (the layout check fails) and the
    chunk is parsed again frame by frame, without guessing.
    """
    if guess:
        nxt = mm.find(SENTINEL, start + 7, end)
        if 0 <= nxt - start < 4096:  # small frames: one regex scan costs less than a find per frame
            found = itertools.islice(_SENTINEL_RE.finditer(mm, start, end), count + 1)  # type: ignore[arg-type]
            starts = [m.start() for m in found]
            return (starts[:count], starts[count]) if len(starts) > count else (starts, end)
    starts: list[int] = []
    find = mm.find
    skip = 0
    s = start
    while 0 <= s < end and len(starts) < count:
        starts.append(s)
        nxt = find(SENTINEL, s + 7 + skip, end)
        if guess and nxt >= 0:
            skip = (nxt - s - 7) * 15 // 16
        s = nxt
    return starts, s if s >= 0 else end


def _atoms_start(mm: mmap.mmap, start: int, end: int) -> int:
    """Offset of the first atom line of the frame at ``start`` (after its INDEX line); -1 if none."""
    at = mm.find(b"INDEX", start + 7, end)
    eol = mm.find(b"\n", at, end) if at >= 0 else -1
    return eol + 1 if eol >= 0 else -1


def _frame_complete(atoms: bytes, natoms: int) -> bool:
    """Whether the atom lines of the dump's final frame are all there."""
    if not atoms.endswith(b"\n"):
        return False  # ABACUS ends every frame with a newline; a final frame without one was cut
    body = atoms.strip()
    if body.count(b"\n") + 1 != natoms:
        return False
    last = body.rsplit(b"\n", 1)[-1].split()
    first = body.split(b"\n", 1)[0].split()
    return len(last) >= len(first) >= 8


def _atom_columns(atoms: bytes, natoms: int, first: int) -> np.ndarray | None:
    """Columns of x y z fx fy fz of each atom in a frame's row of numbers (``first``: the header's count).

    An atom line ``INDEX LABEL x y z fx fy fz [vx vy vz]`` gives its INDEX, the
    digits of its LABEL (Fe1 -> 1) and its floats to the row.
    """
    lines = [ln for ln in atoms.split(b"\n") if ln.strip()]
    if len(lines) != natoms:
        return None
    cols = np.empty((natoms, 6), dtype=np.intp)
    pos = first
    for j, line in enumerate(lines):
        nums = len(line.translate(_NUMBERS).split())
        x = pos + nums - (len(line.split()) - 2)  # the floats are the line's last words
        cols[j] = np.arange(x, x + 6)
        pos += nums
    return cols


def _same_layout(mm: mmap.mmap, starts: list[int], hi: int, text: bytes, layout: bytes, head: int) -> bool:
    """Whether the frames of a chunk (``text``) all have the layout of the first (``layout``, header ``head`` bytes).

    Small frames: the layout of the whole chunk is compared (words, labels, line
    breaks). Large frames (4 kB and more): only the headers, found one by one,
    whose words carry the units; the atom lines are left to the row lengths and
    to ``np.loadtxt``, which saves a pass over the bytes of the chunk.
    """
    nf = len(starts)
    if len(text) < 4096 * nf:
        have, want = text.translate(None, _NOT_LAYOUT), layout * nf
        if hi == len(mm):  # the dump's last frame (checked by _frame_complete) may lack the blank lines after it
            have, want = have.rstrip(b"\n"), want.rstrip(b"\n")
        return have == want
    heads = []
    for s, e in zip(starts, [*starts[1:], hi]):
        a = _atoms_start(mm, s, e)
        if a < 0:
            return False
        heads.append(mm[s:a])
    return b"".join(heads).translate(None, _NOT_LAYOUT) == text[:head].translate(None, _NOT_LAYOUT) * nf


def _atom_table(atoms: bytes) -> np.ndarray | None:
    """x y z fx fy fz of a frame's atom lines, None if they are not lines of that layout."""
    if not atoms.strip():
        return None  # np.loadtxt would warn about empty input
    try:
        return np.loadtxt(io.BytesIO(atoms), usecols=_ATOM_COLS, dtype=np.float64, ndmin=2, comments=None)
    except ValueError:
        return None


def _parse_bulk(path: str, mm: mmap.mmap, starts: list[int], hi: int, natoms: int, index: int) -> _Frames | None:
    """Parse the ``nf`` frames in ``mm[lo:hi]`` with one ``np.loadtxt``; None when they are not all alike.

    The chunk is turned into one row of numbers per frame by a ``bytes.translate``.
    Its first frame is parsed on its own too; the others must have its layout
    (the same words, labels and line breaks; the same count of numbers), and
    the bulk values of the first frame must equal its own parse, which checks
    where each quantity sits in a row.
    """
    lo, nf = starts[0], len(starts)
    end0 = starts[1] if nf > 1 else hi
    a0 = _atoms_start(mm, lo, end0)
    if a0 < 0:
        return None
    head = _parse_header(path, mm[lo:a0], index)  # the precise error for a bad first header
    atoms0 = mm[a0:end0]
    ref = _atom_table(atoms0)
    if ref is None:
        return None
    nnum = 11 if head.virial is None else 20  # MDSTEP, LATTICE_CONSTANT, 9 vectors, [9 virial]
    cols = _atom_columns(atoms0, natoms, nnum)
    if cols is None or ref.shape[0] != natoms or len(mm[lo:a0].translate(_NUMBERS).split()) != nnum:
        return None
    width = int(nnum + len(mm[a0:end0].translate(_NUMBERS).split()))

    text = mm[lo:hi]
    layout = mm[lo:end0].translate(None, _NOT_LAYOUT)
    if not _same_layout(mm, starts, hi, text, layout, a0 - lo):
        return None
    if layout.count(b"M") == 1:  # no label with an M
        rows = text.translate(_ROWS_AT_M)
    else:
        rows = text.replace(SENTINEL, _ROW_MARK + SENTINEL[1:]).translate(_ROWS_AT_MARK)
    del text
    try:
        table = np.loadtxt(io.BytesIO(rows), dtype=np.float64, ndmin=2, comments=None)
    except ValueError:  # rows of different lengths
        return None
    if table.shape != (nf, width):
        return None

    mdstep = table[:, 0].astype(np.int64)
    celldm = table[:, 1] if head.lc_angstrom else table[:, 1] * BOHR_TO_ANGSTROM
    cells = table[:, 2:11].reshape(nf, 3, 3) * celldm[:, None, None]
    virial = table[:, 11:20].reshape(nf, 3, 3) if nnum == 20 else np.full((nf, 3, 3), np.nan)
    stride = (width - nnum) // natoms  # numbers per atom line: INDEX, 6 or 9 floats
    if np.array_equal(cols, nnum + 1 + np.arange(natoms)[:, None] * stride + np.arange(6)):
        atoms = table[:, nnum:].reshape(nf, natoms, stride)[:, :, 1:7]  # a view
    else:  # labels with digits
        atoms = table[:, cols]
    if not (
        np.array_equal(mdstep, table[:, 0])
        and mdstep[0] == head.mdstep
        and np.array_equal(cells[0], head.cell)
        and (head.virial is None or np.array_equal(virial[0], head.virial))
        and np.array_equal(atoms[0], ref)
    ):
        return None
    scale = 1.0 if head.pos_angstrom else celldm[:, None, None]
    return _Frames(mdstep, cells, virial, -1 if nnum == 20 else 0, atoms[:, :, :3] * scale, atoms[:, :, 3:])


def _parse_each(path: str, mm: mmap.mmap, lo: int, hi: int, natoms: int, index: int) -> _Frames:
    """Parse the frames in ``mm[lo:hi]`` one by one (exact frame search, precise errors)."""
    mdsteps, cells, virials, coords, forces = [], [], [], [], []
    no_virial_at = -1
    starts, _ = _frame_starts(mm, lo, hi, hi, guess=False)
    for k, s in enumerate(starts):
        i = index + k
        e = starts[k + 1] if k + 1 < len(starts) else hi
        a = _atoms_start(mm, s, e)
        if a < 0:
            raise ParseError(path, "an INDEX line before the atom lines", frame=i)
        head = _parse_header(path, mm[s:a], i)
        arr = _atom_table(mm[a:e])
        if arr is None or arr.shape[0] != natoms:
            raise ParseError(path, f"{natoms} atom lines 'INDEX LABEL x y z fx fy fz'", frame=i)
        mdsteps.append(head.mdstep)
        cells.append(head.cell)
        if head.virial is None and no_virial_at < 0:
            no_virial_at = k
        virials.append(np.full((3, 3), np.nan) if head.virial is None else head.virial)
        coords.append(arr[:, :3] * (1.0 if head.pos_angstrom else head.celldm))
        forces.append(arr[:, 3:])
    return _Frames(
        np.array(mdsteps, dtype=np.int64),
        np.stack(cells),
        np.stack(virials),
        no_virial_at,
        np.stack(coords),
        np.stack(forces),
    )


def _drop_truncated_end(path: str, mm: mmap.mmap, starts: list[int], natoms: int, index: int) -> tuple[list[int], int]:
    """The frame starts of the dump's final chunk and its end, without a truncated final frame (warned)."""
    size = len(mm)
    if mm.find(SENTINEL, starts[-1] + 7) >= 0:  # a guessed search swallowed a frame: find them all
        starts, _ = _frame_starts(mm, starts[0], size, size, guess=False)
    s = starts[-1]
    last = index + len(starts) - 1
    a = _atoms_start(mm, s, size)
    try:
        if a < 0:
            raise ParseError(path, "an INDEX line before the atom lines", frame=last)
        _parse_header(path, mm[s:a], last)
        if not _frame_complete(mm[a:size], natoms):
            raise ParseError(path, f"{natoms} atom lines of 8 or more columns (STRU has {natoms} atoms)", frame=last)
    except ParseError:
        if last == 0:
            raise
        warnings.warn(f"{path}: frame {last} is truncated; dropped", stacklevel=3)
        return starts[:-1], s
    return starts, size


def read(
    path: str, type_map: Sequence[str] | None = None, chunk: int | None = None, **_: Any
) -> Iterator[dict[str, Any]]:
    """Yield blocks of up to ``chunk`` frames of an ABACUS MD run folder.

    ``chunk`` defaults to about 65536 atoms per block (16 to 4096 frames).
    """
    run = open_run(path)
    stru = parse_stru(run.require(run.stru_path, "the structure file (STRU or stru_file)"))
    dump = run.require(os.path.join(run.out_dir, "MD_dump"), "the MD trajectory MD_dump")
    log = run.require(os.path.join(run.out_dir, "running_md.log"), "the MD log running_md.log")
    energies = md_energies(log)
    natoms = len(stru.atom_types)
    if chunk is None:
        chunk = min(4096, max(16, 65536 // max(natoms, 1)))
    chunk = max(1, int(chunk))
    names, types, numbs = list(stru.atom_names), stru.atom_types, stru.atom_numbs
    if os.path.getsize(dump) == 0:
        raise ParseError(dump, "MD_dump frames (the file is empty)")

    unconverged: list[int] = []
    unlogged: list[int] = []
    has_virial = False
    first_step = 0
    index = 0  # frames of the dump seen so far
    with open(dump, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        size = len(mm)
        start = mm.find(SENTINEL)
        if start < 0 or mm[:start].strip():
            raise ParseError(dump, "an ABACUS MD_dump starting with an 'MDSTEP:' line", line=1)
        while start < size:
            starts, start = _frame_starts(mm, start, size, chunk, guess=True)
            hi = start
            if start >= size:
                starts, hi = _drop_truncated_end(dump, mm, starts, natoms, index)
                if not starts:
                    break
            lo = starts[0]
            fr = _parse_bulk(dump, mm, starts, hi, natoms, index) or _parse_each(dump, mm, lo, hi, natoms, index)
            release_pages(mm, lo, hi)
            nf = len(fr.mdstep)
            if index == 0:
                first_step = int(fr.mdstep[0])
                has_virial = fr.no_virial_at != 0 and bool(np.any(fr.virial[0] != 0.0))
            if has_virial and fr.no_virial_at >= 0:
                raise ParseError(dump, "a VIRIAL block like the first frame's", frame=index + fr.no_virial_at)
            step = fr.mdstep - first_step
            logged = (step >= 0) & (step < len(energies))
            energy = np.full(nf, np.nan)
            energy[logged] = energies[step[logged]]
            keep = ~np.isnan(energy)
            unlogged += (index + np.flatnonzero(~logged)).tolist()
            unconverged += (index + np.flatnonzero(logged & ~keep)).tolist()
            index += nf
            if not keep.any():
                continue
            sel = slice(None) if keep.all() else keep
            cells = fr.cells[sel]
            block: dict[str, Any] = {
                "atom_names": names,
                "atom_numbs": numbs.copy(),
                "atom_types": types.copy(),
                "cells": cells,
                "coords": fr.coords[sel],
                "energies": energy[sel],
                "forces": fr.forces[sel],
                "nopbc": False,
            }
            if has_virial:
                vol = np.abs(np.linalg.det(cells))
                block["virials"] = fr.virial[sel] * (KBAR_TO_EV_PER_ANGSTROM3 * vol)[:, None, None]
            yield block
    if index == 0:
        raise ParseError(dump, "at least one MD_dump frame")
    if unconverged:
        warnings.warn(f"{path}: SCF not converged at MD_dump frames {unconverged}; dropped", stacklevel=2)
    if unlogged:
        warnings.warn(
            f"{path}: running_md.log has no energy for MD_dump frames {unlogged} "
            f"(the log has {len(energies)} steps); dropped",
            stacklevel=2,
        )
