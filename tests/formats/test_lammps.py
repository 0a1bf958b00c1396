"""LAMMPS dump and data files: corpus differentials against dpdata, layouts, bad input, writers."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from dpconv import LabeledSystem, System
from dpconv.errors import DpconvError, ParseError
from dpconv.formats.lammps import box
from dpconv.io import iter_blocks
from dpconv.testing import assert_systems_equal
from tests.conftest import fixture_path

dpdata = pytest.importorskip("dpdata")

DUMP_CASES = [
    ("lammps_dump_oh", "conf.dump", {"type_map": ["O", "H"]}),
    ("lammps_dump_type_ids", "conf2.dump", {}),
    ("lammps_dump_unwrap", "conf_unfold.dump", {"type_map": ["O", "H"], "unwrap": True}),
    ("lammps_dump_unwrap", "conf_unfold.dump", {"type_map": ["O", "H"]}),
]

# a 3-atom triclinic frame; atom lines deliberately out of id order
HEAD = """ITEM: TIMESTEP
{step}
ITEM: NUMBER OF ATOMS
3
ITEM: BOX BOUNDS xy xz yz pp pp pp
-0.5 4.2 0.3
0.0 4.4 -0.5
1.0 5.0 0.4
ITEM: ATOMS {cols}
"""


def _write(tmp_path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _frame(step: int, cols: str, rows: list[str]) -> str:
    return HEAD.format(step=step, cols=cols) + "\n".join(rows) + "\n"


# -- corpus against dpdata ------------------------------------------------------------------------
@pytest.mark.parametrize(("case", "fname", "kwargs"), DUMP_CASES)
def test_dump_matches_dpdata(case: str, fname: str, kwargs: dict) -> None:
    path = fixture_path(case, fname)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = System(path, fmt="lammps/dump", **kwargs)
        ref = dpdata.System(path, fmt="lammps/dump", **kwargs)
    assert_systems_equal(ours.data, ref.data)


def test_lmp_matches_dpdata() -> None:
    path = fixture_path("lammps_lmp_oh", "conf.lmp")
    ours = System(path, fmt="lammps/lmp", type_map=["O", "H"])
    ref = dpdata.System(path, fmt="lammps/lmp", type_map=["O", "H"])
    assert_systems_equal(ours.data, ref.data)
    # without type_map: dpdata's data-file names are Type_0, Type_1 (title case, unlike dumps)
    assert System(path, fmt="lammps/lmp").get_atom_names() == ["Type_0", "Type_1"]


def test_dpdata_written_files_read_back(tmp_path) -> None:
    ref = dpdata.System(fixture_path("lammps_dump_oh", "conf.dump"), fmt="lammps/dump", type_map=["O", "H"])
    ref.to("lammps/lmp", str(tmp_path / "d.lmp"))
    ref.to("lammps/dump", str(tmp_path / "d.dump"))
    assert_systems_equal(System(str(tmp_path / "d.lmp"), fmt="lammps/lmp").data, ref.sub_system([0]).data)
    got = System(str(tmp_path / "d.dump"), fmt="lammps/dump", type_map=["O", "H"])
    assert_systems_equal(got.data, ref.sub_system([0]).data)


# -- box conventions ---------------------------------------------------------------------------------
def test_bounds_to_cell_follow_lammps_docs() -> None:
    # LAMMPS: xlo_bound = xlo + min(0, xy, xz, xy+xz), xhi_bound = xhi + max(...), ylo_bound = ylo + min(0, yz) ...
    xlo, xhi, ylo, yhi, zlo, zhi, xy, xz, yz = -0.5, 4.0, 0.2, 3.0, 1.0, 5.0, 0.7, -0.4, 0.3
    bounds = np.array(
        [
            [xlo + min(0, xy, xz, xy + xz), xhi + max(0, xy, xz, xy + xz)],
            [ylo + min(0, yz), yhi + max(0, yz)],
            [zlo, zhi],
        ]
    )
    origin, cell = box.dump_bounds_to_cell(bounds, np.array([xy, xz, yz]))
    np.testing.assert_allclose(origin, [xlo, ylo, zlo])
    np.testing.assert_allclose(cell, [[4.5, 0, 0], [0.7, 2.8, 0], [-0.4, 0.3, 4.0]])
    b2, t2 = box.cell_to_dump_bounds(cell, origin)
    np.testing.assert_allclose(b2, bounds)
    np.testing.assert_allclose(t2, [xy, xz, yz])


def test_lower_triangular_rotation_keeps_geometry() -> None:
    rng = np.random.default_rng(0)
    cell = rng.normal(size=(3, 3)) + 4 * np.eye(3)
    new, q = box.to_lower_triangular(cell)
    assert box.is_lower_triangular(new)
    np.testing.assert_allclose(new, cell @ q, atol=1e-12)
    np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(new, axis=1), np.linalg.norm(cell, axis=1))


# -- dump layouts -------------------------------------------------------------------------------------
def _reference(tmp_path) -> System:
    rows = ["3 2 1.0 1.5 2.5", "1 1 0.5 0.5 1.5", "2 2 2.0 3.0 4.5"]
    return System(_write(tmp_path, "ref.dump", _frame(0, "id type x y z", rows)), fmt="lammps/dump")


def test_dump_sorted_by_id_and_origin_shift(tmp_path) -> None:
    s = _reference(tmp_path)
    assert s.get_atom_names() == ["TYPE_0", "TYPE_1"]
    np.testing.assert_array_equal(s["atom_types"], [0, 1, 1])
    # origin (xlo, ylo, zlo) = (-0.5 - min(0, .3, -.5, -.2), 0 - min(0, .4), 1.0) = (0, 0, 1)
    np.testing.assert_allclose(s["coords"][0], [[0.5, 0.5, 0.5], [2.0, 3.0, 3.5], [1.0, 1.5, 1.5]])
    np.testing.assert_allclose(s["cells"][0], [[4.2 - 0.3, 0, 0], [0.3, 4.0, 0], [-0.5, 0.4, 4.0]])


@pytest.mark.parametrize("order", ["x y z type id", "type id z y x"])
def test_dump_any_column_order(tmp_path, order: str) -> None:
    ref = _reference(tmp_path)
    vals = {1: ("1", "0.5", "0.5", "1.5"), 2: ("2", "2.0", "3.0", "4.5"), 3: ("2", "1.0", "1.5", "2.5")}
    rows = []
    for i in (2, 3, 1):
        t, x, y, z = vals[i]
        d = {"id": str(i), "type": t, "x": x, "y": y, "z": z}
        rows.append(" ".join(d[c] for c in order.split()))
    got = System(_write(tmp_path, "o.dump", _frame(0, order, rows)), fmt="lammps/dump")
    assert_systems_equal(got.data, ref.data)


def test_dump_scaled_columns(tmp_path) -> None:
    ref = _reference(tmp_path)
    inv = np.linalg.inv(ref["cells"][0])
    frac = ref["coords"][0] @ inv
    order = np.array([2, 0, 1])
    rows = [
        f"{i + 1} {t + 1} {f[0]:.17g} {f[1]:.17g} {f[2]:.17g}"
        for i, t, f in zip(order, ref["atom_types"][order], frac[order])
    ]
    for cols in ("id type xs ys zs", "id type xsu ysu zsu"):
        got = System(_write(tmp_path, "s.dump", _frame(0, cols, rows)), fmt="lammps/dump", unwrap=True)
        assert_systems_equal(got.data, ref.data)


def test_dump_unwrap_and_image_flags(tmp_path) -> None:
    ref = _reference(tmp_path)
    rows = ["3 2 1.0 1.5 2.5 1 0 0", "1 1 0.5 0.5 1.5 0 0 -1", "2 2 2.0 3.0 4.5 0 0 0"]
    path = _write(tmp_path, "img.dump", _frame(0, "id type x y z ix iy iz", rows))
    wrapped = System(path, fmt="lammps/dump")
    assert_systems_equal(wrapped.data, ref.data)
    unwrapped = System(path, fmt="lammps/dump", unwrap=True)
    cell = ref["cells"][0]
    np.testing.assert_allclose(unwrapped["coords"][0, 0], ref["coords"][0, 0] - cell[2])
    np.testing.assert_allclose(unwrapped["coords"][0, 2], ref["coords"][0, 2] + cell[0])
    # xu yu zu: unwrap=True keeps them, unwrap=False wraps (with a warning)
    rows_u = ["3 2 4.9 1.7 2.1", "1 1 -3.4 0.5 1.5", "2 2 2.0 3.0 4.5"]
    pu = _write(tmp_path, "u.dump", _frame(0, "id type xu yu zu", rows_u))
    kept = System(pu, fmt="lammps/dump", unwrap=True)
    np.testing.assert_allclose(kept["coords"][0, 0], [-3.4, 0.5, 0.5])
    with pytest.warns(UserWarning, match="unwrapped"):
        w = System(pu, fmt="lammps/dump")
    frac = w["coords"][0] @ np.linalg.inv(w["cells"][0])
    assert (frac >= 0).all() and (frac < 1).all()


def test_dump_element_column_names_types(tmp_path) -> None:
    rows = ["3 2 H 1.0 1.5 2.5", "1 1 O 0.5 0.5 1.5", "2 2 H 2.0 3.0 4.5"]
    s = System(_write(tmp_path, "e.dump", _frame(0, "id type element x y z", rows)), fmt="lammps/dump")
    assert s.get_atom_names() == ["O", "H"]
    assert_systems_equal(s.data, {**_reference(tmp_path).data, "atom_names": ["O", "H"]})
    # with a type_map in another order the System reorders the types by name
    s2 = System(
        _write(tmp_path, "e.dump", _frame(0, "id type element x y z", rows)), fmt="lammps/dump", type_map=["H", "O"]
    )
    np.testing.assert_array_equal(s2["atom_types"], [1, 0, 0])


def test_dump_forces_and_energies(tmp_path) -> None:
    rows = ["2 2 2.0 3.0 4.5 0.1 0.2 0.3 -1.0", "1 1 0.5 0.5 1.5 1 2 3 -2.0", "3 2 1.0 1.5 2.5 4 5 6 -0.5"]
    text = _frame(0, "id type x y z fx fy fz c_pe", rows) + _frame(5, "id type x y z fx fy fz c_pe", rows)
    path = _write(tmp_path, "f.dump", text)
    s = LabeledSystem(path, fmt="lammps/dump", energies=[1.0, 2.0])
    np.testing.assert_allclose(s["energies"], [1.0, 2.0])
    np.testing.assert_allclose(s["forces"][1], [[1, 2, 3], [0.1, 0.2, 0.3], [4, 5, 6]])
    s2 = LabeledSystem(path, fmt="lammps/dump", energy_column="c_pe")
    np.testing.assert_allclose(s2["energies"], [-3.5, -3.5])
    # an unlabeled read drops the forces
    assert "forces" not in System(path, fmt="lammps/dump").data
    # forces without energies cannot make a LabeledSystem
    with pytest.raises(DpconvError, match="energies"):
        LabeledSystem(path, fmt="lammps/dump")
    with pytest.raises(ParseError, match="energy for frame 1"):
        LabeledSystem(path, fmt="lammps/dump", energies=[1.0])


def test_dump_streams_blocks_and_begin_step(tmp_path) -> None:
    rows = ["1 1 0.5 0.5 1.5", "2 2 2.0 3.0 4.5", "3 2 1.0 1.5 2.5"]
    text = "".join(_frame(i, "id type x y z", rows) for i in range(7))
    path = _write(tmp_path, "m.dump", text)
    blocks = list(iter_blocks(path, "lammps/dump", chunk=3))
    assert [len(b["coords"]) for b in blocks] == [3, 3, 1]
    blocks = list(iter_blocks(path, "lammps/dump", begin=1, step=3))
    assert sum(len(b["coords"]) for b in blocks) == 2  # frames 1 and 4
    assert len(System(path, fmt="lammps/dump", begin=2, step=2)) == 3


def test_dump_time_items_between_frames(tmp_path) -> None:
    rows = ["1 1 0.5 0.5 1.5", "2 2 2.0 3.0 4.5", "3 2 1.0 1.5 2.5"]
    text = "ITEM: UNITS\nmetal\nITEM: TIME\n0\n" + _frame(0, "id type x y z", rows)
    text += "ITEM: TIME\n0.001\n" + _frame(1, "id type x y z", rows)
    assert len(System(_write(tmp_path, "t.dump", text), fmt="lammps/dump")) == 2


def test_dump_nonperiodic_boundaries_not_wrapped(tmp_path) -> None:
    text = _frame(0, "id type x y z", ["1 1 9.5 0.5 1.5", "2 2 2.0 3.0 4.5", "3 2 1.0 1.5 2.5"])
    text = text.replace("pp pp pp", "ff ff ff")
    s = System(_write(tmp_path, "n.dump", text), fmt="lammps/dump")
    assert s.nopbc
    np.testing.assert_allclose(s["coords"][0, 0], [9.5, 0.5, 0.5])


# -- bad input ----------------------------------------------------------------------------------------
def test_dump_bad_inputs(tmp_path) -> None:
    for name, content in [
        ("empty.dump", b""),
        ("garbage.dump", bytes(range(256)) * 8),
        ("poscar.dump", b"O H\n1.0\n5 0 0\n0 5 0\n0 0 5\nO H\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n"),
    ]:
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ParseError) as exc:
            System(str(p), fmt="lammps/dump")
        assert exc.value.path == str(p)
        assert exc.value.line == 1


def test_dump_truncated(tmp_path) -> None:
    rows = ["1 1 0.5 0.5 1.5", "2 2 2.0 3.0 4.5", "3 2 1.0 1.5 2.5"]
    full = "".join(_frame(i, "id type x y z", rows) for i in range(3))
    cut = full[: full.rindex("2 2 2.0")]  # last frame cut mid atom block
    with pytest.warns(UserWarning, match="frame 2 is truncated; dropped"):
        s = System(_write(tmp_path, "cut.dump", cut), fmt="lammps/dump")
    assert len(s) == 2
    cut_head = full[: full.rindex("ITEM: BOX")]  # last frame cut in its header
    with pytest.warns(UserWarning, match="frame 2 is truncated"):
        assert len(System(_write(tmp_path, "cut2.dump", cut_head), fmt="lammps/dump")) == 2
    one = _frame(0, "id type x y z", rows)
    with pytest.raises(ParseError) as exc:
        System(_write(tmp_path, "one.dump", one[: one.rindex("3 2")]), fmt="lammps/dump")
    assert exc.value.frame == 0
    # a broken frame in the middle is an error naming it
    mid = full.replace("2 2 2.0 3.0 4.5\n", "2 2 2.0 3.0\n", 2).replace("2 2 2.0 3.0\n", "2 2 2.0 3.0 4.5\n", 1)
    with pytest.raises(ParseError) as exc:
        System(_write(tmp_path, "mid.dump", mid), fmt="lammps/dump")
    assert exc.value.frame == 1 and exc.value.line == 13  # the TIMESTEP line of frame 1


def test_dump_atoms_must_not_change(tmp_path) -> None:
    rows = ["1 1 0.5 0.5 1.5", "2 2 2.0 3.0 4.5", "3 2 1.0 1.5 2.5"]
    swapped = ["1 2 0.5 0.5 1.5", "2 1 2.0 3.0 4.5", "3 2 1.0 1.5 2.5"]
    text = _frame(0, "id type x y z", rows) + _frame(1, "id type x y z", swapped)
    with pytest.raises(ParseError, match="same type") as exc:
        System(_write(tmp_path, "sw.dump", text), fmt="lammps/dump")
    assert exc.value.frame == 1
    with pytest.raises(ParseError, match="type_map of at least 2"):
        System(_write(tmp_path, "tm.dump", _frame(0, "id type x y z", rows)), fmt="lammps/dump", type_map=["O"])


# -- writers --------------------------------------------------------------------------------------------
def _random_labeled(n: int = 7, nframes: int = 3, seed: int = 0) -> LabeledSystem:
    rng = np.random.default_rng(seed)
    cells = np.array([np.diag([5.0, 6.0, 7.0]) + rng.normal(scale=0.4, size=(3, 3)) for _ in range(nframes)])
    frac = rng.uniform(size=(nframes, n, 3))
    types = rng.integers(0, 2, n)
    types[:2] = [0, 1]
    return LabeledSystem(
        data={
            "atom_names": ["O", "H"],
            "atom_numbs": np.bincount(types, minlength=2),
            "atom_types": types,
            "cells": cells,
            "coords": np.einsum("fni,fij->fnj", frac, cells),
            "energies": rng.normal(size=nframes),
            "forces": rng.normal(size=(nframes, n, 3)),
        }
    )


def _rotated_equal(a: System, b: System, atol: float = 1e-9) -> None:
    """Same structures up to a rotation per frame (compare cell-frame quantities)."""
    for i in range(len(a)):
        fa = a["coords"][i] @ np.linalg.inv(a["cells"][i])
        fb = b["coords"][i] @ np.linalg.inv(b["cells"][i])
        np.testing.assert_allclose(fa, fb, atol=atol)
        np.testing.assert_allclose(a["cells"][i] @ a["cells"][i].T, b["cells"][i] @ b["cells"][i].T, atol=atol)


def test_dump_writer_round_trip(tmp_path) -> None:
    s = _random_labeled()
    s.rot_lower_triangular()
    s.to("lammps/dump", str(tmp_path / "w.dump"))
    back = LabeledSystem(
        str(tmp_path / "w.dump"), fmt="lammps/dump", type_map=["O", "H"], energies=s["energies"], unwrap=True
    )
    assert_systems_equal(back.data, s.data, atol=1e-9)
    # a general cell is rotated (with a warning); geometry and forces in the cell frame are kept
    g = _random_labeled(seed=1)
    with pytest.warns(UserWarning, match="not lower triangular"):
        g.to("lammps/dump", str(tmp_path / "g.dump"))
    gb = System(str(tmp_path / "g.dump"), fmt="lammps/dump", type_map=["O", "H"], unwrap=True)
    _rotated_equal(gb, g)


def test_dump_writer_type_map(tmp_path) -> None:
    s = _random_labeled()
    s.rot_lower_triangular()
    s.to("lammps/dump", str(tmp_path / "w.dump"), type_map=["H", "X", "O"])
    text = (tmp_path / "w.dump").read_text().splitlines()
    atoms = text[text.index("ITEM: ATOMS id type x y z fx fy fz") + 1]
    assert atoms.split()[1] == "3"  # atom 1 is O -> type 3 of the type_map
    back = System(str(tmp_path / "w.dump"), fmt="lammps/dump", type_map=["H", "X", "O"], unwrap=True)
    back.apply_type_map(["O", "H", "X"])
    assert_systems_equal(
        back.data,
        {**System(data=s.data).data, "atom_names": ["O", "H", "X"], "atom_numbs": [*s["atom_numbs"], 0]},
        labels=False,
        atol=1e-9,
    )


def test_lmp_writer_round_trip(tmp_path) -> None:
    s = System(data=_random_labeled(seed=2).sub_system([0]).data)
    with pytest.warns(UserWarning, match="not lower triangular"):
        s.to("lammps/lmp", str(tmp_path / "conf.lmp"))
    text = (tmp_path / "conf.lmp").read_text()
    for needle in (
        "7 atoms",
        "2 atom types",
        "xlo xhi",
        "ylo yhi",
        "zlo zhi",
        "xy xz yz",
        "Atoms # atomic",
        "1 15.9994 # O",
    ):
        assert needle in text
    back = System(str(tmp_path / "conf.lmp"), fmt="lammps/lmp")
    assert back.get_atom_names() == ["O", "H"]  # from the Masses comments
    _rotated_equal(back, s)
    # dpdata reads it the same way
    ref = dpdata.System(str(tmp_path / "conf.lmp"), fmt="lammps/lmp", type_map=["O", "H"])
    assert_systems_equal(back.data, ref.data)


LMP_FULL = """LAMMPS data file via write_data, version 29 Sep 2021, timestep = 0

3 atoms
2 atom types

-1.0 4.0 xlo xhi
0.0 5.0 ylo yhi
2.0 8.0 zlo zhi

Masses

1 15.999
2 1.008

Atoms # full

3 1 2 0.41 1.0 1.0 3.0 0 0 0
1 1 1 -0.82 0.0 0.0 2.0 0 0 0
2 1 2 0.41 0.5 0.5 2.5 1 0 0

Velocities

1 0 0 0
2 0 0 0
3 0 0 0
"""


def test_lmp_full_style_unsorted_ids(tmp_path) -> None:
    s = System(_write(tmp_path, "full.data", LMP_FULL), fmt="lammps/lmp", type_map=["O", "H"])
    assert s.get_atom_names() == ["O", "H"]
    np.testing.assert_array_equal(s["atom_types"], [0, 1, 1])
    np.testing.assert_allclose(s["coords"][0], [[1.0, 0.0, 0.0], [1.5, 0.5, 0.5], [2.0, 1.0, 1.0]])
    np.testing.assert_allclose(s["cells"][0], np.diag([5.0, 5.0, 6.0]))
    # the style is found from the column count too, and charge style works
    nostyle = LMP_FULL.replace("Atoms # full", "Atoms")
    assert_systems_equal(
        System(_write(tmp_path, "n.data", nostyle), fmt="lammps/lmp", type_map=["O", "H"]).data, s.data
    )
    charge = LMP_FULL.replace("Atoms # full", "Atoms # charge")
    for a, b in (("3 1 2 0.41", "3 2 0.41"), ("1 1 1 -0.82", "1 1 -0.82"), ("2 1 2 0.41", "2 2 0.41")):
        charge = charge.replace(a, b)
    assert_systems_equal(System(_write(tmp_path, "c.data", charge), fmt="lammps/lmp", type_map=["O", "H"]).data, s.data)
    labeled = LMP_FULL.replace("1 15.999\n2 1.008", "1 15.999 # O\n2 1.008 # H")
    assert System(_write(tmp_path, "l.data", labeled), fmt="lammps/lmp").get_atom_names() == ["O", "H"]


def test_lmp_bad_inputs(tmp_path) -> None:
    for name, content in [
        ("empty.lmp", b""),
        ("garbage.lmp", bytes(range(256)) * 4),
        ("dump.lmp", _frame(0, "id type x y z", ["1 1 0 0 0", "2 1 1 1 1", "3 1 2 2 2"]).encode()),
        ("short.lmp", LMP_FULL.replace("2 1 2 0.41 0.5 0.5 2.5 1 0 0\n", "").encode()),
    ]:
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(ParseError) as exc:
            System(str(p), fmt="lammps/lmp")
        assert exc.value.path == str(p)


# -- real LAMMPS ------------------------------------------------------------------------------------------
LMP_INPUT = """units metal
boundary p p p
atom_style atomic
box tilt large
read_data conf.lmp
mass * 1.0
pair_style zero 1.0
pair_coeff * *
dump 1 all custom 1 out.dump id type x y z
dump_modify 1 sort id format float %.15g
run 0
"""


@pytest.mark.realcode
def test_written_data_file_loads_in_lammps(tmp_path) -> None:
    exe = next((shutil.which(n) for n in ("lmp", "lmp_serial", "lmp_stable", "lmp_mpi") if shutil.which(n)), None)
    if exe is None:
        pytest.skip("LAMMPS (lmp) is not installed")
    s = System(data=_random_labeled(n=20, seed=3).sub_system([0]).data)
    with pytest.warns(UserWarning, match="not lower triangular"):
        s.to("lammps/lmp", str(tmp_path / "conf.lmp"))
    (tmp_path / "in.test").write_text(LMP_INPUT)
    proc = subprocess.run(
        [exe, "-in", "in.test", "-log", "none", "-screen", "none"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    mine = System(str(tmp_path / "conf.lmp"), fmt="lammps/lmp")
    dumped = System(str(tmp_path / "out.dump"), fmt="lammps/dump", type_map=["O", "H"])
    np.testing.assert_allclose(dumped["cells"], mine["cells"], atol=1e-9)
    mine.apply_pbc()
    # LAMMPS wraps atoms into the box; compare fractional coordinates modulo 1
    d = (dumped["coords"][0] - mine["coords"][0]) @ np.linalg.inv(mine["cells"][0])
    np.testing.assert_allclose(d - np.round(d), 0.0, atol=1e-9)
    assert os.path.getsize(tmp_path / "out.dump") > 0
