"""`dpconv train / freeze / test / plot` through click's CliRunner on a tiny config."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import dpconv
from dpconv.cli import cli

from .conftest import TINY, lj_system


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    dpconv.write(lj_system(6, seed=1), str(work / "data" / "sys0"), "deepmd/npy")
    dpconv.write(lj_system(3, seed=2, virial=True), str(work / "val"), "deepmd/npy")
    cfg = json.loads(json.dumps(TINY))
    cfg["model"]["descriptor"]["sel"] = "auto"
    cfg["training"]["training_data"] = {"systems": ["data"], "batch_size": "auto", "_comment": "x"}
    cfg["training"]["validation_data"] = {"systems": ["val"], "batch_size": 2, "numb_btch": 2}
    (work / "input.json").write_text(json.dumps(cfg))
    return work


def test_train_freeze_test(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    r = CliRunner()
    res = r.invoke(cli, ["train", "input.json", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "sel = [8, 12]" in res.output or "sel = " in res.output
    assert os.path.exists("lcurve.out") and os.path.exists("model.ckpt-8.pt")
    res = r.invoke(cli, ["freeze", "-o", "frozen"])
    assert res.exit_code == 0, res.output
    assert os.path.exists("frozen.pth")
    res = r.invoke(cli, ["test", "-m", "frozen.pth", "-s", "data", "-n", "2", "-d", "det"])
    assert res.exit_code == 0, res.output
    assert "# number of test data : 2 " in res.output and "Energy RMSE/Natoms" in res.output
    assert os.path.exists("det.e.out") and os.path.exists("det.f.out")
    res = r.invoke(cli, ["test", "-m", "frozen.pth", "-s", "val"])
    assert "Virial RMSE" in res.output
    # resume from the step-4 checkpoint
    res = r.invoke(cli, ["train", "input.json", "--restart", "model.ckpt-4.pt"])
    assert res.exit_code == 0, res.output
    assert "restarting from model.ckpt-4.pt at step 4" in res.output


def test_plot(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    if not os.path.exists("lcurve.out"):
        pytest.skip("needs the training run of test_train_freeze_test")
    res = CliRunner().invoke(cli, ["plot", "lcurve.out", "-o", "lc.png"])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert res.exit_code != 0 and "matplotlib" in res.output
        return
    assert res.exit_code == 0, res.output
    assert os.path.getsize("lc.png") > 1000


def test_config_error_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = json.loads(json.dumps(TINY))
    cfg["model"]["descriptor"]["type"] = "dpa2"
    cfg["training"]["training_data"] = {"systems": ["nowhere"]}
    cfg["loss"]["unknown_pref"] = 1
    (tmp_path / "in.json").write_text(json.dumps(cfg))
    res = CliRunner().invoke(cli, ["train", "in.json"])
    assert res.exit_code == 1
    assert "loss.unknown_pref" in res.output


def test_help_does_not_import_torch():
    code = (
        "import sys; from dpconv.cli import cli\ntry:\n cli(['--help'])\nexcept SystemExit: pass\n"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("False"), out.stdout + out.stderr
    assert "train" in out.stdout and "freeze" in out.stdout
