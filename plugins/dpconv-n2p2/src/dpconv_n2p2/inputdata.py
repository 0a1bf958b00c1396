"""Reader and writer of n2p2/RuNNer ``input.data``.

One frame::

    begin
    comment <text>
    lattice ax ay az          (three lines; absent for non-periodic structures)
    atom x y z El charge n fx fy fz
    ...
    energy E
    charge Q
    end

Frames are found by scanning for ``begin``/``end`` and each frame's ``atom``
lines are parsed in one numpy call. Units: Å/eV by default, Bohr/Hartree with
``units="atomic"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv import ParseError, units

_SCALE = {
    "metal": (1.0, 1.0),
    "atomic": (units.BOHR_TO_ANGSTROM, units.HARTREE_TO_EV),
}


def _scales(unit_system: str) -> tuple[float, float]:
    try:
        return _SCALE[unit_system]
    except KeyError:
        raise ValueError(f"units must be one of {sorted(_SCALE)}, got {unit_system!r}") from None


def _frames(path: str) -> Iterator[tuple[int, list[str]]]:
    """(line number of 'begin', lines of the frame) for each complete frame."""
    block: list[str] | None = None
    start = 0
    with open(path, encoding="utf-8", errors="strict") as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                key = line.split(maxsplit=1)[0] if line.strip() else ""
                if key == "begin":
                    if block is not None:
                        raise ParseError(path, "'end' before the next 'begin'", line=lineno)
                    block, start = [], lineno
                elif key == "end":
                    if block is None:
                        raise ParseError(path, "'begin' before 'end'", line=lineno)
                    yield start, block
                    block = None
                elif block is not None:
                    block.append(line)
                elif key:
                    raise ParseError(path, f"'begin', found {key!r}", line=lineno)
        except UnicodeDecodeError:
            raise ParseError(path, "a text file (n2p2 input.data)") from None
    if block is not None:
        raise ParseError(path, "'end' of the last frame (file truncated?)", line=start)


def read(path: str, type_map: Sequence[str] | None = None, units: str = "metal", **_: Any) -> Iterator[dict[str, Any]]:
    length, energy_unit = _scales(units)
    names: list[str] | None = None
    count = 0
    for nframe, (lineno, lines) in enumerate(_frames(path)):
        atoms = [ln.split(maxsplit=1)[1] for ln in lines if ln.startswith("atom")]
        lattice = [ln.split()[1:4] for ln in lines if ln.startswith("lattice")]
        energy = [ln.split()[1] for ln in lines if ln.startswith("energy")]
        if not atoms:
            raise ParseError(path, "'atom' lines", line=lineno, frame=nframe)
        try:
            table = np.array([a.split() for a in atoms], dtype=object)
            xyz = table[:, 0:3].astype(np.float64) * length
            symbols = table[:, 3].astype(str)
            forces = table[:, 6:9].astype(np.float64) * (energy_unit / length)
            cell = np.array(lattice, dtype=np.float64) * length if lattice else np.zeros((3, 3))
        except (ValueError, IndexError):
            raise ParseError(
                path, "atom lines 'atom x y z El q n fx fy fz' and numeric lattice lines", line=lineno, frame=nframe
            ) from None
        if lattice and len(lattice) != 3:
            raise ParseError(path, "three 'lattice' lines", line=lineno, frame=nframe)
        if names is None:
            names = list(dict.fromkeys(symbols))
        types = np.array([names.index(s) if s in names else -1 for s in symbols])
        if (types < 0).any():
            raise ParseError(path, f"the same elements in every frame {names}", line=lineno, frame=nframe)
        block: dict[str, Any] = {
            "atom_names": names,
            "atom_numbs": np.bincount(types, minlength=len(names)),
            "atom_types": types,
            "cells": cell[None],
            "coords": xyz[None],
            "nopbc": not lattice,
            "forces": forces[None],
        }
        if energy:
            block["energies"] = np.array([float(energy[0]) * energy_unit])
        count += 1
        yield block
    if count == 0:
        raise ParseError(path, "at least one 'begin' ... 'end' frame")


def write(path: str, blocks: Iterable[Mapping[str, Any]], units: str = "metal", **_: Any) -> None:
    length, energy_unit = _scales(units)
    with open(path, "w") as fh:
        for block in blocks:
            names = block["atom_names"]
            symbols = [names[t] for t in block["atom_types"]]
            for i in range(len(block["coords"])):
                fh.write("begin\ncomment written by dpconv\n")
                if not block.get("nopbc", False):
                    for v in block["cells"][i] / length:
                        fh.write(f"lattice {v[0]:.16e} {v[1]:.16e} {v[2]:.16e}\n")
                forces = (
                    block["forces"][i] * (length / energy_unit)
                    if "forces" in block
                    else np.zeros_like(block["coords"][i])
                )
                for sym, r, f in zip(symbols, block["coords"][i] / length, forces):
                    fh.write(
                        f"atom {r[0]:.16e} {r[1]:.16e} {r[2]:.16e} {sym} 0.0 0.0 {f[0]:.16e} {f[1]:.16e} {f[2]:.16e}\n"
                    )
                if "energies" in block:
                    fh.write(f"energy {block['energies'][i] / energy_unit:.16e}\n")
                fh.write("charge 0.0\nend\n")
