"""Shared helpers of the trainer tests: tiny Lennard-Jones-labelled systems and tiny configs."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
# tiny tensors: thread start-up costs more than it saves (and the CI box is shared)
torch.set_num_threads(1)

from dpconv.system import LabeledSystem  # noqa: E402


def lj_system(
    nframes: int = 6,
    n_o: int = 4,
    n_h: int = 8,
    box: float = 6.0,
    seed: int = 0,
    nopbc: bool = False,
    tilt: float = 0.0,
    virial: bool = False,
) -> LabeledSystem:
    """Random jittered-grid frames labelled with a Lennard-Jones potential (minimum image)."""
    rng = np.random.default_rng(seed)
    n = n_o + n_h
    cell = np.array([[box, 0, 0], [tilt, box, 0], [0.3 * tilt, 0.2 * tilt, box]])
    g = int(np.ceil(n ** (1 / 3)))
    grid = np.array([(i, j, k) for i in range(g) for j in range(g) for k in range(g)][:n], float)
    coords, es, fs, vs = [], [], [], []
    for _ in range(nframes):
        frac = (grid + 0.5 + rng.uniform(-0.2, 0.2, grid.shape)) / g
        x = frac @ cell
        e, f, w = 0.0, np.zeros((n, 3)), np.zeros((3, 3))
        for i in range(n):
            for j in range(i + 1, n):
                d = x[j] - x[i]
                if not nopbc:
                    fr = np.linalg.solve(cell.T, d)
                    d = (fr - np.round(fr)) @ cell
                r = np.linalg.norm(d)
                sr6 = (1.2 / r) ** 6
                e += 0.4 * (sr6 * sr6 - sr6)
                dedr = 0.4 * (-12 * sr6 * sr6 + 6 * sr6) / r
                f[i] += dedr * d / r
                f[j] -= dedr * d / r
                w -= np.outer(dedr * d / r, d)
        coords.append(x)
        es.append(e - 3.0 * n_o - 1.0 * n_h)
        fs.append(f)
        vs.append(w)
    data = {
        "atom_names": ["O", "H"],
        "atom_numbs": np.array([n_o, n_h]),
        "atom_types": np.array([0] * n_o + [1] * n_h),
        "cells": np.repeat(cell[None], nframes, 0),
        "coords": np.array(coords),
        "energies": np.array(es),
        "forces": np.array(fs),
        "nopbc": nopbc,
    }
    if virial:
        data["virials"] = np.array(vs)
    return LabeledSystem(data=data)


TINY = {
    "model": {
        "type_map": ["O", "H"],
        "descriptor": {
            "type": "se_e2_a",
            "sel": [8, 16],
            "rcut": 4.0,
            "rcut_smth": 0.5,
            "neuron": [4, 8],
            "axis_neuron": 4,
            "resnet_dt": False,
            "seed": 1,
            "_comment": "tiny",
        },
        "fitting_net": {"neuron": [16, 16], "resnet_dt": True, "seed": 1},
    },
    "learning_rate": {"type": "exp", "decay_steps": 4, "start_lr": 1e-3, "stop_lr": 1e-5},
    "loss": {
        "type": "ener",
        "start_pref_e": 0.02,
        "limit_pref_e": 1,
        "start_pref_f": 1000,
        "limit_pref_f": 1,
        "start_pref_v": 0,
        "limit_pref_v": 0,
    },
    "training": {"numb_steps": 8, "seed": 10, "disp_freq": 4, "save_freq": 4, "_comment": "tiny"},
}


@pytest.fixture
def tiny_config() -> dict:
    return copy.deepcopy(TINY)


def tiny_model(
    seed: int = 1,
    sel=(8, 16),
    rcut: float = 4.0,
    type_one_side: bool = False,
    dense: bool | None = False,
    embedding_resnet_dt: bool = False,
):
    """A small randomly initialised EnergyModel with non-trivial statistics. ``dense``: True sends
    every batch through the descriptor's dense path, False through the block path (what these
    tiny batches would otherwise not take), None keeps the size rule."""
    from dpconv.trainer.model import EnergyModel

    cfg = copy.deepcopy(TINY["model"])
    cfg["descriptor"].update(
        {"sel": list(sel), "rcut": rcut, "seed": seed, "type_one_side": type_one_side, "resnet_dt": embedding_resnet_dt}
    )
    cfg["descriptor"].setdefault("env_protection", 0.0)
    cfg["fitting_net"]["seed"] = seed + 1
    from dpconv.trainer.config import normalize

    full = normalize({"model": cfg, "training": {"numb_steps": 1, "training_data": {"systems": []}}})
    m = EnergyModel.from_config(full["model"])
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        # one value per centre type, tiled over the slots (as the statistics make them)
        m.descriptor.davg[..., 0] = 0.1 * torch.rand(m.descriptor.davg.shape[0], 1, generator=g, dtype=torch.float64)
        m.descriptor.dstd.mul_(0.5)
        m.fitting.out_bias.copy_(torch.tensor([-3.0, -1.0]))
    if dense is not None:
        m.descriptor.dense_max_slots = 10**9 if dense else 0
    return m
