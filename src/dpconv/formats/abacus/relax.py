"""``abacus/relax``: an ABACUS relax or cell-relax run folder (one frame per ionic step).

The log is ``OUT.<suffix>/running_<calculation>.log`` (``calculation`` from
INPUT: ``relax``, ``cell-relax``). Each SCF result (``final etot is``,
``#TOTAL ENERGY#`` or ``convergence has not been achieved``) is one ionic step;
the step takes

* the last ``DIRECT|CARTESIAN COORDINATES`` block printed since the previous
  step's result (Cartesian in units of the ``UNIT`` of the header, else of
  ``lattice constant (Bohr)``);
* the last ``Lattice vectors`` block printed before its result (else the STRU cell);
* the ``TOTAL-FORCE (eV/Angstrom)`` and ``TOTAL-STRESS (KBAR)`` blocks printed
  after its result and before the next step's.

When the log prints no coordinates for a step (``relax_method bfgs_trad``),
``OUT.<suffix>/STRU_ION<n>_D`` gives the structure of step ``n``; a lone
``STRU_ION_D`` is not used. Steps whose SCF did not converge, or that have no
coordinates or no forces, are dropped with a warning naming them. Virials are
stress × cell volume, kept when every kept step has a stress.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.abacus.logs import read_text, scan
from dpconv.formats.abacus.scf import find_log, open_run, virial_from_stress
from dpconv.formats.abacus.stru import parse_stru


class _Step:
    __slots__ = ("cell", "coords", "direct", "energy", "force", "line", "stress")

    def __init__(
        self, line: int, energy: float | None, coords: np.ndarray | None, direct: bool, cell: np.ndarray
    ) -> None:
        self.line = line
        self.energy = energy
        self.coords = coords
        self.direct = direct
        self.cell = cell
        self.force: np.ndarray | None = None
        self.stress: np.ndarray | None = None


def read(path: str, type_map: Sequence[str] | None = None, **_: Any) -> Iterator[dict[str, Any]]:
    """Yield the ionic steps of a relaxation as one block."""
    run = open_run(path)
    stru = parse_stru(run.require(run.stru_path, "the structure file (STRU or stru_file)"))
    calc = run.calculation if run.calculation in ("relax", "cell-relax") else "relax"
    log = find_log(run, f"running_{calc}.log", "running_relax.log", "running_cell-relax.log")
    natoms = len(stru.atom_types)
    events = scan(log, read_text(log), natoms)

    steps: list[_Step] = []
    cell = stru.cell
    coords: np.ndarray | None = None
    direct = False
    quiet = True  # nothing but results since the last result (merge 'unconverged' + a stray energy)
    for e in events:
        if e.kind in ("energy", "unconv"):
            value = e.value if e.kind == "energy" else None
            if steps and quiet and steps[-1].energy is None and value is not None:
                continue  # an energy printed right after 'not converged' belongs to that same step
            steps.append(_Step(e.line, value, coords, direct, cell))
            coords, quiet = None, True
            continue
        quiet = False
        if e.kind == "coords":
            coords, direct = e.value, e.direct
        elif e.kind == "cell":
            cell = e.value
        elif e.kind == "force" and steps and steps[-1].force is None:
            steps[-1].force = e.value
        elif e.kind == "stress" and steps and steps[-1].stress is None:
            steps[-1].stress = e.value

    _fill_from_stru_ion(run.out_dir, steps)
    dropped = {"not converged": [], "no coordinates": [], "no forces": []}
    kept: list[_Step] = []
    for i, s in enumerate(steps):
        reason = (
            "not converged"
            if s.energy is None
            else "no coordinates"
            if s.coords is None
            else "no forces"
            if s.force is None
            else None
        )
        if reason:
            dropped[reason].append(i)
        else:
            kept.append(s)
    for reason, idx in dropped.items():
        if idx:
            warnings.warn(f"{log}: ionic steps {idx} dropped ({reason})", stacklevel=2)
    if not steps:
        raise ParseError(log, "an SCF result ('final etot is ... eV') of at least one ionic step")
    if not kept:
        return
    cells = np.stack([s.cell for s in kept])
    xyz = np.stack([s.coords @ s.cell if s.direct else s.coords for s in kept])  # type: ignore[operator]
    block = stru.block()
    block.update(
        cells=cells,
        coords=xyz,
        energies=np.array([s.energy for s in kept], dtype=np.float64),
        forces=np.stack([s.force for s in kept if s.force is not None]),
    )
    stresses = [s.stress for s in kept]
    if all(st is not None for st in stresses):
        block["virials"] = virial_from_stress(np.stack([st for st in stresses if st is not None]), cells)
    elif any(st is not None for st in stresses):
        warnings.warn(f"{log}: only some ionic steps print a stress; virials left out", stacklevel=2)
    yield block


def _fill_from_stru_ion(out_dir: str, steps: list[_Step]) -> None:
    """Structures of steps the log gives no coordinates for, from numbered STRU_ION<n>_D files."""
    for n, s in enumerate(steps):
        if s.coords is not None or n == 0:
            continue
        f = os.path.join(out_dir, f"STRU_ION{n}_D")
        if os.path.isfile(f):
            ion = parse_stru(f)
            s.coords, s.direct, s.cell = ion.coords, False, ion.cell
