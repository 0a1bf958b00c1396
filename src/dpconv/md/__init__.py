"""Running MD with dpconv models in real engines.

- LAMMPS: the compiled pair style ``dpconv``/``deepmd`` (:mod:`dpconv.md.lammps`, ``dpconv lammps
  build``) and the pure-Python ``fix external`` path (:mod:`dpconv.md.fix_external`,
  ``dpconv md lammps in.lammps``).
- ASE: :class:`dpconv.ase.DPConvCalculator`. OpenMM: :mod:`dpconv.openmm`.
- Model deviation of an ensemble: :mod:`dpconv.md.devi`.

Nothing here is imported by ``import dpconv``; engines and torch load on first use.
"""
