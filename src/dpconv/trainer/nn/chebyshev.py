"""Chebyshev tables of the embedding nets, for frozen models (inference only).

An embedding net maps one number, the normalised ``s = (sw(r)/r − davg)/dstd``, to M1 numbers.
On ``[lo, hi]`` (``hi`` from the closest distance the table serves) each output is a smooth
function of ``s``, and its Chebyshev series converges fast: for the tutorial's nets 64–96 terms
reproduce the net to about 1e-13. :func:`fit` interpolates ``G`` and ``dG/ds`` (exact, carried
forward through the layers) at the Chebyshev nodes, raises the number of terms until a dense check
grid shows the table equal to the net (values and derivatives) within ``tol``, and gives up (the
net is then evaluated as is) past ``kmax``.

The frozen model never forms ``G`` per neighbour: with the basis ``b_j = T_k(t_j)`` (K numbers) and
the coefficients ``[C | D]``, ``Σ_j R_jᵀ G_j = (Σ_j R_jᵀ b_j)·C`` and, going back, each slot's
``∂L/∂R_j = b_j·(C·dTᵀ)`` and ``∂L/∂s_j = R_j·(b_j·(D·dTᵀ))``: per slot K numbers instead of 2·M1,
and the products with the coefficients happen once per centre. A block holding a value outside
``[lo, hi]`` falls back to the net, so results never depend on the table's range.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def basis(t: torch.Tensor, k: int) -> torch.Tensor:
    """``T_0..T_{k-1}`` at ``t`` (n,) in [-1, 1]: (n, k)."""
    j = torch.arange(k, dtype=t.dtype, device=t.device)
    return torch.cos(torch.arccos(t).unsqueeze(-1) * j)


def basis_on(x: torch.Tensor, lo: float, hi: float, k: int) -> torch.Tensor:
    """:func:`basis` at ``x`` (n,) in ``[lo, hi]``, mapped onto [-1, 1]: (n, k)."""
    return basis(((2.0 * x - (lo + hi)) / (hi - lo)).clamp(-1.0, 1.0), k)


def _net_and_slope(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``G(x)`` and ``dG/dx`` (n, M1) of a one-input :class:`~dpconv.trainer.nn.networks.MLP` at ``x``
    (n,): the derivative carried forward layer by layer (forward mode; exact, no differencing)."""
    h = x.unsqueeze(-1)
    hp = torch.ones_like(h)
    for layer in net:  # pyright: ignore[reportGeneralTypeIssues]  (an nn.Sequential of Dense)
        z = torch.addmm(layer.bias, h, layer.weight)
        zp = hp @ layer.weight
        if not layer.activation:
            h, hp = z, zp
            continue
        y = torch.tanh(z)
        yp = zp * (1.0 - y * y)
        if layer.has_idt:
            y, yp = y * layer.idt, yp * layer.idt
        if layer.skip == 1:
            y, yp = y + h, yp + hp
        elif layer.skip == 2:
            y, yp = y + torch.cat([h, h], dim=1), yp + torch.cat([hp, hp], dim=1)
        h, hp = y, yp
    return h, hp


def _next_k(k: int) -> int:
    """32, 48, 64, 96, 128, 192, 256, …"""
    return k * 3 // 2 if k & (k - 1) == 0 else k * 4 // 3


def _coefficients(net: nn.Module, lo: float, hi: float, k: int) -> torch.Tensor:
    """Coefficients (k, 2·M1) of the series interpolating ``[G | dG/ds]`` at the k Chebyshev nodes of
    ``[lo, hi]`` (differentiable with respect to the net's parameters when grad mode is on)."""
    p = next(net.parameters())
    j = torch.arange(k, dtype=torch.float64, device=p.device)
    theta = math.pi * (j + 0.5) / k  # the nodes are cos(theta)
    gn, gpn = _net_and_slope(net, ((lo + hi) / 2 + (hi - lo) / 2 * torch.cos(theta)).to(p.dtype))
    # discrete orthogonality at the nodes: c_j = (2/k) Σ_i f(x_i) T_j(x_i), halved for j = 0;
    # the derivative is interpolated too (differentiating the series would amplify rounding by k²)
    w = (2.0 / k) * torch.cos(theta.unsqueeze(1) * j).t()
    w[0] /= 2
    return w.to(p.dtype) @ torch.cat([gn, gpn], dim=1)


def interpolate(
    net: nn.Module, lo: float, hi: float, tol: float = 1e-12, k0: int = 32, kmax: int = 256, tail: int = 4
) -> torch.Tensor | None:
    """Coefficients (K, 2·M1) of ``[G | dG/ds]`` on ``[lo, hi]`` for training, differentiable with
    respect to the net's parameters, or None when no K ≤ ``kmax`` converges.

    No dense check (that would cost more than the net on the real neighbours): K grows until, in
    each half, the last ``tail`` coefficients are at most ``tol·max(1, max|c|)``. For a series that
    converges geometrically, as a tanh net's does, that tail bounds the error from above; on the
    tutorial's water nets the measured error is ten to a hundred times below it.
    """
    k = k0
    while k <= kmax:
        c = _coefficients(net, lo, hi, k)
        cd = c.detach()
        m1 = cd.shape[1] // 2
        if all(float(h[-tail:].abs().max()) <= tol * max(1.0, float(h.abs().max())) for h in (cd[:, :m1], cd[:, m1:])):
            return c
        k = _next_k(k)
    return None


def fit(
    net: nn.Module, lo: float, hi: float, tol: float = 1e-12, k0: int = 32, kmax: int = 256, ncheck: int = 20001
) -> torch.Tensor | None:
    """Coefficients (K, 2·M1) of ``[G | dG/ds]`` in ``T_k((2s − lo − hi)/(hi − lo))``, or None.

    Accepted when, on ``ncheck`` evenly spaced points of ``[lo, hi]``, both halves differ from the
    net by at most ``tol·max(1, max|·|)``.
    """
    p = next(net.parameters())
    dtype, dev = p.dtype, p.device
    with torch.no_grad():
        xs = torch.linspace(lo, hi, ncheck, dtype=torch.float64, device=dev).to(dtype)
        g_ref, gp_ref = _net_and_slope(net, xs)
        tg = tol * max(1.0, float(g_ref.abs().max()))
        tp = tol * max(1.0, float(gp_ref.abs().max()))
        k = k0
        while k <= kmax:  # the matrix product grows with k
            c = _coefficients(net, lo, hi, k).to(torch.float64)
            m1 = c.shape[1] // 2
            b = basis_on(xs.to(torch.float64), lo, hi, k)
            if (b @ c[:, :m1] - g_ref).abs().max() <= tg and (b @ c[:, m1:] - gp_ref).abs().max() <= tp:
                return c.to(dtype)
            k = _next_k(k)
    return None
