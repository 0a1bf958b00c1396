"""Chebyshev tables of the embedding nets (frozen models): equal to the nets, and never out of range."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch

from dpconv.trainer.export import FrozenModel
from dpconv.trainer.nn.chebyshev import basis, fit
from dpconv.trainer.nn.networks import mlp

from .conftest import lj_system, tiny_model


def _script(fm: FrozenModel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(fm)


def test_fit_reproduces_net_and_slope():
    g = torch.Generator().manual_seed(3)
    net = mlp([1, 8, 16, 32], resnet_dt=True, linear_out=False, dtype=torch.float64, generator=g)
    lo, hi = -0.7, 12.0
    c = fit(net, lo, hi, tol=1e-12)
    assert c is not None and c.shape[1] == 64
    x = torch.rand(500, dtype=torch.float64, generator=g) * (hi - lo) + lo
    x.requires_grad_(True)
    ref = net(x.unsqueeze(-1))
    slope = torch.stack([torch.autograd.grad(ref[:, j].sum(), x, retain_graph=True)[0] for j in range(32)], 1)
    b = basis((2 * x.detach() - lo - hi) / (hi - lo), c.shape[0])
    torch.testing.assert_close(b @ c[:, :32], ref.detach(), atol=1e-11, rtol=0)
    torch.testing.assert_close(b @ c[:, 32:], slope, atol=1e-11, rtol=0)
    # too few terms allowed: no table (the net is then evaluated as is)
    assert fit(net, lo, hi, tol=1e-12, kmax=8) is None


@pytest.fixture(scope="module")
def models():
    plain = _script(FrozenModel(tiny_model()))
    fm = FrozenModel(tiny_model())
    terms = fm.model.descriptor.tabulate(0.8, rnear=1.6)  # two levels: ≥ 1.6 Å first, then ≥ 0.8 Å
    assert len(terms) == 2 * len(fm.model.descriptor.nets) and all(k > 0 for k in terms), terms
    return plain, fm, _script(fm)


@pytest.mark.parametrize("tilt", [0.0, 0.7])
def test_tables_equal_nets(models, tilt):
    plain, eager, scripted = models
    s = lj_system(2, box=5.0, tilt=tilt, seed=5)
    x = torch.tensor(s.data["coords"])
    types = torch.tensor(s.data["atom_types"])
    cells = torch.tensor(s.data["cells"]).reshape(2, 9)
    ref = plain(x, types, cells)
    for m in (eager, scripted):
        out = m(x, types, cells)
        for k in ("energy", "atom_energy", "force", "virial"):
            torch.testing.assert_close(out[k], ref[k], atol=1e-10, rtol=0)
            assert not torch.equal(out["force"], ref["force"])  # the tables did run (rounding differs)
    # forward_lower (LAMMPS) takes the same path
    n = len(types)
    cell = cells[0].reshape(3, 3)
    shifts = [torch.tensor(v, dtype=torch.float64) for v in itertools.product((-1, 0, 1), repeat=3) if v != (0, 0, 0)]
    ext = torch.cat([x[0]] + [x[0] + sv @ cell for sv in shifts])[None]
    a = scripted.forward_lower(ext, types.repeat(27)[None], n)
    b = plain.forward_lower(ext, types.repeat(27)[None], n)
    for k in ("energy", "extended_force", "virial"):
        torch.testing.assert_close(a[k], b[k], atol=1e-10, rtol=0)


def test_pair_closer_than_table_falls_back(models):
    """A pair closer than the tables' rmin makes its blocks run the nets: still equal."""
    plain, _, scripted = models
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 6.0, (12, 3))
    x[1] = x[0] + np.array([0.5, 0.0, 0.0])  # O–O at 0.5 Å < rmin 0.8
    types = torch.tensor([0] * 4 + [1] * 8)
    xt = torch.tensor(x)[None]
    ref = plain(xt, types)
    out = scripted(xt, types)
    for k in ("energy", "force", "virial"):
        torch.testing.assert_close(out[k], ref[k], atol=1e-10, rtol=0)
    desc = models[1].model.descriptor
    nn_ = len(desc.nets)
    lo, hi = (float(v) for v in desc.table_ranges[nn_])  # the wide level, net 0
    hi_near = float(desc.table_ranges[0][1])
    assert hi_near < hi
    assert desc._basis(0, torch.tensor([lo, hi + 1.0], dtype=torch.float64))[1].numel() == 0
    # the first level that covers the block serves it: the short table, else the long one
    b, c = desc._basis(0, torch.tensor([lo, hi_near], dtype=torch.float64))
    assert c is desc.tables[0] and b.shape == (2, c.shape[0])
    b, c = desc._basis(0, torch.tensor([lo, (hi_near + hi) / 2], dtype=torch.float64))
    assert c is desc.tables[nn_] and b.shape == (2, c.shape[0])
    assert desc.tables[0].shape[0] <= desc.tables[nn_].shape[0]


def test_blocks_without_neighbours(models):
    """Type pairs with no neighbour at all (empty blocks) go through the tabulated path too."""
    plain, _, scripted = models
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(0, 3.0, (4, 3)), 30.0 + rng.uniform(0, 3.0, (8, 3))])  # O and H far apart
    types = torch.tensor([0] * 4 + [1] * 8)
    ref = plain(torch.tensor(x)[None], types)
    out = scripted(torch.tensor(x)[None], types)
    for k in ("energy", "force", "virial"):
        torch.testing.assert_close(out[k], ref[k], atol=1e-10, rtol=0)


def test_frames_with_a_single_atom_of_a_type(models):
    """Several frames at once where one type has a single atom (a methane-like layout): the per-type
    slices of the tabulated path are then strided over the frames; equal to the nets and to the frames
    one by one."""
    plain, _, scripted = models
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.uniform(0, 2.5, (3, 5, 3)))
    types = torch.tensor([0, 1, 1, 1, 1])
    ref = plain(x, types)
    out = scripted(x, types)
    for k in ("energy", "force", "virial"):
        torch.testing.assert_close(out[k], ref[k], atol=1e-10, rtol=0)
        for f in range(3):
            torch.testing.assert_close(scripted(x[f : f + 1], types)[k], out[k][f : f + 1], atol=1e-12, rtol=0)
