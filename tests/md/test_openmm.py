"""OpenMM PythonForce: same energy/forces as the evaluator (unit conversion), a short NVE run."""

from __future__ import annotations

import numpy as np
import pytest

openmm = pytest.importorskip("openmm")
if not hasattr(openmm, "PythonForce"):
    pytest.skip("this OpenMM has no PythonForce", allow_module_level=True)

from openmm import unit  # noqa: E402

from dpconv.openmm import dpconv_force  # noqa: E402
from dpconv.trainer import load  # noqa: E402
from dpconv.units import KJ_PER_MOL_TO_EV  # noqa: E402

from .conftest import triclinic_frame, water_frame  # noqa: E402


def context(model, cell, x, t, integrator=None):
    system = openmm.System()
    for ti in t:
        system.addParticle((15.999, 1.008)[ti])
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) * 0.1 for row in cell])
    system.addForce(dpconv_force(model, [("O", "H")[i] for i in t]))
    integ = integrator or openmm.VerletIntegrator(0.0005)
    ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(x * 0.1)
    return ctx


@pytest.mark.parametrize("frame", [water_frame, triclinic_frame])
def test_same_as_evaluator(model_path, frame):
    cell, x, t = frame()
    ctx = context(model_path, cell, x, t)
    st = ctx.getState(getEnergy=True, getForces=True)
    e = st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole) * KJ_PER_MOL_TO_EV
    f = st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer) * KJ_PER_MOL_TO_EV / 10
    ref = load(model_path).evaluate_all(x[None], cell[None], t)
    assert abs(e - ref["energy"][0]) < 1e-8
    np.testing.assert_allclose(f, ref["force"][0], atol=1e-8)


def test_nve(model_path):
    cell, x, t = water_frame(seed=2)
    ctx = context(model_path, cell, x, t, openmm.VerletIntegrator(0.00025))  # ps
    ctx.setVelocitiesToTemperature(100 * unit.kelvin, 1)
    es = []
    for _ in range(20):
        ctx.getIntegrator().step(2)
        st = ctx.getState(getEnergy=True)
        es.append((st.getPotentialEnergy() + st.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
    assert np.ptp(es) * KJ_PER_MOL_TO_EV / len(t) < 1e-3
