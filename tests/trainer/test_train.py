"""Training loop: lcurve format, checkpoints, restart == uninterrupted, API, freeze/test."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from dpconv.errors import ConfigError
from dpconv.trainer import checkpoint, freeze, load, train
from dpconv.trainer.loop import lcurve_header, lcurve_row

from .conftest import lj_system

# DeePMD-kit 3.2's header (notes §13), byte for byte
DP_HEADER = (
    "# step       rmse_val    rmse_trn    rmse_e_val  rmse_e_trn    rmse_f_val  rmse_f_trn   lr      \n"
    "# If there is no available reference data, rmse_*_{val,trn} will print nan\n"
)
DP_ROW = "      1      3.34e+01    2.73e+01      8.34e-02    5.11e-01      1.06e+00    8.62e-01    1.0e-03\n"


def test_lcurve_format_matches_deepmd():
    keys = ["rmse", "rmse_e", "rmse_f"]
    assert lcurve_header(keys, True) == DP_HEADER
    row = lcurve_row(
        1,
        keys,
        {"rmse": 33.4, "rmse_e": 0.0834, "rmse_f": 1.06},
        {"rmse": 27.3, "rmse_e": 0.511, "rmse_f": 0.862},
        1e-3,
    )
    assert row == DP_ROW
    assert lcurve_header(keys, False).startswith("# step       rmse_trn    rmse_e_trn    rmse_f_trn   lr      \n")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from .conftest import TINY

    work = tmp_path_factory.mktemp("run")
    cfg = json.loads(json.dumps(TINY))
    logs: list[str] = []
    model = train(
        cfg,
        training=[lj_system(6, seed=1), lj_system(4, n_o=2, n_h=6, seed=2)],
        validation=[lj_system(3, seed=5)],
        workdir=str(work),
        log=logs.append,
    )
    return work, model, logs, cfg


def test_train_outputs(trained):
    work, _, logs, _ = trained
    lc = (work / "lcurve.out").read_text().splitlines(keepends=True)
    assert "".join(lc[:2]) == DP_HEADER
    steps = [int(line.split()[0]) for line in lc[2:]]
    assert steps == [1, 4, 8]
    assert all(len(line.split()) == 8 for line in lc[2:])
    assert (work / "checkpoint").read_text().strip() == "model.ckpt-8.pt"
    assert os.path.exists(work / "model.ckpt-4.pt") and os.path.islink(work / "model.ckpt.pt")
    assert any("total wall time" in line for line in logs)
    assert any("RMSE of energy per atom after linear regression" in line for line in logs)
    assert json.loads((work / "out.json").read_text())["model"]["descriptor"]["sel"] == [8, 16]
    blob = torch.load(work / "model.ckpt-8.pt", weights_only=True)
    assert blob["step"] == 8


def test_restart_equals_uninterrupted(trained, tmp_path):
    work, _, _, cfg = trained
    systems = dict(
        training=[lj_system(6, seed=1), lj_system(4, n_o=2, n_h=6, seed=2)], validation=[lj_system(3, seed=5)]
    )
    m = train(cfg, **systems, workdir=str(tmp_path), restart=str(work / "model.ckpt-4.pt"))
    ref = checkpoint.load(str(work / "model.ckpt-8.pt"))["model"]
    for k, v in m.state_dict().items():
        assert torch.equal(v.cpu(), ref[k]), k
    # the appended lcurve rows equal the uninterrupted ones
    cont = (tmp_path / "lcurve.out").read_text().splitlines()
    full = (work / "lcurve.out").read_text().splitlines()
    assert cont[-1] == full[-1]


def test_init_model_and_mismatch(trained, tmp_path):
    work, _, _, cfg = trained
    cfg2 = json.loads(json.dumps(cfg))
    cfg2["training"]["numb_steps"] = 1
    train(cfg2, training=[lj_system(3, seed=1)], workdir=str(tmp_path), init_model=str(work / "model.ckpt-8.pt"))
    cfg2["model"]["fitting_net"]["neuron"] = [8]
    with pytest.raises(ConfigError, match="init-model"):
        train(cfg2, training=[lj_system(3, seed=1)], workdir=str(tmp_path), init_model=str(work / "model.ckpt-8.pt"))


FRESH = r"""
import sys, json
sys.modules["dpconv"] = None  # prove the file needs torch alone
import torch
m = torch.jit.load(sys.argv[1], _extra_files={"dpconv.json": ""})
x = torch.load(sys.argv[2], weights_only=True)
out = m(x["coords"], x["types"], x["cells"])
torch.save({k: v for k, v in out.items()}, sys.argv[3])
extra = {"dpconv.json": ""}
torch.jit.load(sys.argv[1], _extra_files=extra)
print(json.loads(extra["dpconv.json"])["type_map"], m.get_rcut(), m.get_sel())
"""


def test_frozen_model_in_fresh_process(trained, tmp_path):
    work, model, _, _ = trained
    path = freeze(str(work), str(tmp_path / "model.pth"))
    s = lj_system(2, seed=9)
    perm = np.random.default_rng(0).permutation(12)  # unsorted atom order
    coords = torch.tensor(s.data["coords"][:, perm])
    types = torch.tensor(s.data["atom_types"][perm])
    cells = torch.tensor(s.data["cells"]).reshape(2, 9)
    torch.save({"coords": coords, "types": types, "cells": cells}, tmp_path / "in.pt")
    res = subprocess.run(
        [sys.executable, "-c", FRESH, path, str(tmp_path / "in.pt"), str(tmp_path / "out.pt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "['O', 'H'] 4.0 [8, 16]" in res.stdout
    got = torch.load(tmp_path / "out.pt", weights_only=True)
    # in-memory model on the same frames
    ev = load(path)
    from dpconv.trainer.export import FrozenModel

    mem = FrozenModel(model)(coords, types, cells)
    for k in ("energy", "force", "virial", "atom_energy"):
        torch.testing.assert_close(got[k], mem[k], atol=1e-10, rtol=0)
    e, f, v = ev.evaluate(coords.numpy(), cells.numpy(), types.numpy())
    np.testing.assert_allclose(e, mem["energy"].numpy().ravel(), atol=1e-10)
    np.testing.assert_allclose(f, mem["force"].numpy(), atol=1e-10)
    assert v.shape == (2, 3, 3)
    assert abs(got["atom_energy"].sum() - got["energy"].sum()) < 1e-9


def test_dp_test_report_and_detail_files(trained, tmp_path):
    from dpconv.trainer.evaluate import test as dp_test

    work, _, _, _ = trained
    path = freeze(str(work), str(tmp_path / "model.pth"))
    lines: list[str] = []
    sv = lj_system(3, seed=4, virial=True)
    res = dp_test(
        path, [("sysA", sv), ("sysB", lj_system(2, seed=6))], detail_file=str(tmp_path / "d"), log=lines.append
    )
    text = "\n".join(lines)
    assert "# testing system : sysA" in text and "# number of test data : 3 " in text
    assert "Energy RMSE/Natoms : " in text and "Force  RMSE        : " in text and "Virial RMSE        : " in text
    assert "# ----------weighted average of errors----------- " in text and "# number of systems : 2" in text
    e = np.loadtxt(tmp_path / "d.e.out")
    assert e.shape == (5, 2)
    assert np.loadtxt(tmp_path / "d.f.out").shape == (5 * 12, 6)
    assert np.loadtxt(tmp_path / "d.v.out").shape == (3, 18)
    assert res["average"]["rmse_e"] > 0


def test_virial_term_and_float32(tmp_path):
    from .conftest import TINY

    cfg = json.loads(json.dumps(TINY))
    cfg["loss"].update({"start_pref_v": 1.0, "limit_pref_v": 1.0})
    cfg["model"]["descriptor"]["precision"] = "float32"
    cfg["model"]["fitting_net"]["precision"] = "float32"
    cfg["training"].update({"numb_steps": 2, "disp_freq": 1, "save_freq": 2})
    model = train(
        cfg,
        training=[lj_system(4, seed=1, virial=True), lj_system(2, seed=3)],
        validation=[lj_system(2, seed=5, virial=True)],
        workdir=str(tmp_path),
    )
    head = (tmp_path / "lcurve.out").read_text().splitlines()[0]
    assert head.split()[1:] == [
        "step",
        "rmse_val",
        "rmse_trn",
        "rmse_e_val",
        "rmse_e_trn",
        "rmse_f_val",
        "rmse_f_trn",
        "rmse_v_val",
        "rmse_v_trn",
        "lr",
    ]
    assert next(model.parameters()).dtype == torch.float32
    path = freeze(str(tmp_path), str(tmp_path / "m32.pth"))
    e, f, v = load(path).evaluate(
        lj_system(1, seed=8).data["coords"], lj_system(1, seed=8).data["cells"], lj_system(1, seed=8).data["atom_types"]
    )
    assert np.isfinite(e).all() and np.isfinite(f).all() and np.isfinite(v).all()


def test_systems_as_path_and_format(tmp_path, monkeypatch):
    import dpconv

    from .conftest import TINY

    dpconv.write(lj_system(3, seed=1), str(tmp_path / "a"), "deepmd/npy")
    dpconv.write(lj_system(2, seed=2), str(tmp_path / "tree" / "b" / "c"), "deepmd/npy")
    monkeypatch.chdir(tmp_path)
    cfg = json.loads(json.dumps(TINY))
    cfg["training"].update({"numb_steps": 1, "disp_freq": 1, "save_freq": 1})
    cfg["training"]["training_data"] = {"systems": [{"path": "a", "fmt": "deepmd/npy"}, "tree"]}
    logs: list[str] = []
    train(cfg, log=logs.append)
    assert any("2 system(s), 5 frames" in line for line in logs)
    cfg["training"]["training_data"] = {"systems": [{"path": "a", "format": "deepmd/npy"}]}
    with pytest.raises(ConfigError, match="'path'"):
        train(cfg)


def test_validation_batches_stacked_per_system_equal_one_by_one(tmp_path):
    """Validation runs one call per system with that system's drawn batches stacked: the same
    predictions as batch by batch (two systems of different sizes, drawn interleaved)."""
    from dpconv.trainer.loop import Trainer, _stacked_predictions

    from .conftest import TINY

    cfg = json.loads(json.dumps(TINY))
    tr = Trainer(
        cfg,
        training=[lj_system(4, seed=1)],
        validation=[lj_system(5, seed=5), lj_system(4, n_o=2, n_h=6, seed=7)],
        workdir=str(tmp_path),
    )
    assert tr.val_sampler is not None
    drawn = [tr.val_sampler.next() for _ in range(6)]
    while len({k for k, _ in drawn}) < 2 and len(drawn) < 60:
        drawn.append(tr.val_sampler.next())
    assert len({k for k, _ in drawn}) == 2
    stacked = _stacked_predictions(drawn, tr._predict_inference)
    for (_, b), p in zip(drawn, stacked):
        ref = tr._predict_inference(b)
        for k in ("energy", "atom_energy", "force", "virial"):
            torch.testing.assert_close(p[k], ref[k], atol=1e-12, rtol=0)
