"""``deepmd/hdf5``: the deepmd/npy layout inside one HDF5 file.

A system is a group (the root, or a named group for several systems in one file)
holding datasets ``type.raw`` (int), ``type_map.raw`` (bytes), optional
``nopbc`` and groups ``set.NNN`` with datasets ``<stem>.npy`` of shape
``(nframes, -1)``. DeePMD-kit reads a system as ``file.hdf5#/group``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.deepmd import layout


def _open(path: str, mode: str = "r") -> Any:
    import h5py

    try:
        return h5py.File(path, mode)
    except OSError as exc:
        raise ParseError(path, f"an HDF5 file ({exc})") from None


def _system_groups(path: str) -> list[str]:
    with _open(path) as f:
        found: list[str] = []
        if "type.raw" in f:
            return ["/"]

        def visit(name: str, obj: Any) -> None:
            if hasattr(obj, "keys") and "type.raw" in obj:
                found.append("/" + name)

        f.visititems(visit)
    if not found:
        raise ParseError(path, "an HDF5 file with DeePMD systems (groups holding type.raw)")
    return found


def _blocks(path: str, group: str, type_map: Sequence[str] | None) -> Iterator[dict[str, Any]]:
    with _open(path) as f:
        g = f[group]
        types = np.asarray(g["type.raw"][()], dtype=np.int64).reshape(-1)
        file_names = None
        if "type_map.raw" in g:
            file_names = [n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(g["type_map.raw"][()])]
        names = layout.resolve_names(types, file_names, type_map)
        nopbc = "nopbc" in g
        set_names = sorted(k for k in g if k.startswith("set."))
        if not set_names:
            raise ParseError(path, f"set.* groups in {group}")
        for sname in set_names:
            sg = g[sname]

            def get(stem: str, sg: Any = sg) -> np.ndarray | None:
                key = f"{stem}.npy"
                return np.asarray(sg[key][()]) if key in sg else None

            yield layout.system_block(
                types, names, nopbc, layout.frame_arrays(get, None, len(types), f"{path}#{group}/{sname}")
            )


def read_systems(path: str, type_map: Sequence[str] | None = None) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    for group in _system_groups(path):
        yield group.strip("/") or os.path.basename(path), _blocks(path, group, type_map)


def read(path: str, type_map: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    groups = _system_groups(path)
    if len(groups) > 1:
        raise ParseError(
            path,
            f"one system, found {len(groups)} ({', '.join(groups[:4])}...); "
            "read it with MultiSystems.from_file(path, fmt='deepmd/hdf5')",
        )
    yield from _blocks(path, groups[0], type_map)


def _write_group(g: Any, blocks: Iterable[Mapping[str, Any]], set_size: int) -> None:
    for i, chunk in enumerate(layout.sets(blocks, set_size)):
        if i == 0:
            g.create_dataset("type.raw", data=np.asarray(chunk["atom_types"], dtype=np.int64))
            g.create_dataset("type_map.raw", data=np.array(chunk["atom_names"], dtype="S"))
            if chunk.get("nopbc", False):
                g.create_dataset("nopbc", data=True)
        sg = g.create_group(f"set.{i:03d}")
        for stem, arr in layout.flat(chunk).items():
            sg.create_dataset(f"{stem}.npy", data=arr)


def write(path: str, blocks: Iterable[Mapping[str, Any]], set_size: int = 5000) -> None:
    with _open(path, "w") as f:
        _write_group(f, blocks, set_size)


def write_systems(path: str, systems: Iterable[tuple[str, Iterable[Mapping[str, Any]]]], set_size: int = 5000) -> None:
    with _open(path, "w") as f:
        for name, blocks in systems:
            _write_group(f.create_group(name), blocks, set_size)
