"""``cp2k/input``: a ready-to-run CP2K ENERGY_FORCE input for labelling a structure.

The input asks for what the ``cp2k/output`` reader needs: ``PRINT_LEVEL MEDIUM``
(kinds and the coordinates table), ``&FORCES ON`` and, for periodic systems,
``STRESS_TENSOR ANALYTICAL`` with ``&STRESS_TENSOR ON``.

One frame is one input file. A system of several frames is written as a
folder holding ``task.NNNNNN/input.inp`` (one CP2K run per folder, as CP2K
writes its restart and wavefunction files to the working directory), unless
``frame=`` picks one frame. Run one with ``cp2k.psmp -i input.inp -o output.log``.

Basis sets and pseudopotentials (keyword arguments, a name or a per-element
dict): ``DZVP-MOLOPT-GTH`` where ``BASIS_MOLOPT`` has it (H C N O F Si P S Cl),
else ``DZVP-MOLOPT-SR-GTH``; ``GTH-<XC>`` pseudopotentials (the valence is
picked by CP2K from the alias).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from dpconv.errors import DpconvError

MOLOPT_DZVP = frozenset(["H", "C", "N", "O", "F", "Si", "P", "S", "Cl"])


def _element(label: str) -> str:
    m = re.match(r"[A-Z][a-z]?", label)
    if m is None:
        raise DpconvError(
            f"cp2k/input: cannot tell the element of atom name {label!r}; name types by element "
            "(type_map) or pass elements={name: element}"
        )
    return m.group(0)


def _pick(value: str | Mapping[str, str] | None, element: str, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str):
        return value
    return value.get(element, default)


def render(
    data: Mapping[str, Any],
    frame: int = 0,
    *,
    project: str = "dpconv",
    xc: str = "PBE",
    basis_set: str | Mapping[str, str] | None = None,
    potential: str | Mapping[str, str] | None = None,
    elements: Mapping[str, str] | None = None,
    cutoff: float = 400.0,
    rel_cutoff: float = 50.0,
    charge: int = 0,
    multiplicity: int | None = None,
    uks: bool = False,
    eps_scf: float = 1e-6,
    max_scf: int = 50,
    smearing: float | None = None,
    added_mos: int = 20,
    basis_set_file: str = "BASIS_MOLOPT",
    potential_file: str = "GTH_POTENTIALS",
    stress: bool | None = None,
) -> str:
    """The text of the input for frame ``frame`` of ``data``."""
    names = list(data["atom_names"])
    types = np.asarray(data["atom_types"])
    coords = np.asarray(data["coords"], np.float64)[frame]
    cell = np.asarray(data["cells"], np.float64)[frame]
    nopbc = bool(data.get("nopbc", False))
    if stress is None:
        stress = not nopbc
    el_of = {n: (elements or {}).get(n) or _element(n) for n in names}
    out: list[str] = [
        "! written by dpconv (cp2k/input): single point with forces and stress for labelling",
        "&GLOBAL",
        f"  PROJECT {project}",
        "  RUN_TYPE ENERGY_FORCE",
        "  PRINT_LEVEL MEDIUM",
        "&END GLOBAL",
        "&FORCE_EVAL",
        "  METHOD Quickstep",
    ]
    if stress:
        out.append("  STRESS_TENSOR ANALYTICAL")
    out += [
        "  &DFT",
        f"    BASIS_SET_FILE_NAME {basis_set_file}",
        f"    POTENTIAL_FILE_NAME {potential_file}",
        f"    CHARGE {charge}",
    ]
    if multiplicity is not None:
        out.append(f"    MULTIPLICITY {multiplicity}")
    if uks:
        out.append("    UKS .TRUE.")
    out += [
        "    &MGRID",
        f"      CUTOFF {cutoff:g}",
        f"      REL_CUTOFF {rel_cutoff:g}",
        "    &END MGRID",
        "    &QS",
        "      EPS_DEFAULT 1.0E-12",
        "    &END QS",
    ]
    if nopbc:
        out += ["    &POISSON", "      PERIODIC NONE", "      PSOLVER MT", "    &END POISSON"]
    out += ["    &SCF", "      SCF_GUESS ATOMIC", f"      EPS_SCF {eps_scf:.1E}", f"      MAX_SCF {max_scf}"]
    if smearing is None:
        out += [
            "      &OT",
            "        MINIMIZER DIIS",
            "        PRECONDITIONER FULL_SINGLE_INVERSE",
            "      &END OT",
            "      &OUTER_SCF",
            f"        EPS_SCF {eps_scf:.1E}",
            "        MAX_SCF 10",
            "      &END OUTER_SCF",
        ]
    else:
        out += [
            f"      ADDED_MOS {added_mos}",
            "      &DIAGONALIZATION",
            "        ALGORITHM STANDARD",
            "      &END DIAGONALIZATION",
            "      &MIXING",
            "        METHOD BROYDEN_MIXING",
            "        ALPHA 0.3",
            "      &END MIXING",
            "      &SMEAR ON",
            "        METHOD FERMI_DIRAC",
            f"        ELECTRONIC_TEMPERATURE [K] {smearing:g}",
            "      &END SMEAR",
        ]
    out += [
        "    &END SCF",
        "    &XC",
        f"      &XC_FUNCTIONAL {xc}",
        "      &END XC_FUNCTIONAL",
        "    &END XC",
        "  &END DFT",
        "  &SUBSYS",
        "    &CELL",
    ]
    for key, row in zip("ABC", cell, strict=True):
        out.append(f"      {key} " + " ".join(f"{x:.10f}" for x in row))
    out += ["      PERIODIC " + ("NONE" if nopbc else "XYZ"), "    &END CELL", "    &COORD"]
    out += [
        f"      {names[t]:<4s} {x:18.10f} {y:18.10f} {z:18.10f}" for t, (x, y, z) in zip(types, coords, strict=True)
    ]
    out.append("    &END COORD")
    for n in names:
        el = el_of[n]
        default_basis = "DZVP-MOLOPT-GTH" if el in MOLOPT_DZVP else "DZVP-MOLOPT-SR-GTH"
        out += [
            f"    &KIND {n}",
            f"      ELEMENT {el}",
            f"      BASIS_SET {_pick(basis_set, el, default_basis)}",
            f"      POTENTIAL {_pick(potential, el, f'GTH-{xc.upper()}')}",
            "    &END KIND",
        ]
    out += ["  &END SUBSYS", "  &PRINT", "    &FORCES ON", "    &END FORCES"]
    if stress:
        out += ["    &STRESS_TENSOR ON", "    &END STRESS_TENSOR"]
    out += ["  &END PRINT", "&END FORCE_EVAL", ""]
    return "\n".join(out)


def write(path: str, blocks: Iterable[Mapping[str, Any]], *, frame: int | None = None, **kwargs: Any) -> None:
    """Write one input (one frame, or ``frame=i``) or a folder of ``task.NNNNNN/input.inp``.

    Keyword arguments go to :func:`render` (``xc``, ``basis_set``, ``potential``,
    ``cutoff``, ``rel_cutoff``, ``charge``, ``multiplicity``, ``uks``, ``smearing``, ...).
    """
    kwargs.pop("type_map", None)
    blocks = list(blocks)
    total = sum(len(np.asarray(b["coords"])) for b in blocks)
    if total == 0:
        raise DpconvError("cp2k/input: the system has no frames to write")
    if frame is not None:
        if not -total <= frame < total:
            raise DpconvError(f"cp2k/input: frame {frame} out of range for {total} frames")
        frame %= total
        for b in blocks:
            n = len(np.asarray(b["coords"]))
            if frame < n:
                with open(path, "w") as fh:
                    fh.write(render(b, frame, **kwargs))
                return
            frame -= n
    if total == 1:
        with open(path, "w") as fh:
            fh.write(render(blocks[0], 0, **kwargs))
        return
    os.makedirs(path)
    k = 0
    for b in blocks:
        for i in range(len(np.asarray(b["coords"]))):
            task = os.path.join(path, f"task.{k:06d}")
            os.makedirs(task)
            with open(os.path.join(task, "input.inp"), "w") as fh:
                fh.write(render(b, i, **kwargs))
            k += 1
