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
``POSITION (Angstrom)`` and give Cartesian Å. The reader memory-maps the dump,
finds frames by their ``MDSTEP:`` line and parses the atom lines of up to
``chunk`` frames (default: about 65536 atoms) with one ``np.loadtxt``; it
yields one block per chunk.

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
import mmap
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.abacus.inputfile import open_run
from dpconv.formats.abacus.logs import md_energies
from dpconv.formats.abacus.stru import parse_stru
from dpconv.units import BOHR_TO_ANGSTROM, KBAR_TO_EV_PER_ANGSTROM3

SENTINEL = b"MDSTEP:"


class _Frame:
    """Header facts of one MD_dump frame, and where its atom lines are."""

    __slots__ = ("atoms", "cell", "last", "mdstep", "pos_scale", "virial")

    def __init__(
        self, mdstep: int, cell: np.ndarray, virial: np.ndarray | None, pos_scale: float, atoms: bytes, last: bool
    ) -> None:
        self.mdstep = mdstep
        self.cell = cell
        self.virial = virial
        self.pos_scale = pos_scale
        self.atoms = atoms
        self.last = last


def _parse_header(path: str, head: bytes, index: int) -> tuple[int, np.ndarray, np.ndarray | None, float]:
    """MDSTEP, cell (Å), virial block (kbar) or None, and the scale of positions to Å."""
    lines = [ln for ln in head.split(b"\n") if ln.strip()]
    try:
        mdstep = int(lines[0].split()[1])
        if not lines[1].startswith(b"LATTICE_CONSTANT"):
            raise ValueError
        lc_words = lines[1].split()
        celldm = float(lc_words[1])
        if b"angstrom" not in lines[1].lower():
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
    pos_scale = 1.0 if b"position (angstrom)" in low or b"positions (angstrom)" in low else celldm
    return mdstep, cell, virial, pos_scale


def iter_frames(path: str) -> Iterator[_Frame]:
    """The frames of an MD_dump, found by memory-mapping the file (no whole-file read)."""
    size = os.path.getsize(path)
    if size == 0:
        raise ParseError(path, "MD_dump frames (the file is empty)")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        first = mm.find(SENTINEL)
        if first < 0 or mm[:first].strip():
            raise ParseError(path, "an ABACUS MD_dump starting with an 'MDSTEP:' line", line=1)
        start, index = first, 0
        while start >= 0:
            nxt = mm.find(SENTINEL, start + len(SENTINEL))
            end = nxt if nxt >= 0 else size
            at = mm.find(b"INDEX", start, end)
            eol = mm.find(b"\n", at, end) if at >= 0 else -1
            try:
                if eol < 0:
                    raise ParseError(path, "an INDEX line before the atom lines", frame=index)
                mdstep, cell, virial, scale = _parse_header(path, mm[start : eol + 1], index)
            except ParseError:
                if nxt < 0 and index > 0:  # a final frame cut inside its header
                    warnings.warn(f"{path}: frame {index} is truncated; dropped", stacklevel=2)
                    return
                raise
            yield _Frame(mdstep, cell, virial, scale, mm[eol + 1 : end], nxt < 0)
            start, index = nxt, index + 1


def _parse_atoms(path: str, frames: list[_Frame], natoms: int, first_index: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (unscaled) and forces of the frames' atom lines, in one loadtxt."""
    blob = b"\n".join(f.atoms for f in frames)  # blank lines between frames are skipped
    try:
        arr = np.loadtxt(io.BytesIO(blob), usecols=range(2, 8), dtype=np.float64, ndmin=2, comments=None)
        if arr.shape[0] != natoms * len(frames):
            raise ValueError
    except ValueError:
        for k, f in enumerate(frames):  # find the culprit frame for a precise error
            try:
                one = np.loadtxt(io.BytesIO(f.atoms), usecols=range(2, 8), dtype=np.float64, ndmin=2)
            except ValueError:
                one = None
            if one is None or one.shape[0] != natoms:
                raise ParseError(
                    path, f"{natoms} atom lines 'INDEX LABEL x y z fx fy fz'", frame=first_index + k
                ) from None
        raise ParseError(path, "atom lines of numbers", frame=first_index) from None
    arr = arr.reshape(len(frames), natoms, 6)
    return arr[:, :, :3], arr[:, :, 3:]


def _frame_complete(f: _Frame, natoms: int) -> bool:
    if f.last and not f.atoms.endswith(b"\n"):
        return False  # ABACUS ends every frame with a newline; a final frame without one was cut
    body = f.atoms.strip()
    if body.count(b"\n") + 1 != natoms:
        return False
    last = body.rsplit(b"\n", 1)[-1].split()
    first = body.split(b"\n", 1)[0].split()
    return len(last) >= len(first) >= 8


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
    names, types, numbs = list(stru.atom_names), stru.atom_types, stru.atom_numbs

    unconverged: list[int] = []
    unlogged: list[int] = []
    has_virial: bool | None = None
    first_step: int | None = None
    pending: list[tuple[int, _Frame, float]] = []

    def flush() -> dict[str, Any]:
        fr = [p[1] for p in pending]
        pos, forces = _parse_atoms(dump, fr, natoms, pending[0][0])
        scale = np.array([f.pos_scale for f in fr])[:, None, None]
        cells = np.stack([f.cell for f in fr])
        block: dict[str, Any] = {
            "atom_names": names,
            "atom_numbs": numbs.copy(),
            "atom_types": types.copy(),
            "cells": cells,
            "coords": pos * scale,
            "energies": np.array([p[2] for p in pending]),
            "forces": forces,
            "nopbc": False,
        }
        if has_virial:
            vol = np.abs(np.linalg.det(cells))
            block["virials"] = (
                np.stack([f.virial for f in fr if f.virial is not None])
                * (KBAR_TO_EV_PER_ANGSTROM3 * vol)[:, None, None]
            )
        pending.clear()
        return block

    index = -1
    for index, frame in enumerate(iter_frames(dump)):
        if frame.last and not _frame_complete(frame, natoms):  # earlier frames: checked by the bulk parse
            if index > 0:
                warnings.warn(f"{dump}: frame {index} is truncated; dropped", stacklevel=2)
                break
            raise ParseError(dump, f"{natoms} atom lines of 8 or more columns (STRU has {natoms} atoms)", frame=index)
        if first_step is None:
            first_step = frame.mdstep
            has_virial = frame.virial is not None and bool(np.any(frame.virial != 0.0))
        elif has_virial and frame.virial is None:
            raise ParseError(dump, "a VIRIAL block like the first frame's", frame=index)
        step = frame.mdstep - first_step
        if step < 0 or step >= len(energies):
            unlogged.append(index)
            continue
        energy = float(energies[step])
        if np.isnan(energy):
            unconverged.append(index)
            continue
        pending.append((index, frame, energy))
        if len(pending) >= chunk:
            yield flush()
    if index < 0:
        raise ParseError(dump, "at least one MD_dump frame")
    if pending:
        yield flush()
    if unconverged:
        warnings.warn(f"{path}: SCF not converged at MD_dump frames {unconverged}; dropped", stacklevel=2)
    if unlogged:
        warnings.warn(
            f"{path}: running_md.log has no energy for MD_dump frames {unlogged} "
            f"(the log has {len(energies)} steps); dropped",
            stacklevel=2,
        )
