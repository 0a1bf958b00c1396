"""Physics of the model: forces, virial, invariances, smoothness, batching (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpconv.trainer.nn.env import switch
from dpconv.trainer.nn.neighbor import build_neighbors

from .conftest import lj_system, tiny_model

RCUT = 4.0
SEL = [8, 16]


def energy_and_more(model, x, cell, types):
    """Evaluate a (1, N, 3) frame with atoms in any order (sorted internally)."""
    order = torch.argsort(types, stable=True)
    inv = torch.argsort(order)
    t = types[order]
    xs = x[:, order]
    nl, sh = build_neighbors(xs, cell, t, RCUT, SEL)
    out = model(xs, cell, nl, sh, t, torch.bincount(t, minlength=2).tolist())
    return out["energy"], out["force"][:, inv], out["virial"]


@pytest.fixture(scope="module", params=[False, True], ids=["blocks", "dense"])
def setup(request):
    s = lj_system(2, box=5.0, tilt=0.7, seed=3)
    x = torch.tensor(s.data["coords"][:1])
    cell = torch.tensor(s.data["cells"][:1])
    types = torch.tensor(s.data["atom_types"])
    return tiny_model(dense=request.param), x, cell, types


def test_switch_is_c2_and_bounded():
    r = torch.linspace(0.0, 5.0, 501, dtype=torch.float64)
    sw = switch(r, 0.5, 4.0)
    assert torch.all(sw[r < 0.5] == 1) and torch.all(sw[r >= 4.0] == 0)
    assert torch.all((sw >= 0) & (sw <= 1))
    u = torch.tensor([0.5, 4.0], dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(switch(u, 0.5, 4.0).sum(), u, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), u)
    zero = torch.zeros(2, dtype=torch.float64)
    assert torch.allclose(g, zero) and torch.allclose(h, zero)


def test_forces_are_minus_gradient(setup):
    model, x, cell, types = setup
    _, f, _ = energy_and_more(model, x, cell, types)
    eps = 1e-5
    n = x.shape[1]
    delta = torch.zeros(n * 3, n, 3, dtype=torch.float64)
    delta.view(n * 3, n * 3).diagonal().fill_(eps)
    frames = torch.cat([x + delta, x - delta])  # all displaced frames in one batch
    e, _, _ = energy_and_more(model, frames, cell.expand(2 * n * 3, 3, 3), types)
    fd = -(e[: 3 * n] - e[3 * n :]).reshape(1, n, 3) / (2 * eps)
    assert f.abs().max() > 1e-3
    torch.testing.assert_close(f.detach(), fd.detach(), atol=1e-8, rtol=1e-6)


def test_virial_is_strain_derivative(setup):
    model, x, cell, types = setup
    _, _, w = energy_and_more(model, x, cell, types)
    eps = 1e-5
    fd = torch.zeros(3, 3, dtype=torch.float64)
    for a in range(3):
        for b in range(3):

            def e(d, a=a, b=b):
                strain = torch.eye(3, dtype=torch.float64)
                strain[b, a] += d  # x' = x (1 + ε), ε_ab → x'_b += ε x_a
                return energy_and_more(model, x @ strain.T, cell @ strain.T, types)[0]

            fd[a, b] = -(e(eps) - e(-eps)) / (2 * eps)
    torch.testing.assert_close(w[0].detach(), fd, atol=1e-8, rtol=1e-6)


def test_invariance_rotation_translation_permutation(setup):
    model, x, cell, types = setup
    e0, f0, _ = energy_and_more(model, x, cell, types)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    e1, f1, _ = energy_and_more(model, x @ q.T + torch.tensor([0.3, -1.2, 7.0], dtype=torch.float64), cell @ q.T, types)
    torch.testing.assert_close(e1, e0, atol=1e-10, rtol=0)
    torch.testing.assert_close(f1, f0 @ q.T, atol=1e-10, rtol=0)
    perm = torch.arange(x.shape[1])
    perm[[0, 2]] = perm[[2, 0]]  # two O atoms
    perm[[5, 9]] = perm[[9, 5]]  # two H atoms
    e2, f2, _ = energy_and_more(model, x[:, perm], cell, types[perm])
    torch.testing.assert_close(e2, e0, atol=1e-10, rtol=0)
    torch.testing.assert_close(f2, f0[:, perm], atol=1e-10, rtol=0)
    # a lattice translation of one atom changes nothing
    x3 = x.clone()
    x3[0, 4] += cell[0, 1] - 2 * cell[0, 2]
    torch.testing.assert_close(energy_and_more(model, x3, cell, types)[0], e0, atol=1e-10, rtol=0)


@pytest.mark.parametrize("dense", [False, True], ids=["blocks", "dense"])
def test_continuity_at_rcut(dense):
    model = tiny_model(dense=dense)
    types = torch.tensor([0, 1])
    es, fs = [], []
    for d in (RCUT - 1e-6, RCUT + 1e-6):
        x = torch.tensor([[[0.0, 0.0, 0.0], [d, 0.0, 0.0]]], dtype=torch.float64)
        e, f, _ = energy_and_more(model, x, None, types)
        es.append(e.item())
        fs.append(f)
    assert abs(es[0] - es[1]) < 1e-9
    assert (fs[0] - fs[1]).abs().max() < 1e-7

    # and a smooth approach: energy differences shrink as the neighbour nears rcut
    def pair(d):
        return torch.tensor([[[0.0, 0, 0], [d, 0, 0]]], dtype=torch.float64)

    e_far = energy_and_more(model, pair(RCUT + 1), None, types)[0]
    e_near = energy_and_more(model, pair(RCUT - 0.01), None, types)[0]
    assert abs((e_near - e_far).item()) < 1e-4


@pytest.mark.parametrize("dense", [False, True, None], ids=["blocks", "dense", "by-size"])
def test_batch_equals_frames(dense):
    s = lj_system(4, seed=7)
    model = tiny_model(dense=dense)
    x = torch.tensor(s.data["coords"])
    cell = torch.tensor(s.data["cells"])
    types = torch.tensor(s.data["atom_types"])
    nl, sh = build_neighbors(x, cell, types, RCUT, SEL)
    out = model(x, cell, nl, sh, types, [4, 8])
    for i in range(4):
        nl1, sh1 = build_neighbors(x[i : i + 1], cell[i : i + 1], types, RCUT, SEL)
        o1 = model(x[i : i + 1], cell[i : i + 1], nl1, sh1, types, [4, 8])
        for k in ("energy", "force", "virial", "atom_energy"):
            torch.testing.assert_close(out[k][i : i + 1], o1[k], atol=1e-12, rtol=0)


def test_type_one_side_runs():
    model = tiny_model(type_one_side=True)
    s = lj_system(1)
    x = torch.tensor(s.data["coords"])
    e, f, _ = energy_and_more(model, x, torch.tensor(s.data["cells"]), torch.tensor(s.data["atom_types"]))
    assert np.isfinite(e.item()) and f.shape == (1, 12, 3)


@pytest.mark.parametrize(("box", "tilt"), [(6.0, 0.0), (3.0, 0.8)])  # (3.0: a cell shorter than rcut)
def test_shared_pair_embedding_equals_plain(box, tilt):
    """Running the embedding once per same-type pair changes nothing (energy, forces, virial, grads)."""
    from dpconv.trainer.nn.neighbor import pair_representatives

    s = lj_system(2, box=box, tilt=tilt, seed=2)
    model = tiny_model(sel=(30, 60))
    x = torch.tensor(s.data["coords"])
    cell = torch.tensor(s.data["cells"])
    types = torch.tensor(s.data["atom_types"])
    nl, sh = build_neighbors(x, cell, types, RCUT, [30, 60])
    rep = pair_representatives(nl, sh, types)
    nf, n, nc = nl.shape
    assert (rep != torch.arange(n * nc).view(1, n, nc)).any()  # some slots share
    rep = rep + (torch.arange(nf) * n * nc).view(-1, 1, 1)
    outs = []
    for r in (None, rep):
        o = model(x, cell, nl, sh, types, [4, 8], create_graph=True, rep=r)
        loss = o["energy"].square().sum() + o["force"].square().sum()
        outs.append((o, torch.autograd.grad(loss, list(model.parameters()))))
    for k in ("energy", "force", "virial"):
        torch.testing.assert_close(outs[0][0][k], outs[1][0][k], atol=1e-12, rtol=0)
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(("shared", "dense"), [(False, False), (True, False), (False, True)])
def test_training_gradient_equals_double_backward(shared, dense):
    """Training builds forces from the hand-written first derivative (one backward for the loss);
    outputs and parameter gradients equal autograd's double backward to rounding."""
    from dpconv.trainer.nn.neighbor import pair_representatives, pair_vectors

    s = lj_system(2, seed=3, virial=True)
    model = tiny_model(sel=(12, 24), dense=dense)
    x = torch.tensor(s.data["coords"])
    cell = torch.tensor(s.data["cells"])
    types = torch.tensor(s.data["atom_types"])
    nl, sh = build_neighbors(x, cell, types, RCUT, [12, 24])
    nf, n, nc = nl.shape
    rep = pair_representatives(nl, sh, types) + (torch.arange(nf) * n * nc).view(-1, 1, 1) if shared else None
    params = list(model.parameters())

    def loss_of(o):
        return o["energy"].square().sum() + o["force"].square().sum() + o["virial"].square().sum()

    explicit = model(x, cell, nl, sh, types, [4, 8], create_graph=True, rep=rep)
    rij = pair_vectors(x, cell, nl, sh).detach().requires_grad_(True)
    ae = model.atomic_energy(rij, nl >= 0, types, [4, 8], rep)
    (g,) = torch.autograd.grad([ae.sum()], [rij], create_graph=True)
    reference = model._outputs(ae, g, rij, nl)
    for k in ("energy", "force", "virial", "atom_energy"):
        torch.testing.assert_close(explicit[k], reference[k], atol=1e-12, rtol=0)
    for a, b in zip(torch.autograd.grad(loss_of(explicit), params), torch.autograd.grad(loss_of(reference), params)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("resnet_dt", [False, True])
@pytest.mark.parametrize(
    "sizes,linear_out", [([1, 4, 8, 8], False), ([6, 5, 5, 10, 10, 1], True)], ids=["embedding", "fitting"]
)
def test_hand_written_net_backwards_equal_autograd(sizes, linear_out, resnet_dt):
    """The training-time autograd Functions of :class:`MLP` (forward, input gradient, and both at
    once) give autograd's values and gradients: every skip kind, with and without ``idt``."""
    from dpconv.trainer.nn.networks import mlp

    g = torch.Generator().manual_seed(7)
    net = mlp(sizes, resnet_dt=resnet_dt, linear_out=linear_out, dtype=torch.float64, generator=g)
    params = list(net.parameters())
    x = torch.randn(9, sizes[0], dtype=torch.float64, generator=g, requires_grad=True)
    dout = torch.randn(9, sizes[-1], dtype=torch.float64, generator=g, requires_grad=True)
    wts = [torch.randn(9, n, dtype=torch.float64, generator=g) for n in [*sizes[1:], sizes[0], sizes[-1]]]

    def grads(loss):
        return torch.autograd.grad(loss, [x, dout, *params], allow_unused=True)

    def check(a, b):
        for u, v in zip(a, b):
            assert (u is None) == (v is None)
            if u is not None:
                torch.testing.assert_close(u, v, atol=1e-12, rtol=1e-12)

    def forward_loss(h, ys):
        return (h * wts[len(sizes) - 2]).sum() + sum((y * w).sum() for y, w in zip(ys, wts))

    h_ref, ys_ref = net.fwd_cache(x)
    h, ys = net.fwd_cache_train(x)
    check([h, *ys], [h_ref, *ys_ref])
    check(grads(forward_loss(h, ys) + 0 * dout.sum()), grads(forward_loss(h_ref, ys_ref) + 0 * dout.sum()))

    din_ref = net.bwd(dout, net.fwd_cache(x)[1])
    din = net.bwd_train(dout, net.fwd_cache_train(x)[1])
    check([din], [din_ref])
    check(grads((din * wts[-2]).sum()), grads((din_ref * wts[-2]).sum()))

    e_ref, ys_ref = net.fwd_cache(x)
    gin_ref = net.bwd(torch.ones_like(e_ref), ys_ref)
    e, gin = net.value_and_grad_train(x)
    check([e, gin], [e_ref, gin_ref])
    # both outputs in the loss (the two weight-gradient products folded into one), and each alone
    for ce, cg in ((1.0, 1.0), (0.0, 1.0), (1.0, 0.0)):
        e, gin = net.value_and_grad_train(x)
        e_ref, ys_ref = net.fwd_cache(x)
        gin_ref = net.bwd(torch.ones_like(e_ref), ys_ref)

        def loss_of(e, gin, ce=ce, cg=cg):  # an output left out of the loss gets no gradient at all
            return (ce * (e * wts[-1]).sum() if ce else 0) + (cg * (gin * wts[-2]).sum() if cg else 0) + 0 * dout.sum()

        check(grads(loss_of(e, gin)), grads(loss_of(e_ref, gin_ref)))


def test_env_matrix_factors_give_autograds_derivative():
    from dpconv.trainer.nn.env import env_grad_from_factors, env_matrix, env_matrix_factors

    g = torch.Generator().manual_seed(5)
    rij = (torch.rand(3, 7, 5, 3, dtype=torch.float64, generator=g) - 0.5) * 9.0
    mask = torch.rand(3, 7, 5, generator=g) > 0.3
    draw = torch.randn(3, 7, 5, 4, dtype=torch.float64, generator=g)
    env, fac = env_matrix_factors(rij, mask, 0.5, 4.0, 0.1)
    torch.testing.assert_close(env, env_matrix(rij, mask, 0.5, 4.0, 0.1), atol=0, rtol=0)
    r = rij.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad((env_matrix(r, mask, 0.5, 4.0, 0.1) * draw).sum(), r)
    torch.testing.assert_close(env_grad_from_factors(draw, fac), ref, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize(("box", "tilt", "resnet_dt"), [(6.0, 0.0, False), (3.0, 0.8, False), (6.0, 0.0, True)])
def test_dense_path_equals_block_path(box, tilt, resnet_dt):
    """Small batches send every slot through its net, all nets stacked: the same energies, forces,
    virials and parameter gradients as the block path (which embeds only real neighbours), in
    training and in inference."""
    from dpconv.trainer.nn.neighbor import pair_vectors

    s = lj_system(3, box=box, tilt=tilt, seed=11, virial=True)
    model = tiny_model(sel=(30, 60), dense=None, embedding_resnet_dt=resnet_dt)
    x = torch.tensor(s.data["coords"])
    cell = torch.tensor(s.data["cells"])
    types = torch.tensor(s.data["atom_types"])
    nl, sh = build_neighbors(x, cell, types, RCUT, [30, 60])
    rij = pair_vectors(x, cell, nl, sh).detach()
    params = list(model.parameters())
    res = []
    for dense_max_slots in (0, 10**9):
        model.descriptor.dense_max_slots = dense_max_slots
        o = model.from_pairs(rij, nl, types, [4, 8], True)
        loss = o["energy"].square().sum() + o["force"].square().sum() + o["virial"].square().sum()
        with torch.no_grad():
            inf = model.from_pairs_inference(rij, nl, types, [4, 8])
        res.append((o, torch.autograd.grad(loss, params), inf))
    (o0, g0, i0), (o1, g1, i1) = res
    for k in ("energy", "atom_energy", "force", "virial"):
        torch.testing.assert_close(o1[k], o0[k], atol=1e-12, rtol=0)
        torch.testing.assert_close(i1[k], i0[k], atol=1e-12, rtol=0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-11)
    assert model.descriptor._dense_index_cache  # the dense path ran
