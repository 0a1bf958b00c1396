"""OpenMM NVT with a dpconv model through openmm.PythonForce.

Usage: python examples/md/openmm_water.py model.pth conf.lmp [steps]
(any structure dpconv reads; here a LAMMPS data file such as the tutorial's conf.lmp).
"""

from __future__ import annotations

import sys

import openmm
from openmm import unit

import dpconv
from dpconv.openmm import dpconv_force

MASSES = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999}


def main(model: str, structure: str, steps: int = 100) -> None:
    s = dpconv.read(structure, "auto")
    names = [s.get_atom_names()[t] for t in s.get_atom_types()]
    system = openmm.System()
    for n in names:
        system.addParticle(MASSES[n])
    cell = s.data["cells"][0] * 0.1  # Å -> nm
    system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in cell])
    system.addForce(dpconv_force(model, names, periodic=not s.nopbc))
    integrator = openmm.LangevinMiddleIntegrator(50 * unit.kelvin, 1 / unit.picosecond, 0.0005 * unit.picoseconds)
    sim = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    sim.setPositions(s.data["coords"][0] * 0.1)
    sim.setVelocitiesToTemperature(50 * unit.kelvin, 1)
    for i in range(0, steps, 10):
        integrator.step(10)
        st = sim.getState(getEnergy=True)
        print(i + 10, st.getPotentialEnergy(), st.getKineticEnergy())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 100)
