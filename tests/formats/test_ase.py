"""ase/structure: System <-> ase.Atoms both ways, files through ase.io, stress/virial sign, dpdata."""

from __future__ import annotations

import sys

import numpy as np
import pytest

ase = pytest.importorskip("ase")

from ase import Atoms  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402

from dpconv import io  # noqa: E402
from dpconv.errors import DpconvError, ParseError  # noqa: E402
from dpconv.formats.ase.structure import from_ase_atoms, to_ase_atoms  # noqa: E402
from dpconv.system import LabeledSystem, System  # noqa: E402
from dpconv.testing import assert_systems_equal, load_expected  # noqa: E402
from tests.conftest import fixture_path  # noqa: E402

CELL = np.array([[5.0, 0.0, 0.0], [0.7, 6.0, 0.0], [0.3, -0.4, 7.0]])


def _labeled(nframes: int = 3, seed: int = 0, virials: bool = True) -> LabeledSystem:
    rng = np.random.default_rng(seed)
    data = {
        "atom_names": ["O", "H"],
        "atom_numbs": [2, 4],
        "atom_types": np.array([0, 1, 1, 0, 1, 1]),
        "cells": np.stack([CELL * (1 + 0.01 * i) for i in range(nframes)]),
        "coords": rng.uniform(0, 5, (nframes, 6, 3)),
        "energies": rng.normal(-30, 1, nframes),
        "forces": rng.normal(0, 1, (nframes, 6, 3)),
    }
    if virials:
        v = rng.normal(0, 1, (nframes, 3, 3))
        data["virials"] = v + v.transpose(0, 2, 1)
    return LabeledSystem(data=data)


# -- Atoms <-> System ---------------------------------------------------------------------------
def test_system_round_trip():
    s = System(data={k: v for k, v in _labeled().data.items() if k not in ("energies", "forces", "virials")})
    atoms = to_ase_atoms(s)
    assert len(atoms) == 3 and all(a.calc is None for a in atoms)
    assert atoms[0].get_chemical_symbols() == ["O", "H", "H", "O", "H", "H"]
    assert atoms[0].pbc.all()
    back = from_ase_atoms(atoms)
    assert type(back) is System
    assert_systems_equal(back.data, s.data, atol=1e-12)


def test_labeled_round_trip_with_virials():
    s = _labeled()
    atoms = to_ase_atoms(s)
    assert atoms[1].get_potential_energy() == pytest.approx(s.data["energies"][1])
    back = from_ase_atoms(atoms)
    assert type(back) is LabeledSystem
    assert_systems_equal(back.data, s.data, atol=1e-10)


def test_labeled_round_trip_without_virials_and_unlabeled_choice():
    s = _labeled(virials=False)
    back = from_ase_atoms(to_ase_atoms(s))
    assert "virials" not in back.data
    assert_systems_equal(back.data, s.data, atol=1e-12)
    assert type(from_ase_atoms(to_ase_atoms(s), labeled=False)) is System


def test_nopbc_molecule():
    from ase.build import molecule

    ch4 = molecule("CH4")
    assert not ch4.pbc.any()
    s = from_ase_atoms(ch4)
    assert s.nopbc and s.data["atom_names"] == ["C", "H"]
    np.testing.assert_allclose(s.data["coords"][0], ch4.positions)
    again = to_ase_atoms(s)[0]
    assert not again.pbc.any()
    np.testing.assert_allclose(again.positions, ch4.positions)


def test_type_map_and_single_atoms():
    a = Atoms("H2O", positions=[[0, 0, 0], [1, 0, 0], [0, 1, 0]], cell=np.eye(3) * 4, pbc=True)
    s = from_ase_atoms(a, type_map=["O", "H", "C"])
    assert s.data["atom_names"] == ["O", "H", "C"]
    np.testing.assert_array_equal(s.data["atom_types"], [1, 1, 0])
    np.testing.assert_array_equal(s.data["atom_numbs"], [1, 2, 0])


# -- the stress / virial sign -------------------------------------------------------------------
def test_virial_is_minus_stress_times_volume_and_minus_strain_derivative():
    from ase.build import bulk
    from ase.calculators.emt import EMT

    cu = bulk("Cu", "fcc", a=3.45, cubic=True)  # compressed (equilibrium about 3.59 Å)
    cu.rattle(0.05, seed=1)
    cu.calc = EMT()
    s = from_ase_atoms(cu)
    assert type(s) is LabeledSystem
    virial = s.data["virials"][0]
    np.testing.assert_allclose(virial, -cu.get_stress(voigt=False) * cu.get_volume(), atol=1e-12)
    assert np.trace(virial) > 0  # compressed: positive pressure, positive virial (as VASP's kB x V)
    # W_ab = -dE/d(eps_ab) under the symmetric strain cell -> cell (1 + eps)
    cell0, pos0 = cu.cell.array.copy(), cu.positions.copy()
    h = 1e-5
    for a_, b_ in ((0, 0), (1, 2)):
        es = []
        for sgn in (1, -1):
            eps = np.zeros((3, 3))
            eps[a_, b_] += sgn * h / 2
            eps[b_, a_] += sgn * h / 2
            x = cu.copy()
            x.calc = EMT()
            x.set_cell(cell0 @ (np.eye(3) + eps), scale_atoms=False)
            x.positions = pos0 @ (np.eye(3) + eps)
            es.append(x.get_potential_energy())
        deriv = (es[0] - es[1]) / (2 * h)
        np.testing.assert_allclose(virial[a_, b_], -deriv, rtol=1e-4, atol=1e-6)


def test_virial_from_info_and_free_energy_preferred():
    a = Atoms("H2", positions=[[0, 0, 0], [0.7, 0, 0]], cell=np.eye(3) * 5, pbc=True)
    a.calc = SinglePointCalculator(a, energy=-1.0, free_energy=-1.5, forces=np.zeros((2, 3)))
    a.info["virial"] = np.arange(9.0).reshape(3, 3)
    s = from_ase_atoms(a)
    assert s.data["energies"][0] == -1.5
    np.testing.assert_array_equal(s.data["virials"][0], np.arange(9.0).reshape(3, 3))


def test_vasp_outcar_through_ase_matches_our_reader():
    path = fixture_path("vasp_outcar_h2o_md", "OUTCAR.h2o.md")
    s = io.read(path, fmt="ase/structure", ase_fmt="vasp-out")
    assert type(s) is LabeledSystem
    s.rot_lower_triangular()  # the expected data (dpdata) are rotated; ASE keeps VASP's cell
    assert_systems_equal(s.data, load_expected(fixture_path("vasp_outcar_h2o_md", "expected.npz")), atol=1e-6)


# -- files through ase.io -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["out.extxyz", "out.traj"])
def test_file_round_trip(tmp_path, name):
    s = _labeled()
    out = str(tmp_path / name)
    s.to("ase/structure", out)
    back = io.read(out, fmt="ase/structure")
    assert type(back) is LabeledSystem
    assert_systems_equal(back.data, s.data, atol=1e-8)


def test_streaming_blocks_and_ase_kwargs(tmp_path):
    s = _labeled(nframes=5)
    out = str(tmp_path / "x.extxyz")
    s.to("ase/structure", out)
    from dpconv.formats.ase import structure

    blocks = list(structure.read(out, chunk=2))
    assert [len(b["coords"]) for b in blocks] == [2, 2, 1]
    last = io.read(out, fmt="ase/structure", index="-1")
    assert_systems_equal(last.data, s.sub_system([4]).data, atol=1e-8)


def test_unlabeled_file_and_explicit_format(tmp_path):
    s = System(data={k: v for k, v in _labeled(1).data.items() if k not in ("energies", "forces", "virials")})
    out = str(tmp_path / "POSCAR")
    s.to("ase/structure", out, ase_fmt="vasp")
    back = io.read(out, fmt="ase/structure", ase_fmt="vasp")
    assert type(back) is System
    assert_systems_equal(back.data, s.data, atol=1e-6)  # ASE keeps the atom order (O H H O H H)


def test_single_frame_format_rejects_many_frames(tmp_path):
    with pytest.raises(DpconvError, match="one structure"):
        _labeled(2).to("ase/structure", str(tmp_path / "POSCAR"), ase_fmt="vasp")


def test_unlabeled_frames_among_labeled_are_dropped(tmp_path):
    atoms = to_ase_atoms(_labeled(3, virials=False))
    atoms[1].calc = None
    with pytest.warns(UserWarning, match="without energy or forces dropped: 1"):
        s = from_ase_atoms(atoms)
    assert s.get_nframes() == 2


# -- bad input ------------------------------------------------------------------------------------
def test_empty_file(tmp_path):
    p = tmp_path / "e.xyz"
    p.write_text("")
    with pytest.raises(ParseError) as e:
        io.read(str(p), fmt="ase/structure")
    assert e.value.path == str(p)


def test_garbage_bytes(tmp_path):
    p = tmp_path / "g.xyz"
    p.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(ParseError) as e:
        io.read(str(p), fmt="ase/structure")
    assert e.value.path == str(p)


def test_frames_of_other_atoms(tmp_path):
    import ase.io

    p = str(tmp_path / "m.extxyz")
    ase.io.write(p, [Atoms("H2", positions=np.zeros((2, 3))), Atoms("H3", positions=np.zeros((3, 3)))])
    with pytest.raises(ParseError) as e:
        io.read(p, fmt="ase/structure")
    assert e.value.frame == 1


def test_clear_error_without_ase(monkeypatch):
    monkeypatch.setitem(sys.modules, "ase", None)
    with pytest.raises(DpconvError, match="pip install ase"):
        to_ase_atoms(_labeled(1))


# -- dpdata differential --------------------------------------------------------------------------
def test_same_as_dpdata_both_ways():
    dpdata = pytest.importorskip("dpdata")
    s = _labeled()
    ref_data = {**s.data, "atom_numbs": list(s.data["atom_numbs"]), "orig": np.zeros(3)}
    ref_atoms = dpdata.LabeledSystem(data=ref_data).to("ase/structure")
    ours = to_ase_atoms(s)
    for r, o in zip(ref_atoms, ours):
        np.testing.assert_allclose(o.positions, r.positions)
        np.testing.assert_allclose(o.cell.array, r.cell.array)
        np.testing.assert_allclose(o.get_stress(), r.get_stress(), atol=1e-12)
        np.testing.assert_allclose(o.get_forces(), r.get_forces())
    for r, o in zip(ref_atoms, ours):
        ref = dpdata.LabeledSystem(r, fmt="ase/structure")
        assert_systems_equal(from_ase_atoms(o).data, ref.data, atol=1e-10)


def test_dpdata_reads_our_extxyz(tmp_path):
    dpdata = pytest.importorskip("dpdata")
    s = _labeled()
    out = str(tmp_path / "o.extxyz")
    s.to("ase/structure", out)
    ref = dpdata.MultiSystems.from_file(out, fmt="ase/structure")
    assert len(ref) == 1
    s.apply_type_map(["H", "O"])  # dpdata's MultiSystems sorts the names
    assert_systems_equal(ref[0].data, s.data, atol=1e-8)


def test_format_is_registered_without_importing_ase():
    import subprocess

    code = (
        "import sys, dpconv\n"
        "from dpconv import registry\n"
        "info = registry.get_format('ase/structure')\n"
        "assert info.reads == 'both' and info.writes\n"
        "assert 'ase' not in sys.modules, 'ase imported at registration'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
