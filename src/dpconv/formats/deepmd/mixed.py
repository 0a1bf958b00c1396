"""``deepmd/npy/mixed``: frames of equal atom count but any composition in one folder.

Layout (DeePMD-kit's mixed type): ``type.raw`` (all zeros, natoms entries),
``type_map.raw`` (the shared type map), ``set.NNN/real_atom_types.npy``
(``(nframes, natoms)`` int, the real type of every atom of every frame; -1 marks
a padding atom) next to the usual ``<stem>.npy`` arrays. Several systems are
written as one subfolder per atom count (``<natoms>/``). Reading groups frames
by their ``real_atom_types`` row, giving one system per composition and order.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.deepmd import layout
from dpconv.system import concatenate_data


def _folders(path: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        if "type_map.raw" in files and glob.glob(os.path.join(glob.escape(root), "set.*", "real_atom_types.npy")):
            found.append(root)
    if not found:
        raise ParseError(path, "a mixed-type DeePMD folder (type_map.raw, set.*/real_atom_types.npy)")
    return found


def _read_folder(folder: str, type_map: Sequence[str] | None) -> list[tuple[str, dict[str, Any]]]:
    with open(os.path.join(folder, "type_map.raw")) as fh:
        names = fh.read().split()
    nopbc = os.path.isfile(os.path.join(folder, "nopbc"))
    parts: list[dict[str, Any]] = []
    for sdir in sorted(glob.glob(os.path.join(glob.escape(folder), "set.*"))):
        real = np.load(os.path.join(sdir, "real_atom_types.npy"), allow_pickle=False).astype(np.int64)
        natoms = real.shape[1]

        def get(stem: str, sdir: str = sdir) -> np.ndarray | None:
            f = os.path.join(sdir, f"{stem}.npy")
            return np.load(f, allow_pickle=False) if os.path.isfile(f) else None

        arrays = layout.frame_arrays(get, None, natoms, sdir)
        rows, inverse = np.unique(real, axis=0, return_inverse=True)
        for r, row in enumerate(rows):
            frames = np.flatnonzero(inverse.reshape(-1) == r)
            keep = row >= 0
            sub = {}
            for k, v in arrays.items():
                v = v[frames]
                if v.ndim >= 2 and v.shape[1] == natoms and k not in ("cells", "virials"):
                    v = v[:, keep]
                sub[k] = v
            parts.append(layout.system_block(row[keep], list(names), nopbc, sub))
    # join parts of the same composition across sets, keeping first-seen order
    groups: dict[bytes, list[dict[str, Any]]] = {}
    for p in parts:
        groups.setdefault(np.asarray(p["atom_types"]).tobytes(), []).append(p)
    out = []
    for members in groups.values():
        data = concatenate_data(members, labeled="energies" in members[0])
        formula = "".join(f"{n}{c}" for n, c in zip(data["atom_names"], data["atom_numbs"]))
        out.append((f"{os.path.relpath(folder, os.path.dirname(folder))}/{formula}", data))
    return out


def read_systems(path: str, type_map: Sequence[str] | None = None) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    for folder in _folders(path):
        for name, data in _read_folder(folder, type_map):
            yield name, iter([data])


def read(path: str, type_map: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
    systems = [d for folder in _folders(path) for _, d in _read_folder(folder, type_map)]
    if len(systems) > 1:
        raise ParseError(
            path,
            f"one composition, found {len(systems)}; read it with MultiSystems.from_file(path, fmt='deepmd/npy/mixed')",
        )
    yield from systems


def _write_folder(path: str, datas: list[Mapping[str, Any]], set_size: int) -> None:
    names = list(datas[0]["atom_names"])
    natoms = len(datas[0]["atom_types"])
    os.makedirs(path, exist_ok=True)
    np.savetxt(os.path.join(path, "type.raw"), np.zeros(natoms, dtype=np.int64), fmt="%d")
    with open(os.path.join(path, "type_map.raw"), "w") as fh:
        fh.write(layout.type_map_text(names))
    if datas[0].get("nopbc", False):
        open(os.path.join(path, "nopbc"), "w").close()
    flats = [layout.flat(d) for d in datas]
    common = [s for s in flats[0] if all(s in f for f in flats)]
    arrays = {s: np.concatenate([f[s] for f in flats]) for s in common}
    arrays["real_atom_types"] = np.concatenate(
        [np.broadcast_to(np.asarray(d["atom_types"], np.int64), (len(d["coords"]), natoms)) for d in datas]
    )
    total = len(arrays["coord"])
    for i, start in enumerate(range(0, total, set_size)):
        sdir = os.path.join(path, f"set.{i:03d}")
        os.makedirs(sdir)
        for stem, arr in arrays.items():
            np.save(os.path.join(sdir, f"{stem}.npy"), arr[start : start + set_size])


def _materialise(blocks: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    blocks = list(blocks)
    return concatenate_data(blocks, labeled="energies" in blocks[0]) if blocks else {}


def write(path: str, blocks: Iterable[Mapping[str, Any]], set_size: int = 2000) -> None:
    data = _materialise(blocks)
    if data:
        _write_folder(path, [data], set_size)


def write_systems(path: str, systems: Iterable[tuple[str, Iterable[Mapping[str, Any]]]], set_size: int = 2000) -> None:
    by_natoms: dict[int, list[Mapping[str, Any]]] = {}
    names: list[str] = []
    datas = [d for d in (_materialise(b) for _, b in systems) if d]
    for d in datas:
        names += [n for n in d["atom_names"] if n not in names]
    from dpconv.system import _map_types

    for d in datas:
        d = _map_types(d, names)
        by_natoms.setdefault(len(d["atom_types"]), []).append(d)
    os.makedirs(path)
    for natoms, group in sorted(by_natoms.items()):
        _write_folder(os.path.join(path, str(natoms)), group, set_size)
