"""The data model: :class:`System`, :class:`LabeledSystem` and :class:`MultiSystems`.

``System.data`` is a dict with dpdata's keys so that dpdata scripts port by
changing the import:

=============  ====================  =========  =====
key            shape                 dtype      unit
=============  ====================  =========  =====
atom_names     list[str] (ntypes)
atom_numbs     (ntypes,)             int64
atom_types     (natoms,)             int64
cells          (nframes, 3, 3)       float64    Å, rows are the lattice vectors
coords         (nframes, natoms, 3)  float64    Å
nopbc          bool
energies       (nframes,)            float64    eV  (LabeledSystem)
forces         (nframes, natoms, 3)  float64    eV/Å (LabeledSystem)
virials        (nframes, 3, 3)       float64    eV  (optional)
=============  ====================  =========  =====

The table lives in :mod:`dpconv.schema`; fields registered by plugins are
sliced, concatenated and written like these. No module here imports a format.
"""

from __future__ import annotations

import copy as _copy
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from dpconv import schema
from dpconv.errors import DpconvError, SchemaError

S = TypeVar("S", bound="System")
Index = int | slice | Sequence[int] | np.ndarray


def _empty_data(labeled: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "atom_names": [],
        "atom_numbs": np.zeros(0, np.int64),
        "atom_types": np.zeros(0, np.int64),
        "cells": np.zeros((0, 3, 3)),
        "coords": np.zeros((0, 0, 3)),
        "nopbc": False,
    }
    if labeled:
        data["energies"] = np.zeros(0)
        data["forces"] = np.zeros((0, 0, 3))
    return data


def _frame_index(key: Index, nframes: int) -> np.ndarray | slice:
    if isinstance(key, (int, np.integer)):
        k = int(key)
        if not -nframes <= k < nframes:
            raise IndexError(f"frame {k} out of range for {nframes} frames")
        k %= nframes
        return slice(k, k + 1)
    if isinstance(key, slice):
        return key
    idx = np.asarray(key)
    if idx.dtype == bool:
        if idx.shape != (nframes,):
            raise IndexError(f"boolean frame mask must have {nframes} entries, got {idx.shape}")
        return np.flatnonzero(idx)
    idx = idx.astype(np.int64).reshape(-1)
    if idx.size and (idx.max() >= nframes or idx.min() < -nframes):
        raise IndexError(f"frame index out of range for {nframes} frames")
    return idx


def concatenate_data(blocks: Sequence[Mapping[str, Any]], labeled: bool) -> dict[str, Any]:
    """Join data dicts of the same atoms along the frame axis, one ``np.concatenate`` per field.

    Blocks whose ``atom_names`` differ in order are first mapped onto the type
    map of the first block (missing names added). Per-frame fields present in
    only some blocks are dropped (with the optional ``virials`` this means: a
    virial is kept only when every block has it).
    """
    if not blocks:
        return _empty_data(labeled)
    first = blocks[0]
    names = list(first["atom_names"])
    for b in blocks[1:]:
        for n in b["atom_names"]:
            if n not in names:
                names.append(n)
    mapped = [b if list(b["atom_names"]) == names else _map_types(b, names) for b in blocks]
    ref_types = np.asarray(mapped[0]["atom_types"])
    for i, b in enumerate(mapped[1:], 1):
        if not np.array_equal(np.asarray(b["atom_types"]), ref_types):
            raise SchemaError(f"cannot join block {i}: its atoms differ (atom_types) from the first block's")
        if bool(b.get("nopbc", False)) != bool(first.get("nopbc", False)):
            raise SchemaError(f"cannot join block {i}: nopbc differs from the first block's")
    frame_keys = schema.frame_fields(mapped[0])  # once: it copies the field table
    out = {k: v for k, v in mapped[0].items() if k not in frame_keys}
    out["atom_names"] = names
    keys = [k for k in frame_keys if all(k in b for b in mapped)]
    for k in keys:
        # one block: no copy (the caller owns the reader's arrays); else one concatenation
        out[k] = np.asarray(mapped[0][k]) if len(mapped) == 1 else np.concatenate([b[k] for b in mapped], axis=0)
    return out


def _map_types(data: Mapping[str, Any], type_map: Sequence[str]) -> dict[str, Any]:
    names = list(data["atom_names"])
    missing = [n for n in names if n not in type_map]
    if missing and np.isin(np.asarray(data["atom_types"]), [names.index(m) for m in missing]).any():
        raise SchemaError(f"type_map {list(type_map)} lacks atom names {missing} present in the system")
    lut = np.array([type_map.index(n) if n in type_map else -1 for n in names], dtype=np.int64)
    out = dict(data)
    types = lut[np.asarray(data["atom_types"], dtype=np.int64)] if names else np.asarray(data["atom_types"], np.int64)
    out["atom_types"] = types
    out["atom_names"] = list(type_map)
    out["atom_numbs"] = np.bincount(types, minlength=len(type_map)).astype(np.int64)
    return out


class _DeepmdWriters:
    """dpdata's ``to_deepmd_*`` shortcuts, shared by System and MultiSystems."""

    def to(self, fmt: str, path: str | os.PathLike[str], **kwargs: Any) -> Any:
        raise NotImplementedError

    def to_deepmd_npy(self, folder: str | os.PathLike[str], set_size: int = 5000, **kwargs: Any) -> None:
        self.to("deepmd/npy", folder, set_size=set_size, **kwargs)

    def to_deepmd_raw(self, folder: str | os.PathLike[str], **kwargs: Any) -> None:
        self.to("deepmd/raw", folder, **kwargs)

    def to_deepmd_hdf5(self, file_name: str | os.PathLike[str], set_size: int = 5000, **kwargs: Any) -> None:
        self.to("deepmd/hdf5", file_name, set_size=set_size, **kwargs)

    def to_deepmd_npy_mixed(self, folder: str | os.PathLike[str], set_size: int = 2000, **kwargs: Any) -> None:
        self.to("deepmd/npy/mixed", folder, set_size=set_size, **kwargs)


class System(_DeepmdWriters):
    """Structures: atom names and types, cells and coordinates of ``nframes`` frames.

    Parameters
    ----------
    file_name:
        A file or folder to read; None gives an empty system (or ``data``).
    fmt:
        Format name (``dpconv formats`` lists them) or ``"auto"`` to detect from
        the name.
    type_map:
        Atom names in the order the types should take; names the data lacks are
        added with zero atoms.
    begin, step:
        Keep frames ``begin::step`` of what was read.
    data:
        A ``data`` dict to wrap (validated against the schema).
    **kwargs:
        Passed to the reader.
    """

    labeled = False

    def __init__(
        self,
        file_name: str | os.PathLike[str] | None = None,
        fmt: str = "auto",
        type_map: Sequence[str] | None = None,
        begin: int = 0,
        step: int = 1,
        data: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if data is not None and file_name is not None:
            raise DpconvError("give either file_name or data, not both")
        if file_name is not None:
            from dpconv.io import read_data

            data = read_data(file_name, fmt, labeled=self.labeled, type_map=type_map, **kwargs)
        if data is None:
            data = _empty_data(self.labeled)
        self.data: dict[str, Any] = schema.validate(data, self.labeled)
        if begin != 0 or step != 1:
            self.data = self._take(slice(begin, None, step))
        if type_map is not None:
            self.apply_type_map(type_map)

    # -- construction helpers -----------------------------------------------------
    @classmethod
    def from_data(cls: type[S], data: Mapping[str, Any], *, validate: bool = True) -> S:
        """Wrap ``data``; ``validate=False`` trusts it (internal fast path)."""
        obj = cls.__new__(cls)
        obj.data = schema.validate(data, cls.labeled) if validate else dict(data)
        return obj

    @classmethod
    def concatenate(cls: type[S], systems: Iterable[System]) -> S:
        """One system from many of the same atoms, with one concatenation per field."""
        return cls.from_data(concatenate_data([s.data for s in systems], cls.labeled))

    # -- sizes ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.data["coords"].shape[0])

    def get_nframes(self) -> int:
        return len(self)

    def get_natoms(self) -> int:
        return int(self.data["atom_types"].shape[0])

    def get_ntypes(self) -> int:
        return len(self.data["atom_names"])

    def get_atom_names(self) -> list[str]:
        return list(self.data["atom_names"])

    def get_atom_types(self) -> np.ndarray:
        return self.data["atom_types"]

    def get_atom_numbs(self) -> list[int]:
        return [int(n) for n in self.data["atom_numbs"]]

    @property
    def nopbc(self) -> bool:
        return bool(self.data["nopbc"])

    @nopbc.setter
    def nopbc(self, value: bool) -> None:
        self.data["nopbc"] = bool(value)

    @property
    def formula(self) -> str:
        """Names followed by counts in type order, e.g. ``"O64H128"`` (dpdata's ``formula``)."""
        return "".join(f"{n}{c}" for n, c in zip(self.data["atom_names"], self.data["atom_numbs"]))

    @property
    def uniq_formula(self) -> str:
        """The formula with names sorted alphabetically (independent of type order)."""
        pairs = sorted(zip(self.data["atom_names"], self.data["atom_numbs"]))
        return "".join(f"{n}{c}" for n, c in pairs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.formula or 'empty'}, {len(self)} frames)"

    def __str__(self) -> str:
        names = ", ".join(f"{n}: {c}" for n, c in zip(self.data["atom_names"], self.data["atom_numbs"]))
        return (
            f"Data Summary\n{type(self).__name__}\nFrame Numbers : {len(self)}\n"
            f"Atom Numbers : {self.get_natoms()}\nElement List : {names}"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, System) or type(other) is not type(self):
            return NotImplemented
        a, b = self.data, other.data
        if a.keys() != b.keys():
            return False
        for k in a:
            if isinstance(a[k], np.ndarray):
                if a[k].shape != np.shape(b[k]) or not np.array_equal(a[k], b[k]):
                    return False
            elif a[k] != b[k]:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    # -- indexing -----------------------------------------------------------------------
    def _take(self, key: Index) -> dict[str, Any]:
        idx = _frame_index(key, len(self))
        out = dict(self.data)
        for k in schema.frame_fields(self.data):
            out[k] = self.data[k][idx]
        return out

    def sub_system(self: S, f_idx: Index) -> S:
        """A new system of the frames ``f_idx`` (int, slice, index list/array or mask)."""
        return type(self).from_data(_copy.deepcopy(self._take(f_idx)), validate=False)

    def __getitem__(self, key: Index | str) -> Any:
        if isinstance(key, str):
            return self.data[key]
        return self.sub_system(key)

    def __iter__(self) -> Iterator[System]:
        for i in range(len(self)):
            yield self.sub_system(i)

    def copy(self: S) -> S:
        return type(self).from_data(_copy.deepcopy(self.data), validate=False)

    # -- joining ---------------------------------------------------------------------------
    def append(self, system: System) -> bool:
        """Add the frames of ``system`` (same atoms; names may come in another order)."""
        self.extend([system])
        return True

    def extend(self, systems: Iterable[System]) -> None:
        """Add the frames of several systems with a single concatenation per field."""
        systems = list(systems)
        for s in systems:
            if self.labeled and not s.labeled:
                raise SchemaError("cannot add an unlabeled System to a LabeledSystem")
        if len(self) == 0 and self.get_natoms() == 0:
            blocks = [s.data for s in systems]
        else:
            blocks = [self.data] + [s.data for s in systems]
        if not blocks:
            return
        self.data = schema.validate(concatenate_data(blocks, self.labeled), self.labeled)

    def __add__(self: S, other: System) -> S:
        out = self.copy()
        out.append(other)
        return out

    # -- reordering --------------------------------------------------------------------------
    def shuffle(self, seed: int | None = None) -> np.ndarray:
        """Shuffle the frames in place; returns the permutation applied."""
        idx = np.random.default_rng(seed).permutation(len(self))
        self.data = self._take(idx)
        return idx

    def split(self: S, fraction: float, seed: int | None = None) -> tuple[S, S]:
        """Split frames at random into (training, validation); reproducible from ``seed``.

        ``fraction`` is the share of frames that go to validation (0..1); at least one
        frame goes to each side when the system has two or more frames and
        ``0 < fraction < 1``. Frames keep their original order on each side.
        """
        if not 0.0 <= fraction <= 1.0:
            raise DpconvError(f"split fraction must be in [0, 1], got {fraction}")
        n = len(self)
        nvalid = round(fraction * n)
        if n >= 2 and 0.0 < fraction < 1.0:
            nvalid = min(max(nvalid, 1), n - 1)
        perm = np.random.default_rng(seed).permutation(n)
        valid = np.sort(perm[:nvalid])
        train = np.sort(perm[nvalid:])
        return self.sub_system(train), self.sub_system(valid)

    def sort_atom_names(self, type_map: Sequence[str] | None = None) -> System:
        """Reorder types alphabetically, or to ``type_map`` (names it lacks are added)."""
        names = list(type_map) if type_map is not None else sorted(self.data["atom_names"])
        self.data = _map_types(self.data, names)
        return self

    def apply_type_map(self, type_map: Sequence[str]) -> None:
        """Make ``type_map`` the type order; data names missing from it are an error,
        names missing from the data are added with zero atoms."""
        tm = [str(t) for t in type_map]
        if len(set(tm)) != len(tm):
            raise SchemaError(f"type_map has duplicate names: {tm}")
        self.data = _map_types(self.data, tm)

    def check_type_map(self, type_map: Sequence[str] | None) -> None:
        if type_map is not None:
            self.apply_type_map(type_map)

    def add_atom_names(self, names: Sequence[str]) -> None:
        """Append names (with zero atoms) that the system does not have yet."""
        new = [n for n in names if n not in self.data["atom_names"]]
        self.data = _map_types(self.data, [*self.data["atom_names"], *new])

    def sort_atom_types(self) -> np.ndarray:
        """Reorder atoms so that types are contiguous and ascending; returns the atom order."""
        idx = np.argsort(self.data["atom_types"], kind="stable")
        self.data = self._pick_atoms(idx)
        return idx

    # -- atoms -------------------------------------------------------------------------------
    def _pick_atoms(self, idx: np.ndarray) -> dict[str, Any]:
        known = schema.fields()
        out = dict(self.data)
        for k, v in self.data.items():
            f = known.get(k)
            if f is None or k in ("atom_numbs",):
                continue
            ax = schema.atom_axis(f)
            if ax is not None:
                out[k] = np.take(v, idx, axis=ax)
        out["atom_numbs"] = np.bincount(out["atom_types"], minlength=len(out["atom_names"])).astype(np.int64)
        return out

    def pick_atom_idx(self: S, idx: int | Sequence[int] | np.ndarray, nopbc: bool | None = None) -> S:
        """A new system with only the atoms ``idx`` (in that order)."""
        index = np.atleast_1d(np.asarray(idx, dtype=np.int64))
        if index.size and (index.max() >= self.get_natoms() or index.min() < -self.get_natoms()):
            raise IndexError(f"atom index out of range for {self.get_natoms()} atoms")
        data = _copy.deepcopy(self._pick_atoms(index))
        if nopbc is not None:
            data["nopbc"] = bool(nopbc)
        return type(self).from_data(data)

    def pick_by_amber_mask(self, *args: Any, **kwargs: Any) -> System:  # pragma: no cover
        raise DpconvError("amber masks are not supported; use pick_atom_idx")

    # -- geometry ----------------------------------------------------------------------------
    def apply_pbc(self) -> None:
        """Wrap coordinates into the cell (fractional coordinates in [0, 1))."""
        if self.nopbc:
            return
        cells = self.data["cells"]
        frac = np.linalg.solve(cells.transpose(0, 2, 1), self.data["coords"].transpose(0, 2, 1)).transpose(0, 2, 1)
        frac -= np.floor(frac)
        self.data["coords"] = frac @ cells

    def rot_lower_triangular(self) -> None:
        """Rotate every frame so that its cell is lower triangular (a along x, b in xy).

        Coordinates, forces and virials are rotated with it (the way dpdata's VASP
        reader does it). The diagonal is made positive, so a left-handed cell is
        turned right-handed by an improper rotation (a reflection), as dpdata does;
        distances and energies are unchanged by it.
        """
        for i in range(len(self)):
            q, r = np.linalg.qr(self.data["cells"][i].T)
            # make the diagonal of r positive so that the rotation is proper on the cell rows
            sign = np.sign(np.diag(r))
            sign[sign == 0] = 1.0
            rot = q * sign  # columns flipped: rot is orthogonal
            self._rotate_frame(i, rot)

    to_lower_triangular = rot_lower_triangular

    def _rotate_frame(self, i: int, rot: np.ndarray) -> None:
        """Apply x -> x @ rot to frame ``i`` (vectors as rows)."""
        known = schema.fields()
        for k in schema.frame_fields(self.data):
            f = known[k]
            if f.axes[-1] == 3 and k != "virials":
                self.data[k][i] = self.data[k][i] @ rot
        if "virials" in self.data:
            self.data["virials"][i] = rot.T @ self.data["virials"][i] @ rot

    def replicate(self: S, ncopy: Sequence[int]) -> S:
        """A supercell ``ncopy = (na, nb, nc)`` of every frame; atoms of the same type stay together
        in image order (as dpdata does). Labels: energies and virials scale by the number of
        copies, forces are copied."""
        na, nb, nc = (int(x) for x in ncopy)
        if min(na, nb, nc) < 1:
            raise DpconvError(f"replicate needs positive integers, got {tuple(ncopy)}")
        if self.nopbc:
            raise DpconvError("cannot replicate a non-periodic system")
        shifts = np.array([[i, j, k] for i in range(na) for j in range(nb) for k in range(nc)], dtype=np.float64)
        n = len(shifts)
        order = np.argsort(self.data["atom_types"], kind="stable")
        cells = self.data["cells"]
        disp = np.einsum("sk,fkj->fsj", shifts, cells)  # (nframes, n, 3)
        known = schema.fields()
        data = dict(self.data)
        natoms = self.get_natoms()
        for k, v in self.data.items():
            f = known.get(k)
            if f is None or not f.per_atom:
                continue
            ax = schema.atom_axis(f)
            assert ax is not None
            if f.per_frame:
                v = np.take(v, order, axis=1)  # (nf, nat, ...)
                tiled = np.repeat(v[:, None], n, axis=1)  # (nf, n, nat, ...)
                if k == "coords":
                    tiled = tiled + disp[:, :, None, :]
                # group by atom first (type-contiguous), then image
                tiled = np.swapaxes(tiled, 1, 2).reshape(v.shape[0], natoms * n, *v.shape[2:])
                data[k] = tiled
            elif k == "atom_types":
                data[k] = np.repeat(v[order], n)
        data["cells"] = cells * np.array([na, nb, nc], dtype=np.float64)[None, :, None]
        for k in ("energies", "virials"):
            if k in data:
                data[k] = self.data[k] * n
        data["atom_numbs"] = self.data["atom_numbs"] * n
        return type(self).from_data(data)

    def perturb(
        self,
        pert_num: int,
        cell_pert_fraction: float,
        atom_pert_distance: float,
        atom_pert_style: str = "normal",
        seed: int | None = None,
    ) -> System:
        """``pert_num`` randomly perturbed copies of every frame (an unlabeled System).

        The cell is deformed by a random symmetric strain of at most
        ``cell_pert_fraction``; atoms move by ``atom_pert_distance`` Å drawn with
        ``atom_pert_style`` (``"normal"``: Gaussian of that rms length,
        ``"uniform"``: uniform in a ball of that radius, ``"const"``: exactly that length).
        """
        rng = np.random.default_rng(seed)
        nf, nat = len(self), self.get_natoms()
        frames = []
        for i in range(nf):
            for _ in range(pert_num):
                strain = rng.uniform(-cell_pert_fraction, cell_pert_fraction, (3, 3))
                strain = np.triu(strain) + np.triu(strain, 1).T + np.eye(3)
                cell = self.data["cells"][i] @ strain
                frac = np.linalg.solve(self.data["cells"][i].T, self.data["coords"][i].T).T
                coords = frac @ cell
                coords = coords + _random_displacements(rng, nat, atom_pert_distance, atom_pert_style)
                frames.append((cell, coords))
        data = {k: self.data[k] for k in ("atom_names", "atom_numbs", "atom_types", "nopbc")}
        data["cells"] = np.array([f[0] for f in frames]).reshape(-1, 3, 3)
        data["coords"] = np.array([f[1] for f in frames]).reshape(-1, nat, 3)
        return System.from_data(data)

    # -- output ---------------------------------------------------------------------------------
    def to(self, fmt: str, file_name: str | os.PathLike[str], *args: Any, **kwargs: Any) -> Any:
        """Write with format ``fmt`` to ``file_name`` (atomically: temp sibling, then rename)."""
        from dpconv.io import write

        return write(self, file_name, fmt, **kwargs)

    # -- serialisation ------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict in monty's MSONable protocol (``@module``/``@class``), so
        ``monty.json.MontyEncoder``/``MontyDecoder`` and ``dumpfn``/``loadfn`` handle
        systems; arrays become nested lists with their dtype and shape (float64 is
        written with full precision, so the round trip is exact). dpconv does not
        inherit ``MSONable`` to keep ``import dpconv`` free of monty's import cost."""
        data = {}
        for k, v in self.data.items():
            if isinstance(v, np.ndarray):
                data[k] = {"@array": v.tolist(), "dtype": str(v.dtype), "shape": list(v.shape)}
            else:
                data[k] = v
        return {"@module": type(self).__module__, "@class": type(self).__name__, "data": data}

    def to_json(self) -> str:
        """JSON text of :meth:`as_dict` (monty's encoder, so nested MSONables work too)."""
        import json

        from monty.json import MontyEncoder

        return json.dumps(self, cls=MontyEncoder)

    @classmethod
    def from_dict(cls: type[S], d: Mapping[str, Any]) -> S:
        """Inverse of :meth:`as_dict`; also what monty's ``MontyDecoder`` calls."""
        data = {}
        for k, v in d["data"].items():
            if isinstance(v, Mapping) and "@array" in v:
                data[k] = np.array(v["@array"], dtype=v["dtype"]).reshape(v["shape"])
            else:
                data[k] = v
        return cls.from_data(data)


def _random_displacements(rng: np.random.Generator, n: int, dist: float, style: str) -> np.ndarray:
    if style == "normal":
        return rng.normal(0.0, dist / np.sqrt(3.0), (n, 3))
    vec = rng.normal(size=(n, 3))
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    if style == "uniform":
        return vec * dist * rng.uniform(0, 1, (n, 1)) ** (1.0 / 3.0)
    if style == "const":
        return vec * dist
    raise DpconvError(f"atom_pert_style must be normal, uniform or const, got {style!r}")


class LabeledSystem(System):
    """A :class:`System` with energies, forces and (optionally) virials of every frame."""

    labeled = True

    def has_virial(self) -> bool:
        return "virials" in self.data

    def has_forces(self) -> bool:
        return "forces" in self.data

    def perturb(self, *args: Any, **kwargs: Any) -> System:
        """Perturbed copies as an unlabeled :class:`System` (labels no longer apply)."""
        return System.from_data(_strip_labels(self.data)).perturb(*args, **kwargs)


def _strip_labels(data: Mapping[str, Any]) -> dict[str, Any]:
    known = schema.fields()
    return {k: v for k, v in data.items() if not ((k in known and known[k].required == "labeled") or k == "virials")}


class MultiSystems(_DeepmdWriters):
    """Systems grouped by formula under one shared type map.

    Systems of the same formula are joined; every system's types follow
    ``self.atom_names`` (``type_map`` if given, else names in order of first
    appearance).
    """

    def __init__(self, *systems: System, type_map: Sequence[str] | None = None) -> None:
        self.systems: dict[str, System] = {}
        self.atom_names: list[str] = list(type_map) if type_map is not None else []
        self._fixed_type_map = type_map is not None
        self.append(*systems)

    @classmethod
    def from_dir(
        cls,
        dir_name: str | os.PathLike[str],
        file_name: str,
        fmt: str = "auto",
        type_map: Sequence[str] | None = None,
        labeled: bool = True,
        **kwargs: Any,
    ) -> MultiSystems:
        """Read every file below ``dir_name`` matching the glob ``file_name``."""
        import glob

        paths = sorted(glob.glob(os.path.join(os.fspath(dir_name), "**", file_name), recursive=True))
        cls_ = LabeledSystem if labeled else System
        return cls(*(cls_(p, fmt=fmt, **kwargs) for p in paths), type_map=type_map)

    @classmethod
    def from_file(
        cls,
        file_name: str | os.PathLike[str],
        fmt: str,
        type_map: Sequence[str] | None = None,
        labeled: bool = True,
        **kwargs: Any,
    ) -> MultiSystems:
        """Read a multi-system file or folder (``deepmd/hdf5``, ``deepmd/npy/mixed``, a folder of systems)."""
        from dpconv.io import read_multi

        return read_multi(file_name, fmt, type_map=type_map, labeled=labeled, **kwargs)

    def _merge_names(self, names: Sequence[str]) -> None:
        new = [n for n in names if n not in self.atom_names]
        if new and self._fixed_type_map:
            raise SchemaError(f"atom names {new} are not in the type map {self.atom_names}")
        if new:
            self.atom_names.extend(new)
            for key in list(self.systems):
                s = self.systems.pop(key)
                s.apply_type_map(self.atom_names)
                self.systems[s.formula] = s

    def append(self, *systems: System | MultiSystems) -> None:
        """Add systems (or all systems of another MultiSystems), joining equal formulas."""
        flat: list[System] = []
        for s in systems:
            flat.extend(s.systems.values() if isinstance(s, MultiSystems) else [s])
        flat = [s for s in flat if len(s) > 0]
        for s in flat:
            self._merge_names(s.get_atom_names())
        groups: dict[str, list[System]] = {}
        for s in flat:
            s = s.copy()
            s.apply_type_map(self.atom_names)
            groups.setdefault(s.formula, []).append(s)
        for formula, members in groups.items():
            if formula in self.systems:
                members = [self.systems[formula], *members]
            first = members[0]
            self.systems[formula] = type(first).concatenate(members)

    def __len__(self) -> int:
        return len(self.systems)

    def __iter__(self) -> Iterator[System]:
        return iter(self.systems.values())

    def __getitem__(self, key: int | str) -> System:
        if isinstance(key, str):
            return self.systems[key]
        return list(self.systems.values())[key]

    def __repr__(self) -> str:
        return f"MultiSystems({len(self)} systems, {self.get_nframes()} frames)"

    def get_nframes(self) -> int:
        return sum(len(s) for s in self.systems.values())

    def to(self, fmt: str, path: str | os.PathLike[str], **kwargs: Any) -> None:
        """Write every system: a folder of ``<formula>`` subfolders, or one multi-system file."""
        from dpconv.io import write

        write(self, path, fmt, **kwargs)

    def train_test_split(
        self, test_size: float | int, seed: int | None = None
    ) -> tuple[MultiSystems, MultiSystems, dict[str, np.ndarray]]:
        """Split frames into training and test sets (dpdata's signature).

        ``test_size`` is a fraction of all frames (float in (0, 1)) or a number of
        frames (int); frames are drawn at random over all systems, reproducibly
        from ``seed``. Returns (train, test, test indices per formula).
        """
        total = self.get_nframes()
        if isinstance(test_size, float):
            if not 0.0 < test_size < 1.0:
                raise DpconvError(f"test_size as a fraction must be in (0, 1), got {test_size}")
            ntest = round(test_size * total)
        else:
            ntest = int(test_size)
        if not 0 < ntest < total:
            raise DpconvError(f"test size {ntest} must be between 1 and {total - 1} frames")
        rng = np.random.default_rng(seed)
        chosen = np.zeros(total, dtype=bool)
        chosen[rng.choice(total, ntest, replace=False)] = True
        train, test = MultiSystems(type_map=self.atom_names), MultiSystems(type_map=self.atom_names)
        test_idx: dict[str, np.ndarray] = {}
        start = 0
        for formula, s in self.systems.items():
            mask = chosen[start : start + len(s)]
            start += len(s)
            test_idx[formula] = np.flatnonzero(mask)
            if (~mask).any():
                train.append(s.sub_system(np.flatnonzero(~mask)))
            if mask.any():
                test.append(s.sub_system(np.flatnonzero(mask)))
        return train, test, test_idx
