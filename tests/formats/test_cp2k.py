"""CP2K formats: cp2k/output, cp2k/aimd_output (readers) and cp2k/input (writer).

Real data: the corpus cases (CP2K 6.1 and 7.1 logs, dpdata's dpgen AIMD folder),
our own CP2K 2023.1 runs (examples/methane_cp2k, tests/data/cp2k_water_sp,
tests/data/cp2k/*), and a 2025-layout log made from the 2023 one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from dpconv import LabeledSystem, System, units
from dpconv.errors import ParseError
from dpconv.formats.cp2k import aimd
from dpconv.testing import assert_systems_equal, load_expected
from tests.conftest import DATA, fixture_path

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METHANE = os.path.join(ROOT, "examples", "methane_cp2k")
WATER_SP = os.path.join(DATA, "cp2k_water_sp", "output.log")
OWN = os.path.join(DATA, "cp2k")
F_CONV = units.HARTREE_PER_BOHR_TO_EV_PER_ANGSTROM


def _need(path: str) -> str:
    if not os.path.exists(path):
        pytest.skip(f"{path} not present")
    return path


def _dpdata():
    return pytest.importorskip("dpdata")


def _read(path: str) -> str:
    with open(path) as fh:
        return fh.read()


def _xyz_frames(path: str) -> tuple[list[int], np.ndarray]:
    lines = _read(path).splitlines()
    n = int(lines[0])
    steps, frames = [], []
    for k in range(0, len(lines) - n - 1, n + 2):
        steps.append(int(re.search(r"i =\s*(\d+)", lines[k + 1]).group(1)))
        frames.append([[float(x) for x in ln.split()[1:4]] for ln in lines[k + 2 : k + 2 + n]])
    return steps, np.array(frames)


# -- cp2k/output -------------------------------------------------------------------------
def test_fe_o_kind_labels_as_dpdata() -> None:
    path = fixture_path("cp2k_output_fe_o", "cp2k_output")
    s = LabeledSystem(path, fmt="cp2k/output")
    assert s.data["atom_names"] == ["Fe1", "Fe2", "O"]
    d = _dpdata().LabeledSystem(path, fmt="cp2k/output")
    assert_systems_equal(s.data, {**d.data, "atom_names": [str(n) for n in d.data["atom_names"]]})


def test_fe_o_keep_kinds_false_gives_elements() -> None:
    s = LabeledSystem(fixture_path("cp2k_output_fe_o", "cp2k_output"), fmt="cp2k/output", keep_kinds=False)
    assert s.data["atom_names"] == ["Fe", "O"]
    assert s.data["atom_numbs"].tolist() == [12, 18]
    ref = load_expected(fixture_path("cp2k_output_fe_o", "expected.npz"))
    np.testing.assert_allclose(s.data["forces"], ref["forces"], atol=1e-6)


def test_water_sp_2023_vs_dpdata_and_stress() -> None:
    s = LabeledSystem(_need(WATER_SP), fmt="cp2k/output")
    d = _dpdata().LabeledSystem(WATER_SP, fmt="cp2k/output")
    # dpdata 1.1.0 does not parse the 2023 'STRESS| Analytical stress tensor' rows: no virials there
    assert "virials" not in d.data
    expected = {**d.data, "atom_names": [str(n) for n in d.data["atom_names"]], "virials": s.data["virials"]}
    assert_systems_equal(s.data, expected)
    text = _read(WATER_SP)
    rows = re.findall(r"^ STRESS\|\s+[xyz]\s+(\S+)\s+(\S+)\s+(\S+)\s*$", text, re.M)[:3]
    sigma = np.array(rows, float)
    np.testing.assert_allclose(s.data["virials"][0], sigma * 512.0 * units.GPA_TO_EV_PER_ANGSTROM3, atol=1e-9)


def _to_2025(text: str) -> str:
    """The 2023 log rewritten in CP2K 2025's layout (energy [hartree], FORCES| rows)."""
    text = text.replace("energy [a.u.]:", "energy [hartree]")

    def rows(m: re.Match[str]) -> str:
        out = [
            " FORCES| Atomic forces [hartree/bohr]",
            " FORCES|   Atom     x               y               z               |f|",
        ]
        for ln in m.group(1).strip("\n").splitlines():
            p = ln.split()
            f = np.array(p[3:6], float)
            out.append(f" FORCES| {int(p[0]):6d} {f[0]:15.8E} {f[1]:15.8E} {f[2]:15.8E} {np.linalg.norm(f):15.8E}")
        out.append(" FORCES| Sum    0.0 0.0 0.0")
        out.append(" FORCES| Total atomic force    0.0")
        return "\n".join(out) + "\n"

    return re.sub(
        r" ATOMIC FORCES in \[a\.u\.\]\n\n # Atom[^\n]*\n(.*?) SUM OF ATOMIC FORCES[^\n]*\n", rows, text, flags=re.S
    )


def test_2025_layout(tmp_path) -> None:
    text = _read(_need(WATER_SP))
    new = _to_2025(text)
    assert "ATOMIC FORCES" not in new and "FORCES| Atomic forces" in new
    p = tmp_path / "cp2k2025.log"
    p.write_text(new)
    a = LabeledSystem(WATER_SP, fmt="cp2k/output")
    b = LabeledSystem(str(p), fmt="cp2k/output")
    assert_systems_equal(b.data, a.data, atol=1e-7)


def test_geo_opt_coordinates_from_trajectory() -> None:
    folder = _need(os.path.join(OWN, "h2o_geo_opt"))
    log = os.path.join(folder, "output.log")
    s = LabeledSystem(log, fmt="cp2k/output")
    assert len(s) == 5
    steps, xyz = _xyz_frames(os.path.join(folder, "h2o-pos-1.xyz"))
    assert steps == [1, 2, 3, 4]
    np.testing.assert_allclose(s.data["coords"][1:], xyz)
    np.testing.assert_allclose(s.data["coords"][0], [[3.0, 3.0, 3.0], [3.8, 3.0, 3.3], [2.8, 3.8, 3.0]])
    # energy of step N equals the trajectory's 'E =' of frame i = N
    e_xyz = [float(x) for x in re.findall(r"E =\s*(\S+)", _read(os.path.join(folder, "h2o-pos-1.xyz")))]
    np.testing.assert_allclose(s.data["energies"][1:], np.array(e_xyz) * units.HARTREE_TO_EV, atol=1e-6)
    assert s.data["virials"].shape == (5, 3, 3)
    # dpdata mixes the blocks of all steps into one frame and fails
    with pytest.raises(Exception):  # noqa: B017 - dpdata raises its own DataError
        _dpdata().LabeledSystem(log, fmt="cp2k/output")


def test_geo_opt_without_trajectory_keeps_first_step() -> None:
    log = _need(os.path.join(OWN, "h2o_geo_opt", "output.log"))
    with pytest.warns(UserWarning, match=r"no coordinates for force evaluation\(s\) 1, 2, 3, 4"):
        s = LabeledSystem(log, fmt="cp2k/output", traj=False)
    assert len(s) == 1


def test_cell_opt_cell_per_step() -> None:
    folder = _need(os.path.join(OWN, "h2o_cell_opt"))
    s = LabeledSystem(os.path.join(folder, "output.log"), fmt="cp2k/output")
    assert len(s) == 4
    np.testing.assert_allclose(s.data["cells"][0], [[6, 0, 0], [0.5, 6, 0], [0, 0, 6]])
    np.testing.assert_allclose(s.data["cells"][1], [[6.020, 0, 0], [0.492, 6.023, 0], [0.006, -0.001, 6.002]])
    _, xyz = _xyz_frames(os.path.join(folder, "h2ocell-pos-1.xyz"))
    np.testing.assert_allclose(s.data["coords"][1:], xyz[: len(s) - 1])


def test_not_converged_gives_no_frames() -> None:
    log = _need(os.path.join(OWN, "h2o_noconv", "output.log"))
    with pytest.warns(UserWarning, match="SCF not converged"):
        s = LabeledSystem(log, fmt="cp2k/output")
    assert len(s) == 0
    s = LabeledSystem(log, fmt="cp2k/output", convergence_check=False)
    assert len(s) == 1


def test_md_log_read_as_output_warns() -> None:
    log = _need(os.path.join(METHANE, "methane.log"))
    with pytest.warns(UserWarning, match="cp2k/aimd_output"):
        s = LabeledSystem(log, fmt="cp2k/output")
    assert len(s) == 1


@pytest.mark.parametrize("content", [b"", b"\x00\x9f\xff garbage \x01" * 50, b"5\ncomment\nH 0 0 0\n"])
def test_output_bad_input(tmp_path, content: bytes) -> None:
    p = tmp_path / "bad.log"
    p.write_bytes(content)
    with pytest.raises(ParseError) as exc:
        LabeledSystem(str(p), fmt="cp2k/output")
    assert exc.value.path == str(p)


def test_output_truncated(tmp_path) -> None:
    text = _read(_need(WATER_SP))
    cut = text.index(" SUM OF ATOMIC FORCES") - 40
    p = tmp_path / "cut.log"
    p.write_text(text[:cut])
    with pytest.raises(ParseError) as exc:
        LabeledSystem(str(p), fmt="cp2k/output")
    assert exc.value.path == str(p) and exc.value.line is not None
    # a GEO_OPT cut inside its last evaluation keeps the complete ones
    folder = os.path.join(OWN, "h2o_geo_opt")
    geo = _read(_need(os.path.join(folder, "output.log")))
    last = geo.rindex(" ATOMIC FORCES in")
    d = tmp_path / "geo"
    d.mkdir()
    (d / "output.log").write_text(geo[: last + 100])
    shutil.copy(os.path.join(folder, "h2o-pos-1.xyz"), d)
    with pytest.warns(UserWarning, match="frame 4 is truncated"):
        s = LabeledSystem(str(d / "output.log"), fmt="cp2k/output")
    assert len(s) == 4


# -- cp2k/aimd_output ----------------------------------------------------------------------
def test_aimd_stress_vs_dpdata() -> None:
    path = fixture_path("cp2k_aimd_stress", "aimd_stress")
    s = LabeledSystem(path, fmt="cp2k/aimd_output")
    d = _dpdata().LabeledSystem(path, fmt="cp2k/aimd_output")
    assert_systems_equal(s.data, {**d.data, "atom_names": [str(n) for n in d.data["atom_names"]]})


def test_dpgen_truncated_reference() -> None:
    path = fixture_path("cp2k_aimd_dpgen_truncated", "aimd")
    ref = load_expected(fixture_path("cp2k_aimd_dpgen_truncated", "reference_from_dpdata_deepmd_npy.npz"))
    s = LabeledSystem(path, fmt="cp2k/aimd_output")
    assert_systems_equal(s.data, ref)
    # kinds from the input &COORD ('Al' atoms are ELEMENT Co); elements on request
    e = LabeledSystem(path, fmt="cp2k/aimd_output", keep_kinds=False)
    assert e.data["atom_names"] == ["O", "Co", "H"]
    assert e.data["atom_numbs"].tolist() == [199, 64, 270]


def test_dpgen_frames_matched_by_step(tmp_path) -> None:
    src = fixture_path("cp2k_aimd_dpgen_truncated", "aimd")
    ref = load_expected(fixture_path("cp2k_aimd_dpgen_truncated", "reference_from_dpdata_deepmd_npy.npz"))
    for f in os.listdir(src):
        shutil.copy(os.path.join(src, f), tmp_path)
    # forces file without step 3, positions without 'E =': energies from the .ener file
    frc = _read(os.path.join(src, "DPGEN-frc-1.xyz")).splitlines(keepends=True)
    n = 533 + 2
    (tmp_path / "DPGEN-frc-1.xyz").write_text("".join(frc[: 2 * n] + frc[3 * n :]))
    pos = _read(os.path.join(src, "DPGEN-pos-1.xyz"))
    (tmp_path / "DPGEN-pos-1.xyz").write_text(re.sub(r", E =\s*\S+", "", pos))
    with pytest.warns(UserWarning, match=r"step\(s\) 3 dropped \(no forces\)"):
        s = LabeledSystem(str(tmp_path), fmt="cp2k/aimd_output")
    keep = [0, 1, 3, 4]
    assert_systems_equal(s.data, {**ref, **{k: ref[k][keep] for k in ("cells", "coords", "energies", "forces")}})


def _methane() -> str:
    for f in ("methane-pos-1.xyz", "methane-frc-1.xyz", "methane.log"):
        _need(os.path.join(METHANE, f))
    return METHANE


def test_methane_2023_folder() -> None:
    folder = _methane()
    s = LabeledSystem(folder, fmt="cp2k/aimd_output")
    steps, frc = _xyz_frames(os.path.join(folder, "methane-frc-1.xyz"))
    n = len(s)
    assert n == len(steps) and s.data["atom_names"] == ["C", "H"]
    np.testing.assert_allclose(s.data["forces"], frc * F_CONV, atol=1e-9)
    ener = np.loadtxt(os.path.join(folder, "methane-1.ener"))
    np.testing.assert_allclose(s.data["energies"], ener[:n, 4] * units.HARTREE_TO_EV, atol=1e-6)
    # virial of step 0 = the log's first analytical stress tensor x volume (what cp2k/output reads)
    with pytest.warns(UserWarning, match="cp2k/aimd_output"):
        first = LabeledSystem(os.path.join(folder, "methane.log"), fmt="cp2k/output", traj=False)
    np.testing.assert_allclose(s.data["virials"][0], first.data["virials"][0], atol=1e-9)
    np.testing.assert_allclose(s.data["forces"][0], first.data["forces"][0], atol=1e-6)
    # dpdata 1.1.0 cannot split the 2023 'MD_INI|'/'MD|' log into steps
    with pytest.raises(BaseException):  # noqa: B017 - dpdata raises a PendingDeprecationWarning
        _dpdata().LabeledSystem(folder, fmt="cp2k/aimd_output")


def test_methane_log_only_equals_frc(tmp_path) -> None:
    folder = _methane()
    for f in ("methane-pos-1.xyz", "methane.log"):
        shutil.copy(os.path.join(folder, f), tmp_path)
    a = LabeledSystem(str(tmp_path), fmt="cp2k/aimd_output")
    b = LabeledSystem(folder, fmt="cp2k/aimd_output")
    assert_systems_equal(a.data, b.data, atol=1e-6)  # log forces have 8 decimals, frc 10


def test_methane_files_without_log_use_stress_file(tmp_path) -> None:
    folder = _methane()
    for f in ("methane-pos-1.xyz", "methane-frc-1.xyz", "methane-1.cell", "methane-1.stress", "input.inp"):
        _need(os.path.join(folder, f))
        shutil.copy(os.path.join(folder, f), tmp_path)
    with pytest.warns(UserWarning, match="kinetic"):
        s = LabeledSystem(str(tmp_path), fmt="cp2k/aimd_output")
    table = np.loadtxt(os.path.join(folder, "methane-1.stress"))
    p0 = table[0, 2:11].reshape(3, 3)
    np.testing.assert_allclose(s.data["virials"][0], p0 * units.BAR_TO_EV_PER_ANGSTROM3 * 1000.0, atol=1e-9)
    s2 = LabeledSystem(str(tmp_path), fmt="cp2k/aimd_output", stress="none")
    assert "virials" not in s2.data


def test_aimd_pos_file_path_and_auto_detection() -> None:
    folder = _methane()
    pos = os.path.join(folder, "methane-pos-1.xyz")
    a = LabeledSystem(folder, fmt="cp2k/aimd_output")
    b = LabeledSystem(pos)  # fmt="auto": *-pos-1.xyz names a CP2K MD trajectory
    assert_systems_equal(b.data, a.data, atol=0)


def test_aimd_streams_in_chunks() -> None:
    folder = _methane()
    blocks = list(aimd.read(folder, chunk_frames=16))
    assert len(blocks) > 5
    assert sum(len(b["coords"]) for b in blocks) == len(LabeledSystem(folder, fmt="cp2k/aimd_output"))


def test_aimd_bad_input(tmp_path) -> None:
    with pytest.raises(ParseError):
        LabeledSystem(str(tmp_path), fmt="cp2k/aimd_output")  # empty folder
    pos = tmp_path / "x-pos-1.xyz"
    pos.write_bytes(b"")
    with pytest.raises(ParseError) as exc:
        LabeledSystem(str(tmp_path), fmt="cp2k/aimd_output")
    assert exc.value.path == str(pos)
    pos.write_bytes(b"\x00\xff\x13garbage\n" * 20)
    with pytest.raises(ParseError) as exc:
        LabeledSystem(str(tmp_path), fmt="cp2k/aimd_output")
    assert exc.value.path == str(pos) and exc.value.line == 1


def test_aimd_truncated_last_frame(tmp_path) -> None:
    folder = _methane()
    for f in ("methane-pos-1.xyz", "methane-frc-1.xyz", "input.inp"):
        shutil.copy(os.path.join(folder, f), tmp_path)
    text = _read(os.path.join(folder, "methane-pos-1.xyz"))
    nframes = text.count(" i = ")
    (tmp_path / "methane-pos-1.xyz").write_text(text[: len(text) - 100])
    with pytest.warns(UserWarning, match=f"frame {nframes - 1} is truncated"):
        s = LabeledSystem(str(tmp_path), fmt="cp2k/aimd_output")
    assert len(s) == nframes - 1


def test_tables_cut_or_without_final_newline(tmp_path) -> None:
    from dpconv.formats.cp2k.trajfiles import read_table

    p = tmp_path / "x-1.ener"
    p.write_text("#  Step Time Kin Temp Pot\n 0 0.0 1 2 3\n 1 0.5 1 2 4")
    np.testing.assert_array_equal(read_table(str(p))[:, 4], [3, 4])
    p.write_text("#  Step Time Kin Temp Pot\n 0 0.0 1 2 3\n 1 0.5 1 2 4\n 2 1.0 1")
    with pytest.warns(UserWarning, match="frame 2 is truncated"):
        assert read_table(str(p)).shape == (2, 5)
    p.write_text("#  Step Time Kin Temp Pot\n 0 0.0 1 2 3\n 1 0.5 x 2 4\n 2 1.0 1 2 5\n")
    with pytest.raises(ParseError):
        read_table(str(p))


# -- cp2k/input -----------------------------------------------------------------------------
def test_input_writer_round_trip(tmp_path) -> None:
    s = LabeledSystem(fixture_path("cp2k_output_fe_o", "cp2k_output"), fmt="cp2k/output")
    out = tmp_path / "fe_o.inp"
    s.to("cp2k/input", str(out))
    text = out.read_text()
    for key in (
        "RUN_TYPE ENERGY_FORCE",
        "STRESS_TENSOR ANALYTICAL",
        "&FORCES ON",
        "&STRESS_TENSOR ON",
        "&KIND Fe1",
        "ELEMENT Fe",
        "BASIS_SET DZVP-MOLOPT-SR-GTH",
        "BASIS_SET DZVP-MOLOPT-GTH",
        "POTENTIAL GTH-PBE",
    ):
        assert key in text, key
    np.testing.assert_allclose(aimd.cell_from_input(str(out)), s.data["cells"][0], atol=1e-10)
    assert aimd.kind_labels_from_input(str(out)) == [s.data["atom_names"][t] for t in s.data["atom_types"]]
    coords = np.array([w[1:4] for w in aimd._input_section(text, "COORD")[1:]], float)
    np.testing.assert_allclose(coords, s.data["coords"][0], atol=1e-10)


def test_input_writer_many_frames_and_options(tmp_path) -> None:
    s = LabeledSystem(_methane(), fmt="cp2k/aimd_output")[:3]
    s.to("cp2k/input", str(tmp_path / "tasks"), basis_set={"H": "SZV-MOLOPT-GTH"}, cutoff=300, smearing=300)
    tasks = sorted(os.listdir(tmp_path / "tasks"))
    assert tasks == ["task.000000", "task.000001", "task.000002"]
    text = (tmp_path / "tasks" / "task.000002" / "input.inp").read_text()
    assert "BASIS_SET SZV-MOLOPT-GTH" in text and "CUTOFF 300" in text and "&SMEAR ON" in text
    s.to("cp2k/input", str(tmp_path / "one.inp"), frame=-1)
    assert (tmp_path / "one.inp").is_file()


def test_input_writer_nopbc(tmp_path) -> None:
    s = System(
        data={
            "atom_names": ["O", "H"],
            "atom_numbs": [1, 2],
            "atom_types": np.array([0, 1, 1]),
            "cells": np.eye(3)[None] * 10,
            "coords": np.array([[[5, 5, 5], [5.8, 5, 5.5], [4.3, 5, 5.5]]], float),
            "nopbc": True,
        }
    )
    s.to("cp2k/input", str(tmp_path / "mol.inp"))
    text = (tmp_path / "mol.inp").read_text()
    assert "PERIODIC NONE" in text and "STRESS_TENSOR" not in text


def _cp2k() -> str:
    for exe in ("cp2k.psmp", "cp2k.ssmp", "cp2k.popt", "cp2k"):
        if shutil.which(exe):
            return exe
    pytest.skip("no CP2K executable")


@pytest.mark.realcode
def test_input_runs_in_cp2k(tmp_path, request) -> None:
    if "realcode" not in (request.config.getoption("-m") or "") and not os.environ.get("DPCONV_REALCODE"):
        pytest.skip("runs CP2K: opt in with -m realcode (or DPCONV_REALCODE=1)")
    exe = _cp2k()
    ref = LabeledSystem(_need(WATER_SP), fmt="cp2k/output")
    ref.to("cp2k/input", str(tmp_path / "input.inp"), basis_set="SZV-MOLOPT-GTH", cutoff=200, rel_cutoff=40)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [exe, "-i", "input.inp", "-o", "output.log"],
        cwd=tmp_path,
        env=env,
        check=True,
        timeout=300,
        capture_output=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = LabeledSystem(str(tmp_path / "output.log"), fmt="cp2k/output")
    assert len(got) == 1 and got.data["atom_names"] == ["O", "H"]
    np.testing.assert_allclose(got.data["energies"], ref.data["energies"], atol=2e-3)
    np.testing.assert_allclose(got.data["forces"], ref.data["forces"], atol=2e-3)
    np.testing.assert_allclose(got.data["virials"], ref.data["virials"], atol=1e-2)
