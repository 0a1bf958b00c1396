"""Switching function and environment matrix of se_e2_a (notes §3)."""

from __future__ import annotations

import torch


def switch(r: torch.Tensor, rcut_smth: float, rcut: float) -> torch.Tensor:
    """``1 - 10u³ + 15u⁴ - 6u⁵`` with ``u = (r - rs)/(rc - rs)`` clamped to [0, 1]; C² at both ends."""
    u = (r.clamp(rcut_smth, rcut) - rcut_smth) / (rcut - rcut_smth)
    return u * u * u * (u * (15.0 - 6.0 * u) - 10.0) + 1.0


def env_matrix(
    rij: torch.Tensor, mask: torch.Tensor, rcut_smth: float, rcut: float, protection: float = 0.0
) -> torch.Tensor:
    """Raw rows ``sw(r)·(1/r, x/r², y/r², z/r²)`` for pair vectors ``rij`` (..., 3).

    ``mask`` (...) marks real neighbours; padded slots give a row of zeros (and
    no NaN gradient: their vector is replaced before the norm is taken).
    """
    m = mask.unsqueeze(-1)
    safe = torch.where(m, rij, torch.ones_like(rij))
    r = torch.linalg.vector_norm(safe, dim=-1, keepdim=True)
    rp = r + protection
    weight = switch(r, rcut_smth, rcut) * m.to(rij.dtype)
    inv = weight / rp
    return torch.cat([inv, safe * (inv / rp)], dim=-1)


def env_matrix_factors(
    rij: torch.Tensor, mask: torch.Tensor, rcut_smth: float, rcut: float, protection: float = 0.0
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """:func:`env_matrix` (the same values, bit for bit) and the per-slot factors
    ``[safe (..., 3), r, f1, df0, df1 (..., 1)]`` from which :func:`env_grad_from_factors` gives its
    first derivative without recomputing distances and switching function."""
    m = mask.unsqueeze(-1)
    mf = m.to(rij.dtype)
    safe = torch.where(m, rij, torch.ones_like(rij))
    r = torch.linalg.vector_norm(safe, dim=-1, keepdim=True)
    rp = r + protection
    width = rcut - rcut_smth
    u = (r.clamp(rcut_smth, rcut) - rcut_smth) / width
    w = (u * u * u * (u * (15.0 - 6.0 * u) - 10.0) + 1.0) * mf
    omu = 1.0 - u
    dw = (u * omu) * (u * omu) * (-30.0 / width) * mf
    f0 = w / rp
    f1 = f0 / rp
    df0 = (dw - f0) / rp
    df1 = (dw / rp - 2.0 * f1) / rp
    return torch.cat([f0, safe * f1], dim=-1), [safe, r, f1, df0, df1]


def env_grad_from_factors(draw: torch.Tensor, factors: list[torch.Tensor]) -> torch.Tensor:
    """``∂L/∂rij`` (..., 3) from ``draw = ∂L/∂env_matrix`` (..., 4) and :func:`env_matrix_factors`'
    factors: the hand-written first derivative of :func:`env_matrix` (zero on padded slots, as
    autograd gives)."""
    safe, r, f1, df0, df1 = factors[0], factors[1], factors[2], factors[3], factors[4]
    dk = draw[..., 1:]
    dr = draw[..., :1] * df0 + (dk * safe).sum(dim=-1, keepdim=True) * df1
    return dk * f1 + safe * (dr / r)
