"""``cp2k/aimd_output``: the folder of a CP2K MD run.

Files used (``<p>`` is the project name, taken from ``<p>-pos-1.xyz``):

=====================  ===============================================================
``<p>-pos-1.xyz``      coordinates (Å); the frames. Step ``N`` from ``i = N``, energy
                       from ``E =`` (hartree).
``<p>-frc-1.xyz``      forces (hartree/bohr), matched by step.
``<p>-1.ener``         potential energy (``Pot.[a.u.]``) by step, when ``E =`` is missing.
``<p>-1.cell``         cell by step (Å).
``<p>-1.stress``       pressure tensor (bar) by step; used for virials only when the log
                       has no stress tensor (it includes the kinetic part, see below).
log (``*.log``/``*.out``)  forces, energy and analytical stress tensor per MD step when the
                       files above lack them; kind labels and elements; the first cell.
``*.inp``              cell (``&CELL`` ``ABC``/``A B C``) and kind elements when there is no log.
=====================  ===============================================================

Every source is keyed by MD step; a frame is a step of the pos file that has
forces and an energy. Steps missing a label, or whose SCF did not converge
(per the log), are dropped with a warning naming them. Steps repeated by a
restart appended to the same files are kept once (the first time).
The xyz files and the log are streamed in chunks of frames.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from dpconv import units
from dpconv.errors import ParseError
from dpconv.formats.cp2k import logscan
from dpconv.formats.cp2k.output import names_and_types
from dpconv.formats.cp2k.trajfiles import iter_table, iter_xyz, xyz_labels

Arrays = dict[str, np.ndarray]


class _Stream:
    """Step-keyed records pulled from a chunk iterator as far as a lookup needs."""

    def __init__(self, chunks: Iterator[tuple[np.ndarray, Arrays]]) -> None:
        self._chunks = chunks
        self._done = False
        self._steps = np.zeros(0, np.int64)
        self._vals: Arrays = {}
        self._last = -(1 << 62)

    def _pull(self) -> None:
        try:
            steps, vals = next(self._chunks)
        except StopIteration:
            self._done = True
            return
        keep = _increasing(steps, self._last)
        if keep.any():
            self._last = int(steps[keep][-1])
        steps = steps[keep]
        vals = {k: v[keep] for k, v in vals.items()}
        if not self._vals:
            self._steps, self._vals = steps, vals
        else:
            self._steps = np.concatenate([self._steps, steps])
            self._vals = {k: np.concatenate([self._vals[k], v]) for k, v in vals.items()}

    def take(self, steps: np.ndarray) -> tuple[np.ndarray, Arrays]:
        """(found mask, values at ``steps``) for increasing ``steps``; forgets steps up to the last asked."""
        need = int(steps.max())
        while not self._done and (self._steps.size == 0 or self._steps[-1] < need):
            self._pull()
        if self._steps.size == 0:
            return np.zeros(len(steps), bool), {}
        idx = np.clip(np.searchsorted(self._steps, steps), 0, self._steps.size - 1)
        found = self._steps[idx] == steps
        out = {k: v[idx] for k, v in self._vals.items()}
        cut = int(np.searchsorted(self._steps, need, side="right"))
        self._steps = self._steps[cut:]
        self._vals = {k: v[cut:] for k, v in self._vals.items()}
        return found, out


def _increasing(steps: np.ndarray, last: int) -> np.ndarray:
    """Mask of entries larger than every earlier one (and than ``last``)."""
    if steps.size == 0:
        return np.zeros(0, bool)
    before = np.maximum.accumulate(np.concatenate([[last], steps[:-1]]))
    return steps > before


def _xyz_stream(path: str, key: str, chunk_frames: int) -> Iterator[tuple[np.ndarray, Arrays]]:
    for c in iter_xyz(path, chunk_frames):
        steps = np.where(c.steps >= 0, c.steps, c.first + np.arange(len(c.steps)))
        yield steps, {key: c.values, key + "_e": c.energies}


def _table_stream(
    path: str, min_cols: int, expected: str, cols: dict[str, Callable[[np.ndarray], np.ndarray]]
) -> Iterator[tuple[np.ndarray, Arrays]]:
    """The step-keyed columns of a ``.ener``/``.cell``/``.stress`` table, in blocks of rows."""
    for t in iter_table(path):
        if t.shape[1] < min_cols:
            raise ParseError(path, f"columns {expected}")
        yield t[:, 0].astype(np.int64), {k: f(t) for k, f in cols.items()}


def _log_stream(path: str, buf: bytes, start: int, natoms: int, chunk: int) -> Iterator[tuple[np.ndarray, Arrays]]:
    """Per MD step: energy (hartree), forces (hartree/bohr), stress (eV/Å^3), SCF converged."""
    rows: list[tuple[int, float, np.ndarray, np.ndarray, bool]] = []
    init: tuple[float, np.ndarray, np.ndarray, bool] | None = None
    nan_f = np.full((natoms, 3), np.nan)
    nan_s = np.full((3, 3), np.nan)
    for ev in logscan.evaluations(buf, start):
        if ev.md_step is None:
            continue
        f = logscan.forces_in(path, buf, ev.pos, ev.end)
        if f is not None and f.shape[0] != natoms:
            raise ParseError(
                path, f"{natoms} rows in the forces table, found {f.shape[0]}", line=logscan.line_of(buf, ev.pos)
            )
        s = logscan.stress_in(path, buf, ev.pos, ev.end)
        rec = (ev.energy, nan_f if f is None else f, nan_s if s is None else s, ev.converged)
        if ev.md_step < 0:
            init = rec
            continue
        if init is not None:
            rows.append((ev.md_step - 1, *init))
            init = None
        rows.append((ev.md_step, *rec))
        if len(rows) >= chunk:
            yield _log_chunk(rows)
            rows = []
    if init is not None:
        rows.append((0, *init))
    if rows:
        yield _log_chunk(rows)


def _log_chunk(rows: list[tuple[int, float, np.ndarray, np.ndarray, bool]]) -> tuple[np.ndarray, Arrays]:
    return np.array([r[0] for r in rows], np.int64), {
        "log_e": np.array([r[1] for r in rows]),
        "log_f": np.array([r[2] for r in rows]),
        "log_s": np.array([r[3] for r in rows]),
        "log_ok": np.array([r[4] for r in rows], bool),
    }


# -- the input file -----------------------------------------------------------------
def _input_section(text: str, name: str) -> list[list[str]]:
    """Keyword lines (split) of the first ``&name`` section (not its subsections)."""
    out: list[list[str]] = []
    depth = 0
    inside = False
    for raw in text.splitlines():
        line = re.split(r"[!#]", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        words = line.split()
        head = words[0].upper()
        if not inside:
            if head == "&" + name.upper():
                inside = True
                depth = 0
                out.append(words[1:])
            continue
        if head.startswith("&END"):
            if depth == 0:
                break
            depth -= 1
        elif head.startswith("&"):
            depth += 1
        elif depth == 0:
            out.append(words)
    return out


def _numbers(words: list[str]) -> tuple[list[float], float]:
    scale = 1.0
    vals = []
    for w in words:
        if w.startswith("["):
            scale = units.BOHR_TO_ANGSTROM if "bohr" in w.lower() else 1.0
            continue
        vals.append(float(w))
    return vals, scale


def cell_from_input(path: str) -> np.ndarray | None:
    """The &CELL of a CP2K input (A/B/C vectors or ABC + ALPHA_BETA_GAMMA), Å."""
    with open(path, errors="replace") as fh:
        text = fh.read()
    lines = _input_section(text, "CELL")
    if not lines:
        return None
    vec: dict[str, list[float]] = {}
    abc = angles = None
    try:
        for words in lines[1:]:
            key = words[0].upper()
            if key in ("A", "B", "C"):
                v, s = _numbers(words[1:])
                vec[key] = [x * s for x in v[:3]]
            elif key == "ABC":
                v, s = _numbers(words[1:])
                abc = [x * s for x in v[:3]]
            elif key == "ALPHA_BETA_GAMMA":
                angles, _ = _numbers(words[1:])
    except ValueError:
        raise ParseError(path, "numbers in the &CELL section (input preprocessor variables are not expanded)") from None
    if len(vec) == 3:
        return np.array([vec["A"], vec["B"], vec["C"]], np.float64)
    if abc is not None:
        return cell_from_lengths(abc, angles or [90.0, 90.0, 90.0])
    return None


def cell_from_lengths(abc: list[float], angles: list[float]) -> np.ndarray:
    """Cell rows from lengths and angles (alpha, beta, gamma in degrees), a along x, b in the xy plane."""
    a, b, c = abc
    al, be, ga = np.deg2rad(angles[:3])
    bx, by = b * np.cos(ga), b * np.sin(ga)
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    cz = np.sqrt(max(c * c - cx * cx - cy * cy, 0.0))
    cell = np.array([[a, 0, 0], [bx, by, 0], [cx, cy, cz]], np.float64)
    cell[np.abs(cell) < 1e-12] = 0.0
    return cell


def kind_labels_from_input(path: str) -> list[str]:
    """The first column (kind label) of every atom line of the input's ``&COORD``."""
    with open(path, errors="replace") as fh:
        text = fh.read()
    lines = _input_section(text, "COORD")
    return [w[0] for w in lines[1:] if len(w) >= 4 and w[0].upper() not in ("UNIT", "SCALED")]


def kind_elements_from_input(path: str) -> dict[str, str]:
    """``&KIND label`` -> its ``ELEMENT`` keyword, where given."""
    with open(path, errors="replace") as fh:
        text = fh.read()
    out: dict[str, str] = {}
    for m in re.finditer(r"^\s*&KIND\s+(\S+)(.*?)^\s*&END\s+KIND", text, re.M | re.S | re.I):
        e = re.search(r"^\s*ELEMENT\s+(\S+)", m.group(2), re.M | re.I)
        if e:
            out[m.group(1)] = e.group(1)
    return out


# -- locating the files -----------------------------------------------------------
def _find(folder: str, pattern: str) -> list[str]:
    return sorted(glob.glob(os.path.join(glob.escape(folder), pattern)))


def locate(path: str) -> dict[str, str | None]:
    """The files of the run in ``path`` (a folder or its pos xyz file)."""
    if os.path.isdir(path):
        folder = path
        pos = _find(folder, "*-pos-*.xyz") or _find(folder, "*pos*.xyz")
        if not pos:
            raise ParseError(
                path,
                "a CP2K trajectory <project>-pos-1.xyz in the folder "
                f"(found: {', '.join(sorted(os.listdir(folder))[:10]) or 'nothing'})",
            )
        if len(pos) > 1:
            warnings.warn(
                f"{path}: several trajectories ({', '.join(map(os.path.basename, pos))}); "
                f"reading {os.path.basename(pos[0])}",
                stacklevel=4,
            )
        pos_file = pos[0]
    else:
        folder, pos_file = os.path.dirname(os.path.abspath(path)), path
    base = os.path.basename(pos_file)
    m = re.match(r"(.*)-pos-(\d+)\.xyz$", base)
    prefix, num = (m.group(1), m.group(2)) if m else (base.split("pos")[0].rstrip("-_"), "1")

    def sibling(name: str) -> str | None:
        p = os.path.join(folder, name)
        return p if os.path.isfile(p) else None

    logs = []
    for cand in _find(folder, "*.log") + _find(folder, "*.out") + _find(folder, "*.txt"):
        with open(cand, "rb") as fh:
            head = fh.read(200_000)
        if logscan.is_cp2k_log(head):
            logs.append(cand)
    if len(logs) > 1:  # prefer the log of this project
        mine = [lg for lg in logs if _log_project(lg) == prefix]
        logs = mine or logs
    inputs = _find(folder, "*.inp")
    return {
        "pos": pos_file,
        "frc": sibling(f"{prefix}-frc-{num}.xyz"),
        "ener": sibling(f"{prefix}-{num}.ener"),
        "cell": sibling(f"{prefix}-{num}.cell"),
        "stress": sibling(f"{prefix}-{num}.stress"),
        "log": logs[-1] if logs else None,
        "input": inputs[0] if inputs else None,
    }


def _log_project(path: str) -> str:
    with open(path, "rb") as fh:
        m = logscan.PROJECT.search(fh.read(200_000))
    return m.group(1).decode(errors="replace") if m else ""


# -- the reader ---------------------------------------------------------------------
def read(
    path: str,
    type_map: list[str] | None = None,
    *,
    keep_kinds: bool = True,
    stress: str = "auto",
    convergence_check: bool = True,
    chunk_frames: int = 512,
    **kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Yield the frames of a CP2K MD run folder in chunks of ``chunk_frames``.

    Parameters
    ----------
    keep_kinds:
        Name types by CP2K kind label as in the xyz files (default, as dpdata);
        False maps kinds to elements (log's coordinates table, input ``ELEMENT``).
    stress:
        Source of virials: ``"auto"`` (the log's analytical stress tensor, else the
        ``.stress`` file with a warning), ``"log"``, ``"file"`` or ``"none"``.
    convergence_check:
        Drop steps whose SCF the log reports as not converged.
    """
    del type_map, kwargs
    if stress not in ("auto", "log", "file", "none"):
        raise ValueError(f"stress must be 'auto', 'log', 'file' or 'none', not {stress!r}")
    files = locate(path)
    pos = files["pos"]
    assert pos is not None
    if os.path.getsize(pos) == 0:
        raise ParseError(pos, "an xyz trajectory (the file is empty)")
    labels = xyz_labels(pos)
    natoms = len(labels)
    log = files["log"]
    with logscan.mapped(log) if log else _nothing() as buf:
        header = None
        if buf:
            first = logscan.ENERGY.search(buf)
            header = logscan.read_header(log or "", buf, coords_until=first.start() if first else None)
        labels = (
            _kind_labels(labels, header, files["input"]) if keep_kinds else _elements(labels, header, files["input"])
        )
        names, numbs, types = names_and_types(labels)
        nopbc = header is not None and header.periodicity.upper() == "NONE"
        base = {"atom_names": names, "atom_numbs": numbs, "atom_types": types, "nopbc": nopbc}
        yield from _frames(pos, files, buf, header, natoms, base, stress, convergence_check, chunk_frames)


class _nothing:
    def __enter__(self) -> bytes:
        return b""

    def __exit__(self, *exc: object) -> None:
        return None


def _kind_labels(labels: list[str], header: logscan.Header | None, inp: str | None) -> list[str]:
    """Kind label of every atom: from the log's coordinates table, else the input &COORD,
    else the xyz symbols (CP2K writes elements there unless PRINT_ATOM_KIND is set)."""
    if header is not None and header.atom_kinds is not None and header.kinds and len(header.atom_kinds) == len(labels):
        return [header.kinds.get(k, lab) for k, lab in zip(header.atom_kinds.tolist(), labels, strict=True)]
    if inp:
        kinds = kind_labels_from_input(inp)
        if len(kinds) == len(labels):
            return kinds
    return labels


def _elements(labels: list[str], header: logscan.Header | None, inp: str | None) -> list[str]:
    kind_el: dict[str, str] = {}
    if inp:
        kind_el.update(kind_elements_from_input(inp))
    if header is not None and header.atom_kinds is not None and header.kinds:
        for k, el in zip(header.atom_kinds.tolist(), header.atom_elements, strict=False):
            kind_el.setdefault(header.kinds.get(k, ""), el)
    out = []
    for lab in labels:
        el = kind_el.get(lab)
        if el is None:
            m = re.match(r"[A-Z][a-z]?", lab)
            el = m.group(0) if m else lab
        out.append(el)
    return out


def _frames(
    pos: str,
    files: dict[str, str | None],
    buf: bytes,
    header: logscan.Header | None,
    natoms: int,
    base: dict[str, Any],
    stress: str,
    convergence_check: bool,
    chunk_frames: int,
) -> Iterator[dict[str, Any]]:
    frc = _Stream(_xyz_stream(files["frc"], "frc", chunk_frames)) if files["frc"] else None
    ener = cellf = stressf = None
    if files["ener"]:
        ener = _Stream(_table_stream(files["ener"], 5, "Step, Time, Kin, Temp, Pot", {"pot": lambda t: t[:, 4]}))
    if files["cell"]:
        cellf = _Stream(
            _table_stream(files["cell"], 11, "Step, Time, Ax..Cz", {"cell": lambda t: t[:, 2:11].reshape(-1, 3, 3)})
        )
    if files["stress"] and stress in ("auto", "file"):
        stressf = _Stream(
            _table_stream(files["stress"], 11, "Step, Time, xx..zz", {"p": lambda t: t[:, 2:11].reshape(-1, 3, 3)})
        )
    logs = (
        _Stream(_log_stream(files["log"] or "", buf, header.start if header else 0, natoms, chunk_frames))
        if buf
        else None
    )

    fixed_cell = None
    if cellf is None:
        if header is not None and header.cells:
            fixed_cell = header.cells[-1][1]
        elif files["input"]:
            fixed_cell = cell_from_input(files["input"])
        if fixed_cell is None:
            raise ParseError(pos, "a cell: a <project>-1.cell file, a CP2K log with 'CELL|' lines, or an input &CELL")

    dropped: dict[str, list[int]] = {"SCF not converged": [], "no forces": [], "no energy": [], "no cell": []}
    warned_file_stress = False
    yielded = False
    last = -(1 << 62)
    repeated: list[int] = []
    for steps, vals in _xyz_stream(pos, "pos", chunk_frames):
        keep = _increasing(steps, last)
        repeated.extend(steps[~keep].tolist())
        if not keep.any():
            continue
        steps = steps[keep]
        last = int(steps[-1])
        k = len(steps)
        coords = vals["pos"][keep]
        energy = vals["pos_e"][keep]
        forces = np.full((k, natoms, 3), np.nan)
        ok = np.ones(k, bool)
        if frc is not None:
            found, v = frc.take(steps)
            if v:
                forces[found] = v["frc"][found]
        if ener is not None and np.isnan(energy).any():
            found, v = ener.take(steps)
            fill = found & np.isnan(energy)
            if v:
                energy[fill] = v["pot"][fill]
        virial_p = np.full((k, 3, 3), np.nan)
        if logs is not None:
            found, v = logs.take(steps)
            if v:
                miss_f = found & np.isnan(forces).any(axis=(1, 2))
                forces[miss_f] = v["log_f"][miss_f]
                fill = found & np.isnan(energy)
                energy[fill] = v["log_e"][fill]
                if stress in ("auto", "log"):
                    virial_p[found] = v["log_s"][found]
                if convergence_check:
                    ok &= ~(found & ~v["log_ok"])
        if stressf is not None and np.isnan(virial_p).any():
            found, v = stressf.take(steps)
            use = found & np.isnan(virial_p).any(axis=(1, 2))
            if v and use.any():
                virial_p[use] = v["p"][use] * units.BAR_TO_EV_PER_ANGSTROM3
                if not warned_file_stress:
                    warnings.warn(
                        f"{files['stress']}: virials from the MD pressure tensor, which includes the "
                        "kinetic (ideal-gas) part; print the FORCE_EVAL stress tensor in the log for "
                        "the potential-energy virial",
                        stacklevel=3,
                    )
                    warned_file_stress = True
        if cellf is not None:
            found, v = cellf.take(steps)
            cells = np.full((k, 3, 3), np.nan)
            if v:
                cells[found] = v["cell"][found]
        else:
            assert fixed_cell is not None
            cells = np.broadcast_to(fixed_cell, (k, 3, 3)).copy()
        has_f = ~np.isnan(forces).any(axis=(1, 2))
        has_e = ~np.isnan(energy)
        has_c = ~np.isnan(cells).any(axis=(1, 2))
        for name, mask in (
            ("SCF not converged", ~ok),
            ("no forces", ~has_f),
            ("no energy", ~has_e),
            ("no cell", ~has_c),
        ):
            dropped[name].extend(steps[mask].tolist())
        sel = ok & has_f & has_e & has_c
        if not sel.any():
            continue
        block = {
            **base,
            "cells": cells[sel],
            "coords": coords[sel],
            "energies": energy[sel] * units.HARTREE_TO_EV,
            "forces": forces[sel] * units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
        }
        vp = virial_p[sel]
        if not np.isnan(vp).any():
            block["virials"] = vp * np.abs(np.linalg.det(cells[sel]))[:, None, None]
        elif not np.isnan(vp).all():
            warnings.warn(f"{pos}: stress tensor missing for some steps; no virials in this chunk", stacklevel=3)
        yielded = True
        yield block
    if repeated:
        dropped["repeated step, e.g. of a restart appended to the files; the first is kept"] = repeated
    for name, idx in dropped.items():
        if idx:
            shown = ", ".join(map(str, idx[:20])) + (f" ... ({len(idx)} in all)" if len(idx) > 20 else "")
            warnings.warn(f"{pos}: step(s) {shown} dropped ({name})", stacklevel=3)
    if not yielded:
        yield {
            **base,
            "cells": np.zeros((0, 3, 3)),
            "coords": np.zeros((0, natoms, 3)),
            "energies": np.zeros(0),
            "forces": np.zeros((0, natoms, 3)),
        }
