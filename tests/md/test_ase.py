"""DPConvCalculator: same numbers as the evaluator, finite-difference forces/stress, NVE drift."""

from __future__ import annotations

import numpy as np
import pytest

ase = pytest.importorskip("ase")
pytest.importorskip("torch")

from ase import Atoms, units  # noqa: E402

from dpconv.ase import DPConvCalculator  # noqa: E402
from dpconv.trainer import load  # noqa: E402

from .conftest import triclinic_frame, water_frame  # noqa: E402


def atoms_of(cell, coords, types, pbc=True) -> Atoms:
    return Atoms(symbols=[("O", "H")[t] for t in types], positions=coords, cell=cell, pbc=pbc)


@pytest.mark.parametrize("frame", [water_frame, triclinic_frame])
def test_same_as_evaluator(model_path, frame):
    cell, x, t = frame()
    atoms = atoms_of(cell, x, t)
    atoms.calc = DPConvCalculator(model_path)
    ref = load(model_path).evaluate_all(x[None], cell[None], t)
    assert abs(atoms.get_potential_energy() - ref["energy"][0]) < 1e-8
    np.testing.assert_allclose(atoms.get_forces(), ref["force"][0], atol=1e-8)
    np.testing.assert_allclose(atoms.get_potential_energies(), ref["atom_energy"][0], atol=1e-8)
    v = ref["virial"][0]
    s = -v / atoms.get_volume()
    np.testing.assert_allclose(atoms.get_stress(), [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]], atol=1e-10)


def test_cluster_and_errors(model_path):
    cell, x, t = triclinic_frame()
    atoms = atoms_of(cell, x, t, pbc=False)
    atoms.calc = DPConvCalculator(model_path)
    ref = load(model_path).evaluate_all(x[None], None, t)
    assert abs(atoms.get_potential_energy() - ref["energy"][0]) < 1e-8
    from dpconv.errors import ConfigError

    bad = Atoms("CH4", positions=np.random.default_rng(0).normal(size=(5, 3)) * 2)
    bad.calc = DPConvCalculator(model_path)
    with pytest.raises(ConfigError, match="not in the model's type map"):
        bad.get_potential_energy()
    ok = Atoms("CH4", positions=bad.positions)
    ok.calc = DPConvCalculator(model_path, type_dict={"C": 0, "H": 1})
    assert np.isfinite(ok.get_potential_energy())


@pytest.mark.filterwarnings("ignore::FutureWarning")  # the method moved in ASE 3.24; kept for 3.22
def test_finite_differences(model_path):
    cell, x, t = triclinic_frame()
    atoms = atoms_of(cell, x, t)
    atoms.calc = DPConvCalculator(model_path)
    f = atoms.get_forces()
    fd = atoms.calc.calculate_numerical_forces(atoms, d=1e-5)
    np.testing.assert_allclose(f, fd, atol=1e-6)
    s = atoms.get_stress()
    sd = atoms.calc.calculate_numerical_stress(atoms, d=1e-6)
    np.testing.assert_allclose(s, sd, atol=1e-6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # MaxwellBoltzmannDistribution, ASE >= 3.25
def test_nve_drift(model_path):
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    cell, x, t = water_frame(seed=2)
    atoms = atoms_of(cell, x, t)
    atoms.calc = DPConvCalculator(model_path)
    MaxwellBoltzmannDistribution(atoms, temperature_K=100, rng=np.random.default_rng(0))
    dt = 0.25
    dyn = VelocityVerlet(atoms, timestep=dt * units.fs)
    etot = []
    dyn.attach(lambda: etot.append(atoms.get_total_energy()), interval=1)
    nsteps = 80
    dyn.run(nsteps)
    e = np.array(etot)
    drift = abs(np.polyfit(np.arange(len(e)) * dt / 1000, e, 1)[0]) / len(atoms)  # eV/atom/ps
    fluct = np.ptp(e) / len(atoms)
    print(f"NVE drift {drift:.2e} eV/atom/ps, fluctuation {fluct:.2e} eV/atom")
    assert fluct < 1e-3
    assert drift < 1e-2
