"""MultiSystems: grouping by formula, shared type map, directory I/O, train/test split."""

from __future__ import annotations

import numpy as np
import pytest

from dpconv import LabeledSystem, MultiSystems
from dpconv.errors import DpconvError, SchemaError
from tests.helpers import methane, water_like


def test_groups_by_formula_and_joins() -> None:
    ms = MultiSystems(water_like(2, 0), methane(3), water_like(4, 1))
    assert len(ms) == 2
    assert ms.get_nframes() == 9
    assert ms.atom_names == ["O", "H", "C"]
    w = ms["O2H4C0"]
    assert len(w) == 6 and w.get_atom_names() == ["O", "H", "C"]
    assert ms[1].get_atom_numbs() == [0, 4, 1]
    assert [len(s) for s in ms] == [6, 3]


def test_fixed_type_map() -> None:
    ms = MultiSystems(water_like(2), type_map=["H", "O"])
    assert ms[0].get_atom_names() == ["H", "O"]
    with pytest.raises(SchemaError):
        ms.append(methane(1))


def test_directory_round_trip(tmp_path) -> None:
    ms = MultiSystems(water_like(2), methane(3))
    ms.to_deepmd_npy(tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["O0H4C1", "O2H4C0"]
    back = MultiSystems.from_file(tmp_path / "out", fmt="deepmd/npy")
    assert back.get_nframes() == 5
    np.testing.assert_array_equal(back["O0H4C1"].data["forces"], ms["O0H4C1"].data["forces"])


def test_from_dir_glob(tmp_path) -> None:
    water_like(2).to_deepmd_raw(tmp_path / "a" / "sys1")
    water_like(3, 1).to_deepmd_raw(tmp_path / "b" / "sys2")
    ms = MultiSystems.from_dir(tmp_path, "sys*", fmt="deepmd/raw")
    assert len(ms) == 1 and ms.get_nframes() == 5


def test_train_test_split_reproducible() -> None:
    ms = MultiSystems(water_like(10, 0), methane(10))
    tr1, te1, idx1 = ms.train_test_split(0.3, seed=4)
    _, te2, idx2 = ms.train_test_split(0.3, seed=4)
    assert te1.get_nframes() == 6 and tr1.get_nframes() == 14
    for k in idx1:
        np.testing.assert_array_equal(idx1[k], idx2[k])
    assert [s == t for s, t in zip(te1, te2)] == [True] * len(te1)
    _, te3, _ = ms.train_test_split(3, seed=4)
    assert te3.get_nframes() == 3
    with pytest.raises(DpconvError):
        ms.train_test_split(1.5)
    with pytest.raises(DpconvError):
        ms.train_test_split(20)


def test_empty_systems_ignored() -> None:
    ms = MultiSystems(LabeledSystem(), water_like(1))
    assert len(ms) == 1
