"""Helpers shared by the LAMMPS dump and data-file modules: naming LAMMPS types."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError


def type_names(
    path: str, ntypes: int, types: np.ndarray, labels: Sequence[str] | None, type_map: Sequence[str] | None, prefix: str
) -> list[str]:
    """Names of LAMMPS types 1..ntypes: file labels, else ``type_map``, else ``prefix + i``.

    File labels (an ``element`` column, Masses comments, type labels) win when every
    type present has one and they are consistent; with a ``type_map`` that lacks
    some label, the ``type_map`` is used positionally (with a warning).
    """
    names: list[str] | None = None
    if labels is not None:
        lab: dict[int, str] = {}
        for t, e in zip(types.tolist(), labels):
            if lab.setdefault(t, e) != e:
                raise ParseError(path, f"one element per type: type {t + 1} is both {lab[t]} and {e}")
        if len(set(lab.values())) == len(lab):
            names = [lab.get(t, f"{prefix}{t}") for t in range(ntypes)]
        if names is not None and type_map is not None and not set(lab.values()) <= set(type_map):
            warnings.warn(
                f"{path}: type names {sorted(set(lab.values()))} in the file are not all in type_map "
                f"{list(type_map)}; naming types by type_map position",
                stacklevel=4,
            )
            names = None
    if names is None and type_map is not None:
        if len(type_map) < ntypes:
            raise ParseError(
                path, f"a type_map of at least {ntypes} names (the file has types 1..{ntypes}); got {list(type_map)}"
            )
        names = [str(n) for n in type_map[:ntypes]]
    if names is None:
        names = [f"{prefix}{t}" for t in range(ntypes)]
    return names


def lammps_types(data: Mapping[str, Any], type_map: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """1-based LAMMPS types of the atoms and the names of types 1..n (``type_map`` order if given)."""
    names = list(data["atom_names"])
    if type_map is None:
        return np.asarray(data["atom_types"], dtype=np.int64) + 1, names
    tm = [str(t) for t in type_map]
    missing = [n for i, n in enumerate(names) if n not in tm and (np.asarray(data["atom_types"]) == i).any()]
    if missing:
        raise ValueError(f"type_map {tm} lacks atom names {missing}")
    lut = np.array([tm.index(n) + 1 if n in tm else 0 for n in names], dtype=np.int64)
    return lut[np.asarray(data["atom_types"], dtype=np.int64)], tm
