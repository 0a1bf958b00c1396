"""Quantum ESPRESSO formats: qe/pw/scf, qe/cp/traj (readers) and qe/pw/input (writer).

Real outputs: the shared corpus (dpdata's files) and our own runs of pw.x/cp.x 6.7
in tests/data/qe/ (see its README). Differential tests compare with dpdata 1.1.0
where dpdata can read the file; where it cannot, or reads it wrongly, the test
documents what dpdata does.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import dpconv
from dpconv import LabeledSystem, System
from dpconv.errors import DpconvError, ParseError
from dpconv.formats.qe import pwinput
from dpconv.formats.qe.pw import rotate_lower_triangular
from dpconv.testing import assert_systems_equal
from dpconv.units import BOHR_TO_ANGSTROM, KBAR_TO_EV_PER_ANGSTROM3, RYDBERG_TO_EV
from tests.conftest import DATA, fixture_path

QE = os.path.join(DATA, "qe")
OWN_PW = ["h2o_scf", "h2o_relax", "ch4_relax", "si_vcrelax", "si_md"]
OWN_FRAMES = {"h2o_scf": 1, "h2o_relax": 6, "ch4_relax": 5, "si_vcrelax": 8, "si_md": 4}


def own(name: str) -> str:
    return os.path.join(QE, name)


def read_pw(path: str, **kw) -> LabeledSystem:
    return LabeledSystem(path, fmt="qe/pw/scf", **kw)


def dpdata_system(path: str, fmt: str):
    dpdata = pytest.importorskip("dpdata")
    return dpdata.LabeledSystem(path, fmt=fmt)


# -- differential tests against dpdata ------------------------------------------------------
@pytest.mark.parametrize(("case", "name"), [("qe_pw_scf_ch4", "01.out"), ("qe_pw_scf_na", "na.out")])
def test_pw_corpus_matches_dpdata(case, name):
    path = fixture_path(case, name)
    assert_systems_equal(read_pw(path).data, dpdata_system(path, "qe/pw/scf").data)


@pytest.mark.parametrize(("case", "prefix"), [("qe_cp_traj_oh_md", "oh-md"), ("qe_cp_traj_si_virial", "si")])
def test_cp_corpus_matches_dpdata(case, prefix):
    path = os.path.join(os.path.dirname(fixture_path(case, prefix + ".in")), prefix)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dpdata warns about ibrav 8 although a .cel file is present
        ref = dpdata_system(path, "qe/cp/traj")
    assert_systems_equal(LabeledSystem(path, fmt="qe/cp/traj").data, ref.data)


def test_own_scf_matches_dpdata():
    path = own("h2o_scf.out")
    assert_systems_equal(read_pw(path).data, dpdata_system(path, "qe/pw/scf").data)


def test_own_cp_matches_dpdata():
    path = own("cp_h2o/h2o")
    s = LabeledSystem(path, fmt="qe/cp/traj")
    assert len(s) == 4 and "virials" in s.data
    assert s.data["atom_names"] == ["O", "H"]
    np.testing.assert_array_equal(s.data["atom_types"], [1, 0, 1])  # cp.x 6.7 keeps the input order
    assert_systems_equal(s.data, dpdata_system(path, "qe/cp/traj").data)


def test_dpdata_reads_one_inconsistent_frame_of_a_relax():
    """dpdata's qe/pw/scf returns ONE frame of a relax: the input geometry and the first
    forces/stress, but the LAST energy. dpconv returns every ionic step."""
    path = own("ch4_relax.out")
    ours = read_pw(path)
    ref = dpdata_system(path, "qe/pw/scf")
    assert len(ours) == OWN_FRAMES["ch4_relax"] and len(ref) == 1
    np.testing.assert_allclose(ref["coords"][0], ours["coords"][0], atol=1e-6)
    np.testing.assert_allclose(ref["forces"][0], ours["forces"][0], atol=1e-6)
    np.testing.assert_allclose(ref["virials"][0], ours["virials"][0], atol=1e-6)
    np.testing.assert_allclose(ref["energies"][0], ours["energies"][-1], atol=1e-6)
    assert abs(ref["energies"][0] - ours["energies"][0]) > 1.0  # dpdata's frame mixes steps


@pytest.mark.parametrize("name", ["h2o_relax.out", "si_vcrelax.out", "si_md.out"])
def test_dpdata_cannot_read_these(name):
    """dpdata needs CELL_PARAMETERS in angstrom or ibrav=1 with 'a'/'celldm(1)' on its own line."""
    pytest.importorskip("dpdata")
    with pytest.raises(Exception):  # noqa: B017 (dpdata raises RuntimeError)
        dpdata_system(own(name), "qe/pw/scf")
    assert len(read_pw(own(name))) == OWN_FRAMES[name[:-4]]


# -- our own pw.x outputs ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", OWN_PW)
def test_own_outputs_frames(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = read_pw(own(name + ".out"))
    assert len(s) == OWN_FRAMES[name]
    assert "virials" in s.data
    out = Path(own(name + ".out")).read_text()
    energies = [float(ln.split("=")[1].split()[0]) for ln in out.splitlines() if ln.startswith("!")]
    np.testing.assert_allclose(s["energies"], np.array(energies) * RYDBERG_TO_EV, rtol=0, atol=1e-9)
    vol = np.abs(np.linalg.det(s["cells"]))
    assert np.all(vol > 1.0)
    # cells are lower triangular by default (dpdata's convention for this format)
    assert np.allclose(s["cells"][:, 0, 1:], 0) and np.allclose(s["cells"][:, 1, 2], 0)


def test_relax_geometry_follows_printed_positions():
    """Frame i>0 takes the ATOMIC_POSITIONS (bohr) printed after step i-1."""
    s = read_pw(own("h2o_relax.out"), lower_triangular=False)
    text = Path(own("h2o_relax.out")).read_text()
    blocks = text.split("ATOMIC_POSITIONS (bohr)\n")[1:]
    first = np.array([ln.split()[1:4] for ln in blocks[0].splitlines()[:3]], float)
    np.testing.assert_allclose(s["coords"][1], first * BOHR_TO_ANGSTROM, atol=1e-9)
    inp = pwinput.read_input(own("h2o_relax.in"))
    _, cell, coords = pwinput.input_structure(inp)
    np.testing.assert_allclose(s["cells"][0], cell, atol=1e-12)
    np.testing.assert_allclose(s["coords"][0], coords, atol=1e-12)
    assert np.allclose(s["cells"], cell)  # fixed cell relax


def test_vc_relax_cells_and_final_scf():
    s = read_pw(own("si_vcrelax.out"), lower_triangular=False)
    alat = 10.7 * BOHR_TO_ANGSTROM
    final = np.array(
        [
            [-0.486742518, -0.000138605, 0.486769944],
            [0.000000000, 0.486631339, 0.486631339],
            [-0.486657171, 0.486685183, -0.000053844],
        ]
    )
    np.testing.assert_allclose(s["cells"][-1], final * alat, atol=1e-9)
    # the final scf header prints the same geometry (alat units, 7 decimals)
    tau = np.array([[-0.0048222, -0.0024130, 0.0024130], [-0.2482625, 0.2408384, 0.2457929]])
    np.testing.assert_allclose(s["coords"][-1], tau * alat, atol=1e-6)
    # frame 0: ibrav=2 cell from the input
    np.testing.assert_allclose(s["cells"][0], np.array([[-1, 0, 1], [0, 1, 1], [-1, 1, 0]]) * alat / 2, atol=1e-12)
    # virial = kbar stress x volume, no sign change; first frame P = -62.79 kbar
    vol = abs(np.linalg.det(s["cells"][0]))
    np.testing.assert_allclose(np.trace(s["virials"][0]) / 3, -62.79 * KBAR_TO_EV_PER_ANGSTROM3 * vol, atol=2e-3)


def test_lower_triangular_is_a_rotation():
    a = read_pw(own("si_vcrelax.out"), lower_triangular=False)
    b = read_pw(own("si_vcrelax.out"))
    for k in ("cells", "coords", "forces"):
        np.testing.assert_allclose(np.linalg.norm(a[k], axis=-1), np.linalg.norm(b[k], axis=-1), atol=1e-10)
    np.testing.assert_allclose(np.linalg.eigvalsh(a["virials"]), np.linalg.eigvalsh(b["virials"]), atol=1e-10)
    data = {k: np.array(v) for k, v in a.data.items() if k in ("cells", "coords", "forces", "virials")}
    rotate_lower_triangular(data)
    np.testing.assert_allclose(data["coords"], b["coords"], atol=1e-12)


def test_precise_stress_columns():
    a = read_pw(own("si_md.out"), lower_triangular=False)
    b = read_pw(own("si_md.out"), precise_stress=True, lower_triangular=False)
    vol = np.abs(np.linalg.det(a["cells"]))[:, None, None]
    np.testing.assert_allclose(a["virials"], b["virials"], atol=0.006 * KBAR_TO_EV_PER_ANGSTROM3 * vol.max())


def test_header_only_when_input_is_missing(tmp_path):
    src = own("h2o_relax.out")
    dst = tmp_path / "run.log"
    shutil.copy(src, dst)
    with pytest.warns(UserWarning, match="no pw.x input"):
        a = read_pw(str(dst))
    b = read_pw(src)
    assert_systems_equal(a.data, b.data, atol=1e-5)
    c = read_pw(str(dst), input_file=own("h2o_relax.in"))
    assert_systems_equal(c.data, b.data, atol=1e-12)


def test_missing_explicit_input(tmp_path):
    with pytest.raises(DpconvError, match="no such pw.x input"):
        read_pw(own("h2o_scf.out"), input_file=str(tmp_path / "nope.in"))


def test_streaming_chunks_equal_whole():
    whole = read_pw(own("si_vcrelax.out"))
    blocks = list(dpconv.io.iter_blocks(own("si_vcrelax.out"), "qe/pw/scf", chunk_frames=3))
    sizes = [len(b["coords"]) for b in blocks]
    assert sum(sizes) == 8 and max(sizes) == 3
    parts = list(dpconv.io.iread(own("si_vcrelax.out"), "qe/pw/scf", chunk_size=5))
    assert_systems_equal(LabeledSystem.concatenate(parts).data, whole.data, atol=0)


def test_unconverged_frames_dropped():
    """QE 6.7 with scf_must_converge=.false. prints '!' and 'convergence has been achieved'
    after electron_maxstep iterations; the scf accuracy above conv_thr tells."""
    path = own("h2o_unconverged.out")
    with pytest.warns(UserWarning, match=r"not converged in frames \[0, 1, 2, 3\]"):
        s = read_pw(path)
    assert len(s) == 0 and s.data["atom_names"] == ["O", "H"]
    assert len(read_pw(path, convergence_check=False)) == 4


def test_convergence_not_achieved_line(tmp_path):
    text = Path(own("h2o_relax.out")).read_text()
    marker = "     convergence has been achieved in"
    i = text.index(marker, text.index("!    total energy", text.index("!    total energy") + 10))
    bad = text[:i] + "     convergence NOT achieved after 100 iterations: stopping\n" + text[i:]
    (tmp_path / "x.out").write_text(bad)
    shutil.copy(own("h2o_relax.in"), tmp_path / "x.in")
    with pytest.warns(UserWarning, match=r"frames \[1\]"):
        s = read_pw(str(tmp_path / "x.out"))
    assert len(s) == 5


# -- bad input ---------------------------------------------------------------------------------------
def _expect_parse_error(path: str, fmt: str = "qe/pw/scf", **kw) -> ParseError:
    with pytest.raises(ParseError) as exc:
        LabeledSystem(path, fmt=fmt, **kw)
    assert exc.value.path == path or exc.value.path.startswith(path)
    return exc.value


def test_empty_file(tmp_path):
    p = tmp_path / "empty.out"
    p.write_bytes(b"")
    assert _expect_parse_error(str(p)).line == 1


def test_binary_garbage(tmp_path):
    p = tmp_path / "junk.out"
    p.write_bytes(bytes(range(256)) * 40)
    assert "binary" in _expect_parse_error(str(p)).expected


def test_other_format(tmp_path):
    p = tmp_path / "OUTCAR.out"
    p.write_text(" vasp.6.3.0 18Jan22 (build Jan 20 2022) complex\n POSCAR = H2O\n" * 20)
    assert "PWSCF" in _expect_parse_error(str(p)).expected


def test_truncated_last_frame_dropped(tmp_path):
    text = Path(own("si_md.out")).read_text()
    cut = text.index("atom    2 type  1   force", text.rindex("Forces acting on atoms"))
    p = tmp_path / "md.out"
    p.write_text(text[: cut + 20])
    shutil.copy(own("si_md.in"), tmp_path / "md.in")
    with pytest.warns(UserWarning, match="frame 3 is truncated"):
        s = read_pw(str(p))
    full = read_pw(own("si_md.out"))
    assert_systems_equal(s.data, full.sub_system(slice(0, 3)).data, atol=0)


def test_truncated_stress_of_last_frame_dropped(tmp_path):
    text = Path(own("si_md.out")).read_text()
    cut = text.rindex("total   stress") + 200
    p = tmp_path / "md.out"
    p.write_text(text[:cut])
    shutil.copy(own("si_md.in"), tmp_path / "md.in")
    with pytest.warns(UserWarning, match="frame 3 is truncated"):
        assert len(read_pw(str(p))) == 3


def test_cut_in_the_middle_is_an_error(tmp_path):
    text = Path(own("si_md.out")).read_text()
    start = text.index("Forces acting on atoms", text.index("!    total energy") + 10)
    block = text[start : text.index("Total force", start)]
    bad = text.replace(
        block, "Forces acting on atoms (cartesian axes, Ry/au):\n\n     atom    1 type  1   force =\n", 1
    )
    p = tmp_path / "md.out"
    p.write_text(bad)
    shutil.copy(own("si_md.in"), tmp_path / "md.in")
    err = _expect_parse_error(str(p))
    assert err.frame == 0 and err.line is not None


def test_no_forces_is_an_error(tmp_path):
    text = Path(own("h2o_scf.out")).read_text()
    start = text.index("     Forces acting on atoms")
    end = text.index("Total force", start)
    p = tmp_path / "scf.out"
    p.write_text(text[:start] + text[end + 80 :])
    shutil.copy(own("h2o_scf.in"), tmp_path / "scf.in")
    assert "tprnfor" in _expect_parse_error(str(p)).expected


def test_header_cut_short(tmp_path):
    text = Path(own("h2o_scf.out")).read_text()
    p = tmp_path / "scf.out"
    p.write_text(text[:400])
    shutil.copy(own("h2o_scf.in"), tmp_path / "scf.in")
    assert "number of atoms" in _expect_parse_error(str(p)).expected


def test_input_with_wrong_nat(tmp_path):
    shutil.copy(own("h2o_scf.out"), tmp_path / "scf.out")
    (tmp_path / "scf.in").write_text(Path(own("h2o_scf.in")).read_text().replace("nat = 3", "nat = 2"))
    with pytest.raises(ParseError, match="3 atoms"):
        read_pw(str(tmp_path / "scf.out"))


# -- cp.x -------------------------------------------------------------------------------------------
def _copy_cp(tmp_path, exts=(".in", ".pos", ".for", ".evp", ".cel", ".str")) -> str:
    for e in exts:
        shutil.copy(own("cp_h2o/h2o") + e, tmp_path / ("h2o" + e))
    return str(tmp_path / "h2o")


def test_cp_prefix_or_file_name():
    a = LabeledSystem(own("cp_h2o/h2o"), fmt="qe/cp/traj")
    b = LabeledSystem(own("cp_h2o/h2o.pos"), fmt="qe/cp/traj")
    assert_systems_equal(a.data, b.data, atol=0)


def test_cp_without_cel_uses_the_input_cell(tmp_path):
    prefix = _copy_cp(tmp_path, (".in", ".pos", ".for", ".evp"))
    s = LabeledSystem(prefix, fmt="qe/cp/traj")
    np.testing.assert_allclose(s["cells"][0], np.eye(3) * 10.0 * BOHR_TO_ANGSTROM, atol=1e-12)
    assert "virials" not in s.data


def test_cp_ibrav8_without_cel(tmp_path):
    """dpdata falls back to a 1 bohr identity cell for ibrav 8 without .cel; dpconv builds it."""
    d = os.path.dirname(fixture_path("qe_cp_traj_si_virial", "si.in"))
    for e in (".in", ".pos", ".for", ".evp"):
        shutil.copy(os.path.join(d, "si" + e), tmp_path / ("si" + e))
    s = LabeledSystem(str(tmp_path / "si"), fmt="qe/cp/traj")
    np.testing.assert_allclose(s["cells"][0], np.eye(3) * 10.6407620646 * BOHR_TO_ANGSTROM, atol=1e-9)


def test_cp_step_mismatch(tmp_path):
    prefix = _copy_cp(tmp_path)
    text = Path(prefix + ".for").read_text().replace("      20    0.00241888", "      25    0.00241888")
    Path(prefix + ".for").write_text(text)
    err = _expect_parse_error(prefix, "qe/cp/traj")
    assert err.path.endswith(".for") and err.frame == 1 and "step 20" in err.expected


def test_cp_truncated_last_frame(tmp_path):
    prefix = _copy_cp(tmp_path)
    lines = Path(prefix + ".pos").read_text().splitlines(True)
    Path(prefix + ".pos").write_text("".join(lines[:-2]))
    with pytest.warns(UserWarning, match="frame 3 is truncated"):
        s = LabeledSystem(prefix, fmt="qe/cp/traj")
    assert len(s) == 3


def test_cp_missing_files(tmp_path):
    prefix = _copy_cp(tmp_path, (".in", ".pos", ".evp"))
    with pytest.raises(DpconvError, match=r"\.for"):
        LabeledSystem(prefix, fmt="qe/cp/traj")


def test_cp_garbage(tmp_path):
    prefix = _copy_cp(tmp_path)
    Path(prefix + ".pos").write_bytes(b"\x00\x01garbage" * 100)
    _expect_parse_error(prefix, "qe/cp/traj")


def test_cp_wrong_nat_is_an_error(tmp_path):
    prefix = _copy_cp(tmp_path)
    text = Path(prefix + ".in").read_text().replace("nat = 3", "nat = 2")
    text = text.replace("H   3.57 6.10 5.00\n", "")
    Path(prefix + ".in").write_text(text)
    _expect_parse_error(prefix, "qe/cp/traj")


# -- the input parser and the Bravais lattices -----------------------------------------------------
def test_namelist_parser():
    text = """
 &CONTROL
   Calculation='relax', pseudo_dir = '/a/b!c' ! comment / with slash
   TPRNFOR = .TRUE.
 /
 &system ibrav=14, A=3.0, b = 4.0, C=5.0d0, cosAB=0.1, cosAC=-0.2, COSBC=0.3,
   nat=1, ntyp=1, celldm(1)=0 /
ATOMIC_SPECIES
 X 1.0 X.UPF
ATOMIC_POSITIONS crystal
 X 0.5 0.5 0.5 0 0 1
"""
    text = text.replace(", celldm(1)=0 /", " /")
    inp = pwinput.parse_input(text)
    assert inp.get("CALCULATION") == "relax" and inp.get("pseudo_dir") == "/a/b!c"
    assert inp.get("tprnfor") is True and inp.get("c") == 5.0
    dm = pwinput.celldm_of(inp)
    np.testing.assert_allclose(dm, [3.0 / BOHR_TO_ANGSTROM, 4 / 3, 5 / 3, 0.3, -0.2, 0.1])
    names, cell, coords = pwinput.input_structure(inp)
    assert names == ["X"]
    np.testing.assert_allclose(np.linalg.norm(cell, axis=1), [3, 4, 5], atol=1e-12)
    np.testing.assert_allclose(coords[0], cell.sum(0) / 2, atol=1e-12)


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["a", "=", "1", "b", "=", "2.5d0"], {"a": 1, "b": 2.5}),  # the usual pairs (read off at once)
        (["a", "=", "1", ",", "b", "=", "'x y'", ","], {"a": 1, "b": "x y"}),  # commas between pairs
        (["a", "=", ",", "1"], {"a": 1}),  # a comma after '=' is skipped
        (["a", "=", "1", "2", "b", "=", ".t."], {"a": [1, 2], "b": True}),  # several values
        (["'A B'", "=", "1"], {"'ab'": 1}),  # a quoted key loses its spaces (not its quotes)
        (["a", "=", "1", "a", "=", "2"], {"a": 2}),  # the last one wins
    ],
)
def test_namelist_assignments(tokens, expected):
    assert pwinput._assignments(tokens, "p", "nl") == expected


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (["a", ",", "=", "1"], "'key = value' pairs in &nl, got 'a'"),  # a comma before '='
        (["a", "=", "b", "=", "1"], "a value for 'a' in &nl"),
        (["a", "=", "1", "=", "2"], "a value for 'a' in &nl"),  # '1' is taken for the next key
        (["x"], "'key = value' pairs in &nl, got 'x'"),
    ],
)
def test_namelist_assignment_errors(tokens, message):
    with pytest.raises(ParseError, match=re.escape(message)):
        pwinput._assignments(tokens, "p", "nl")


def test_namelist_lines():
    """A namelist may end on its own line, and a '/' in a quoted string or a comment does not end it."""
    text = (
        "&control prefix='a/b' /\n"
        "&system\n  nat = 1, ntyp = 1 ! a / comment\n\n  ibrav = 1 celldm(1) = 10.0 /\n"
        "&electrons\n conv_thr = 1d-8\n/ ignored\n"
        "ATOMIC_POSITIONS {bohr}\n X 1 2 3\n\n cell_parameters\n 1 0 0\n"
    )
    inp = pwinput.parse_input(text)
    assert inp.namelists == {
        "control": {"prefix": "a/b"},
        "system": {"nat": 1, "ntyp": 1, "ibrav": 1, "celldm(1)": 10.0},
        "electrons": {"conv_thr": 1e-8},
    }
    assert inp.cards["ATOMIC_POSITIONS"].lines == ["X 1 2 3"] and inp.cards["ATOMIC_POSITIONS"].line == 9
    assert inp.cards["CELL_PARAMETERS"].option == "" and inp.cards["CELL_PARAMETERS"].line == 12
    with pytest.raises(ParseError, match="namelist &system is not closed"):
        pwinput.parse_input("&control\n/\n&system\n nat = 1\n 'a/b'\n")


def test_input_with_crlf_and_latin1(tmp_path):
    """The input is read as bytes: CRLF line ends and undecodable bytes read as in text mode."""
    text = Path(own("h2o_scf.in")).read_bytes().replace(b"prefix = 'h2o_scf'", b"prefix = 'h\xe9'")
    (tmp_path / "x.in").write_bytes(text.replace(b"\n", b"\r\n"))
    shutil.copy(own("h2o_scf.out"), tmp_path / "x.out")
    inp = pwinput.read_input(str(tmp_path / "x.in"))
    assert inp.get("prefix") == "h\ufffd" and inp.cards["ATOMIC_POSITIONS"].line == 23
    assert_systems_equal(read_pw(str(tmp_path / "x.out")).data, read_pw(own("h2o_scf.out")).data, atol=0)


def test_types_of():
    names, types, numbs = pwinput.types_of(["O", "H", "H", "C", "O"])
    assert names == ["O", "H", "C"] and types.tolist() == [0, 1, 1, 2, 0] and numbs.tolist() == [2, 2, 1]
    assert types.dtype == np.int64 and numbs.dtype == np.int64
    names, types, numbs = pwinput.types_of([])
    assert names == [] and types.shape == (0,) and numbs.shape == (0,)


def test_find_newline_literal():
    from dpconv.formats.qe.pw import _find, _offsets

    buf = b"!a\n!b x! \n!c"
    assert [_find(buf, b"\n!", i) for i in (0, 2, 3)] == [2, 2, 9] == [buf.find(b"\n!", i) for i in (0, 2, 3)]
    assert _offsets(b"\n!", buf) == [2, 9] and _offsets(b"\n!", b"!") == [] and _offsets(b"\n!", b"\n!") == [0]
    assert _find(buf, b"x!") == buf.find(b"x!")


@pytest.mark.parametrize("chunk", [700, 4096, 1 << 15])
def test_small_reads_equal_one_read(monkeypatch, chunk):
    """Outputs longer than a read are cut at energy lines; whatever the read size, the frames are the same."""
    from dpconv.formats.qe import pw

    wholes = {name: read_pw(own(name + ".out")) for name in OWN_PW}
    monkeypatch.setattr(pw, "READ_CHUNK", chunk)
    for name in OWN_PW:
        assert_systems_equal(read_pw(own(name + ".out")).data, wholes[name].data, atol=0)


def test_one_frame_cell_helpers():
    """The one-frame shortcuts of the determinant and of the triangular test give what the stacked code gives."""
    from dpconv.formats.qe.pw import _det3

    rng = np.random.default_rng(0)
    cells = rng.normal(size=(4, 3, 3))
    assert [float(_det3(c[None])[0]) for c in cells] == _det3(cells).tolist()
    tri = np.array([[[2.0, 0, 0], [0.5, 3.0, 0], [0.1, 0.2, 4.0]]])
    for cell, rotated in ((tri, False), (-tri, True), (cells[:1], True), (np.full((1, 3, 3), np.nan), True)):
        data = {"cells": cell, "coords": np.zeros((1, 1, 3))}
        rotate_lower_triangular(data)  # replaces the arrays when it rotates
        assert (data["cells"] is not cell) == rotated


def _angles(v):
    n = np.linalg.norm(v, axis=1)
    return [v[1] @ v[2] / n[1] / n[2], v[0] @ v[2] / n[0] / n[2], v[0] @ v[1] / n[0] / n[1]]


@pytest.mark.parametrize(
    ("ibrav", "celldm", "volume"),
    [
        (1, [2, 0, 0, 0, 0, 0], 8.0),
        (2, [2, 0, 0, 0, 0, 0], 2.0),
        (3, [2, 0, 0, 0, 0, 0], 4.0),
        (-3, [2, 0, 0, 0, 0, 0], 4.0),
        (4, [2, 0, 1.5, 0, 0, 0], 4 * 3 * np.sqrt(3) / 2),
        (5, [2, 0, 0, 0.3, 0, 0], 8 * np.sqrt(1 - 3 * 0.09 + 2 * 0.027)),
        (-5, [2, 0, 0, 0.3, 0, 0], 8 * np.sqrt(1 - 3 * 0.09 + 2 * 0.027)),
        (6, [2, 0, 1.5, 0, 0, 0], 12.0),
        (7, [2, 0, 1.5, 0, 0, 0], 6.0),
        (8, [2, 1.2, 1.5, 0, 0, 0], 2 * 2.4 * 3),
        (9, [2, 1.2, 1.5, 0, 0, 0], 2 * 2.4 * 3 / 2),
        (-9, [2, 1.2, 1.5, 0, 0, 0], 2 * 2.4 * 3 / 2),
        (91, [2, 1.2, 1.5, 0, 0, 0], 2 * 2.4 * 3 / 2),
        (10, [2, 1.2, 1.5, 0, 0, 0], 2 * 2.4 * 3 / 4),
        (11, [2, 1.2, 1.5, 0, 0, 0], 2 * 2.4 * 3 / 2),
        (12, [2, 1.2, 1.5, 0.2, 0, 0], 2 * 2.4 * 3 * np.sqrt(1 - 0.04)),
        (-12, [2, 1.2, 1.5, 0, 0.2, 0], 2 * 2.4 * 3 * np.sqrt(1 - 0.04)),
        (13, [2, 1.2, 1.5, 0.2, 0, 0], 2 * 2.4 * 3 * np.sqrt(1 - 0.04) / 2),
        (-13, [2, 1.2, 1.5, 0, 0.2, 0], 2 * 2.4 * 3 * np.sqrt(1 - 0.04) / 2),
        (14, [2, 1.2, 1.5, 0.1, -0.2, 0.3], 2 * 2.4 * 3 * np.sqrt(1 + 2 * 0.1 * -0.2 * 0.3 - 0.01 - 0.04 - 0.09)),
    ],
)
def test_bravais_volumes(ibrav, celldm, volume):
    v = pwinput.bravais_vectors(ibrav, celldm)
    assert np.linalg.det(v) == pytest.approx(volume, rel=1e-12)  # right-handed, right volume
    if ibrav in (5, -5):
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 2.0)
        np.testing.assert_allclose(_angles(v), 0.3)
    if ibrav == 14:
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), [2, 2.4, 3])
        np.testing.assert_allclose(_angles(v), [0.1, -0.2, 0.3])


def test_bad_ibrav():
    with pytest.raises(ValueError, match="ibrav = 15"):
        pwinput.bravais_vectors(15, [1, 0, 0, 0, 0, 0])


# -- the writer -------------------------------------------------------------------------------------
def test_writer_round_trip(tmp_path):
    s = read_pw(own("h2o_relax.out"), lower_triangular=False)
    out = tmp_path / "h2o.in"
    dpconv.io.write(
        s.sub_system([2]),
        out,
        "qe/pw/input",
        pseudo={"O": "O.x.UPF", "H": "H.y.UPF"},
        ecutwfc=30,
        ecutrho=240,
        kpoints=(2, 2, 1),
    )
    inp = pwinput.read_input(str(out))
    assert inp.get("tprnfor") is True and inp.get("tstress") is True and inp.get("ecutrho") == 240.0
    assert inp.species() == ["O", "H"] and inp.cards["K_POINTS"].lines == ["2 2 1  0 0 0"]
    labels, cell, coords = pwinput.input_structure(inp)
    assert labels == ["O", "H", "H"]
    np.testing.assert_allclose(cell, s["cells"][2], atol=1e-11)
    np.testing.assert_allclose(coords, s["coords"][2], atol=1e-11)


def test_writer_default_pseudo_lookup(tmp_path):
    pseudo = tmp_path / "pp"
    pseudo.mkdir()
    for f in ("H.pbe-rrkjus.UPF", "O.pbe-kjpaw.UPF", "O.pz-vbc.UPF"):
        (pseudo / f).write_text("")
    s = System(own("h2o_scf.out"), fmt="qe/pw/scf")
    dpconv.io.write(s, tmp_path / "w.in", "qe/pw/input", pseudo_dir=str(pseudo))
    text = (tmp_path / "w.in").read_text()
    assert "O.pbe-kjpaw.UPF" in text and "H.pbe-rrkjus.UPF" in text and "K_POINTS gamma" in text
    (pseudo / "H.pbe-rrkjus.UPF").unlink()
    with pytest.raises(DpconvError, match=r"H\.pbe-\*\.UPF"):
        dpconv.io.write(s, tmp_path / "w2.in", "qe/pw/input", pseudo_dir=str(pseudo))


def test_writer_needs_one_frame(tmp_path):
    s = read_pw(own("si_md.out"))
    with pytest.raises(DpconvError, match="frame="):
        dpconv.io.write(s, tmp_path / "a.in", "qe/pw/input", pseudo={"Si": "Si.UPF"})
    dpconv.io.write(s, tmp_path / "a.in", "qe/pw/input", pseudo={"Si": "Si.UPF"}, frame=3)
    _, _, coords = pwinput.input_structure(pwinput.read_input(str(tmp_path / "a.in")))
    np.testing.assert_allclose(coords, s["coords"][3], atol=1e-11)


# -- opt-in: the real pw.x ------------------------------------------------------------------------
PW_X = shutil.which("pw.x")
PSEUDO = "/usr/share/espresso/pseudo"


@pytest.fixture
def realcode(request):
    """Runs of the real pw.x are opt-in: ``-m realcode`` (or ``DPCONV_REALCODE=1``)."""
    if "realcode" not in (request.config.getoption("-m") or "") and not os.environ.get("DPCONV_REALCODE"):
        pytest.skip("runs pw.x: opt in with -m realcode (or DPCONV_REALCODE=1)")


@pytest.mark.realcode
@pytest.mark.skipif(PW_X is None or not os.path.isdir(PSEUDO), reason="pw.x / QE pseudopotentials not installed")
def test_pw_x_runs_our_input(tmp_path, realcode):
    s = read_pw(own("h2o_scf.out"))
    dpconv.io.write(
        s,
        tmp_path / "h2o.in",
        "qe/pw/input",
        ecutwfc=25,
        ecutrho=200,
        pseudo={"O": "O.pbe-rrkjus.UPF", "H": "H.pbe-kjpaw.UPF"},
        outdir=str(tmp_path / "tmp"),
        electrons={"conv_thr": 1e-8},
    )
    with open(tmp_path / "h2o.out", "w") as out:
        subprocess.run(
            [PW_X, "-in", "h2o.in"], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, check=True, timeout=300
        )
    back = read_pw(str(tmp_path / "h2o.out"))
    assert len(back) == 1 and "virials" in back.data
    # same structure, pseudopotentials and cutoffs as our committed run: same labels
    assert_systems_equal(back.data, s.data, atol=1e-4)


@pytest.mark.realcode
@pytest.mark.skipif(PW_X is None or not os.path.isdir(PSEUDO), reason="pw.x / QE pseudopotentials not installed")
@pytest.mark.parametrize(
    ("ibrav", "cell"),
    [
        (4, "celldm(1)=6.0, celldm(3)=1.6"),
        (5, "celldm(1)=6.0, celldm(4)=0.3"),
        (-5, "celldm(1)=6.0, celldm(4)=0.3"),
        (7, "celldm(1)=6.0, celldm(3)=1.4"),
        (9, "celldm(1)=6.0, celldm(2)=1.2, celldm(3)=1.4"),
        (-9, "celldm(1)=6.0, celldm(2)=1.2, celldm(3)=1.4"),
        (91, "celldm(1)=6.0, celldm(2)=1.2, celldm(3)=1.4"),
        (10, "celldm(1)=6.0, celldm(2)=1.2, celldm(3)=1.4"),
        (11, "celldm(1)=6.0, celldm(2)=1.2, celldm(3)=1.4"),
        (12, "A=3.0, B=3.6, C=4.2, cosAB=0.2"),
        (-12, "A=3.0, B=3.6, C=4.2, cosAC=0.2"),
        (13, "celldm(1)=6.0, celldm(2)=1.2, celldm(3)=1.4, celldm(4)=0.2"),
        (-13, "celldm(1)=6.0, celldm(2)=1.2, celldm(3)=1.4, celldm(5)=0.2"),
        (14, "A=3.0, B=3.6, C=4.2, cosBC=0.1, cosAC=-0.2, cosAB=0.3"),
    ],
)
def test_bravais_lattices_agree_with_pw_x(tmp_path, ibrav, cell, realcode):
    """pw.x prints its crystal axes (alat units, 6 decimals); our cell from the same input must agree."""
    text = (
        f"&control\n calculation='scf', pseudo_dir='{PSEUDO}', outdir='{tmp_path}/t', tprnfor=.true.\n/\n"
        f"&system\n ibrav={ibrav}, {cell}, nat=1, ntyp=1, ecutwfc=8, nosym=.true.\n/\n"
        "&electrons\n electron_maxstep=1\n/\n"
        "ATOMIC_SPECIES\nH 1.0 H.pz-vbc.UPF\nATOMIC_POSITIONS crystal\nH 0.1 0.2 0.3\nK_POINTS gamma\n"
    )
    (tmp_path / "b.in").write_text(text)
    with open(tmp_path / "b.out", "w") as out:
        subprocess.run([PW_X, "-in", "b.in"], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=120)
    ours = pwinput.input_cell(pwinput.read_input(str(tmp_path / "b.in")))
    out_text = (tmp_path / "b.out").read_text()
    alat = float(out_text.split("celldm(1)=")[1].split()[0]) * BOHR_TO_ANGSTROM  # 6 decimals
    axes = [
        [float(x) for x in ln.split("(")[2].split(")")[0].split()]
        for ln in out_text.splitlines()
        if ln.strip().startswith("a(")
    ][:3]
    np.testing.assert_allclose(ours, np.array(axes) * alat, atol=2e-6 * alat)
