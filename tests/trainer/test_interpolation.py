"""Training with the embedding nets interpolated at Chebyshev nodes (SeA.interpolate_nets): the same
energies, forces, virials and parameter gradients as running the nets on every neighbour."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpconv.trainer.nn.chebyshev import basis, interpolate
from dpconv.trainer.nn.neighbor import build_neighbors, pair_representatives, pair_vectors
from dpconv.trainer.nn.networks import mlp

from .conftest import lj_system, tiny_model

RCUT = 4.0  # tiny_model's


@pytest.mark.parametrize("resnet_dt", [False, True])
def test_interpolate_values_slopes_and_parameter_gradients(resnet_dt):
    g = torch.Generator().manual_seed(11)
    net = mlp([1, 10, 20, 40], resnet_dt=resnet_dt, linear_out=False, dtype=torch.float64, generator=g)
    lo, hi = -0.4, 9.0
    c = interpolate(net, lo, hi)
    assert c is not None and c.requires_grad
    x = torch.linspace(lo, hi, 1001, dtype=torch.float64, requires_grad=True)
    b = basis((2 * x.detach() - lo - hi) / (hi - lo), c.shape[0])
    ref = net(x.unsqueeze(-1))
    slope = torch.stack([torch.autograd.grad(ref[:, j].sum(), x, retain_graph=True)[0] for j in range(40)], 1)
    torch.testing.assert_close(b @ c[:, :40], ref, atol=1e-11, rtol=0)
    torch.testing.assert_close(b @ c[:, 40:], slope, atol=1e-11, rtol=0)
    # a loss of the series has the loss-of-the-net's parameter gradient
    w = torch.randn(1001, 80, dtype=torch.float64, generator=g)
    params = list(net.parameters())
    ga = torch.autograd.grad(((b @ c) * w).sum(), params)
    slope_g = torch.stack(
        [torch.autograd.grad(ref[:, j].sum(), x, create_graph=True, retain_graph=True)[0] for j in range(40)], 1
    )
    gb = torch.autograd.grad((ref * w[:, :40]).sum() + (slope_g * w[:, 40:]).sum(), params)
    for u, v in zip(ga, gb):
        torch.testing.assert_close(u, v, atol=1e-9, rtol=1e-9)
    # a too short series is refused (the net then runs as is)
    assert interpolate(net, lo, hi, kmax=16) is None


def _outputs(model, s, sel, interpolate_nets, shared=False):
    model.descriptor.interpolate_nets = interpolate_nets
    model.descriptor.interpolate_min_slots = 0  # the tiny test blocks too
    x = torch.tensor(s.data["coords"])
    cell = torch.tensor(s.data["cells"]) if "cells" in s.data and not s.nopbc else None
    types = torch.tensor(s.data["atom_types"])
    nl, sh = build_neighbors(x, cell, types, RCUT, list(sel))
    nf, n, nc = nl.shape
    rep = pair_representatives(nl, sh, types) + (torch.arange(nf) * n * nc).view(-1, 1, 1) if shared else None
    counts = [int((types == t).sum()) for t in range(2)]
    o = model(x, cell, nl, sh, types, counts, create_graph=True, rep=rep)
    loss = o["energy"].square().sum() + o["force"].square().sum() + o["virial"].square().sum()
    return o, torch.autograd.grad(loss, list(model.parameters()))


@pytest.mark.parametrize(
    ("box", "tilt", "close"),
    [(6.0, 0.0, False), (3.0, 0.8, False), (6.0, 0.0, True)],
    ids=["cubic", "small-triclinic", "close-pair"],
)
def test_interpolated_training_equals_nets(box, tilt, close):
    s = lj_system(2, box=box, tilt=tilt, seed=4, virial=True)
    if close:  # an O–O pair at 0.45 Å: the interpolation range follows the data
        s.data["coords"][0, 1] = s.data["coords"][0, 0] + np.array([0.45, 0.0, 0.0])
    sel = (30, 60)
    model = tiny_model(sel=sel, rcut=RCUT)
    (o1, g1), (o0, g0) = (_outputs(model, s, sel, True, shared=True), _outputs(model, s, sel, False, shared=True))
    for k in ("energy", "atom_energy", "force", "virial"):
        torch.testing.assert_close(o1[k], o0[k], atol=1e-10, rtol=0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-8)


def test_interpolation_is_used_where_meant():
    """The coefficients show up in the caches in training and in table-less inference, not with
    autograd's derivative (rij requiring grad), for small blocks, or when switched off."""
    s = lj_system(1, seed=5)
    model = tiny_model(sel=(30, 60), rcut=RCUT)
    x = torch.tensor(s.data["coords"])
    cell = torch.tensor(s.data["cells"])
    types = torch.tensor(s.data["atom_types"])
    nl, sh = build_neighbors(x, cell, types, RCUT, [30, 60])
    rij = pair_vectors(x, cell, nl, sh)
    desc = model.descriptor
    desc.interpolate_min_slots = 0

    def interpolated(r):
        _, _, _, ycache = desc.forward_cache(r, nl >= 0, [4, 8])
        return [len(ys) == 2 and ys[0].numel() == 0 for ys in ycache]

    assert all(interpolated(rij.detach()))
    assert not any(interpolated(rij.detach().requires_grad_(True)))
    with torch.no_grad():  # inference in Python without tables (the trainer's validation): used too
        assert all(interpolated(rij))
    desc.interpolate_min_slots = 10**9  # blocks this small run the nets
    assert not any(interpolated(rij.detach()))
    desc.interpolate_min_slots = 0
    desc.interpolate_nets = False
    assert not any(interpolated(rij.detach()))


def test_empty_slot_row_taken_from_the_rows_equals_a_net_call():
    """Small blocks take the empty slot's embedding from the rows the net ran on; large ones call
    the net on it separately: same outputs and parameter gradients."""
    s = lj_system(2, box=6.0, seed=6, virial=True)
    sel = (30, 60)
    model = tiny_model(sel=sel, rcut=RCUT)
    outs = []
    for pad_row_max in (512, 0):
        model.descriptor.pad_row_max = pad_row_max
        outs.append(_outputs(model, s, sel, False, shared=True))
    (o1, g1), (o0, g0) = outs
    for k in ("energy", "atom_energy", "force", "virial"):
        torch.testing.assert_close(o1[k], o0[k], atol=1e-12, rtol=0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-11)


@pytest.mark.parametrize("dense", [False, True], ids=["blocks", "dense"])
def test_blocks_without_neighbours_in_training(dense):
    """O and H clusters 30 Å apart: the O–H and H–O blocks have no neighbour at all and take the
    shortcut; outputs and parameter gradients equal autograd's double backward."""
    rng = np.random.default_rng(8)
    x = np.concatenate([rng.uniform(0, 3.0, (4, 3)), rng.uniform(0, 3.0, (8, 3)) + 30.0])[None]
    x = torch.tensor(x)
    types = torch.tensor([0] * 4 + [1] * 8)
    model = tiny_model(sel=(8, 16), rcut=RCUT, dense=dense)
    nl, sh = build_neighbors(x, None, types, RCUT, [8, 16])
    params = list(model.parameters())
    explicit = model(x, None, nl, sh, types, [4, 8], create_graph=True)
    rij = pair_vectors(x, None, nl, sh).detach().requires_grad_(True)
    ae = model.atomic_energy(rij, nl >= 0, types, [4, 8])
    (g,) = torch.autograd.grad([ae.sum()], [rij], create_graph=True)
    reference = model._outputs(ae, g, rij, nl)

    def loss_of(o):
        return o["energy"].square().sum() + o["force"].square().sum()

    for k in ("energy", "force", "atom_energy"):
        torch.testing.assert_close(explicit[k], reference[k], atol=1e-12, rtol=0)
    for a, b in zip(torch.autograd.grad(loss_of(explicit), params), torch.autograd.grad(loss_of(reference), params)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)
