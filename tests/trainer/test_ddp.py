"""Two ranks on CPU (gloo) through torchrun: sharded sampling, averaged gradients, rank 0 writes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

import dpconv

from .conftest import TINY, lj_system


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_ranks(tmp_path):
    exe = shutil.which("dpconv") or os.path.join(os.path.dirname(sys.executable), "dpconv")
    if not os.path.exists(exe):
        pytest.skip("the dpconv script is not installed")
    dpconv.write(lj_system(6, seed=1), str(tmp_path / "data" / "sys0"), "deepmd/npy")
    cfg = json.loads(json.dumps(TINY))
    cfg["training"]["training_data"] = {"systems": ["data"]}
    (tmp_path / "input.json").write_text(json.dumps(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(_free_port()),
            exe,
            "train",
            "input.json",
            "--device",
            "cpu",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "2 ranks" in res.stderr
    rows = [line for line in (tmp_path / "lcurve.out").read_text().splitlines() if not line.startswith("#")]
    assert [int(r.split()[0]) for r in rows] == [1, 4, 8]  # written once (rank 0 only)
    assert float(rows[0].split()[-1]) == pytest.approx(2e-3)  # start_lr scaled by 2 workers (linear)
