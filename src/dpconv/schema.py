"""The declared schema of the data a :class:`~dpconv.system.System` holds.

Every array in ``System.data`` is described by a :class:`Field`: its name (the
dpdata key), its axes, its dtype, its unit and the file stem DeePMD-kit uses for
it. Validation, slicing (``sub_system``), concatenation (``append``/``extend``),
atom picking and the DeePMD writers all read this table, so a field a plugin
registers (spins, charges, ...) travels through dpconv like the built-in ones.

Axis names:

``"frame"``  number of frames (always the first axis of per-frame fields)
``"atom"``   number of atoms
``"type"``   number of atom types
an ``int``   a fixed size, e.g. 3
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from dpconv.errors import SchemaError

Axis = str | int


@dataclass(frozen=True)
class Field:
    """One entry of the schema.

    Attributes
    ----------
    name:
        Key in ``System.data`` (dpdata's name, e.g. ``"coords"``).
    axes:
        Axis names (see module docstring); ``"frame"`` must come first when present.
    dtype:
        numpy dtype the array is stored with (values are cast on validation).
    unit:
        Physical unit, for documentation and for readers converting at the edge.
    required:
        Whether every system must have it (``"labeled"``: only LabeledSystem must).
    deepmd:
        DeePMD-kit file stem (``coord`` -> ``coord.npy``/``coord.raw``), or None.
    doc:
        One line of description.
    """

    name: str
    axes: tuple[Axis, ...]
    dtype: str
    unit: str = ""
    required: bool | str = False
    deepmd: str | None = None
    doc: str = ""

    @property
    def per_frame(self) -> bool:
        return bool(self.axes) and self.axes[0] == "frame"

    @property
    def per_atom(self) -> bool:
        return "atom" in self.axes

    def required_for(self, labeled: bool) -> bool:
        return self.required is True or (self.required == "labeled" and labeled)


_FIELDS: dict[str, Field] = {}

#: Keys of ``System.data`` that are not arrays described by axes.
SCALAR_KEYS = ("atom_names", "nopbc")


def register_field(field: Field) -> None:
    """Declare a field. Re-registering the identical field is a no-op.

    Raises :class:`SchemaError` when another field of the same name or the same
    DeePMD stem exists.
    """
    old = _FIELDS.get(field.name)
    if old is not None:
        if old == field:
            return
        raise SchemaError(f"field {field.name!r} is already registered as {old}")
    if field.deepmd is not None:
        for other in _FIELDS.values():
            if other.deepmd == field.deepmd:
                raise SchemaError(f"DeePMD file stem {field.deepmd!r} of {field.name!r} is used by {other.name!r}")
    if "frame" in field.axes and field.axes[0] != "frame":
        raise SchemaError(f"field {field.name!r}: 'frame' must be the first axis")
    _FIELDS[field.name] = field


def fields() -> dict[str, Field]:
    """All registered fields, built-in ones first (a copy)."""
    from dpconv.plugins import ensure_fields_loaded

    ensure_fields_loaded()
    return dict(_FIELDS)


def get_field(name: str) -> Field | None:
    return fields().get(name)


for _f in (
    Field("atom_numbs", ("type",), "int64", "", True, None, "number of atoms of each type"),
    Field("atom_types", ("atom",), "int64", "", True, "type", "type index of each atom"),
    Field("cells", ("frame", 3, 3), "float64", "Å", True, "box", "cell vectors as rows"),
    Field("coords", ("frame", "atom", 3), "float64", "Å", True, "coord", "Cartesian positions"),
    Field("energies", ("frame",), "float64", "eV", "labeled", "energy", "total energy"),
    Field("forces", ("frame", "atom", 3), "float64", "eV/Å", "labeled", "force", "atomic forces"),
    Field("virials", ("frame", 3, 3), "float64", "eV", False, "virial", "virial tensor"),
):
    register_field(_f)
BUILTIN_FIELDS = tuple(_FIELDS)


def _sizes(data: Mapping[str, Any]) -> dict[str, int]:
    names = data.get("atom_names")
    if names is None:
        raise SchemaError("missing 'atom_names'")
    if "coords" not in data:
        raise SchemaError("missing 'coords'")
    if "atom_types" not in data:
        raise SchemaError("missing 'atom_types'")
    coords = np.asarray(data["coords"])
    types = np.asarray(data["atom_types"])
    if coords.ndim != 3:
        raise SchemaError(f"'coords' must have shape (nframes, natoms, 3), got {coords.shape}")
    return {"frame": coords.shape[0], "atom": types.shape[0] if types.ndim else -1, "type": len(names)}


def validate(data: Mapping[str, Any], labeled: bool) -> dict[str, Any]:
    """Check ``data`` against the schema and return a normalised copy.

    Arrays are cast to the declared dtype (float32 input becomes float64,
    exactly), shapes are checked against ``nframes``/``natoms``/``ntypes``,
    coordinates, cells and labels must be finite, atom types must index
    ``atom_names`` and ``atom_numbs`` must count them.

    Raises
    ------
    SchemaError
        With the field name and what was expected.
    """
    out: dict[str, Any] = {}
    sizes = _sizes(data)
    names = [str(n) for n in data["atom_names"]]
    if len(set(names)) != len(names):
        raise SchemaError(f"duplicate atom names in {names}")
    out["atom_names"] = names
    out["nopbc"] = bool(data.get("nopbc", False))
    known = fields()
    for key, value in data.items():
        if key in SCALAR_KEYS:
            continue
        field = known.get(key)
        if field is None:
            # unknown keys are carried along untouched (dpdata's 'orig' etc.)
            out[key] = value
            continue
        if field.required is False and value is None:
            continue
        try:
            arr = np.asarray(value, dtype=field.dtype)
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"field {key!r} cannot be converted to {field.dtype}: {exc}") from None
        expected = tuple(sizes[a] if isinstance(a, str) else a for a in field.axes)
        if arr.size == 0 and sizes["frame"] == 0 and field.per_frame:
            arr = arr.reshape(expected)
        if arr.shape != expected:
            shape_names = ", ".join(str(a) for a in field.axes)
            raise SchemaError(f"field {key!r} must have shape ({shape_names}) = {expected}, got {arr.shape}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise SchemaError(f"field {key!r} has a non-finite value at index {tuple(int(i) for i in bad)}")
        out[key] = arr
    for key, field in known.items():
        if key not in out and field.required_for(labeled):
            raise SchemaError(f"missing required field {key!r}")
    types = out["atom_types"]
    if types.size and (types.min() < 0 or types.max() >= sizes["type"]):
        raise SchemaError(
            f"atom_types must be in [0, {sizes['type']}) to index atom_names {names}, "
            f"got values in [{types.min()}, {types.max()}]"
        )
    counts = np.bincount(types, minlength=sizes["type"])
    if not np.array_equal(counts, out["atom_numbs"]):
        raise SchemaError(f"atom_numbs {out['atom_numbs'].tolist()} do not count atom_types {counts.tolist()}")
    return out


def frame_fields(data: Mapping[str, Any]) -> list[str]:
    """Names of the per-frame fields present in ``data``."""
    known = fields()
    return [k for k in data if k in known and known[k].per_frame]


def atom_axis(field: Field) -> int | None:
    """Index of the atom axis of ``field``, or None."""
    return field.axes.index("atom") if "atom" in field.axes else None
