"""The tutorial end to end (examples/md) with few steps: real CP2K methane data → convert --split →
train → freeze → test → conf.lmp (lammps/lmp writer) → LAMMPS NVT (fix-external path) → dump read back."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import dpconv
from dpconv.cli import cli

from .lmp_helpers import needs_lammps

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "md")
DATA = os.path.join(ROOT, "examples", "methane_cp2k")


def test_tutorial(tmp_path, monkeypatch):
    needs_lammps()
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    r = CliRunner()
    res = r.invoke(
        cli, ["convert", "-i", "cp2k/aimd_output", DATA, "-o", "deepmd/npy", "00.data", "--split", "0.2", "--seed", "1"]
    )
    assert res.exit_code == 0, res.output
    os.makedirs("01.train")
    with open(os.path.join(EXAMPLE, "input.json")) as fh:
        cfg = json.load(fh)
    cfg["training"].update({"numb_steps": 20, "disp_freq": 10, "save_freq": 20})
    cfg["model"]["descriptor"].update({"neuron": [4, 8], "axis_neuron": 4})
    cfg["model"]["fitting_net"]["neuron"] = [16, 16]
    with open("01.train/input.json", "w") as fh:
        json.dump(cfg, fh)
    monkeypatch.chdir("01.train")
    res = r.invoke(cli, ["train", "input.json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    res = r.invoke(cli, ["freeze", "-o", "graph.pth"])
    assert res.exit_code == 0, res.output
    res = r.invoke(cli, ["test", "-m", "graph.pth", "-s", "../00.data/validation_data", "-n", "10"])
    assert res.exit_code == 0 and "Force" in res.output, res.output
    monkeypatch.chdir(tmp_path)
    os.makedirs("02.lmp")
    s = dpconv.read(DATA, "cp2k/aimd_output")
    first = s.sub_system([0])
    first.apply_type_map(cfg["model"]["type_map"])  # LAMMPS types in the model's order (pair_coeff * *)
    dpconv.write(first, "02.lmp/conf.lmp", "lammps/lmp")
    shutil.copy(os.path.join(EXAMPLE, "in.lammps"), "02.lmp/in.lammps")
    shutil.copy("01.train/graph.pth", "02.lmp/graph.pth")
    res = r.invoke(cli, ["md", "lammps", "02.lmp/in.lammps", "-v", "NSTEPS", "20", "-v", "DUMP", "10", "--log", "none"])
    assert res.exit_code == 0, res.output
    traj = dpconv.read("02.lmp/methane.dump", "lammps/dump", type_map=["H", "C"])
    assert len(traj) == 3 and traj.get_atom_names() == ["H", "C"] and traj.get_natoms() == 5
    np.testing.assert_allclose(traj.data["coords"][0], first.data["coords"][0], atol=1e-5)
    # the first frame's forces are the model's
    from dpconv.trainer import load

    ref = load("02.lmp/graph.pth").evaluate_system(first)
    with open("02.lmp/methane.dump") as fh:
        d = fh.read().split("ITEM: ATOMS")[1].splitlines()[1:6]
    rows = np.array([[float(v) for v in line.split()] for line in d])
    f = rows[np.argsort(rows[:, 0]), 5:8]
    np.testing.assert_allclose(f, ref["force"][0], atol=1e-4)
