"""Shared fixtures of the MD-engine tests: tiny frozen models and small periodic frames."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def frozen_model(path: str, seed: int = 1, rcut: float = 4.0, sel=(8, 16)) -> str:
    """Script a small random (non-trivial) O/H model to ``path`` with dpconv's metadata."""
    from dpconv.trainer.export import EXTRA, UNITS, FrozenModel
    from tests.trainer.conftest import tiny_model

    m = tiny_model(seed=seed, sel=sel, rcut=rcut)
    m.eval()
    scripted = torch.jit.script(FrozenModel(m))
    meta = {"type_map": ["O", "H"], "rcut": rcut, "sel": list(sel), "units": UNITS}
    torch.jit.save(scripted, path, _extra_files={EXTRA: json.dumps(meta)})
    return path


@pytest.fixture(scope="session")
def model_path(tmp_path_factory) -> str:
    return frozen_model(str(tmp_path_factory.mktemp("models") / "model.pth"))


@pytest.fixture(scope="session")
def ensemble(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("ensemble")
    return [frozen_model(str(d / f"m{i}.pth"), seed=1 + i) for i in range(3)]


def water_frame(seed: int = 0, reps: int = 1):
    """A periodic water-like box: 8·reps³ molecules on a jittered grid (cell, coords, types 0=O 1=H)."""
    rng = np.random.default_rng(seed)
    a = 3.1
    g = 2 * reps
    cell = np.diag([a * g] * 3)
    o = np.array([(i, j, k) for i in range(g) for j in range(g) for k in range(g)], float) * a + 0.5
    o += rng.uniform(-0.15, 0.15, o.shape)
    h1 = o + np.array([0.96, 0.0, 0.0]) + rng.uniform(-0.05, 0.05, o.shape)
    h2 = o + np.array([-0.24, 0.93, 0.0]) + rng.uniform(-0.05, 0.05, o.shape)
    coords = np.concatenate([o, h1, h2])
    types = np.array([0] * len(o) + [1] * (2 * len(o)))
    return cell, coords, types


def triclinic_frame(seed: int = 3):
    """A small triclinic cell (LAMMPS' restricted form: lower-triangular rows) with 12 atoms."""
    rng = np.random.default_rng(seed)
    cell = np.array([[5.2, 0.0, 0.0], [1.1, 5.0, 0.0], [-0.7, 0.9, 5.4]])
    frac = np.array([(i, j, k) for i in range(2) for j in range(2) for k in range(3)], float) / [2, 2, 3]
    frac += rng.uniform(-0.05, 0.05, frac.shape)
    coords = frac @ cell
    types = np.array([0, 1, 1] * 4)
    return cell, coords, types
