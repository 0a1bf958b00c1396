"""DeePMD-kit 3.x itself trains on what `dpconv convert --split` writes (a few steps, tiny nets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import fixture_path

INPUT = {
    "model": {
        "type_map": ["O", "H"],
        "descriptor": {
            "type": "se_e2_a",
            "sel": [46, 92],
            "rcut_smth": 0.5,
            "rcut": 6.0,
            "neuron": [4, 8],
            "axis_neuron": 4,
            "seed": 1,
        },
        "fitting_net": {"neuron": [8, 8], "resnet_dt": True, "seed": 1},
    },
    "learning_rate": {"type": "exp", "decay_steps": 50, "start_lr": 0.001, "stop_lr": 3.51e-8},
    "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
    "training": {
        "training_data": {"systems": ["data/training_data"], "batch_size": 1},
        "validation_data": {"systems": ["data/validation_data"], "batch_size": 1, "numb_btch": 1},
        "numb_steps": 2,
        "seed": 10,
        "disp_file": "lcurve.out",
        "disp_freq": 1,
        "save_freq": 2,
    },
}


@pytest.mark.slow
@pytest.mark.deepmd
def test_dp_train_on_converted_water(tmp_path) -> None:
    pytest.importorskip("deepmd")  # deepmd.pt itself needs the shim (its compiled ops do not load)
    pytest.importorskip("e3nn")
    shim = os.path.join(os.path.dirname(fixture_path("water_deepmd")), "..", "tools", "dp_reference.py")
    if not os.path.isfile(shim):
        pytest.skip("shared/tools/dp_reference.py not found")
    inputs = [fixture_path("water_deepmd", f"data_{i}") for i in range(4)]
    conv = subprocess.run(
        [
            sys.executable,
            "-m",
            "dpconv",
            "convert",
            "-i",
            "deepmd/npy",
            *inputs,
            "-o",
            "deepmd/npy",
            "data",
            "--split",
            "0.2",
            "--seed",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert conv.returncode == 0, conv.stderr
    (tmp_path / "input.json").write_text(json.dumps(INPUT))
    run = subprocess.run(
        [sys.executable, shim, "--pt", "train", "input.json", "--skip-neighbor-stat"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [ln.split() for ln in (tmp_path / "lcurve.out").read_text().splitlines() if not ln.startswith("#")]
    assert [r[0] for r in rows] == ["1", "2"]
