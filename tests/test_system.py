"""System / LabeledSystem: construction, validation, indexing, joining, geometry, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dpconv import LabeledSystem, System
from dpconv.errors import DpconvError, SchemaError
from tests.helpers import methane, water_like


def test_sizes_and_formula() -> None:
    s = water_like(4)
    assert len(s) == s.get_nframes() == 4
    assert s.get_natoms() == 6
    assert s.get_ntypes() == 2
    assert s.formula == "O2H4"
    assert s.uniq_formula == "H4O2"
    assert s.get_atom_numbs() == [2, 4]
    assert "Frame Numbers : 4" in str(s)
    assert repr(s) == "LabeledSystem(O2H4, 4 frames)"


def test_float32_is_upcast_exactly() -> None:
    s = water_like(2)
    data = dict(s.data)
    data["coords"] = s.data["coords"].astype(np.float32)
    t = LabeledSystem(data=data)
    assert t.data["coords"].dtype == np.float64
    np.testing.assert_array_equal(t.data["coords"], s.data["coords"].astype(np.float32).astype(np.float64))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("coords", np.zeros((4, 5, 3)), "coords"),
        ("cells", np.zeros((4, 3)), "cells"),
        ("energies", np.zeros(3), "energies"),
        ("forces", np.zeros((4, 6)), "forces"),
        ("atom_types", np.array([0, 1, 1, 0, 1, 2]), "atom_types"),
        ("atom_numbs", np.array([3, 3]), "atom_numbs"),
        ("virials", np.zeros((4, 9)), "virials"),
    ],
)
def test_invalid_shapes_raise_schema_error(key: str, value: np.ndarray, message: str) -> None:
    data = dict(water_like(4).data)
    data[key] = value
    with pytest.raises(SchemaError, match=message):
        LabeledSystem(data=data)


def test_nan_coordinates_rejected() -> None:
    data = dict(water_like(2).data)
    coords = data["coords"].copy()
    coords[1, 3, 2] = np.nan
    data["coords"] = coords
    with pytest.raises(SchemaError, match=r"non-finite value at index \(1, 3, 2\)"):
        LabeledSystem(data=data)


def test_missing_labels_rejected_for_labeled_only() -> None:
    data = dict(water_like(2).data)
    del data["energies"]
    with pytest.raises(SchemaError, match="energies"):
        LabeledSystem(data=data)
    assert len(System(data=data)) == 2


def test_duplicate_names_rejected() -> None:
    data = dict(water_like(2).data)
    data["atom_names"] = ["O", "O"]
    with pytest.raises(SchemaError, match="duplicate"):
        LabeledSystem(data=data)


def test_indexing_int_slice_list_mask() -> None:
    s = water_like(5)
    assert len(s[0]) == 1 and len(s[-1]) == 1
    np.testing.assert_array_equal(s[-1].data["coords"][0], s.data["coords"][4])
    assert len(s[1:4]) == 3
    sub = s[[4, 0]]
    np.testing.assert_array_equal(sub.data["energies"], s.data["energies"][[4, 0]])
    mask = np.array([True, False, True, False, False])
    assert len(s[mask]) == 2
    assert s["coords"] is s.data["coords"]
    with pytest.raises(IndexError):
        s[5]
    with pytest.raises(IndexError):
        s[[0, 9]]
    # sub_system copies: editing it leaves the parent alone
    sub.data["coords"][0, 0, 0] = 1e3
    assert s.data["coords"][4, 0, 0] != 1e3
    assert [len(f) for f in s] == [1] * 5


def test_append_and_extend_are_one_concatenation() -> None:
    a, b, c = water_like(2, 0), water_like(3, 1), water_like(1, 2)
    joined = a.copy()
    joined.extend([b, c])
    assert len(joined) == 6
    np.testing.assert_array_equal(joined.data["forces"][2:5], b.data["forces"])
    a2 = a.copy()
    a2.append(b)
    a2.append(c)
    assert a2 == joined
    assert (a + b) == LabeledSystem.concatenate([a, b])


def test_append_with_other_type_order_maps_types() -> None:
    a = water_like(2)
    b = water_like(2, 5)
    b.sort_atom_names()  # H, O
    assert b.get_atom_names() == ["H", "O"]
    a.append(b)
    assert a.get_atom_names() == ["O", "H"]
    np.testing.assert_array_equal(a.data["atom_types"], [0, 1, 1, 0, 1, 1])


def test_append_different_atoms_rejected() -> None:
    with pytest.raises(SchemaError, match="atoms differ"):
        water_like(2).append(methane(2))


def test_append_unlabeled_to_labeled_rejected() -> None:
    with pytest.raises(SchemaError):
        water_like(2).append(water_like(2, labeled=False))


def test_virials_dropped_when_only_some_have_them() -> None:
    a = water_like(2, virials=True)
    a.append(water_like(2, 1, virials=False))
    assert not a.has_virial()


def test_shuffle_reproducible() -> None:
    a, b = water_like(6), water_like(6)
    ia = a.shuffle(seed=3)
    ib = b.shuffle(seed=3)
    np.testing.assert_array_equal(ia, ib)
    assert a == b
    np.testing.assert_array_equal(a.data["energies"], water_like(6).data["energies"][ia])


def test_split_reproducible_and_disjoint() -> None:
    s = water_like(10)
    t1, v1 = s.split(0.2, seed=1)
    t2, v2 = s.split(0.2, seed=1)
    assert (len(t1), len(v1)) == (8, 2)
    assert t1 == t2 and v1 == v2
    all_e = np.sort(np.concatenate([t1.data["energies"], v1.data["energies"]]))
    np.testing.assert_array_equal(all_e, np.sort(s.data["energies"]))
    _, v3 = s.split(0.2, seed=2)
    assert v3 != v1 or len(s) < 3
    t, v = water_like(2).split(0.01, seed=0)
    assert (len(t), len(v)) == (1, 1)
    with pytest.raises(DpconvError):
        s.split(1.5)


def test_type_map_order_and_missing_names() -> None:
    s = water_like(2)
    s.apply_type_map(["H", "C", "O"])
    assert s.get_atom_names() == ["H", "C", "O"]
    assert s.get_atom_numbs() == [4, 0, 2]
    np.testing.assert_array_equal(s.data["atom_types"], [2, 0, 0, 2, 0, 0])
    with pytest.raises(SchemaError, match="lacks atom names"):
        s.apply_type_map(["H", "C"])
    s2 = LabeledSystem(data=water_like(2).data, type_map=["H", "O"])
    assert s2.get_atom_names() == ["H", "O"]


def test_sort_atom_names_and_types() -> None:
    s = water_like(2)
    s.sort_atom_names()
    assert s.get_atom_names() == ["H", "O"]
    order = s.sort_atom_types()
    np.testing.assert_array_equal(s.data["atom_types"], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(s.data["forces"], water_like(2).data["forces"][:, order])
    s.add_atom_names(["C"])
    assert s.get_atom_names() == ["H", "O", "C"]


def test_pick_atom_idx() -> None:
    s = water_like(3)
    p = s.pick_atom_idx([0, 1, 2], nopbc=True)
    assert p.get_natoms() == 3 and p.get_atom_numbs() == [1, 2] and p.nopbc
    np.testing.assert_array_equal(p.data["forces"], s.data["forces"][:, :3])
    with pytest.raises(IndexError):
        s.pick_atom_idx([10])


def test_apply_pbc_wraps_into_cell() -> None:
    s = water_like(3, labeled=False)
    s.data["coords"] += 17.0
    before = s.copy()
    s.apply_pbc()
    frac = np.linalg.solve(s.data["cells"].transpose(0, 2, 1), s.data["coords"].transpose(0, 2, 1))
    assert frac.min() >= 0 and frac.max() < 1
    diff = np.linalg.solve(
        s.data["cells"].transpose(0, 2, 1), (s.data["coords"] - before.data["coords"]).transpose(0, 2, 1)
    )
    np.testing.assert_allclose(diff, np.round(diff), atol=1e-9)


def test_rot_lower_triangular_keeps_geometry() -> None:
    s = water_like(2)
    ref = s.copy()
    s.rot_lower_triangular()
    c = s.data["cells"]
    np.testing.assert_allclose(c[:, 0, 1:], 0, atol=1e-12)
    np.testing.assert_allclose(c[:, 1, 2], 0, atol=1e-12)
    assert (np.diagonal(c, axis1=1, axis2=2) > 0).all()
    d_new = np.linalg.norm(s.data["coords"][:, :, None] - s.data["coords"][:, None], axis=-1)
    d_old = np.linalg.norm(ref.data["coords"][:, :, None] - ref.data["coords"][:, None], axis=-1)
    np.testing.assert_allclose(d_new, d_old, atol=1e-10)
    # F . r and the virial's invariants are unchanged by a rotation
    np.testing.assert_allclose(
        np.einsum("fij,fij->f", s.data["forces"], s.data["coords"]),
        np.einsum("fij,fij->f", ref.data["forces"], ref.data["coords"]),
        atol=1e-9,
    )
    np.testing.assert_allclose(
        np.trace(s.data["virials"], axis1=1, axis2=2), np.trace(ref.data["virials"], axis1=1, axis2=2), atol=1e-12
    )


def test_replicate() -> None:
    s = water_like(2)
    r = s.replicate((2, 1, 3))
    assert r.get_natoms() == 36 and r.get_atom_numbs() == [12, 24]
    np.testing.assert_allclose(r.data["cells"][:, 0], 2 * s.data["cells"][:, 0])
    np.testing.assert_allclose(r.data["energies"], 6 * s.data["energies"])
    assert (np.diff(r.data["atom_types"]) >= 0).all()
    with pytest.raises(DpconvError):
        s.replicate((0, 1, 1))


def test_perturb() -> None:
    s = water_like(2)
    p = s.perturb(3, 0.05, 0.1, seed=0)
    assert type(p) is System and len(p) == 6
    assert not np.allclose(p.data["cells"][0], s.data["cells"][0])
    q = s.perturb(3, 0.05, 0.1, seed=0)
    assert p == q
    const = s.perturb(1, 0.0, 0.2, atom_pert_style="const", seed=1)
    np.testing.assert_allclose(np.linalg.norm(const.data["coords"] - s.data["coords"], axis=-1), 0.2, atol=1e-12)
    with pytest.raises(DpconvError):
        s.perturb(1, 0, 0.1, atom_pert_style="bogus")


def test_as_dict_round_trip_exact_and_monty() -> None:
    from monty.json import MontyDecoder

    s = water_like(3)
    d = s.as_dict()
    back = LabeledSystem.from_dict(json.loads(json.dumps(d)))
    assert back == s
    assert MontyDecoder().decode(s.to_json()) == s


def test_empty_system() -> None:
    s = LabeledSystem()
    assert len(s) == 0 and s.get_natoms() == 0
    s.append(water_like(2))
    assert len(s) == 2


def test_data_and_file_both_rejected() -> None:
    with pytest.raises(DpconvError):
        System("x", data=water_like(1).data)
