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
