"""``abacus/scf``: an ABACUS SCF run folder (one labelled frame).

Structure from the STRU (``stru_file`` of INPUT, default ``STRU``); labels from
``OUT.<suffix>/running_scf.log``: the last SCF result (``final etot is`` or
``#TOTAL ENERGY#``, eV), the last ``TOTAL-FORCE (eV/Angstrom)`` block and the
last ``TOTAL-STRESS (KBAR)`` block (virial = stress × cell volume, no sign
change). When the last SCF did not converge the reader warns and yields no
frame (an empty LabeledSystem), as dpdata returns no frame.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.abacus.inputfile import RunFolder, open_run
from dpconv.formats.abacus.logs import Event, read_text, scan
from dpconv.formats.abacus.stru import parse_stru
from dpconv.units import KBAR_TO_EV_PER_ANGSTROM3


def find_log(run: RunFolder, *names: str) -> str:
    """The first of ``OUT.<suffix>/<name>`` that exists (ParseError naming the first when none does)."""
    paths = [os.path.join(run.out_dir, n) for n in names]
    for p in paths:
        if os.path.isfile(p):
            return p
    raise ParseError(paths[0], f"the ABACUS log of the run in {run.root} (file not found)")


def virial_from_stress(stress_kbar: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Virials (eV) from stresses (kbar) and cells (Å): stress × |det(cell)|."""
    vol = np.abs(np.linalg.det(cells))
    return stress_kbar * (KBAR_TO_EV_PER_ANGSTROM3 * vol)[:, None, None]


def read(path: str, type_map: Sequence[str] | None = None, **_: Any) -> Iterator[dict[str, Any]]:
    """Yield the one frame of an SCF run folder (nothing when the SCF did not converge)."""
    run = open_run(path)
    stru = parse_stru(run.require(run.stru_path, "the structure file (STRU or stru_file)"))
    log = find_log(run, "running_scf.log", f"running_{run.calculation}.log")
    natoms = len(stru.atom_types)
    events = scan(log, read_text(log), natoms)
    results = [e for e in events if e.kind in ("energy", "unconv")]
    if not results:
        raise ParseError(log, "an SCF result ('final etot is ... eV' or '#TOTAL ENERGY# ... eV')")
    if results[-1].kind == "unconv":
        warnings.warn(f"{log}: SCF did not converge (line {results[-1].line}); no frame read", stacklevel=2)
        return
    forces = _last(events, "force")
    if forces is None:
        raise ParseError(log, "a TOTAL-FORCE (eV/Angstrom) block (run with cal_force 1)")
    block = stru.block()
    block["energies"] = np.array([results[-1].value], dtype=np.float64)
    block["forces"] = forces.value[np.newaxis]
    stress = _last(events, "stress")
    if stress is not None:
        block["virials"] = virial_from_stress(stress.value[np.newaxis], block["cells"])
    yield block


def _last(events: list[Event], kind: str) -> Event | None:
    for e in reversed(events):
        if e.kind == kind:
            return e
    return None
