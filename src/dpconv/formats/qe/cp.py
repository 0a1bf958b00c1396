"""``qe/cp/traj``: a cp.x (Car-Parrinello) trajectory, given by its file prefix.

``<prefix>.in`` (the cp.x input: species, atom order, cell when there is no
``.cel``), ``<prefix>.pos`` (bohr), ``<prefix>.for`` (hartree/bohr),
``<prefix>.evp`` (one line per printed step; column 6, ``etot``, in hartree)
and, when present, ``<prefix>.cel`` (bohr; its *columns* are the lattice
vectors) and ``<prefix>.str`` (stress in GPa). Each ``.pos/.for/.cel/.str``
frame is a ``step time`` line followed by one row of three numbers per atom (or
per lattice vector). Frames are matched by step number: every file must list
the same steps in the same order, else a ParseError names the file and frame.

The files are read in lockstep, ``chunk_frames`` frames at a time, each chunk
parsed in bulk with numpy.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np

from dpconv.errors import DpconvError, ParseError
from dpconv.formats.qe import pwinput
from dpconv.formats.qe.pw import rotate_lower_triangular
from dpconv.units import (
    BOHR_TO_ANGSTROM,
    GPA_TO_EV_PER_ANGSTROM3,
    HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
    HARTREE_TO_EV,
)

SUFFIXES = (".in", ".pos", ".for", ".evp", ".cel", ".str")
READ_CHUNK = 1 << 22
_COMMENT_RE = re.compile(rb"(?m)^[ \t]*#[^\n]*\n?")
EVP_ETOT_COLUMN = 5


def prefix_of(path: str) -> str:
    """``path`` itself, or ``path`` without a cp.x suffix when it names one of the files."""
    root, ext = os.path.splitext(path)
    if ext in SUFFIXES and os.path.isfile(root + ".pos"):
        return root
    return path


def _numbers(text: bytes) -> np.ndarray:
    try:
        return np.array(text.split(), dtype=np.float64)
    except ValueError:
        return np.array(text.replace(b"D", b"E").replace(b"d", b"e").split(), dtype=np.float64)


class _TokenFile:
    """A whitespace-separated stream of numbers read in byte chunks, ``width`` numbers per frame.

    The cp.x files have a fixed number of numbers per frame (``step time`` plus
    ``nrows x 3``, or one ``.evp`` line), so frames are cut from the number
    stream without looking at lines; a misaligned file shows up as a
    non-integer or disagreeing step number.
    """

    def __init__(self, path: str, width: int, comments: bool = False):
        self.path = path
        self.width = width
        self.comments = comments
        self.frames = 0
        self.tail = b""
        self.carry = np.zeros(0)
        self.eof = False
        try:
            self.fh: IO[bytes] = open(path, "rb")  # noqa: SIM115 (kept open across chunks; close() closes it)
        except OSError as exc:
            raise ParseError(path, f"a readable cp.x file ({exc.strerror})") from None

    def close(self) -> None:
        self.fh.close()

    def _more(self) -> np.ndarray:
        data = self.fh.read(READ_CHUNK)
        if not data:
            self.eof = True
        data = self.tail + data
        cut = len(data) if self.eof else data.rfind(b"\n") + 1
        text, self.tail = data[:cut], data[cut:]
        if self.comments and b"#" in text:
            text = _COMMENT_RE.sub(b"", text)
        if b"\x00" in text:
            raise ParseError(self.path, "a text cp.x file of numbers, found binary data", frame=self.frames)
        try:
            return _numbers(text)
        except ValueError:
            raise ParseError(self.path, "whitespace-separated numbers", frame=self.frames) from None

    def chunk(self, k: int) -> tuple[np.ndarray, bool]:
        """Up to ``k`` frames as rows of ``width`` numbers, and whether a partial frame ends the file."""
        need = k * self.width
        parts, have = [self.carry], self.carry.size
        while have < need and not self.eof:
            vals = self._more()
            parts.append(vals)
            have += vals.size
        allv = np.concatenate(parts) if len(parts) > 1 else parts[0]
        n = min(k, allv.size // self.width)
        rows = allv[: n * self.width].reshape(n, self.width)
        self.carry = allv[n * self.width :]
        truncated = self.eof and n < k and self.carry.size > 0
        if n and not np.all(rows[:, 0] == np.round(rows[:, 0])):
            bad = int(np.flatnonzero(rows[:, 0] != np.round(rows[:, 0]))[0])
            raise ParseError(
                self.path,
                f"frames of {self.width} numbers, each starting with an integer step (is nat right?)",
                frame=self.frames + bad,
            )
        self.frames += n
        return rows, truncated


def read(
    path: str,
    type_map: Sequence[str] | None = None,
    *,
    input_file: str | None = None,
    lower_triangular: bool = True,
    wrap: bool = True,
    chunk_frames: int = 256,
    **_: Any,
) -> Iterator[dict[str, Any]]:
    """Read a cp.x trajectory.

    Parameters
    ----------
    path:
        The file prefix (``run`` for ``run.in``, ``run.pos`` ...); a path to one of
        those files is accepted too.
    input_file:
        The cp.x input (default ``<prefix>.in``).
    lower_triangular:
        Rotate frames so the cell is lower triangular (dpdata does; default True).
    wrap:
        Wrap coordinates into the cell (dpdata does; default True).
    """
    prefix = prefix_of(path)
    inp_path = input_file or prefix + ".in"
    if not os.path.isfile(inp_path):
        raise DpconvError(f"{inp_path}: no such cp.x input file (qe/cp/traj reads <prefix>.in/.pos/.for/.evp)")
    for ext in (".pos", ".for", ".evp"):
        if not os.path.isfile(prefix + ext):
            raise DpconvError(f"{prefix + ext}: no such file (qe/cp/traj reads <prefix>.in/.pos/.for/.evp)")
    inp = pwinput.read_input(inp_path)
    names = inp.species()
    nat = int(inp.require("nat"))
    card = inp.cards.get("ATOMIC_POSITIONS")
    if card is None or len(card.lines) < nat:
        raise ParseError(inp_path, f"an ATOMIC_POSITIONS card with nat = {nat} lines")
    labels = [ln.split()[0] for ln in card.lines[:nat]]
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ParseError(
            inp_path, f"ATOMIC_POSITIONS labels among ATOMIC_SPECIES {names}, got {unknown}", line=card.line
        )
    types = np.array([names.index(lab) for lab in labels], dtype=np.int64)
    numbs = np.bincount(types, minlength=len(names)).astype(np.int64)
    has_cel = os.path.isfile(prefix + ".cel")
    fixed_cell = None if has_cel else pwinput.input_cell(inp)

    rows = {".pos": nat, ".for": nat}
    if has_cel:
        rows[".cel"] = 3
    if os.path.isfile(prefix + ".str"):
        rows[".str"] = 3
    files = {ext: _TokenFile(prefix + ext, 2 + 3 * r) for ext, r in rows.items()}
    files[".evp"] = _TokenFile(prefix + ".evp", _evp_columns(prefix + ".evp"), comments=True)
    k = max(1, int(chunk_frames))
    done = 0
    yielded = False
    try:
        while True:
            parts = {ext: f.chunk(k) for ext, f in files.items()}
            counts = {ext: len(p[0]) for ext, p in parts.items()}
            n = min(counts.values())
            if max(counts.values()) != n:
                # files of different lengths: only the very end of the run may differ
                if any(c < k for c in counts.values()) and max(counts.values()) - n == 1:
                    short = sorted(ext for ext, c in counts.items() if c == n)
                    warnings.warn(
                        f"{prefix}: frame {done + n} is truncated (missing from {', '.join(short)}); dropped",
                        stacklevel=3,
                    )
                else:
                    short = min(counts, key=lambda e: counts[e])
                    raise ParseError(
                        prefix + short,
                        f"as many frames as the other cp.x files ({max(counts.values())})",
                        frame=done + n,
                    )
            else:
                for ext, p in parts.items():
                    if p[1]:
                        warnings.warn(f"{prefix}{ext}: frame {done + n} is truncated; dropped", stacklevel=3)
                        break
            ref = parts[".pos"][0][:n, 0]
            for ext, p in parts.items():
                steps = p[0][:n, 0]
                if not np.array_equal(steps, ref):
                    bad = int(np.flatnonzero(steps != ref)[0])
                    raise ParseError(
                        prefix + ext,
                        f"step {int(ref[bad])} as in {prefix}.pos, found step "
                        f"{int(steps[bad])} (the steps of the cp.x files must agree)",
                        frame=done + bad,
                    )
            if n or not yielded:
                yield _block(
                    {e: p[0][:n] for e, p in parts.items()}, n, names, types, numbs, fixed_cell, lower_triangular, wrap
                )
                yielded = True
            done += n
            if n < k:
                break
    finally:
        for f in files.values():
            f.close()


def _evp_columns(path: str) -> int:
    """Numbers per line of a ``.evp`` file (its first line that is not a comment)."""
    try:
        with open(path, "rb") as fh:
            for line in fh:
                if line.strip() and not line.lstrip().startswith(b"#"):
                    ncol = len(line.split())
                    if ncol <= EVP_ETOT_COLUMN:
                        raise ParseError(path, f"at least {EVP_ETOT_COLUMN + 1} columns (nfi ... etot)", frame=0)
                    return ncol
    except OSError as exc:
        raise ParseError(path, f"a readable cp.x .evp file ({exc.strerror})") from None
    return EVP_ETOT_COLUMN + 1  # empty: no frames


def _block(
    parts: dict[str, np.ndarray],
    n: int,
    names: list[str],
    types: np.ndarray,
    numbs: np.ndarray,
    fixed_cell: np.ndarray | None,
    lower_triangular: bool,
    wrap: bool,
) -> dict[str, Any]:
    """One block from rows of ``step time x y z ...`` numbers per file."""
    nat = len(types)
    if ".cel" in parts:
        cells = parts[".cel"][:, 2:].reshape(n, 3, 3).transpose(0, 2, 1) * BOHR_TO_ANGSTROM
    else:
        assert fixed_cell is not None
        cells = np.repeat(fixed_cell[None], n, axis=0)
    coords = parts[".pos"][:, 2:].reshape(n, nat, 3) * BOHR_TO_ANGSTROM
    if wrap and n:
        frac = np.linalg.solve(cells.transpose(0, 2, 1), coords.transpose(0, 2, 1)).transpose(0, 2, 1)
        frac -= np.floor(frac)
        coords = frac @ cells
    data: dict[str, Any] = {
        "atom_names": list(names),
        "atom_numbs": numbs.copy(),
        "atom_types": types.copy(),
        "cells": np.ascontiguousarray(cells, dtype=np.float64),
        "coords": np.ascontiguousarray(coords, dtype=np.float64),
        "energies": parts[".evp"][:, EVP_ETOT_COLUMN] * HARTREE_TO_EV,
        "forces": parts[".for"][:, 2:].reshape(n, nat, 3) * HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
        "nopbc": False,
    }
    if ".str" in parts:
        vol = np.abs(np.linalg.det(cells))
        data["virials"] = parts[".str"][:, 2:].reshape(n, 3, 3) * GPA_TO_EV_PER_ANGSTROM3 * vol[:, None, None]
    if lower_triangular and n:
        rotate_lower_triangular(data)
    return data
