"""Gaussian formats: corpus, dpdata differential, bad input, and the gjf writer."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from dpconv import LabeledSystem
from dpconv.errors import DpconvError, ParseError
from dpconv.testing import BAD_INPUTS, assert_systems_equal, load_expected
from tests.conftest import fixture_path

LOG = ("gaussian_log_methane", "methane.gaussianlog")
MD = ("gaussian_md_ch4", "aimd_gaussian_CH4_output")


def _read(path: str, fmt: str, **kw) -> LabeledSystem:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LabeledSystem(path, fmt=fmt, **kw)


def _text(case: tuple[str, str]) -> str:
    with open(fixture_path(*case)) as fh:
        return fh.read()


# -- corpus and dpdata ------------------------------------------------------------------
@pytest.mark.parametrize(("case", "fmt"), [(LOG, "gaussian/log"), (MD, "gaussian/md")])
def test_corpus(case: tuple[str, str], fmt: str) -> None:
    s = _read(fixture_path(*case), fmt)
    assert_systems_equal(s.data, load_expected(fixture_path(case[0], "expected.npz")))
    assert s.nopbc
    np.testing.assert_array_equal(s["cells"], np.broadcast_to(np.eye(3) * 100, (len(s), 3, 3)))


@pytest.mark.parametrize(("case", "fmt"), [(LOG, "gaussian/log"), (MD, "gaussian/md"), (MD, "gaussian/log")])
def test_same_as_dpdata(case: tuple[str, str], fmt: str) -> None:
    dpdata = pytest.importorskip("dpdata")
    path = fixture_path(*case)
    ref = dpdata.LabeledSystem(path, fmt=fmt)
    assert_systems_equal(_read(path, fmt).data, ref.data)


def test_md_layout() -> None:
    s = _read(fixture_path(*MD), "gaussian/md")
    assert len(s) == 22
    assert s["atom_names"] == ["C", "H"]  # sorted, though the file lists H,H,H,H,C
    np.testing.assert_array_equal(s["atom_types"], [1, 1, 1, 1, 0])
    # frame 0 comes from the 'Z-Matrix orientation:' table, frame 1 from 'Input orientation:'
    np.testing.assert_allclose(s["coords"][0, 0], [5.365862, 4.054149, 3.598478])
    np.testing.assert_allclose(s["coords"][1, 4], [-0.005014, 0.002621, -0.005113])


def test_md_log_ends_mid_frame_warns() -> None:
    # the corpus log stops after the geometry of a 23rd step: dropped with a warning naming it
    with pytest.warns(UserWarning, match="frame 22 is truncated; dropped"):
        LabeledSystem(fixture_path(*MD), fmt="gaussian/md")


def test_log_reads_last_frame_of_a_trajectory() -> None:
    md = _read(fixture_path(*MD), "gaussian/md")
    last = _read(fixture_path(*MD), "gaussian/log")
    assert len(last) == 1
    assert_systems_equal(last.data, md[-1].data)


def test_log_uses_input_orientation_not_standard() -> None:
    # forces are printed after 'Axes restored to original set': they belong to the input orientation
    s = _read(fixture_path(*LOG), "gaussian/log")
    np.testing.assert_allclose(s["coords"][0, 1], [2.16642, -0.06034, 0.02917])


def test_md_dpdata_kwarg() -> None:
    s = _read(fixture_path(*MD), "gaussian/log", md=True)
    assert len(s) == 22


# -- hand-made variants of the corpus logs ----------------------------------------------
def test_periodic_tv_rows_make_a_cell(tmp_path) -> None:
    dpdata = pytest.importorskip("dpdata")
    text = _text(LOG)
    tv = "".join(
        f"      {6 + i}         -2           0       {row}\n"
        for i, row in enumerate(
            [
                "10.000000    0.000000    0.000000",
                "0.500000   11.000000    0.000000",
                "0.000000    0.000000   12.000000",
            ]
        )
    )
    orient = "      5          1           0        0.710150   -0.105140    1.057930\n"
    assert orient in text
    text = text.replace(orient, orient + tv, 1)
    frow = "      5        1           0.000072322    0.000008469   -0.000203220\n"
    ftv = "".join(f"      {6 + i}       -2           0.000000000    0.000000000    0.000000000\n" for i in range(3))
    text = text.replace(frow, frow + ftv, 1)
    p = tmp_path / "pbc.log"
    p.write_text(text)
    s = _read(str(p), "gaussian/log")
    assert not s.nopbc
    np.testing.assert_allclose(s["cells"][0], [[10, 0, 0], [0.5, 11, 0], [0, 0, 12]])
    assert s.get_natoms() == 5
    assert_systems_equal(s.data, dpdata.LabeledSystem(str(p), fmt="gaussian/log").data)


def test_unconverged_frames_dropped_with_warning(tmp_path) -> None:
    text = _text(MD)
    marks = [i for i in range(len(text)) if text.startswith(" SCF Done:", i)]
    pos = marks[3]
    text = text[:pos] + " >>>>>>>>>> Convergence criterion not met.\n" + text[pos:]
    p = tmp_path / "unconv.log"
    p.write_text(text)
    with pytest.warns(UserWarning) as rec:
        s = LabeledSystem(str(p), fmt="gaussian/md")
    assert any("SCF not converged in frames [3]; dropped" in str(w.message) for w in rec)
    ref = _read(fixture_path(*MD), "gaussian/md")
    assert len(s) == 21
    np.testing.assert_allclose(s["energies"], np.delete(ref["energies"], 3))


def test_missing_input_orientation_is_an_error(tmp_path) -> None:
    p = tmp_path / "std_only.log"
    p.write_text(_text(LOG).replace("Input orientation:", "Input geometry:"))
    with pytest.raises(ParseError, match="Standard orientation.*PrintInputOrient") as err:
        LabeledSystem(str(p), fmt="gaussian/log")
    assert err.value.path == str(p)
    assert err.value.frame == 0
    assert err.value.line == 241  # the forces header


def test_log_without_normal_termination_warns(tmp_path) -> None:
    text = _text(LOG)
    p = tmp_path / "cut.log"
    p.write_text(text[: text.index(" Normal termination")])
    with pytest.warns(UserWarning, match="Normal termination"):
        s = LabeledSystem(str(p), fmt="gaussian/log")
    assert len(s) == 1


def test_log_cut_inside_the_forces_is_an_error(tmp_path) -> None:
    text = _text(LOG)
    p = tmp_path / "cut.log"
    p.write_text(text[: text.index("      3        1           0.000072325")])
    with pytest.raises(ParseError, match="ends inside frame 0") as err:
        LabeledSystem(str(p), fmt="gaussian/log")
    assert err.value.path == str(p)
    assert err.value.frame == 0
    assert err.value.line == 241


def test_md_cut_mid_frame_keeps_complete_frames(tmp_path) -> None:
    text = _text(MD)
    cut = [i for i in range(len(text)) if text.startswith(" Center     Atomic                   Forces", i)][4]
    p = tmp_path / "cut.log"
    p.write_text(text[: cut + 300])
    with pytest.warns(UserWarning, match="frame 4 is truncated; dropped"):
        s = LabeledSystem(str(p), fmt="gaussian/md")
    ref = _read(fixture_path(*MD), "gaussian/md")
    assert_systems_equal(s.data, ref[:4].data)


def test_streams_in_blocks(monkeypatch) -> None:
    from dpconv.formats.gaussian import log

    monkeypatch.setattr(log, "CHUNK_VALUES", 15 * 5)  # 5 frames of 5 atoms per block
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blocks = list(log.read_frames(fixture_path(*MD), last_only=False))
    assert [len(b["energies"]) for b in blocks] == [5, 5, 5, 5, 2]


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["gaussian/log", "gaussian/md"])
@pytest.mark.parametrize(
    ("name", "content"),
    [(f"{stem}.log", content) for stem, content in BAD_INPUTS],
)
def test_bad_input(tmp_path, fmt: str, name: str, content: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ParseError) as err:
        LabeledSystem(str(p), fmt=fmt)
    assert err.value.path == str(p)
    assert err.value.line == 1


def test_other_code_output_is_rejected() -> None:
    path = fixture_path("siesta_output_ch4", "siesta_output")
    with pytest.raises(ParseError, match="Gaussian") as err:
        LabeledSystem(path, fmt="gaussian/log")
    assert err.value.path == path


def test_gaussian_log_without_forces(tmp_path) -> None:
    text = _text(LOG)
    p = tmp_path / "sp.log"
    p.write_text(text.replace("Forces (Hartrees/Bohr)", "Nothing here"))
    with pytest.raises(ParseError, match="Force keyword") as err:
        LabeledSystem(str(p), fmt="gaussian/log")
    assert err.value.path == str(p)


def test_hand_made_error_termination(tmp_path) -> None:
    # tests/data/gaussian/error_termination.log: a job that died in link 502 before any forces
    path = os.path.join(os.path.dirname(__file__), "..", "data", "gaussian", "error_termination.log")
    with pytest.raises(ParseError, match="Error termination"):
        LabeledSystem(path, fmt="gaussian/log")


# -- gjf writer -------------------------------------------------------------------------
def test_gjf_single_frame(tmp_path) -> None:
    s = _read(fixture_path(*LOG), "gaussian/log")
    out = tmp_path / "ch4.gjf"
    s.to("gaussian/gjf", str(out), nproc=4, mem="2GB")
    lines = out.read_text().splitlines()
    assert lines[:7] == ["%nproc=4", "%mem=2GB", "#force b3lyp/6-31g*", "", "C1H4", "", "0 1"]
    assert lines[7].split()[0] == "C"
    assert len(lines) == 13 and lines[-1] == ""
    np.testing.assert_allclose(np.array([ln.split()[1:] for ln in lines[7:12]], float), s["coords"][0], atol=1e-10)


def test_gjf_read_back_by_dpdata(tmp_path) -> None:
    dpdata = pytest.importorskip("dpdata")
    s = _read(fixture_path(*MD), "gaussian/md")[3]
    out = tmp_path / "f.gjf"
    s.to("gaussian/gjf", str(out), keywords="#p force mp2/cc-pvdz", charge=0)
    back = dpdata.System(str(out), fmt="gaussian/gjf")
    np.testing.assert_allclose(back["coords"][0], s["coords"][0], atol=1e-9)
    assert [back["atom_names"][t] for t in back["atom_types"]] == ["H", "H", "H", "H", "C"]
    assert "#p force mp2/cc-pvdz" in out.read_text()


def test_gjf_many_frames_make_a_folder(tmp_path) -> None:
    s = _read(fixture_path(*MD), "gaussian/md")[:3]
    out = tmp_path / "jobs"
    s.to("gaussian/gjf", str(out))
    assert sorted(os.listdir(out)) == ["000000.gjf", "000001.gjf", "000002.gjf"]
    body = (out / "000002.gjf").read_text().splitlines()
    np.testing.assert_allclose(np.array([ln.split()[1:] for ln in body[5:10]], float), s["coords"][2], atol=1e-9)


def test_gjf_link1_chains_frames(tmp_path) -> None:
    s = _read(fixture_path(*MD), "gaussian/md")[:3]
    out = tmp_path / "all.gjf"
    s.to("gaussian/gjf", str(out), link1=True)
    text = out.read_text()
    assert text.count("--Link1--") == 2
    assert text.count("#force b3lyp/6-31g*") == 3


def test_gjf_multiplicity_and_charge(tmp_path) -> None:
    from dpconv.formats.gaussian.gjf import make_input

    xyz = np.zeros((4, 3))
    assert "\n0 2\n" in make_input(["C", "H", "H", "H"], xyz)  # methyl radical: 9 electrons
    assert "\n1 1\n" in make_input(["C", "H", "H", "H"], xyz, charge=1)
    assert "\n0 3\n" in make_input(["C", "H", "H", "H"], xyz, multiplicity=3, title="triplet")
    with pytest.raises(DpconvError, match="multiplicity"):
        make_input(["H"], np.zeros((1, 3)), multiplicity=0)
    two = make_input(["H", "H"], np.zeros((2, 3)), keywords=["opt b3lyp/6-31g*", "freq b3lyp/6-31g*"])
    assert "--Link1--" in two and "%chk=job.chk" in two and "geom=allcheck guess=read" in two


def test_gjf_periodic_writes_tv(tmp_path) -> None:
    s = _read(fixture_path("siesta_output_ch4", "siesta_output"), "siesta/output")
    out = tmp_path / "pbc.gjf"
    s.to("gaussian/gjf", str(out))
    tv = [ln.split() for ln in out.read_text().splitlines() if ln.startswith("TV")]
    np.testing.assert_allclose(np.array([r[1:] for r in tv], float), s["cells"][0], atol=1e-9)


@pytest.mark.parametrize("case", ["molecule", "periodic"])
def test_gjf_read_by_ase(tmp_path, case) -> None:
    """A second, independent Gaussian-input parser (ASE's ``gaussian-in``; Gaussian itself is
    commercial and not available here) reads back our atoms, positions and TV cell."""
    ase_io = pytest.importorskip("ase.io")
    if case == "molecule":
        s = _read(fixture_path(*MD), "gaussian/md")[3]
    else:
        s = _read(fixture_path("siesta_output_ch4", "siesta_output"), "siesta/output")
    out = tmp_path / "x.gjf"
    s.to("gaussian/gjf", str(out), keywords="#p force mp2/cc-pvdz")
    atoms = ase_io.read(str(out), format="gaussian-in")
    assert atoms.get_chemical_symbols() == [s["atom_names"][t] for t in s["atom_types"]]
    np.testing.assert_allclose(atoms.positions, s["coords"][0], atol=1e-9)
    assert bool(atoms.pbc.all()) is (case == "periodic")
    if case == "periodic":
        np.testing.assert_allclose(np.asarray(atoms.cell), s["cells"][0], atol=1e-9)


def test_gjf_rejects_non_element_names(tmp_path) -> None:
    s = _read(fixture_path(*LOG), "gaussian/log")
    s.data["atom_names"] = ["Type_0", "Type_1"]
    with pytest.raises(DpconvError, match="element symbols"):
        s.to("gaussian/gjf", str(tmp_path / "x.gjf"))


def test_fixed_width_parse_equals_split() -> None:
    from dpconv.formats.gaussian import log

    fh, mm = log.open_log(fixture_path(*MD))
    try:
        frames = list(log.Scanner(mm, "x"))
    finally:
        mm.close()
        fh.close()
    conv = log._Converter("x", frames[0])
    clayout, flayout = conv.layouts()
    fast = log._fixed_width([f.coords for f in frames], clayout, 12)
    ffast = log._fixed_width([f.forces for f in frames], flayout, 15)
    assert fast is not None and ffast is not None
    slow, fslow = conv._split_tables(frames)
    np.testing.assert_array_equal(fast, slow)
    np.testing.assert_array_equal(ffast, fslow)
    # a row of another width (a different Gaussian layout) sends the block to the split path
    odd = frames[1].coords.replace(b"\n", b" \n", 1)
    assert log._fixed_width([frames[0].coords, odd], clayout, 12) is None


@pytest.mark.parametrize("window", [1, 3000, 20000])
def test_small_windows_read_the_same(monkeypatch, window: int) -> None:
    from dpconv.formats.gaussian import log

    ref = _read(fixture_path(*MD), "gaussian/md")
    monkeypatch.setattr(log, "WINDOW", window)
    assert_systems_equal(_read(fixture_path(*MD), "gaussian/md").data, ref.data)
