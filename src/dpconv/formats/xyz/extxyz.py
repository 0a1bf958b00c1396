"""``extxyz``: extended XYZ, the format of ASE, QUIP/GAP, MACE, NequIP and GPUMD.

The comment line of each frame holds ``key=value`` pairs: ``Lattice="ax ay az bx
by bz cx cy cz"`` (rows are lattice vectors, Å), ``Properties=species:S:1:pos:R:3:
forces:R:3`` (columns in any order; unknown ones are skipped), ``energy=`` (eV),
``virial="9 numbers"`` (eV) or ``stress="9 or 6 numbers"`` (eV/Å³, ASE's sign:
``virial = -stress * volume``), ``pbc="T T T"``. Frames are streamed from a
memory map (see :mod:`dpconv.formats.xyz.scan`).

``read`` yields the frames of one system (every frame must have the same atoms);
``read_systems`` groups the frames of a mixed file by their atoms (for
``MultiSystems``). ``write`` and ``write_systems`` write one file.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import ParseError
from dpconv.formats.xyz import scan

#: tried in order when ``energy_key`` is not given
ENERGY_KEYS = ("energy", "Energy", "free_energy", "REF_energy", "total_energy", "dft_energy")
FORCE_KEYS = ("forces", "force", "REF_forces", "dft_forces")
VIRIAL_KEYS = ("virial", "virials", "REF_virial")
STRESS_KEYS = ("stress", "REF_stress")
DUMMY_CELL = 100.0  # dpdata's cubic box for non-periodic frames

_KV = re.compile(r"""([A-Za-z_][\w\-.]*)(?:\s*=\s*("[^"]*"|'[^']*'|\{[^}]*\}|\S+))?""")


def parse_comment(comment: str) -> dict[str, str]:
    """``key=value`` pairs of an extended-XYZ comment line (quotes removed; bare keys -> "T")."""
    out: dict[str, str] = {}
    for m in _KV.finditer(comment):
        key, val = m.group(1), m.group(2)
        if val is None:
            out[key] = "T"
            continue
        if val[:1] in "\"'{" and len(val) >= 2:
            val = val[1:-1]
        out[key] = val
    return out


def parse_properties(path: str, spec: str, line: int) -> list[tuple[str, str, int]]:
    """``name:type:count`` triples of a Properties value."""
    parts = spec.split(":")
    if len(parts) % 3:
        raise ParseError(path, f"Properties as name:type:count triples; got {spec!r}", line=line)
    out = []
    for k in range(0, len(parts), 3):
        try:
            out.append((parts[k], parts[k + 1].upper(), int(parts[k + 2])))
        except ValueError:
            raise ParseError(path, f"an integer column count in Properties {spec!r}", line=line) from None
    return out


def _numbers(path: str, text: str, key: str, sizes: tuple[int, ...], line: int) -> np.ndarray:
    try:
        vals = np.array(text.replace(",", " ").split(), dtype=np.float64)
    except ValueError:
        raise ParseError(path, f"numbers in {key}=; got {text!r}", line=line) from None
    if vals.size not in sizes:
        raise ParseError(path, f"{' or '.join(map(str, sizes))} numbers in {key}=; got {vals.size}", line=line)
    return vals


def _first(info: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    for k in keys:
        if k in info:
            return k
    return None


def _voigt_or_full(v: np.ndarray) -> np.ndarray:
    if v.size == 9:
        return v.reshape(3, 3)
    xx, yy, zz, yz, xz, xy = v
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def parse_frame(
    path: str,
    fr: scan.RawFrame,
    energy_key: str | None = None,
    forces_key: str | None = None,
    plain: bool = False,
    cell: Any = None,
) -> dict[str, Any]:
    """One frame as a dict: species (bytes array), coords, cell, nopbc and the labels found."""
    info = parse_comment(fr.comment) if not plain or "=" in fr.comment else {}
    table = scan.atom_table(path, fr, ragged=plain)
    props = parse_properties(path, info.get("Properties", "species:S:1:pos:R:3"), fr.line + 1)
    columns: dict[str, tuple[int, int]] = {}
    col = 0
    for name, _typ, n in props:
        columns[name] = (col, n)
        col += n
    if plain:
        columns.setdefault("species", (0, 1))
        columns.setdefault("pos", (1, 3))
    elif col != table.shape[1] and fr.natoms:
        raise ParseError(
            path,
            f"{col} columns per atom line (from Properties); got {table.shape[1]}",
            line=fr.line + 2,
            frame=fr.index,
        )
    if "species" not in columns or "pos" not in columns:
        raise ParseError(path, "species and pos columns in Properties", line=fr.line + 1, frame=fr.index)
    s0, _ = columns["species"]
    p0, _ = columns["pos"]
    out: dict[str, Any] = {
        "species": table[:, s0],
        "coords": scan.floats(path, fr, table[:, p0 : p0 + 3], "position"),
    }
    # cell and periodicity
    lattice = info.get("Lattice")
    if lattice is not None:
        out["cell"] = _numbers(path, lattice, "Lattice", (9,), fr.line + 1).reshape(3, 3)
        nopbc = False
    elif cell is not None:
        c = np.asarray(cell, dtype=np.float64)
        out["cell"] = np.diag(c) if c.shape == (3,) else c.reshape(3, 3)
        nopbc = False
    else:
        out["cell"] = np.eye(3) * DUMMY_CELL
        nopbc = True
    if "pbc" in info:
        flags = info["pbc"].replace(",", " ").split()
        if flags and all(f.upper() in ("F", "FALSE", "0") for f in flags):
            nopbc = True
        elif lattice is not None or cell is not None:
            nopbc = False
    out["nopbc"] = nopbc
    if plain:
        return out
    # labels
    ekey = energy_key if energy_key is not None else _first(info, ENERGY_KEYS)
    if ekey is not None and ekey in info:
        try:
            out["energy"] = float(info[ekey])
        except ValueError:
            raise ParseError(path, f"a number in {ekey}=; got {info[ekey]!r}", line=fr.line + 1) from None
    fkey = forces_key if forces_key is not None else _first(columns, FORCE_KEYS)
    if fkey is not None and fkey in columns:
        f0, n = columns[fkey]
        if n != 3:
            raise ParseError(path, f"3 columns for {fkey} in Properties; got {n}", line=fr.line + 1)
        out["forces"] = scan.floats(path, fr, table[:, f0 : f0 + 3], fkey)
    vkey = _first(info, VIRIAL_KEYS)
    skey = _first(info, STRESS_KEYS)
    if vkey is not None:
        out["virial"] = _voigt_or_full(_numbers(path, info[vkey], vkey, (9, 6), fr.line + 1))
    elif skey is not None:
        stress = _voigt_or_full(_numbers(path, info[skey], skey, (9, 6), fr.line + 1))
        out["virial"] = -stress * abs(np.linalg.det(out["cell"]))
    return out


class _Builder:
    """Collects parsed frames of one system into blocks."""

    def __init__(self, path: str, first: dict[str, Any], index: int) -> None:
        self.path = path
        self.species = first["species"]
        names = [s.decode() if isinstance(s, bytes) else str(s) for s in self.species]
        self.names = list(dict.fromkeys(names))
        lut = {n: i for i, n in enumerate(self.names)}
        self.types = np.array([lut[n] for n in names], dtype=np.int64)
        self.nopbc = bool(first["nopbc"])
        self.has = {k: k in first for k in ("energy", "forces", "virial")}
        self.first_index = index
        self.frames: list[dict[str, Any]] = []
        self.dropped_virial = False

    def same_atoms(self, fr: dict[str, Any]) -> bool:
        return fr["species"].shape == self.species.shape and bool((fr["species"] == self.species).all())

    def add(self, fr: dict[str, Any], index: int) -> None:
        for k in ("energy", "forces"):
            if (k in fr) != self.has[k]:
                have = "has" if k in fr else "lacks"
                raise ParseError(
                    self.path,
                    f"{k} in every frame or in none: frame {index} {have} it but frame "
                    f"{self.first_index} does not agree",
                    frame=index,
                )
        if self.has["virial"] and "virial" not in fr:
            warnings.warn(
                f"{self.path}: frame {index} has no virial/stress; virials dropped from here on", stacklevel=4
            )
            self.has["virial"] = False
        self.frames.append(fr)

    def block(self) -> dict[str, Any]:
        frs, self.frames = self.frames, []
        out: dict[str, Any] = {
            "atom_names": list(self.names),
            "atom_numbs": np.bincount(self.types, minlength=len(self.names)).astype(np.int64),
            "atom_types": self.types,
            "nopbc": self.nopbc,
            "cells": np.stack([f["cell"] for f in frs]),
            "coords": np.stack([f["coords"] for f in frs]),
        }
        if self.has["energy"]:
            out["energies"] = np.array([f["energy"] for f in frs], dtype=np.float64)
        if self.has["forces"]:
            out["forces"] = np.stack([f["forces"] for f in frs])
        if self.has["virial"]:
            out["virials"] = np.stack([f["virial"] for f in frs])
        return out


def _chunk_size(natoms: int, chunk: int | None) -> int:
    return chunk if chunk else max(1, min(1000, 2_000_000 // max(natoms, 1)))


def read(
    path: str,
    type_map: Sequence[str] | None = None,
    begin: int = 0,
    step: int = 1,
    energy_key: str | None = None,
    forces_key: str | None = None,
    chunk: int | None = None,
    _plain: bool = False,
    cell: Any = None,
    **_: Any,
) -> Iterator[dict[str, Any]]:
    """Yield blocks of frames; every frame must have the same atoms in the same order.

    ``energy_key``/``forces_key`` name the comment key and Properties column to
    take the labels from (defaults: the first of :data:`ENERGY_KEYS`/:data:`FORCE_KEYS`
    present). ``begin``/``step`` select frames. ``cell`` (3 lengths or 3x3) gives
    a cell to frames that have no ``Lattice``.
    """
    builder: _Builder | None = None
    per_block = 1
    for raw in scan.iter_frames(path):
        if raw.index < begin or (raw.index - begin) % step:
            continue
        fr = parse_frame(path, raw, energy_key, forces_key, plain=_plain, cell=cell)
        if builder is None:
            builder = _Builder(path, fr, raw.index)
            per_block = _chunk_size(raw.natoms, chunk)
        elif not builder.same_atoms(fr):
            raise ParseError(
                path,
                f"the same atoms (species, in order) as frame {builder.first_index}; this file mixes "
                "systems: read it with dpconv.MultiSystems.from_file(path, fmt='extxyz')",
                line=raw.line,
                frame=raw.index,
            )
        builder.add(fr, raw.index)
        if len(builder.frames) >= per_block:
            yield builder.block()
    if builder is not None and builder.frames:
        yield builder.block()


def _formula(b: _Builder) -> str:
    counts = np.bincount(b.types, minlength=len(b.names))
    return "".join(f"{n}{c}" for n, c in zip(b.names, counts))


def read_systems(
    path: str,
    type_map: Sequence[str] | None = None,
    energy_key: str | None = None,
    forces_key: str | None = None,
    **_: Any,
) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    """Group the frames by their atoms: one ``(name, blocks)`` per distinct species sequence."""
    groups: dict[bytes, tuple[_Builder, list[dict[str, Any]]]] = {}
    for raw in scan.iter_frames(path):
        fr = parse_frame(path, raw, energy_key, forces_key)
        key = b"\0".join(fr["species"].tolist()) + b"|" + bytes([fr["nopbc"]])
        if key not in groups:
            groups[key] = (_Builder(path, fr, raw.index), [])
        b, blocks = groups[key]
        b.add(fr, raw.index)
        if len(b.frames) >= _chunk_size(raw.natoms, None):
            blocks.append(b.block())
    used: dict[str, int] = {}
    for b, blocks in groups.values():
        if b.frames:
            blocks.append(b.block())
        name = _formula(b)
        used[name] = used.get(name, 0) + 1
        yield (name if used[name] == 1 else f"{name}_{used[name] - 1}"), iter(blocks)


# -- writing ------------------------------------------------------------------------------------
def _g(x: float) -> str:
    return f"{x:.12g}"


def _join(a: np.ndarray) -> str:
    return " ".join(_g(float(v)) for v in np.ravel(a))


def frame_header(data: Mapping[str, Any], j: int, labels: bool = True) -> str:
    """The comment line of frame ``j``."""
    nopbc = bool(data.get("nopbc", False))
    props = "species:S:1:pos:R:3"
    parts = []
    if not nopbc:
        parts.append(f'Lattice="{_join(data["cells"][j])}"')
    if labels and "forces" in data:
        props += ":forces:R:3"
    parts.append(f"Properties={props}")
    if labels and "energies" in data:
        parts.append(f"energy={_g(float(data['energies'][j]))}")
    if labels and "virials" in data:
        vir = np.asarray(data["virials"][j], dtype=np.float64)
        parts.append(f'virial="{_join(vir)}"')
        vol = abs(np.linalg.det(np.asarray(data["cells"][j], dtype=np.float64)))
        if not nopbc and vol > 0:
            parts.append(f'stress="{_join(-vir / vol)}"')
    parts.append('pbc="F F F"' if nopbc else 'pbc="T T T"')
    return " ".join(parts)


def write_frames(fh: Any, data: Mapping[str, Any], labels: bool = True, header: bool = True) -> None:
    """Append every frame of ``data`` to the open text file ``fh``."""
    names = np.array(list(data["atom_names"]), dtype=object)
    species = names[np.asarray(data["atom_types"], dtype=np.int64)]
    natoms = len(species)
    with_f = labels and "forces" in data
    line = "%s %.12g %.12g %.12g" + (" %.12g %.12g %.12g" if with_f else "") + "\n"
    frame_fmt = line * natoms
    ncol = 7 if with_f else 4
    table = np.empty((natoms, ncol), dtype=object)
    table[:, 0] = species
    for j in range(len(data["coords"])):
        table[:, 1:4] = np.asarray(data["coords"][j], dtype=np.float64)
        if with_f:
            table[:, 4:7] = np.asarray(data["forces"][j], dtype=np.float64)
        fh.write(f"{natoms}\n{frame_header(data, j, labels) if header else ''}\n")
        fh.write(frame_fmt % tuple(table.ravel().tolist()))


def write(path: str, blocks: Iterable[Mapping[str, Any]], **_: Any) -> None:
    """Write every frame (labels when present) as extended XYZ."""
    with open(path, "w") as fh:
        for data in blocks:
            write_frames(fh, data)


def write_systems(path: str, systems: Iterable[tuple[str, Iterable[Mapping[str, Any]]]], **_: Any) -> None:
    """Write several systems into one extended-XYZ file, one after the other."""
    with open(path, "w") as fh:
        for _name, blocks in systems:
            for data in blocks:
                write_frames(fh, data)
