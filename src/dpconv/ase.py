"""An ASE calculator for dpconv models: ``DPConvCalculator("model.pth")``.

>>> from ase.io import read
>>> from dpconv.ase import DPConvCalculator
>>> atoms = read("water.xyz")
>>> atoms.calc = DPConvCalculator("model.pth")
>>> atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()

Works with ASE's MD integrators, optimisers and NEB. Energies in eV, forces in eV/Å, stress in
eV/Å³ with ASE's sign (``-virial / volume``, Voigt order xx yy zz yz xz xy). Atoms are matched
to the model's type map by chemical symbol (or ``type_dict``). Fully periodic or fully open
cells only. ASE and torch are imported when a calculator is made, not at ``import dpconv``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from dpconv.errors import ConfigError

if TYPE_CHECKING:
    from ase import Atoms

__all__ = ["DPConvCalculator", "voigt_stress"]


def voigt_stress(virial: np.ndarray, volume: float) -> np.ndarray:
    """ASE's stress (6,) from a virial (3, 3) in eV: ``-virial / volume`` in Voigt order."""
    s = -np.asarray(virial, dtype=np.float64).reshape(3, 3) / volume
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


class DPConvCalculator(Calculator):
    """ASE calculator over a frozen ``model.pth`` (or a checkpoint) trained by dpconv or DeePMD-kit.

    ``type_dict`` maps chemical symbols to model type indices when the symbols differ from the
    model's type map (e.g. ``{"O": 0, "H": 1}``); ``device`` is ``cpu``, ``cuda`` or ``auto``.
    Results: ``energy``/``free_energy`` (eV), ``energies`` (per atom), ``forces``, ``stress``
    (periodic cells), plus ``virial`` (3, 3) in eV in ``calc.results``.
    """

    implemented_properties: ClassVar[list[str]] = ["energy", "free_energy", "energies", "forces", "stress"]  # type: ignore[misc]

    def __init__(self, model: str, type_dict: dict[str, int] | None = None, device: str = "cpu", **kwargs: Any) -> None:
        from dpconv.trainer import load

        super().__init__(**kwargs)
        self.evaluator = load(model, device=device)
        self.type_map = list(self.evaluator.type_map)
        self.type_dict = dict(type_dict) if type_dict else {n: i for i, n in enumerate(self.type_map)}

    def _types(self, atoms: Atoms) -> np.ndarray:
        symbols = atoms.get_chemical_symbols()
        missing = sorted({s for s in symbols if s not in self.type_dict})
        if missing:
            raise ConfigError(
                f"elements {missing} are not in the model's type map {self.type_map} "
                "(pass type_dict={symbol: type index})"
            )
        return np.array([self.type_dict[s] for s in symbols], dtype=np.int64)

    def calculate(
        self, atoms: Atoms | None = None, properties: list[str] | None = None, system_changes: list[str] = all_changes
    ) -> None:
        super().calculate(atoms, properties or ["energy"], system_changes)
        atoms = self.atoms
        assert atoms is not None
        pbc = np.asarray(atoms.get_pbc())
        if pbc.any() and not pbc.all():
            raise ConfigError(f"mixed periodicity {pbc.tolist()} is not supported: use all or none")
        cell = np.asarray(atoms.get_cell()[:], dtype=np.float64) if pbc.all() else None
        out = self.evaluator.evaluate_all(
            atoms.get_positions()[None], None if cell is None else cell[None], self._types(atoms)
        )
        energy = float(out["energy"][0])
        virial = out["virial"][0]
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out["atom_energy"][0],
            "forces": out["force"][0],
            "virial": virial,
        }
        if cell is not None:
            self.results["stress"] = voigt_stress(virial, abs(float(np.linalg.det(cell))))
        elif "stress" in (properties or []):
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic cell")
