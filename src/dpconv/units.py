"""Physical constants and unit conversions: the only place that holds them.

dpconv's internal units are Å, eV, eV/Å, virial in eV, time in fs, mass in amu.
Readers convert once, at the edge, by multiplying with the factors here.

Constants are CODATA 2018 (as in scipy.constants of recent versions), which is
what dpdata uses too; where a reference tool uses another value it is noted.

Virial sign convention (DeePMD-kit's ``virial.npy``): the virial is
``W = -V * sigma`` where ``sigma`` is the stress in the sign convention of
the quantum codes that print a *pressure* (VASP's ``in kB`` row, QE's
``total stress``, CP2K's ``STRESS TENSOR``, positive when the system wants to
expand). Concretely, dpdata (and dpconv) compute ``virial = pressure * volume``
with the code's printed pressure-like tensor, no sign change; for a code that
prints the stress with the opposite sign the reader flips it.
"""

from __future__ import annotations

# --- CODATA 2018 base constants -------------------------------------------------
ELEMENTARY_CHARGE = 1.602176634e-19  # C
AVOGADRO = 6.02214076e23  # 1/mol
BOHR_RADIUS_ANGSTROM = 0.529177210903  # Å
HARTREE_EV = 27.211386245988  # eV
RYDBERG_EV = HARTREE_EV / 2.0  # eV
KCAL_J = 4184.0  # J

# --- lengths --------------------------------------------------------------------
BOHR_TO_ANGSTROM = BOHR_RADIUS_ANGSTROM
ANGSTROM_TO_BOHR = 1.0 / BOHR_RADIUS_ANGSTROM
NM_TO_ANGSTROM = 10.0

# --- energies -------------------------------------------------------------------
HARTREE_TO_EV = HARTREE_EV
RYDBERG_TO_EV = RYDBERG_EV
KJ_PER_MOL_TO_EV = 1e3 / (ELEMENTARY_CHARGE * AVOGADRO)
KCAL_PER_MOL_TO_EV = KCAL_J * KJ_PER_MOL_TO_EV / 1e3

# --- forces ---------------------------------------------------------------------
HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM = HARTREE_EV / BOHR_RADIUS_ANGSTROM
RYDBERG_PER_BOHR_TO_EV_PER_ANGSTROM = RYDBERG_EV / BOHR_RADIUS_ANGSTROM
KJ_PER_MOL_NM_TO_EV_PER_ANGSTROM = KJ_PER_MOL_TO_EV / NM_TO_ANGSTROM

# --- pressures (to eV/Å^3; multiply by a volume in Å^3 to get a virial in eV) ----
# 1 eV/Å^3 = e * 1e30 Pa
EV_PER_ANGSTROM3_TO_PA = ELEMENTARY_CHARGE * 1e30
PA_TO_EV_PER_ANGSTROM3 = 1.0 / EV_PER_ANGSTROM3_TO_PA
KBAR_TO_EV_PER_ANGSTROM3 = 1e8 * PA_TO_EV_PER_ANGSTROM3  # 1 kbar = 1e8 Pa
GPA_TO_EV_PER_ANGSTROM3 = 1e9 * PA_TO_EV_PER_ANGSTROM3
BAR_TO_EV_PER_ANGSTROM3 = 1e5 * PA_TO_EV_PER_ANGSTROM3
RY_PER_BOHR3_TO_EV_PER_ANGSTROM3 = RYDBERG_EV / BOHR_RADIUS_ANGSTROM**3  # QE's 'total stress' (Ry/bohr**3)
# dpdata's VASP reader uses 1e3 / 1.602176621e6 (CODATA 2014 e); the relative
# difference (~8e-9) is far below the 1e-6 comparison tolerance.

# --- time and mass ----------------------------------------------------------------
PS_TO_FS = 1000.0
ATOMIC_TIME_TO_FS = 2.4188843265857e-2  # ħ/E_h in fs
