"""The DeePMD-kit data layout shared by the npy, raw, hdf5 and mixed formats.

A system is ``type.raw`` (natoms ints), optional ``type_map.raw`` (one name per
line), an empty ``nopbc`` file for non-periodic data, and per-frame arrays
flattened to ``(nframes, -1)`` under the DeePMD file stem of each schema field
(``coord``, ``box``, ``energy``, ``force``, ``virial``, plus fields plugins
register). ``deepmd/npy`` stores them as ``set.NNN/<stem>.npy`` in sets of
``set_size`` frames.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv import schema
from dpconv.errors import ParseError


def stems() -> dict[str, schema.Field]:
    """DeePMD file stem -> per-frame field."""
    return {f.deepmd: f for f in schema.fields().values() if f.deepmd and f.per_frame}


def default_names(ntypes: int) -> list[str]:
    """dpdata's names for types without a type map: Type_0, Type_1, ..."""
    return [f"Type_{i}" for i in range(ntypes)]


def resolve_names(types: np.ndarray, file_names: Sequence[str] | None, type_map: Sequence[str] | None) -> list[str]:
    """Atom names: ``type_map.raw`` if present, else the ``type_map`` argument, else Type_i.

    When both exist, ``type_map`` is applied later by the System (reordering).
    """
    ntypes = int(types.max()) + 1 if types.size else 0
    if file_names is not None:
        names = list(file_names)
    elif type_map is not None:
        names = list(type_map)
    else:
        names = default_names(ntypes)
    if len(names) < ntypes:
        names += default_names(ntypes)[len(names) :]
    return names


def frame_arrays(get: Any, nframes_hint: int | None, natoms: int, where: str) -> dict[str, np.ndarray]:
    """Load every known stem through ``get(stem) -> array or None`` and reshape to schema axes."""
    out: dict[str, np.ndarray] = {}
    for stem, field in stems().items():
        arr = get(stem)
        if arr is None:
            continue
        arr = np.asarray(arr)
        nf = arr.shape[0] if arr.ndim else 1
        sizes = {"frame": nf, "atom": natoms}
        shape = tuple(a if isinstance(a, int) else sizes[a] for a in field.axes)
        if arr.size != int(np.prod(shape)):
            raise ParseError(where, f"{stem} holds {arr.size} numbers, expected {shape} for {natoms} atoms")
        out[field.name] = arr.reshape(shape).astype(field.dtype, copy=False)
    if "coords" not in out:
        raise ParseError(where, "no coord data")
    nf = out["coords"].shape[0]
    for k, v in out.items():
        if v.shape[0] != nf:
            raise ParseError(where, f"{k} has {v.shape[0]} frames but coord has {nf}")
    return out


def system_block(types: np.ndarray, names: list[str], nopbc: bool, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    types = types.astype(np.int64)
    nf = arrays["coords"].shape[0]
    block: dict[str, Any] = {
        "atom_names": names,
        "atom_numbs": np.bincount(types, minlength=len(names)).astype(np.int64),
        "atom_types": types,
        "nopbc": nopbc,
    }
    if "cells" not in arrays:
        if not nopbc:
            raise ParseError("", "box data missing for a periodic system")
        arrays = {**arrays, "cells": np.zeros((nf, 3, 3))}
    block.update(arrays)
    return block


def flat(data: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Per-frame fields present in ``data`` as DeePMD arrays ``stem -> (nframes, -1)``."""
    out = {}
    for stem, field in stems().items():
        if field.name in data:
            arr = np.asarray(data[field.name])
            out[stem] = arr.reshape(arr.shape[0], -1)
    return out


def sets(blocks: Iterable[Mapping[str, Any]], set_size: int) -> Iterator[dict[str, Any]]:
    """Regroup incoming blocks into sets of ``set_size`` frames (the last may be shorter)."""
    from dpconv.io import _rechunk

    if set_size < 1:
        raise ValueError(f"set_size must be positive, got {set_size}")
    yield from _rechunk(blocks, set_size, labeled=True)


def type_map_text(names: Sequence[str]) -> str:
    return "".join(f"{n}\n" for n in names)
