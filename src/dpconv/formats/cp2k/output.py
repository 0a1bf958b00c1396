"""``cp2k/output``: a CP2K log (stdout) of ENERGY_FORCE, GEO_OPT or CELL_OPT runs.

One frame per force evaluation that printed forces and has known coordinates:

* energy from ``ENERGY| Total FORCE_EVAL ( QS ) energy`` (hartree -> eV);
* forces from the ``ATOMIC FORCES in [a.u.]`` table or ``FORCES|`` rows
  (hartree/bohr -> eV/Å);
* virial = stress tensor (``STRESS TENSOR [GPa]`` or ``STRESS| Analytical stress
  tensor``) x cell volume, when printed;
* cell from the last ``CELL| Vector a/b/c`` lines before the evaluation (CELL_OPT
  prints one per step);
* coordinates from the ``ATOMIC COORDINATES`` table. The log prints it once, so
  for the later steps of a GEO_OPT/CELL_OPT the coordinates come from the
  trajectory ``<project>-pos-1.xyz`` beside the log (frame ``i = N`` is the
  geometry of ``Informations at step = N``); without it only the first step is read.

Names are CP2K kind labels by default (``Fe1``, ``Fe2``, ``O``, as dpdata);
``keep_kinds=False`` uses the chemical element of each atom instead.
Evaluations whose SCF did not converge are dropped with a warning.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from dpconv import units
from dpconv.errors import ParseError
from dpconv.formats.cp2k import logscan
from dpconv.formats.cp2k.trajfiles import iter_xyz

CHUNK = 256


def names_and_types(labels: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Type names in order of first appearance, atoms per type, type of each atom."""
    names: list[str] = []
    index: dict[str, int] = {}
    types = np.empty(len(labels), np.int64)
    for i, lab in enumerate(labels):
        if lab not in index:
            index[lab] = len(names)
            names.append(lab)
        types[i] = index[lab]
    return names, np.bincount(types, minlength=len(names)).astype(np.int64), types


def atom_labels(path: str, header: logscan.Header, keep_kinds: bool) -> list[str]:
    """Kind label (or element) of every atom, from the log's coordinates table."""
    if header.atom_kinds is None:
        raise ParseError(path, "an ATOMIC COORDINATES table (GLOBAL print level MEDIUM or higher)")
    if keep_kinds and header.kinds:
        try:
            return [header.kinds[int(k)] for k in header.atom_kinds]
        except KeyError as exc:
            raise ParseError(path, f"an 'Atomic kind:' line for kind {exc.args[0]}") from None
    return list(header.atom_elements)


def _latest(items: list[tuple[int, np.ndarray]], before: int, after: int = -1) -> np.ndarray | None:
    best = None
    for pos, value in items:
        if pos >= before:
            break
        if pos > after:
            best = value
    return best


def _trajectory(path: str, header: logscan.Header, traj: str | bool | None) -> dict[int, np.ndarray]:
    if traj is False:
        return {}
    if traj is None or traj is True:
        if not header.project:
            return {}
        traj = os.path.join(os.path.dirname(os.path.abspath(path)), f"{header.project}-pos-1.xyz")
        if not os.path.isfile(traj):
            return {}
    out: dict[int, np.ndarray] = {}
    for chunk in iter_xyz(os.fspath(traj)):
        for s, xyz in zip(chunk.steps.tolist(), chunk.values, strict=True):
            out[s] = xyz
    return out


def read(
    path: str,
    type_map: list[str] | None = None,
    *,
    keep_kinds: bool = True,
    convergence_check: bool = True,
    traj: str | bool | None = None,
    **kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Yield the frames of a CP2K log.

    Parameters
    ----------
    keep_kinds:
        Name types by CP2K kind label (default, as dpdata: ``Fe1``/``Fe2`` stay
        distinct); False names them by element.
    convergence_check:
        Drop evaluations whose SCF did not converge (default True).
    traj:
        Trajectory for the coordinates of GEO_OPT/CELL_OPT steps after the first:
        a path, or None to look for ``<project>-pos-1.xyz`` beside the log, or False.
    """
    del type_map, kwargs  # names come from the log
    with logscan.mapped(path) as buf:
        if not buf:
            raise ParseError(path, "a CP2K output log (the file is empty)")
        if not logscan.is_cp2k_log(buf):
            raise ParseError(path, "a CP2K output log ('CP2K|' header or 'ENERGY| Total FORCE_EVAL' lines)", line=1)
        header = logscan.read_header(path, buf)
        labels = atom_labels(path, header, keep_kinds)
        names, numbs, types = names_and_types(labels)
        natoms = len(labels)
        nopbc = header.periodicity.upper() == "NONE"
        base = {"atom_names": names, "atom_numbs": numbs, "atom_types": types, "nopbc": nopbc}
        frames = _frames(path, buf, header, natoms, convergence_check, traj)
        any_frame = False
        for block in frames:
            any_frame = True
            yield {**base, **block}
        if not any_frame:
            yield {
                **base,
                "cells": np.zeros((0, 3, 3)),
                "coords": np.zeros((0, natoms, 3)),
                "energies": np.zeros(0),
                "forces": np.zeros((0, natoms, 3)),
            }


def _frames(
    path: str, buf: bytes, header: logscan.Header, natoms: int, convergence_check: bool, traj: str | bool | None
) -> Iterator[dict[str, Any]]:
    optimising = header.run_type.upper() in ("GEO_OPT", "CELL_OPT", "GEOMETRY_OPTIMIZATION", "CELL_OPTIMIZATION")
    trajectory = _trajectory(path, header, traj) if optimising else {}
    unconverged: list[int] = []
    no_forces: list[int] = []
    no_coords: list[int] = []
    rows: list[tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray | None]] = []
    n_eval = 0
    prev_pos = -1
    have_stress = True
    truncated: int | None = None
    n_frames = 0
    for ev in logscan.evaluations(buf, header.start):
        n_eval += 1
        after, prev_pos = prev_pos, ev.pos
        if convergence_check and not ev.converged:
            unconverged.append(ev.index)
            continue
        forces = logscan.forces_in(path, buf, ev.pos, ev.end)
        if forces is None:
            if ev.end == len(buf) and logscan.RUN_END.search(buf, ev.pos) is None:
                truncated = ev.index  # the file ends inside this evaluation
            else:
                no_forces.append(ev.index)
            continue
        if forces.shape[0] != natoms:
            raise ParseError(
                path, f"{natoms} rows in the forces table, found {forces.shape[0]}", line=logscan.line_of(buf, ev.pos)
            )
        coords = None
        if optimising and ev.opt_step is not None and ev.opt_step > 0:
            coords = trajectory.get(ev.opt_step)
        elif not optimising or ev.opt_step == 0 or ev.index == 0:
            coords = _latest(header.coord_blocks, ev.pos, after)
        if coords is None:
            no_coords.append(ev.index)
            continue
        cell = _latest(header.cells, ev.pos)
        if cell is None:
            raise ParseError(path, "'CELL| Vector a/b/c' lines before the first force evaluation")
        stress = logscan.stress_in(path, buf, ev.pos, ev.end)
        have_stress = have_stress and stress is not None
        rows.append((cell, coords, ev.energy, forces, stress))
        if len(rows) == CHUNK:
            n_frames += len(rows)
            yield _block(rows, have_stress)
            rows = []
    if n_eval == 0:
        raise ParseError(path, "an 'ENERGY| Total FORCE_EVAL' line (the run made no force evaluation)")
    if truncated is not None:
        if not rows and n_frames == 0:
            raise ParseError(
                path, "a complete force evaluation (the file ends inside one)", line=logscan.line_of(buf, len(buf))
            )
        warnings.warn(f"{path}: frame {truncated} is truncated; dropped", stacklevel=3)
    if unconverged:
        warnings.warn(f"{path}: SCF not converged in force evaluation(s) {_fmt(unconverged)}; dropped", stacklevel=3)
    if no_forces:
        if len(no_forces) == n_eval - (truncated is not None):
            raise ParseError(path, "an 'ATOMIC FORCES' table (RUN_TYPE ENERGY_FORCE and FORCE_EVAL/PRINT/FORCES ON)")
        warnings.warn(f"{path}: no forces printed for force evaluation(s) {_fmt(no_forces)}; dropped", stacklevel=3)
    if no_coords:
        hint = (
            "the log prints the geometry once; put the trajectory <project>-pos-1.xyz beside it"
            if optimising
            else "the log prints the geometry once; read MD runs with cp2k/aimd_output"
        )
        warnings.warn(
            f"{path}: no coordinates for force evaluation(s) {_fmt(no_coords)} ({hint}); dropped", stacklevel=3
        )
    if rows:
        yield _block(rows, have_stress)


def _fmt(idx: list[int]) -> str:
    return ", ".join(map(str, idx[:20])) + (f" ... ({len(idx)} in all)" if len(idx) > 20 else "")


def _block(
    rows: list[tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray | None]], have_stress: bool
) -> dict[str, Any]:
    cells = np.array([r[0] for r in rows])
    out: dict[str, Any] = {
        "cells": cells,
        "coords": np.array([r[1] for r in rows]),
        "energies": np.array([r[2] for r in rows]) * units.HARTREE_TO_EV,
        "forces": np.array([r[3] for r in rows]) * units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM,
    }
    if have_stress:
        out["virials"] = np.array([r[4] for r in rows]) * np.abs(np.linalg.det(cells))[:, None, None]
    return out
