"""On the real water data (skipped without the shared fixture corpus)."""

from __future__ import annotations

import numpy as np
import torch

import dpconv
from dpconv.trainer.data import SystemData
from dpconv.trainer.nn.neighbor import build_neighbors, neighbor_stat, pair_vectors

from ..conftest import fixture_path


def _water(frames=slice(0, 3)):
    s = dpconv.read(fixture_path("water_deepmd", "data_0"), "deepmd/npy", labeled=True)
    return s.sub_system(frames)


def test_neighbor_stat_and_list_on_water():
    s = _water()
    sd = SystemData(s, ["O", "H"])
    counts, dmin = sd.neighbor_stat(6.0)
    # DeePMD-kit's maximum over all 320 training frames is [38, 72] (notes §12)
    assert counts[0] <= 38 and counts[1] <= 72 and counts[0] >= 30 and counts[1] >= 60
    assert dmin >= 0.885 - 1e-3
    x = torch.tensor(sd._np["coords"][:1])
    c = torch.tensor(sd._np["cells"][:1])
    t = torch.tensor(sd.atype_np)
    nl, sh = build_neighbors(x, c, t, 6.0, [44, 80])
    r = pair_vectors(x, c, nl, sh).norm(dim=-1)
    # brute force with the minimum image (the box, 12.44 Å, is longer than 2·rcut)
    xs = x[0].numpy()
    d = xs[None] - xs[:, None]
    box = float(c[0, 0, 0])
    assert np.allclose(c[0].numpy(), np.eye(3) * box)
    frac = d / box
    d = (frac - np.round(frac)) * box
    dist = np.linalg.norm(d, axis=-1)
    np.fill_diagonal(dist, np.inf)
    ref = (dist <= 6.0).sum(1)
    assert ((nl[0] >= 0).sum(1).numpy() == ref).all()
    got = np.sort(r[0][nl[0] >= 0].numpy())
    np.testing.assert_allclose(got, np.sort(dist[dist <= 6.0]), atol=1e-10)
    c2, _ = neighbor_stat(x, c, t, 2, 6.0)
    assert c2.tolist() == [int(v) for v in [(dist[:, t.numpy() == k] < 6.0).sum(1).max() for k in (0, 1)]]


def test_statistics_match_deepmd_water_run():
    """davg/dstd and the minimum-norm energy bias land where DeePMD-kit's water run put them."""
    from dpconv.trainer.model import compute_energy_bias, compute_env_stats

    from .conftest import tiny_model

    s = _water(slice(0, 10))
    sd = SystemData(s, ["O", "H"])
    sd.prepare(6.0, [44, 80], torch.float64, torch.device("cpu"))
    m = tiny_model(sel=(44, 80), rcut=6.0)
    compute_env_stats(m, [sd.batch(np.arange(10))])
    davg, dstd = m.descriptor.davg, m.descriptor.dstd
    # DeePMD-kit (30 random frames of 3 systems): O 0.05602 / 0.14633 / 0.09046, H 0.05355 / 0.12949 / 0.08090
    np.testing.assert_allclose([davg[0, 0, 0], dstd[0, 0, 0], dstd[0, 0, 1]], [0.05602, 0.14633, 0.09046], rtol=0.03)
    np.testing.assert_allclose([davg[1, 0, 0], dstd[1, 0, 0], dstd[1, 0, 1]], [0.05355, 0.12949, 0.08090], rtol=0.03)
    assert float(davg[:, :, 1:].abs().max()) == 0.0
    compute_energy_bias(m, np.tile(sd.counts, (10, 1)), sd._np["energies"][:10])
    b = m.fitting.out_bias
    assert abs(float(b[1] / b[0]) - 2.0) < 1e-9  # minimum-norm split, b ∝ n_t (64 O, 128 H)
