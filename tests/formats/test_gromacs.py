"""gromacs/gro: reading real GROMACS output, element guessing, writing, bad input, dpdata and gmx checks."""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from dpconv import io, registry
from dpconv.errors import ParseError
from dpconv.formats.gromacs import gro
from dpconv.system import System
from dpconv.testing import assert_systems_equal
from tests.conftest import DATA

GRO = os.path.join(DATA, "gromacs", "water_ions.gro")
TRAJ = os.path.join(DATA, "gromacs", "water_ions_traj.gro")

SMALL = """\
peptide bits and ions
    8
    1ALA      N    1   0.100   0.200   0.300
    1ALA     CA    2   0.150   0.250   0.350
    1ALA    1HB    3   0.110   0.210   0.310
    2LIG    Cl1    4   1.000   1.100   1.200
    3NA      NA    5   0.500   0.500   0.500
    4CL      CL    6   0.600   0.600   0.600
    5SOL     OW    7   0.700   0.700   0.700
    5SOL    HW1    8   0.800   0.800   0.800
   2.00000   2.50000   3.00000
"""


def _write(tmp_path, text: str | bytes, name: str = "x.gro") -> str:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return str(p)


def _text(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _read(path: str, **kw) -> System:
    return io.read(path, fmt="gromacs/gro", **kw)


# -- reading real GROMACS files ---------------------------------------------------------------
def test_reads_gromacs_structure():
    s = _read(GRO)
    assert type(s) is System
    assert s.get_nframes() == 1 and s.get_natoms() == 152
    assert s.data["atom_names"] == ["O", "H", "Na", "Cl"]
    np.testing.assert_array_equal(s.data["atom_numbs"], [50, 100, 1, 1])
    np.testing.assert_array_equal(s.data["atom_types"][:6], [0, 1, 1, 0, 1, 1])
    assert not s.nopbc
    # box line: 1.20000 1.03923 1.20000 0 0 0.6 0 -0 -0 (v1x v2y v3z v1y v1z v2x v2z v3x v3y)
    np.testing.assert_allclose(s.data["cells"][0], [[12.0, 0, 0], [6.0, 10.3923, 0], [0, 0, 12.0]], atol=1e-12)
    # first atom: "    1SOL     OW    1   0.182   0.573   0.059" (nm)
    first = _text(GRO).splitlines()[2]
    np.testing.assert_allclose(s.data["coords"][0, 0], [float(first[20 + 8 * k : 28 + 8 * k]) * 10 for k in range(3)])


def test_reads_trajectory_with_velocities():
    s = _read(TRAJ)
    assert s.get_nframes() == 3 and s.get_natoms() == 152
    lines = _text(TRAJ).splitlines()
    last_frame_first_atom = lines[2 * 155 + 2]
    assert len(last_frame_first_atom.rstrip()) == 68  # positions and velocities
    np.testing.assert_allclose(
        s.data["coords"][2, 0], [float(last_frame_first_atom[20 + 8 * k : 28 + 8 * k]) * 10 for k in range(3)]
    )
    assert not np.allclose(s.data["coords"][0], s.data["coords"][2])


def test_streams_in_blocks_and_selects_frames(monkeypatch):
    monkeypatch.setattr(gro, "READ_CHUNK", 257)  # frames straddle many small reads
    blocks = list(gro.read(TRAJ, chunk=1))
    assert [len(b["coords"]) for b in blocks] == [1, 1, 1]
    whole = _read(TRAJ)
    np.testing.assert_array_equal(np.concatenate([b["coords"] for b in blocks]), whole.data["coords"])
    picked = list(gro.read(TRAJ, begin=1, step=2))
    assert sum(len(b["coords"]) for b in picked) == 1
    np.testing.assert_array_equal(picked[0]["coords"][0], whole.data["coords"][1])


def test_auto_detects_by_extension():
    assert registry.detect(GRO).name == "gromacs/gro"
    assert io.read(GRO).get_natoms() == 152


# -- element names ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("atom", "res", "element"),
    [
        ("OW", "SOL", "O"),
        ("HW1", "SOL", "H"),
        ("HW2", "SOL", "H"),
        ("CA", "ALA", "C"),  # alpha carbon, not calcium
        ("CA", "CA", "Ca"),  # a calcium ion residue
        ("Cl1", "LIG", "Cl"),
        ("CL", "LIG", "C"),  # upper case CL in a molecule: carbon by the first-letter rule
        ("CL", "CL", "Cl"),  # chloride ion residue
        ("NA", "NA", "Na"),
        ("Na", "XXX", "Na"),
        ("1HB", "ALA", "H"),
        ("HO5'", "RNA", "H"),
        ("MW", "SOL", None),  # TIP4P virtual site
        ("", "SOL", None),
    ],
)
def test_element_of(atom, res, element):
    assert gro.element_of(atom, res) == element


def test_types_from_names_override_and_raw(tmp_path):
    p = _write(tmp_path, SMALL)
    s = _read(p)
    assert s.data["atom_names"] == ["N", "C", "H", "Cl", "Na", "O"]
    np.testing.assert_array_equal(s.data["atom_types"], [0, 1, 2, 3, 4, 3, 5, 2])
    np.testing.assert_allclose(s.data["cells"][0], np.diag([20.0, 25.0, 30.0]))
    s = _read(p, names={"CA": "Ca", "N": "X"})
    assert s.data["atom_names"] == ["X", "Ca", "H", "Cl", "Na", "O"]
    s = _read(p, format_atom_name=False)
    assert s.data["atom_names"] == ["N", "CA", "1HB", "Cl1", "NA", "CL", "OW", "HW1"]


def test_unknown_element_is_kept_with_warning(tmp_path):
    text = (
        "tip4p\n    2\n"
        "    1SOL     OW    1   0.100   0.200   0.300\n"
        "    1SOL     MW    2   0.110   0.200   0.300\n"
        "   1.0 1.0 1.0\n"
    )
    with pytest.warns(UserWarning, match="MW"):
        s = _read(_write(tmp_path, text))
    assert s.data["atom_names"] == ["O", "MW"]


# -- layout details ------------------------------------------------------------------------------
def test_touching_wide_fields_and_irregular_lines(tmp_path):
    # %10.5f fields (decimal points 10 apart) that touch; one line with trailing blanks, one CRLF file
    text = (
        "wide\n 3\n"
        "    1MOL      C    1-100.00000-200.00000 300.12345\n"
        "    1MOL      H    2   0.00001   1.00000   2.00000   \n"
        "    1MOL      H    3   1.00000   1.00000   1.00000\n"
        "  5.0 5.0 5.0\n"
    )
    s = _read(_write(tmp_path, text))
    np.testing.assert_allclose(s.data["coords"][0, 0], [-1000.0, -2000.0, 3001.2345])
    np.testing.assert_allclose(s.data["coords"][0, 1], [0.0001, 10.0, 20.0])
    s2 = _read(_write(tmp_path, text.replace("\n", "\r\n"), "crlf.gro"))
    np.testing.assert_allclose(s2.data["coords"], s.data["coords"])


def test_zero_box_is_nopbc_and_no_trailing_newline(tmp_path):
    text = "mol\n1\n    1MOL      O    1   0.100   0.200   0.300\n   0.00000   0.00000   0.00000"
    s = _read(_write(tmp_path, text))
    assert s.nopbc and s.get_nframes() == 1


# -- bad input ------------------------------------------------------------------------------------
def test_empty_file(tmp_path):
    p = _write(tmp_path, "")
    with pytest.raises(ParseError) as e:
        _read(p)
    assert e.value.path == p and e.value.line == 1


def test_garbage_bytes(tmp_path):
    p = _write(tmp_path, bytes(range(256)) * 4)
    with pytest.raises(ParseError) as e:
        _read(p)
    assert e.value.path == p


def test_other_format(tmp_path):
    poscar = "O H\n1.0\n 3 0 0\n 0 3 0\n 0 0 3\n O H\n 1 1\nCartesian\n 0 0 0\n 1 0 0\n"
    p = _write(tmp_path, poscar, "POSCAR.gro")
    with pytest.raises(ParseError) as e:
        _read(p)
    assert e.value.path == p and e.value.line == 2


def test_bad_box_and_bad_coordinates(tmp_path):
    bad_box = SMALL.replace("   2.00000   2.50000   3.00000", "   2.0 2.5")
    with pytest.raises(ParseError, match="box line") as e:
        _read(_write(tmp_path, bad_box))
    assert e.value.line == 11 and e.value.frame == 0
    bad_xyz = SMALL.replace("0.150   0.250", "0.150   abcde")
    with pytest.raises(ParseError) as e:
        _read(_write(tmp_path, bad_xyz, "b.gro"))
    assert e.value.line == 4


def test_truncated_single_frame_raises(tmp_path):
    p = _write(tmp_path, SMALL[: SMALL.index("    2LIG")])
    with pytest.raises(ParseError) as e:
        _read(p)
    assert e.value.path == p and e.value.frame == 0


def test_truncated_last_frame_is_dropped(tmp_path):
    text = _text(TRAJ)
    cut = text[: len(text) - 3000]
    with pytest.warns(UserWarning, match="frame 2 is truncated"):
        s = _read(_write(tmp_path, cut))
    assert s.get_nframes() == 2
    np.testing.assert_array_equal(s.data["coords"], _read(TRAJ).data["coords"][:2])


def test_frames_must_hold_the_same_atoms(tmp_path):
    two = SMALL + SMALL.replace("    8\n", "    7\n").replace("    5SOL    HW1    8   0.800   0.800   0.800\n", "")
    with pytest.raises(ParseError) as e:
        _read(_write(tmp_path, two))
    assert e.value.frame == 1
    renamed = SMALL + SMALL.replace("OW", "OX")
    with pytest.raises(ParseError, match="same residue and atom names") as e:
        _read(_write(tmp_path, renamed, "r.gro"))
    assert e.value.frame == 1 and e.value.line == 11 + 9


# -- writing ------------------------------------------------------------------------------------
def test_round_trip_of_gromacs_files(tmp_path):
    for src in (GRO, TRAJ):
        s = _read(src)
        out = str(tmp_path / os.path.basename(src))
        s.to("gromacs/gro", out)
        back = _read(out)
        assert_systems_equal(back.data, s.data, atol=1e-9)


def test_writer_layout(tmp_path):
    s = _read(_write(tmp_path, SMALL))
    out = str(tmp_path / "o.gro")
    s.to("gromacs/gro", out, resname="ABCDEFG")
    lines = _text(out).splitlines()
    assert lines[1] == "    8"
    assert lines[3] == "    1ABCDE    C    2   0.150   0.250   0.350"
    assert lines[-1] == "   2.00000   2.50000   3.00000"


def test_writer_triclinic_rotation_nopbc_and_precision(tmp_path):
    rng = np.random.default_rng(0)
    cell = np.array([[10.0, 1.0, 0.5], [0.3, 9.0, 0.2], [1.0, 2.0, 11.0]])  # not lower triangular
    data = {
        "atom_names": ["O", "H"],
        "atom_numbs": [1, 2],
        "atom_types": np.array([0, 1, 1]),
        "cells": np.stack([cell, cell]),
        "coords": rng.uniform(0, 10, (2, 3, 3)),
    }
    s = System(data=data)
    out = str(tmp_path / "t.gro")
    with pytest.warns(UserWarning, match="rotated"):
        s.to("gromacs/gro", out, precision=6)
    back = _read(out)
    assert len(_text(out).splitlines()[-1].split()) == 9
    ref = s.copy()
    ref.rot_lower_triangular()
    np.testing.assert_allclose(back.data["cells"], ref.data["cells"], atol=1e-4)  # box written with %10.5f
    np.testing.assert_allclose(back.data["coords"], ref.data["coords"], atol=5e-6)  # 6 decimals in nm
    s.nopbc = True
    out2 = str(tmp_path / "m.gro")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s.to("gromacs/gro", out2)
    back2 = _read(out2)
    assert back2.nopbc and not back2.data["cells"].any()
    np.testing.assert_allclose(back2.data["coords"], s.data["coords"], atol=5e-3 + 1e-12)


def test_writer_rejects_coordinates_that_do_not_fit(tmp_path):
    from dpconv.errors import DpconvError

    data = {
        "atom_names": ["O"],
        "atom_numbs": [1],
        "atom_types": np.array([0]),
        "cells": np.eye(3)[None] * 10,
        "coords": np.array([[[-1.0e4, 0.0, 0.0]]]),
    }
    with pytest.raises(DpconvError, match="do not fit"):
        System(data=data).to("gromacs/gro", str(tmp_path / "big.gro"))


# -- dpdata differential --------------------------------------------------------------------------
@pytest.mark.parametrize("path", [GRO, TRAJ])
def test_same_arrays_as_dpdata(path):
    dpdata = pytest.importorskip("dpdata")
    ref = dpdata.System(path, fmt="gromacs/gro")
    ours = _read(path)
    np.testing.assert_allclose(ours.data["coords"], ref["coords"], atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.data["cells"], ref["cells"], atol=1e-6, rtol=0)
    # dpdata names types by the capitalised letters of the atom name ("Ow", "Hw"), not by element;
    # the partition of atoms into types is the same
    ref_names = [ref["atom_names"][t] for t in ref["atom_types"]]
    our_names = [ours.data["atom_names"][t] for t in ours.data["atom_types"]]
    assert dict(zip(ref_names, our_names)) == {"Ow": "O", "Hw": "H", "Na": "Na", "Cl": "Cl"}


def test_dpdata_reads_our_file(tmp_path):
    dpdata = pytest.importorskip("dpdata")
    s = _read(TRAJ)
    out = str(tmp_path / "o.gro")
    s.to("gromacs/gro", out)
    ref = dpdata.System(out, fmt="gromacs/gro")
    np.testing.assert_allclose(ref["coords"], s.data["coords"], atol=1e-6)
    np.testing.assert_allclose(ref["cells"], s.data["cells"], atol=1e-6)


# -- the real program -----------------------------------------------------------------------------
@pytest.fixture
def realcode(request):
    """Runs of gmx are opt-in: ``-m realcode`` (or ``DPCONV_REALCODE=1``)."""
    if "realcode" not in (request.config.getoption("-m") or "") and not os.environ.get("DPCONV_REALCODE"):
        pytest.skip("runs gmx: opt in with -m realcode (or DPCONV_REALCODE=1)")
    if shutil.which("gmx") is None:
        pytest.skip("gmx (GROMACS) is not installed")


@pytest.mark.realcode
def test_gmx_reads_our_files(tmp_path, realcode):
    s = _read(TRAJ)
    ours = str(tmp_path / "ours.gro")
    s.to("gromacs/gro", ours)
    check = subprocess.run(["gmx", "-quiet", "check", "-f", ours], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "Coords           3" in check.stdout + check.stderr
    out = str(tmp_path / "x.gro")
    edit = subprocess.run(
        ["gmx", "-quiet", "editconf", "-f", ours, "-o", out], capture_output=True, text=True, timeout=120
    )
    assert edit.returncode == 0, edit.stderr
    back = _read(out)  # editconf keeps the first frame
    assert_systems_equal(back.data, s.sub_system([0]).data, atol=1e-9)
    # a rotated, non-orthogonal cell written by us survives gmx too
    data = dict(s.sub_system([0]).data)
    rot = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    data["cells"] = data["cells"] @ rot
    data["coords"] = data["coords"] @ rot
    tilted = str(tmp_path / "tilted.gro")
    with pytest.warns(UserWarning, match="rotated"):
        System(data=data).to("gromacs/gro", tilted)
    edit = subprocess.run(
        ["gmx", "-quiet", "editconf", "-f", tilted, "-o", out], capture_output=True, text=True, timeout=120
    )
    assert edit.returncode == 0, edit.stderr
    np.testing.assert_allclose(_read(out).data["cells"], s.data["cells"][:1], atol=1e-4)


# -- the vectorised number parser ---------------------------------------------------------------
@pytest.mark.parametrize(("fmt", "w"), [("%8.3f", 8), ("%10.5f", 10), ("%12.7f", 12)])
def test_fixed_width_numbers_equal_float(fmt, w):
    rng = np.random.default_rng(1)
    v = np.concatenate([[0.0, -0.0004, 0.0004, 5e-4, -999.9994], rng.uniform(-999, 9999, 5000)])
    txt = [(fmt % x).rjust(w) for x in v]
    fields = np.frombuffer("".join(txt).encode(), np.uint8).reshape(-1, w)
    got = gro._fixed_numbers(fields)
    assert got is not None
    np.testing.assert_array_equal(got, [float(t) for t in txt])


@pytest.mark.parametrize("text", [b"  1 2.000", b" 1-2.000", b"    -.  ", b"  12.00a", b" 1.0e-03"])
def test_fixed_width_numbers_refuse_other_shapes(text):
    assert gro._fixed_numbers(np.frombuffer(text, np.uint8).reshape(1, -1)) is None


def test_short_atom_lines(tmp_path):
    text = "short\n 1\n    1MOL      O    1   0.100   0.200\n 1 1 1\n"
    with pytest.raises(ParseError, match="columns") as e:
        _read(_write(tmp_path, text))
    assert e.value.line == 3
