"""DeePMD formats: corpus data, bit-exact round trips, layout details, errors, DeePMD-kit reading."""

from __future__ import annotations

import numpy as np
import pytest

import dpconv
from dpconv import LabeledSystem, MultiSystems, System
from dpconv.errors import ParseError
from tests.conftest import fixture_path
from tests.helpers import methane, water_like


def test_water_fixture_float32_sets_concatenated() -> None:
    s = LabeledSystem(fixture_path("water_deepmd", "data_1"), fmt="deepmd/npy")
    assert len(s) == 160 and s.get_natoms() == 192
    assert s.data["coords"].dtype == np.float64
    assert not s.has_virial()
    raw = np.load(fixture_path("water_deepmd", "data_1", "set.001", "coord.npy"), allow_pickle=False)
    np.testing.assert_array_equal(s.data["coords"][80:].reshape(80, -1), raw.astype(np.float64))


def test_all_water_systems_read() -> None:
    for i in range(4):
        s = LabeledSystem(fixture_path("water_deepmd", f"data_{i}"), fmt="deepmd/npy")
        assert s.get_atom_names() == ["O", "H"] and s.get_atom_numbs() == [64, 128]


def test_round_trip_npy_raw_hdf5_npy_bit_exact(tmp_path) -> None:
    s = water_like(7)
    s.to("deepmd/npy", tmp_path / "a", set_size=3)
    a = LabeledSystem(tmp_path / "a", fmt="deepmd/npy")
    a.to("deepmd/raw", tmp_path / "b")
    b = LabeledSystem(tmp_path / "b", fmt="deepmd/raw")
    b.to("deepmd/hdf5", tmp_path / "c.hdf5")
    c = LabeledSystem(tmp_path / "c.hdf5", fmt="deepmd/hdf5")
    c.to("deepmd/npy", tmp_path / "d", set_size=3)
    d = LabeledSystem(tmp_path / "d", fmt="deepmd/npy")
    for x in (a, b, c, d):
        assert x == s  # np.array_equal on every array: bit-exact
    for name in ("box", "coord", "energy", "force", "virial"):
        np.testing.assert_array_equal(
            np.load(tmp_path / "a" / "set.000" / f"{name}.npy"), np.load(tmp_path / "d" / "set.000" / f"{name}.npy")
        )


def test_npy_layout(tmp_path) -> None:
    s = water_like(5, virials=False)
    s.to_deepmd_npy(tmp_path / "w", set_size=2)
    root = tmp_path / "w"
    assert sorted(p.name for p in root.iterdir()) == ["set.000", "set.001", "set.002", "type.raw", "type_map.raw"]
    assert (root / "type.raw").read_text().split() == ["0", "1", "1", "0", "1", "1"]
    assert (root / "type_map.raw").read_text() == "O\nH\n"
    assert sorted(p.name for p in (root / "set.000").iterdir()) == ["box.npy", "coord.npy", "energy.npy", "force.npy"]
    assert np.load(root / "set.000" / "coord.npy").shape == (2, 18)
    assert np.load(root / "set.002" / "energy.npy").shape == (1, 1)


def test_nopbc_marker(tmp_path) -> None:
    data = dict(methane(2).data)
    data["nopbc"] = True
    s = LabeledSystem(data=data)
    for fmt, path in (("deepmd/npy", "n"), ("deepmd/raw", "r"), ("deepmd/hdf5", "h.h5")):
        s.to(fmt, tmp_path / path)
        back = LabeledSystem(tmp_path / path, fmt=fmt)
        assert back.nopbc and back == s
    assert (tmp_path / "n" / "nopbc").is_file()


def test_raw_without_type_map_names() -> None:
    s = LabeledSystem(fixture_path("deepmd_raw_h2o_md", "deepmd.h2o.md"), fmt="deepmd/raw")
    assert s.get_atom_names() == ["Type_0", "Type_1"]
    t = LabeledSystem(fixture_path("deepmd_raw_h2o_md", "deepmd.h2o.md"), fmt="deepmd/raw", type_map=["O", "H"])
    assert t.get_atom_names() == ["O", "H"]


def test_hdf5_many_systems(tmp_path) -> None:
    ms = MultiSystems(water_like(3), methane(2))
    ms.to_deepmd_hdf5(tmp_path / "all.hdf5")
    back = MultiSystems.from_file(tmp_path / "all.hdf5", fmt="deepmd/hdf5")
    assert back.get_nframes() == 5 and len(back) == 2
    with pytest.raises(ParseError, match="MultiSystems.from_file"):
        LabeledSystem(tmp_path / "all.hdf5", fmt="deepmd/hdf5")


def test_mixed_round_trip(tmp_path) -> None:
    w = water_like(3)
    swapped = w.copy()  # same atom count, different composition
    swapped.data["atom_types"] = np.array([0, 0, 1, 0, 1, 1])
    swapped.data["atom_numbs"] = np.array([3, 3])
    ms = MultiSystems(w, LabeledSystem(data=swapped.data), methane(2))
    ms.to_deepmd_npy_mixed(tmp_path / "mixed")
    assert sorted(p.name for p in (tmp_path / "mixed").iterdir()) == ["5", "6"]
    six = tmp_path / "mixed" / "6"
    assert (six / "type.raw").read_text().split() == ["0"] * 6
    assert np.load(six / "set.000" / "real_atom_types.npy").shape == (6, 6)
    back = MultiSystems.from_file(tmp_path / "mixed", fmt="deepmd/npy/mixed")
    assert back.get_nframes() == 8 and len(back) == 3
    for s in ms:
        match = [t for t in back if np.array_equal(t.data["atom_types"], s.data["atom_types"])]
        assert len(match) == 1
        np.testing.assert_array_equal(match[0].data["forces"], s.data["forces"])


def test_bad_folder_errors(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParseError, match="type.raw"):
        System(tmp_path / "empty", fmt="deepmd/npy")
    water_like(2).to_deepmd_npy(tmp_path / "w")
    np.save(tmp_path / "w" / "set.000" / "coord.npy", np.zeros((2, 7)))
    with pytest.raises(ParseError, match="coord"):
        LabeledSystem(tmp_path / "w", fmt="deepmd/npy")
    (tmp_path / "w" / "set.000" / "coord.npy").write_bytes(b"\x00garbage")
    with pytest.raises(ParseError, match=r"coord\.npy"):
        LabeledSystem(tmp_path / "w", fmt="deepmd/npy")


def test_pickled_npy_refused(tmp_path) -> None:
    water_like(2).to_deepmd_npy(tmp_path / "w")
    np.save(tmp_path / "w" / "set.000" / "energy.npy", np.array([{"evil": 1}, 2], dtype=object), allow_pickle=True)
    with pytest.raises(ParseError):
        LabeledSystem(tmp_path / "w", fmt="deepmd/npy")


def test_auto_detection(tmp_path) -> None:
    water_like(2).to_deepmd_npy(tmp_path / "n")
    water_like(2).to_deepmd_raw(tmp_path / "r")
    water_like(2).to_deepmd_hdf5(tmp_path / "h.hdf5")
    assert len(dpconv.read(tmp_path / "n")) == 2
    assert len(dpconv.read(tmp_path / "r")) == 2
    assert len(dpconv.read(tmp_path / "h.hdf5")) == 2


@pytest.mark.deepmd
def test_deepmd_kit_reads_our_output(tmp_path) -> None:
    pytest.importorskip("deepmd.utils.data")
    from deepmd.utils.data_system import DeepmdDataSystem

    s = water_like(6)
    s.to_deepmd_npy(tmp_path / "npy", set_size=4)
    s.to_deepmd_hdf5(tmp_path / "one.hdf5")
    MultiSystems(s, methane(3)).to_deepmd_hdf5(tmp_path / "many.hdf5")
    for path in (str(tmp_path / "npy"), f"{tmp_path / 'one.hdf5'}#/", f"{tmp_path / 'many.hdf5'}#/O2H4C0"):
        ds = DeepmdDataSystem([path], 2, 1, 6.0, type_map=["O", "H", "C"])
        ds.add("energy", 1, atomic=False, must=True, high_prec=True)
        ds.add("force", 3, atomic=True, must=True, high_prec=False)
        ds.add("virial", 9, atomic=False, must=False, high_prec=False)
        batch = ds.get_batch()
        assert batch["coord"].shape[1] == 18
        assert batch["find_virial"] == 1.0
        got = np.sort(np.concatenate([ds.get_batch()["energy"].ravel() for _ in range(12)]))
        assert np.isin(np.round(got, 10), np.round(s.data["energies"], 10)).all()


@pytest.mark.deepmd
def test_deepmd_kit_reads_our_mixed_output(tmp_path) -> None:
    pytest.importorskip("deepmd.utils.data")
    from deepmd.utils.data import DeepmdData

    w = water_like(4)
    swapped = w.copy()
    swapped.data["atom_types"] = np.array([0, 0, 1, 0, 1, 1])
    swapped.data["atom_numbs"] = np.array([3, 3])
    MultiSystems(w, LabeledSystem(data=swapped.data), methane(3)).to_deepmd_npy_mixed(tmp_path / "mixed")
    d = DeepmdData(str(tmp_path / "mixed" / "6"), type_map=["O", "H", "C"])
    d.add("energy", 1, atomic=False, must=True, high_prec=True)
    d.add("force", 3, atomic=True, must=True, high_prec=False)
    assert d.mixed_type
    batch = d.get_test()
    assert {tuple(t) for t in batch["type"].tolist()} == {(0, 1, 1, 0, 1, 1), (0, 0, 1, 0, 1, 1)}
    expected = np.sort(np.concatenate([w.data["energies"], swapped.data["energies"]]))
    np.testing.assert_allclose(np.sort(batch["energy"].ravel()), expected)
