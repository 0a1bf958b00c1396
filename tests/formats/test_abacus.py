"""ABACUS formats: abacus/md, abacus/scf, abacus/relax, abacus/stru.

Corpus cases are read differentially against dpdata; run folders that need
edits (truncation, unconverged steps) are copied to ``tmp_path`` first.
"""

from __future__ import annotations

import glob
import os
import shutil
import warnings

import numpy as np
import pytest

import dpconv
from dpconv import LabeledSystem, System
from dpconv.errors import DpconvError, ParseError
from dpconv.testing import assert_systems_equal
from dpconv.units import BOHR_TO_ANGSTROM, KBAR_TO_EV_PER_ANGSTROM3
from tests.conftest import DATA, FIXTURES, fixture_cases, fixture_path

dpdata = pytest.importorskip("dpdata")

CASES = fixture_cases(("abacus/",))
NEWLAYOUT = os.path.join(DATA, "abacus", "md_newlayout")


def _dpdata_labeled(path: str, fmt: str) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = dict(dpdata.LabeledSystem(path, fmt=fmt).data)
    if data.get("virials") is None:
        data.pop("virials", None)
    return data


def _copy_run(case: str, folder: str, tmp_path) -> str:
    dst = os.path.join(str(tmp_path), folder)
    shutil.copytree(fixture_path(case, folder), dst)
    return dst


def _read(path: str, fmt: str, **kwargs) -> tuple[LabeledSystem, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = LabeledSystem(path, fmt=fmt, **kwargs)
    return s, [str(w.message) for w in caught]


# -- differential against dpdata on every corpus case ---------------------------------
@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_corpus_case_equals_dpdata(case: dict) -> None:
    path = os.path.join(FIXTURES, case["path"])
    s, _ = _read(path, case["fmt"], **case["kwargs"])
    assert_systems_equal(s.data, _dpdata_labeled(path, case["fmt"]))


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_corpus_stru_files_equal_dpdata(case: dict) -> None:
    root = os.path.join(FIXTURES, case["path"])
    files = glob.glob(os.path.join(root, "STRU*")) + glob.glob(os.path.join(root, "OUT.*", "STRU*"))
    assert files
    for f in files:
        ours = System(f, fmt="abacus/stru")
        theirs = dpdata.System(f, fmt="abacus/stru")
        assert_systems_equal(ours.data, theirs.data, labels=False)


def test_md_water_details() -> None:
    s, msgs = _read(fixture_path("abacus_md_water", "abacus.md"), "abacus/md")
    assert not msgs
    assert len(s) == 5 and s.data["atom_names"] == ["H", "O"]
    # old layout: positions in units of LATTICE_CONSTANT (1 bohr)
    np.testing.assert_allclose(
        s.data["coords"][0, 0], np.array([15.953212941138, 18.765586146743, 8.395247471322]) * BOHR_TO_ANGSTROM
    )
    np.testing.assert_allclose(s.data["energies"][1], -466.699290513689)  # the 6th 'final etot' (md_dumpfreq 5)


def test_md_nostress_has_no_virial_key() -> None:
    s, _ = _read(fixture_path("abacus_md_si_nostress", "abacus.md.nostress"), "abacus/md")
    assert "virials" not in s.data and len(s) == 4


# -- new MD_dump layout (hand-made run folder) --------------------------------------
def test_md_new_layout(tmp_path) -> None:
    s, msgs = _read(NEWLAYOUT, "abacus/md")
    assert not msgs
    assert len(s) == 3 and s.data["virials"].shape == (3, 3, 3)
    np.testing.assert_allclose(s.data["energies"], [-215.0, -215.02, -215.04])  # steps 0, 2, 4 of the log
    np.testing.assert_allclose(s.data["coords"][0, 1], [1.342037346933, 1.347772788323, 1.344580694676])
    # dpdata needs a lower-case 'suffix', no '//' comment and no per-atom 'v' extra: give it such a copy
    copy = os.path.join(str(tmp_path), "run")
    shutil.copytree(NEWLAYOUT, copy)
    _sub(os.path.join(copy, "INPUT"), "SUFFIX", "suffix")
    _sub(os.path.join(copy, "STRU"), " // bohr", "")
    _sub(os.path.join(copy, "STRU"), " v 0 0 0", "")
    assert_systems_equal(s.data, _dpdata_labeled(copy, "abacus/md"))


def test_md_upper_case_input_key_dpdata_misses(tmp_path) -> None:
    """'SUFFIX si2': ABACUS keys are case-insensitive; dpdata looks for OUT.ABACUS and fails."""
    s, _ = _read(NEWLAYOUT, "abacus/md")
    assert len(s) == 3
    with pytest.raises(Exception):  # noqa: B017 - dpdata's own error type
        _dpdata_labeled(NEWLAYOUT, "abacus/md")


def test_md_streams_in_chunks() -> None:
    path = fixture_path("abacus_md_water", "abacus.md")
    blocks = list(dpconv.io.iter_blocks(path, "abacus/md", chunk=2))
    assert [len(b["coords"]) for b in blocks] == [2, 2, 1]
    whole, _ = _read(path, "abacus/md")
    joined = np.concatenate([b["forces"] for b in blocks])
    np.testing.assert_array_equal(joined, whole.data["forces"])


def test_md_convert_to_deepmd_npy(tmp_path) -> None:
    path = fixture_path("abacus_md_water", "abacus.md")
    out = os.path.join(str(tmp_path), "npy")
    dpconv.convert(path, out, in_fmt="abacus/md", out_fmt="deepmd/npy")
    back = LabeledSystem(out, fmt="deepmd/npy")
    whole, _ = _read(path, "abacus/md")
    assert_systems_equal(back.data, whole.data)


def _sub(path: str, old: str, new: str, count: int = -1) -> None:
    with open(path) as fh:
        text = fh.read()
    assert old in text
    with open(path, "w") as fh:
        fh.write(text.replace(old, new, count))


def test_md_unconverged_step_dropped(tmp_path) -> None:
    run = _copy_run("abacus_md_water", "abacus.md", tmp_path)
    log = os.path.join(run, "OUT.abacus", "running_md.log")
    _sub(log, "final etot is -466.699290513689 eV", "!! convergence has not been achieved @_@")
    s, msgs = _read(run, "abacus/md")
    assert len(s) == 4
    assert any("not converged" in m and "[1]" in m for m in msgs)
    full, _ = _read(fixture_path("abacus_md_water", "abacus.md"), "abacus/md")
    np.testing.assert_array_equal(s.data["coords"], full.data["coords"][[0, 2, 3, 4]])
    assert_systems_equal(s.data, _dpdata_labeled(run, "abacus/md"))


def test_md_truncated_last_frame_dropped(tmp_path) -> None:
    run = _copy_run("abacus_md_water", "abacus.md", tmp_path)
    dump = os.path.join(run, "OUT.abacus", "MD_dump")
    with open(dump, "rb") as fh:
        blob = fh.read()
    cut = blob.rfind(b"MDSTEP") + 700  # inside the atom lines of the last frame
    with open(dump, "wb") as fh:
        fh.write(blob[:cut])
    s, msgs = _read(run, "abacus/md")
    assert len(s) == 4
    assert any("frame 4 is truncated; dropped" in m for m in msgs)


def test_md_truncated_inside_last_header_dropped(tmp_path) -> None:
    run = _copy_run("abacus_md_water", "abacus.md", tmp_path)
    dump = os.path.join(run, "OUT.abacus", "MD_dump")
    with open(dump, "rb") as fh:
        blob = fh.read()
    with open(dump, "wb") as fh:
        fh.write(blob[: blob.rfind(b"MDSTEP") + 40])
    s, msgs = _read(run, "abacus/md")
    assert len(s) == 4 and any("truncated" in m for m in msgs)


def test_md_frame_broken_in_the_middle_raises(tmp_path) -> None:
    run = _copy_run("abacus_md_water", "abacus.md", tmp_path)
    dump = os.path.join(run, "OUT.abacus", "MD_dump")
    _sub(dump, "   1   H   13.786987486168   20.622823511243    7.605308823456", "   1   H   13.78", 1)
    with pytest.raises(ParseError) as info:
        _read(run, "abacus/md")
    assert info.value.path == dump and info.value.frame == 1


def test_md_log_shorter_than_dump(tmp_path) -> None:
    run = _copy_run("abacus_md_water", "abacus.md", tmp_path)
    log = os.path.join(run, "OUT.abacus", "running_md.log")
    with open(log) as fh:
        text = fh.read()
    with open(log, "w") as fh:
        fh.write(text[: text.index("final etot is -466.701537327762")])  # log of a killed job: 18 steps
    s, msgs = _read(run, "abacus/md")
    assert len(s) == 4 and any("no energy" in m and "[4]" in m for m in msgs)


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01\x02garbage\xff" * 50, b"ATOMIC_SPECIES\nH 1.0 H.upf\n"],
    ids=["empty", "binary", "other-format"],
)
def test_md_bad_dump_raises(tmp_path, content: bytes) -> None:
    run = _copy_run("abacus_md_water", "abacus.md", tmp_path)
    dump = os.path.join(run, "OUT.abacus", "MD_dump")
    with open(dump, "wb") as fh:
        fh.write(content)
    with pytest.raises(ParseError) as info:
        _read(run, "abacus/md")
    assert info.value.path == dump


def test_md_missing_files_raise(tmp_path) -> None:
    with pytest.raises(ParseError) as info:
        _read(str(tmp_path), "abacus/md")
    assert info.value.path.endswith("INPUT")
    run = _copy_run("abacus_md_water", "abacus.md", tmp_path)
    os.remove(os.path.join(run, "OUT.abacus", "MD_dump"))
    with pytest.raises(ParseError, match="MD_dump"):
        _read(run, "abacus/md")


# -- the bulk MD_dump parse: hand-made dumps of every layout it must get right or hand on -----
def _synthetic_md(
    tmp_path,
    species: list[tuple[str, int]],
    nframes: int,
    *,
    short: tuple[int, ...] = (),
    scientific: tuple[int, ...] = (),
    no_virial: tuple[int, ...] = (),
) -> tuple[str, dict]:
    """A new-layout run folder with random values; ``short``/``scientific`` frames print numbers as %.3f/%.12e.

    Returns the folder and the values the reader must give (the printed numbers, read back).
    """
    rng = np.random.default_rng(7)
    natoms = sum(n for _, n in species)
    labels = [lab for lab, n in species for _ in range(n)]
    run = os.path.join(str(tmp_path), "syn")
    os.makedirs(os.path.join(run, "OUT.syn"))
    with open(os.path.join(run, "INPUT"), "w") as fh:
        fh.write("INPUT_PARAMETERS\nsuffix syn\ncalculation md\nmd_dumpfreq 1\n")
    stru = ["ATOMIC_SPECIES", *(f"{lab} 1.0 {lab}.upf" for lab, _ in species), "", "LATTICE_CONSTANT", "1.0", ""]
    stru += ["LATTICE_VECTORS", "12 0 0", "0 12 0", "0 0 12", "", "ATOMIC_POSITIONS", "Cartesian"]
    for lab, n in species:
        stru += [lab, "0.0", str(n), *(["0 0 0 1 1 1"] * n)]
    with open(os.path.join(run, "STRU"), "w") as fh:
        fh.write("\n".join(stru) + "\n")

    want: dict[str, list] = {"cells": [], "coords": [], "forces": [], "virials": [], "energies": []}
    dump, log = [], []
    for f in range(nframes):
        fmt = "%.3f" if f in short else "%.12e" if f in scientific else "%.12f"

        def num(x: float, fmt: str = fmt) -> str:
            return fmt % x

        cell = 12.0 * np.eye(3) + rng.normal(0, 0.1, (3, 3))
        virial = rng.normal(0, 5, (3, 3))
        atoms = rng.normal(0, 3, (natoms, 9))
        lines = [f"MDSTEP:  {f}", "LATTICE_CONSTANT: 1.000000000000 Angstrom", "LATTICE_VECTORS"]
        lines += ["  " + "  ".join(num(x) for x in row) for row in cell]
        if f not in no_virial:
            lines += ["VIRIAL (kbar)", *("  " + "  ".join(num(x) for x in row) for row in virial)]
        lines.append("INDEX    LABEL    POSITION (Angstrom)    FORCE (eV/Angstrom)    VELOCITY (Angstrom/fs)")
        lines += [f"  {i}  {labels[i]}  " + "  ".join(num(x) for x in atoms[i]) for i in range(natoms)]
        dump.append("\n".join(lines) + "\n\n\n")
        back = np.vectorize(lambda x, fmt=fmt: float(fmt % x))
        cell, virial, atoms = back(cell), back(virial), back(atoms)
        energy = -100.0 - 0.01 * f
        log.append(f" STEP OF MOLECULAR DYNAMICS : {f}\n #TOTAL ENERGY# {energy:.8f} eV\n")
        want["cells"].append(cell)
        want["coords"].append(atoms[:, :3])
        want["forces"].append(atoms[:, 3:6])
        want["virials"].append(virial * KBAR_TO_EV_PER_ANGSTROM3 * abs(np.linalg.det(cell)))
        want["energies"].append(energy)
    with open(os.path.join(run, "OUT.syn", "MD_dump"), "w") as fh:
        fh.write("".join(dump))
    with open(os.path.join(run, "OUT.syn", "running_md.log"), "w") as fh:
        fh.write("".join(log))
    return run, {k: np.array(v) for k, v in want.items()}


def _check_values(data: dict, want: dict, frames: list[int] | None = None) -> None:
    for key, value in want.items():
        np.testing.assert_allclose(data[key], value if frames is None else value[frames], rtol=1e-14, atol=1e-12)


@pytest.fixture
def count_parses(monkeypatch) -> dict[str, int]:
    """How many chunks the bulk parse took and how many it handed to the frame-by-frame parse."""
    from dpconv.formats.abacus import md

    counts = {"bulk": 0, "each": 0}
    bulk, each = md._parse_bulk, md._parse_each

    def spy_bulk(*args, **kwargs):
        result = bulk(*args, **kwargs)
        counts["bulk"] += result is not None
        return result

    def spy_each(*args, **kwargs):
        counts["each"] += 1
        return each(*args, **kwargs)

    monkeypatch.setattr(md, "_parse_bulk", spy_bulk)
    monkeypatch.setattr(md, "_parse_each", spy_each)
    return counts


@pytest.mark.parametrize("chunk", [None, 1, 3])
def test_md_bulk_parse_of_labels_with_digits_and_m(tmp_path, count_parses, chunk) -> None:
    """Fe1 leaves a digit in the row of numbers, Mg an M: both still take the bulk parse."""
    run, want = _synthetic_md(tmp_path, [("Fe1", 2), ("Mg", 3), ("O", 2)], 7)
    s, msgs = _read(run, "abacus/md", **({} if chunk is None else {"chunk": chunk}))
    assert not msgs and s.data["atom_names"] == ["Fe1", "Mg", "O"]
    _check_values(s.data, want)
    assert count_parses["each"] == 0 and count_parses["bulk"] == -(-7 // (chunk or 7))


def test_md_frame_of_another_number_format_parsed_alone(tmp_path, count_parses) -> None:
    run, want = _synthetic_md(tmp_path, [("H", 2), ("O", 1)], 6, scientific=(3,))
    s, _ = _read(run, "abacus/md", chunk=2)
    _check_values(s.data, want)
    assert count_parses == {"bulk": 2, "each": 1}  # the chunk of frames 2 and 3


def test_md_large_frames_with_a_short_one(tmp_path, count_parses) -> None:
    """Large frames are found by guessing their length; a much shorter frame is swallowed, noticed, reparsed."""
    run, want = _synthetic_md(tmp_path, [("H", 40)], 13, short=(5,))
    s, msgs = _read(run, "abacus/md", chunk=4)
    assert not msgs
    _check_values(s.data, want)
    assert count_parses["each"] == 1 and count_parses["bulk"] >= 2


def test_md_large_frames_truncated_last_frame(tmp_path) -> None:
    run, want = _synthetic_md(tmp_path, [("H", 40)], 6)
    dump = os.path.join(run, "OUT.syn", "MD_dump")
    with open(dump, "rb") as fh:
        blob = fh.read()
    with open(dump, "wb") as fh:
        fh.write(blob[: blob.rfind(b"MDSTEP") + 3000])
    s, msgs = _read(run, "abacus/md", chunk=4)
    assert any("frame 5 is truncated; dropped" in m for m in msgs)
    _check_values(s.data, want, [0, 1, 2, 3, 4])


def test_md_virial_missing_in_a_later_frame_raises(tmp_path) -> None:
    run, _ = _synthetic_md(tmp_path, [("H", 2)], 5, no_virial=(3,))
    with pytest.raises(ParseError) as info:
        _read(run, "abacus/md")
    assert info.value.frame == 3 and "VIRIAL" in str(info.value)


def test_md_log_energies_do_not_depend_on_scan_window(tmp_path) -> None:
    """The log is scanned in windows; results that straddle a window's end are found once, in file order."""
    from dpconv.formats.abacus.logs import md_energies

    run = _copy_run("abacus_md_water", "abacus.md", tmp_path)
    log = os.path.join(run, "OUT.abacus", "running_md.log")
    _sub(log, "final etot is -466.699290513689 eV", "!! convergence has not been achieved @_@")
    _sub(log, "final etot is -466.701537327762 eV", "#TOTAL ENERGY# -466.701537327762 eV")
    whole = md_energies(log)
    orig = md_energies(fixture_path("abacus_md_water", "abacus.md", "OUT.abacus", "running_md.log"))
    assert len(whole) == 21 and np.isnan(whole[5]) and np.isnan(whole).sum() == 1
    np.testing.assert_array_equal(np.delete(whole, 5), np.delete(orig, 5))  # the #TOTAL ENERGY# line in its place
    for window in (29, 1000, 4096):
        np.testing.assert_array_equal(md_energies(log, window=window), whole)


def test_md_blocks_do_not_depend_on_chunk() -> None:
    path = fixture_path("abacus_md_water", "abacus.md")
    whole, _ = _read(path, "abacus/md")
    for chunk in (1, 2, 3, 4096):
        s, _ = _read(path, "abacus/md", chunk=chunk)
        assert_systems_equal(s.data, whole.data)


@pytest.mark.parametrize("content", [b"", b"\x00\x01\x02\xff\xfe" * 20], ids=["empty", "binary"])
def test_bad_input_file_raises(tmp_path, content: bytes) -> None:
    run = _copy_run("abacus_scf_ch4", "abacus.scf", tmp_path)
    with open(os.path.join(run, "INPUT"), "wb") as fh:
        fh.write(content)
    with pytest.raises(ParseError) as info:
        _read(run, "abacus/scf")
    assert info.value.path == os.path.join(run, "INPUT")


# -- scf -------------------------------------------------------------------------------
def test_scf_unconverged_gives_empty_system_and_warning() -> None:
    s, msgs = _read(fixture_path("abacus_scf_ch4_unconverged", "abacus.scf"), "abacus/scf")
    assert len(s) == 0 and s.data["atom_names"] == []
    assert any("did not converge" in m for m in msgs)


def test_scf_values() -> None:
    s, _ = _read(fixture_path("abacus_scf_ch4", "abacus.scf"), "abacus/scf")
    np.testing.assert_allclose(s.data["energies"], [-219.649914042766])
    np.testing.assert_allclose(s.data["forces"][0, 0], [-0.154995, -1.114764, 0.083421])  # eV/Å block, not Ry/bohr
    vol = abs(np.linalg.det(s.data["cells"][0]))
    np.testing.assert_allclose(s.data["virials"][0, 0, 0], 17.95102076 * vol * 1e8 / 1.602176634e-19 / 1e30)


def test_scf_without_forces_raises(tmp_path) -> None:
    run = _copy_run("abacus_scf_ch4", "abacus.scf", tmp_path)
    _sub(os.path.join(run, "OUT.ch4", "running_scf.log"), "TOTAL-FORCE", "TOTAL-FARCE")
    with pytest.raises(ParseError, match="TOTAL-FORCE"):
        _read(run, "abacus/scf")


def test_scf_left_handed_cell_dpdata_inverts_coords_not_forces(tmp_path) -> None:
    """dpdata inverts a left-handed STRU cell and the coordinates but keeps the log's forces.

    Swapping two lattice vectors makes the cell left-handed without changing the
    lattice or the Cartesian positions, so the labels must not change. dpconv keeps
    the structure as written; dpdata returns coordinates -r with the forces of +r.
    """
    run = _copy_run("abacus_scf_ch4", "abacus.scf", tmp_path)
    _sub(
        os.path.join(run, "STRU.ch4"),
        "1 0.0 0.0 \t\t\t#Lattice vector 1\n0.0 1 0.0",
        "0.0 1 0.0 \t\t\t#Lattice vector 1\n1 0.0 0.0",
    )
    ours, _ = _read(run, "abacus/scf")
    ref, _ = _read(fixture_path("abacus_scf_ch4", "abacus.scf"), "abacus/scf")
    np.testing.assert_allclose(ours.data["coords"], ref.data["coords"])
    np.testing.assert_allclose(ours.data["forces"], ref.data["forces"])
    theirs = _dpdata_labeled(run, "abacus/scf")
    np.testing.assert_allclose(theirs["coords"], -ref.data["coords"])
    np.testing.assert_allclose(theirs["forces"], ref.data["forces"])


# -- relax -------------------------------------------------------------------------------
def test_relax_unconverged_step_dropped(tmp_path) -> None:
    run = _copy_run("abacus_relax_h2o", "abacus.relax", tmp_path)
    log = os.path.join(run, "OUT.abacus", "running_cell-relax.log")
    _sub(
        log,
        " charge density convergence is achieved\n final etot is -465.793073459458 eV",
        " convergence has NOT been achieved!",
    )
    s, msgs = _read(run, "abacus/relax")
    full, _ = _read(fixture_path("abacus_relax_h2o", "abacus.relax"), "abacus/relax")
    assert len(s) == 4 and any("[2]" in m and "not converged" in m for m in msgs)
    np.testing.assert_allclose(s.data["forces"], full.data["forces"][[0, 1, 3, 4]])
    assert_systems_equal(s.data, _dpdata_labeled(run, "abacus/relax"))


def test_relax_missing_log_raises(tmp_path) -> None:
    run = _copy_run("abacus_relax_h2o", "abacus.relax", tmp_path)
    os.remove(os.path.join(run, "OUT.abacus", "running_cell-relax.log"))
    with pytest.raises(ParseError, match="running_cell-relax.log"):
        _read(run, "abacus/relax")


def test_relax_garbage_log_raises(tmp_path) -> None:
    run = _copy_run("abacus_relax_h2o", "abacus.relax", tmp_path)
    with open(os.path.join(run, "OUT.abacus", "running_cell-relax.log"), "w") as fh:
        fh.write("this is not an ABACUS log\n" * 10)
    with pytest.raises(ParseError, match="SCF result"):
        _read(run, "abacus/relax")


# -- stru ---------------------------------------------------------------------------------
STRU_TEMPLATE = """ATOMIC_SPECIES
Si 28.085 Si.upf
O 15.999 O.upf   # comment

LATTICE_CONSTANT
{lc}

LATTICE_VECTORS
4.0 0.0 0.0
1.0 5.0 0.0
0.5 0.5 6.0

ATOMIC_POSITIONS
{mode}

O
0.0
1
{o} m 0 0 1 mag 1.0 angle1 90
Si
0.0
1
{si} 1 1 1
"""


def _stru_text(mode: str, lc: float, frac_si, frac_o) -> str:
    cell = np.array([[4.0, 0, 0], [1.0, 5.0, 0], [0.5, 0.5, 6.0]])
    cart_si, cart_o = np.asarray(frac_si) @ cell, np.asarray(frac_o) @ cell  # in units of LATTICE_CONSTANT
    to_ang = lc * BOHR_TO_ANGSTROM
    centers = {"xy": [0.5, 0.5, 0], "xz": [0.5, 0, 0.5], "yz": [0, 0.5, 0.5], "xyz": [0.5, 0.5, 0.5]}
    if mode == "Direct":
        si, o = frac_si, frac_o
    elif mode == "Cartesian":
        si, o = cart_si, cart_o
    elif mode == "Cartesian_au":
        si, o = cart_si * lc, cart_o * lc
    elif mode == "Cartesian_angstrom":
        si, o = cart_si * to_ang, cart_o * to_ang
    else:
        shift = np.asarray(centers[mode.rsplit("_", 1)[1]]) @ cell * to_ang
        si, o = cart_si * to_ang - shift, cart_o * to_ang - shift
    fmt = lambda v: " ".join(f"{x:.15f}" for x in v)  # noqa: E731
    return STRU_TEMPLATE.format(lc=lc, mode=mode, si=fmt(si), o=fmt(o))


@pytest.mark.parametrize(
    "mode",
    [
        "Direct",
        "Cartesian",
        "Cartesian_au",
        "Cartesian_angstrom",
        "Cartesian_angstrom_center_xy",
        "Cartesian_angstrom_center_xz",
        "Cartesian_angstrom_center_yz",
        "Cartesian_angstrom_center_xyz",
    ],
)
def test_stru_coordinate_modes(tmp_path, mode: str) -> None:
    f = os.path.join(str(tmp_path), "STRU")
    with open(f, "w") as fh:
        fh.write(_stru_text(mode, 1.5, [0.1, 0.2, 0.3], [0.6, 0.7, 0.8]))
    s = System(f, fmt="abacus/stru")
    cell = np.array([[4.0, 0, 0], [1.0, 5.0, 0], [0.5, 0.5, 6.0]]) * 1.5 * BOHR_TO_ANGSTROM
    assert s.data["atom_names"] == ["Si", "O"]
    np.testing.assert_array_equal(s.data["atom_types"], [1, 0])  # file order, names from ATOMIC_SPECIES
    np.testing.assert_allclose(s.data["cells"][0], cell, atol=1e-12)
    np.testing.assert_allclose(s.data["coords"][0], np.array([[0.6, 0.7, 0.8], [0.1, 0.2, 0.3]]) @ cell, atol=1e-12)


def test_stru_slash_comments_and_extras(tmp_path) -> None:
    f = os.path.join(str(tmp_path), "STRU")
    with open(f, "w") as fh:
        fh.write(_stru_text("Direct", 1.5, [0.1, 0.2, 0.3], [0.6, 0.7, 0.8]).replace("# comment", "// comment"))
    assert len(System(f, fmt="abacus/stru")) == 1


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("", None),
        ("\x00\x01garbage", None),
        ("ATOMIC_SPECIES\nSi 28 Si.upf\nLATTICE_CONSTANT\nabc\nATOMIC_POSITIONS\nDirect\n", 4),
        (
            "ATOMIC_SPECIES\nSi 28\nLATTICE_CONSTANT\n1\nLATTICE_VECTORS\n1 0 0\n0 1 0\n0 0 1\n"
            "ATOMIC_POSITIONS\nDirect\nSi\n0\n2\n0 0 0\n",
            15,
        ),
        (
            "ATOMIC_SPECIES\nSi 28\nLATTICE_CONSTANT\n1\nLATTICE_VECTORS\n1 0 0\n0 1 0\n0 0 1\n"
            "ATOMIC_POSITIONS\nDirect\nC\n0\n1\n0 0 0\n",
            11,
        ),
        ("POSCAR\n1.0\n1 0 0\n0 1 0\n0 0 1\nSi\n1\nDirect\n0 0 0\n", None),
    ],
    ids=["empty", "binary", "bad-lattice-constant", "missing-atom-line", "unknown-species", "poscar"],
)
def test_stru_bad_input_raises(tmp_path, text: str, line: int | None) -> None:
    f = os.path.join(str(tmp_path), "STRU")
    with open(f, "w") as fh:
        fh.write(text)
    with pytest.raises(ParseError) as info:
        System(f, fmt="abacus/stru")
    assert info.value.path == f and info.value.line == line


def test_stru_left_handed_cell_option(tmp_path) -> None:
    path = fixture_path("abacus_md_si_nostress", "abacus.md.nostress", "STRU")
    inverted = System(path, fmt="abacus/stru")  # dpdata's habit
    kept = System(path, fmt="abacus/stru", right_handed=False)
    assert np.linalg.det(inverted.data["cells"][0]) > 0 > np.linalg.det(kept.data["cells"][0])
    np.testing.assert_allclose(inverted.data["coords"], -kept.data["coords"])


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_stru_round_trip(tmp_path, case: dict) -> None:
    root = os.path.join(FIXTURES, case["path"])
    src = sorted(glob.glob(os.path.join(root, "STRU*")))[0]
    s = System(src, fmt="abacus/stru")
    out = os.path.join(str(tmp_path), "STRU")
    names = s.data["atom_names"]
    s.to("abacus/stru", out, pp_file={n: f"{n}.upf" for n in names}, numerical_orbital=[f"{n}.orb" for n in names])
    back = System(out, fmt="abacus/stru")
    assert_systems_equal(back.data, s.data, atol=1e-10, labels=False)
    theirs = dpdata.System(out, fmt="abacus/stru")  # what dpdata (and ABACUS's layout) reads
    assert_systems_equal(theirs.data, s.data, atol=1e-10, labels=False)
    with open(out) as fh:
        text = fh.read()
    assert f"{names[0]} " in text and f"{names[0]}.upf" in text and "NUMERICAL_ORBITAL" in text


def test_stru_writer_groups_atoms_by_type(tmp_path) -> None:
    data = {
        "atom_names": ["O", "H"],
        "atom_numbs": [1, 2],
        "atom_types": np.array([1, 0, 1]),
        "cells": np.eye(3)[None] * 10,
        "coords": np.array([[[0.1, 0, 0], [0, 0, 0], [0, 0.1, 0]]]),
    }
    s = System(data=data)
    out = os.path.join(str(tmp_path), "STRU")
    s.to("abacus/stru", out, move=[[1, 1, 1], [0, 0, 0], [1, 0, 1]])
    back = System(out, fmt="abacus/stru")
    np.testing.assert_array_equal(back.data["atom_types"], [0, 1, 1])
    np.testing.assert_allclose(back.data["coords"][0], data["coords"][0][[1, 0, 2]])
    with open(out) as fh:
        text = fh.read()
    assert "O 15.9994" in text and "H 1.00794" in text
    assert text.split("ATOMIC_POSITIONS")[1].splitlines()[6].endswith(" 0 0 0")


def test_stru_writer_rejects_bad_pp_file(tmp_path) -> None:
    s = System(fixture_path("abacus_scf_ch4", "abacus.scf", "STRU.ch4"), fmt="abacus/stru")
    with pytest.raises(DpconvError, match="pp_file"):
        s.to("abacus/stru", os.path.join(str(tmp_path), "STRU"), pp_file=["only_one.upf"])


def test_stru_auto_detected_by_name() -> None:
    s = dpconv.read(fixture_path("abacus_relax_h2o", "abacus.relax", "STRU"))
    assert len(s) == 1 and s.data["atom_names"] == ["H", "O"]
