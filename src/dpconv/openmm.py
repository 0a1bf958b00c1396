"""An OpenMM force from a dpconv model, through ``openmm.PythonForce`` (OpenMM ≥ 8.4).

>>> from dpconv.openmm import dpconv_force
>>> force = dpconv_force("model.pth", ["O", "H", "H", ...], periodic=True)
>>> system.addForce(force)

OpenMM hands positions in nm and the box in nm; the model works in Å and eV; the force returns
kJ/mol and kJ/mol/nm (``units.KJ_PER_MOL_TO_EV``). ``particles`` restricts the model to a subset
of the system (a QM-like region), the others seeing no force from it. The openmm-torch wheel on
PyPI does not load with our torch, so a TorchForce path (the model on the GPU, no Python in the
step loop) is future work; this path calls Python every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dpconv.errors import ConfigError
from dpconv.units import KJ_PER_MOL_TO_EV, NM_TO_ANGSTROM

__all__ = ["DPConvComputation", "dpconv_force"]

EV_TO_KJ_PER_MOL = 1.0 / KJ_PER_MOL_TO_EV
#: eV/Å → kJ/mol/nm
EV_PER_A_TO_KJ_PER_MOL_NM = EV_TO_KJ_PER_MOL * NM_TO_ANGSTROM


class DPConvComputation:
    """The PythonForce callback: ``state`` → (energy kJ/mol, forces kJ/mol/nm)."""

    def __init__(
        self, model: str, types: Sequence[str] | Sequence[int], periodic: bool = True, device: str = "cpu"
    ) -> None:
        from dpconv.trainer import load

        self.evaluator = load(model, device=device)
        tm = self.evaluator.type_map
        if len(types) and isinstance(types[0], str):
            bad = sorted({str(t) for t in types if t not in tm})
            if bad:
                raise ConfigError(f"elements {bad} are not in the model's type map {tm}")
            self.types = np.array([tm.index(str(t)) for t in types], dtype=np.int64)
        else:
            self.types = np.asarray(types, dtype=np.int64)
        self.periodic = periodic

    def evaluate(self, positions_nm: np.ndarray, box_nm: np.ndarray | None) -> tuple[float, np.ndarray]:
        """Energy (kJ/mol) and forces (kJ/mol/nm) for positions and box vectors (rows) in nm."""
        x = np.asarray(positions_nm, dtype=np.float64) * NM_TO_ANGSTROM
        cell = None if box_nm is None else np.asarray(box_nm, dtype=np.float64)[None] * NM_TO_ANGSTROM
        out = self.evaluator.evaluate_all(x[None], cell, self.types)
        return float(out["energy"][0]) * EV_TO_KJ_PER_MOL, out["force"][0] * EV_PER_A_TO_KJ_PER_MOL_NM

    def __call__(self, state: Any) -> tuple[float, np.ndarray]:
        from openmm import unit

        nm = unit.nanometer  # pyright: ignore[reportAttributeAccessIssue] - openmm.unit builds its names at import
        pos = state.getPositions(asNumpy=True).value_in_unit(nm)
        box = None
        if self.periodic:
            box = np.array([v.value_in_unit(nm) for v in state.getPeriodicBoxVectors()])
        return self.evaluate(pos, box)


def dpconv_force(
    model: str,
    types: Sequence[str] | Sequence[int],
    periodic: bool = True,
    particles: Sequence[int] | None = None,
    device: str = "cpu",
) -> Any:
    """An ``openmm.PythonForce`` evaluating ``model`` on the particles (element names or type indices).

    With ``particles``, ``types`` lists the types of those particles only.
    """
    try:
        import openmm
    except ImportError:
        raise ConfigError("OpenMM is not installed: pip install openmm (dpconv[openmm])") from None
    if not hasattr(openmm, "PythonForce"):
        raise ConfigError(f"OpenMM {openmm.__version__} has no PythonForce (needs OpenMM 8.4 or later)")
    force = openmm.PythonForce(DPConvComputation(model, types, periodic, device))
    force.setUsesPeriodicBoundaryConditions(periodic)
    if particles is not None:
        force.setParticles(list(particles))
    force.setName("dpconv")
    return force
