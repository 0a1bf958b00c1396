"""The dpconv command line."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from dpconv import LabeledSystem
from dpconv.cli import cli
from tests.conftest import fixture_path
from tests.helpers import methane, water_like


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dpconv", *args], capture_output=True, text=True)


def test_help_lists_commands() -> None:
    r = CliRunner().invoke(cli, ["-h"])
    assert r.exit_code == 0
    for cmd in ("convert", "formats", "plugins", "info"):
        assert cmd in r.output


def test_formats_table() -> None:
    r = CliRunner().invoke(cli, ["formats"])
    assert r.exit_code == 0 and "deepmd/npy" in r.output and "deepmd/hdf5" in r.output
    md = CliRunner().invoke(cli, ["formats", "--markdown"])
    assert md.output.startswith("| format | aliases | read | write |")


def test_plugins_command() -> None:
    r = CliRunner().invoke(cli, ["plugins"])
    assert r.exit_code == 0 and "dpconv.formats" in r.output


def test_convert_and_info(tmp_path) -> None:
    water_like(4).to_deepmd_raw(tmp_path / "raw")
    r = CliRunner().invoke(
        cli, ["convert", "-i", "deepmd/raw", str(tmp_path / "raw"), "-o", "deepmd/hdf5", str(tmp_path / "w.hdf5")]
    )
    assert r.exit_code == 0, r.output
    assert "wrote 4 frames in 1 system(s)" in r.output
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "w.hdf5")])
    assert "4 frames, 6 atoms, formula O2H4" in info.output
    assert "labels: energies, forces, virials" in info.output


def test_convert_glob_and_type_map(tmp_path) -> None:
    for i in range(3):
        water_like(2, i).to_deepmd_npy(tmp_path / f"sys_{i}")
    methane(2).to_deepmd_npy(tmp_path / "sys_m")
    r = CliRunner().invoke(
        cli,
        [
            "convert",
            str(tmp_path / "sys_*"),
            "-o",
            "deepmd/npy",
            str(tmp_path / "out"),
            "--type-map",
            "H,O,C",
            "--set-size",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(tmp_path / "out")) == ["H4O0C1", "H4O2C0"]
    w = LabeledSystem(tmp_path / "out" / "H4O2C0", fmt="deepmd/npy")
    assert w.get_atom_names() == ["H", "O", "C"] and len(w) == 6
    assert sorted(os.listdir(tmp_path / "out" / "H4O2C0"))[:3] == ["set.000", "set.001", "set.002"]


def test_convert_split_water_for_deepmd(tmp_path) -> None:
    inputs = [fixture_path("water_deepmd", f"data_{i}") for i in range(4)]
    r = CliRunner().invoke(
        cli,
        [
            "convert",
            "-i",
            "deepmd/npy",
            *inputs,
            "-o",
            "deepmd/npy",
            str(tmp_path / "data"),
            "--split",
            "0.2",
            "--seed",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    train = LabeledSystem(tmp_path / "data" / "training_data", fmt="deepmd/npy")
    valid = LabeledSystem(tmp_path / "data" / "validation_data", fmt="deepmd/npy")
    assert len(train) + len(valid) == 400 and len(valid) == 80
    r2 = CliRunner().invoke(
        cli,
        [
            "convert",
            "-i",
            "deepmd/npy",
            *inputs,
            "-o",
            "deepmd/npy",
            str(tmp_path / "again"),
            "--split",
            "0.2",
            "--seed",
            "1",
        ],
    )
    assert r2.exit_code == 0
    np.testing.assert_array_equal(
        LabeledSystem(tmp_path / "again" / "validation_data", fmt="deepmd/npy").data["energies"], valid.data["energies"]
    )
    pytest.importorskip("deepmd.utils.data_system")
    from deepmd.utils.data_system import DeepmdDataSystem

    ds = DeepmdDataSystem([str(tmp_path / "data" / "training_data")], 1, 1, 6.0, type_map=["O", "H"])
    ds.add("energy", 1, atomic=False, must=True, high_prec=True)
    ds.add("force", 3, atomic=True, must=True, high_prec=False)
    assert ds.get_batch()["coord"].shape == (1, 576)


def test_unknown_format_one_line_error(tmp_path) -> None:
    water_like(1).to_deepmd_npy(tmp_path / "d")
    p = run("convert", "-i", "deepmd/npy", str(tmp_path / "d"), "-o", "deepmd/npz", str(tmp_path / "o"))
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1
    assert p.stderr.startswith("Error: unknown format 'deepmd/npz'; did you mean deepmd/npy")
    assert not (tmp_path / "o").exists()


def test_missing_input_and_bad_file(tmp_path) -> None:
    p = run("convert", "-i", "deepmd/npy", str(tmp_path / "nope"), "-o", "deepmd/npy", str(tmp_path / "o"))
    assert p.returncode == 1 and "no such file" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "empty").mkdir()
    p = run("convert", "-i", "deepmd/npy", str(tmp_path / "empty"), "-o", "deepmd/npy", str(tmp_path / "o"))
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "type.raw" in p.stderr
    assert not (tmp_path / "o").exists()
    p = run("convert", str(tmp_path / "nomatch*"), "-o", "deepmd/npy", str(tmp_path / "o"))
    assert p.returncode == 2 and "matches no file" in p.stderr


def test_version() -> None:
    assert CliRunner().invoke(cli, ["--version"]).exit_code == 0
