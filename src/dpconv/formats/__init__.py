"""Built-in formats: one package per code, each listing light :class:`FormatInfo` descriptors.

This module is itself a plugin (see :mod:`dpconv.plugins`): it registers the
built-in formats through the same ``dpconv_register_formats`` hook that
third-party plugins implement. Only the descriptor packages are imported here;
the parser modules load on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from dpconv.hookspecs import hookimpl
from dpconv.registry import FormatInfo

#: Subpackages whose ``FORMATS`` list is registered.
PACKAGES = ("deepmd", "vasp", "abacus", "lammps", "xyz", "cp2k", "qe", "gaussian", "siesta", "gromacs", "ase")


@hookimpl
def dpconv_register_formats(register: Callable[[FormatInfo], None]) -> None:
    for pkg in PACKAGES:
        for info in importlib.import_module(f"{__name__}.{pkg}").FORMATS:
            register(info)
