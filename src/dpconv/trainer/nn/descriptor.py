"""The se_e2_a descriptor (notes §5–§6).

Atoms arrive sorted by type (``counts[t]`` atoms of type t, contiguous) and the
neighbour slots come in type blocks of ``sel[t]``, so every (centre type,
neighbour type) embedding net works on one contiguous slice: no masks, no
gathers.
"""

from __future__ import annotations

from typing import List

import torch
from torch import nn

from dpconv.trainer.nn.env import env_matrix
from dpconv.trainer.nn.networks import mlp


class SeA(nn.Module):
    """``D_i = T_iᵀ T_i[:, :M2]`` with ``T_i = (1/Nc) Σ_j R_ijᵀ ⊗ G(R_ij,0)``."""

    def __init__(
        self,
        ntypes: int,
        sel: List[int],
        rcut: float,
        rcut_smth: float,
        neuron: List[int],
        axis_neuron: int,
        resnet_dt: bool = False,
        type_one_side: bool = False,
        env_protection: float = 0.0,
        dtype: torch.dtype = torch.float64,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.ntypes = ntypes
        self.sel = list(sel)
        self.nnei = sum(sel)
        self.rcut = float(rcut)
        self.rcut_smth = float(rcut_smth)
        self.axis_neuron = axis_neuron
        self.dim_emb = neuron[-1]
        self.type_one_side = type_one_side
        self.env_protection = float(env_protection)
        offs = [0]
        for s in sel:
            offs.append(offs[-1] + s)
        self.sel_offsets = offs
        nnets = ntypes if type_one_side else ntypes * ntypes
        # net k serves (centre k % nt, neighbour k // nt), DeePMD's index centre + nt·neighbour
        self.nets = nn.ModuleList(
            [mlp([1, *neuron], resnet_dt=resnet_dt, linear_out=False, dtype=dtype, generator=gen) for _ in range(nnets)]
        )
        self.register_buffer("davg", torch.zeros(ntypes, self.nnei, 4, dtype=dtype))
        self.register_buffer("dstd", torch.ones(ntypes, self.nnei, 4, dtype=dtype))

    @property
    def dim_out(self) -> int:
        return self.dim_emb * self.axis_neuron

    def raw_env(self, rij: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return env_matrix(rij, mask, self.rcut_smth, self.rcut, self.env_protection)

    def forward(
        self,
        rij: torch.Tensor,
        mask: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
        rep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Descriptors (nf, N, M1·M2) of type-sorted atoms; ``atype`` (N,), ``counts`` per type.

        ``rep`` (nf, N, Nc), optional: flat index (over the batch) of the slot representing each
        same-type pair (:func:`~dpconv.trainer.nn.neighbor.pair_representatives`); the embedding
        nets then run once per pair. Results equal those without it to rounding.
        """
        nf, n = rij.shape[0], rij.shape[1]
        env = (self.raw_env(rij, mask) - self.davg[atype]) / self.dstd[atype]  # pyright: ignore  (registered buffer)
        nt = self.ntypes
        aoff = [0]
        for c in counts:
            aoff.append(aoff[-1] + c)
        tblocks: List[torch.Tensor] = []
        for ti in range(nt):
            tblocks.append(torch.zeros(nf, counts[ti], 4, self.dim_emb, dtype=rij.dtype, device=rij.device))
        for k, net in enumerate(self.nets):
            ti = 0
            if self.type_one_side:
                tj = k
                a0, a1 = 0, n
            else:
                ti = k % nt
                tj = k // nt
                a0, a1 = aoff[ti], aoff[ti + 1]
            if a1 > a0:
                s0, s1 = self.sel_offsets[tj], self.sel_offsets[tj + 1]
                rr = env[:, a0:a1, s0:s1, :]
                if self.type_one_side:
                    g = net(rr[..., :1])
                    part = torch.matmul(rr.transpose(-1, -2), g)  # (nf, n_ti, 4, M1)
                else:
                    # embed real neighbours only; every empty slot of a type-ti centre has the same
                    # normalised row (davg/dstd are constant over slots) and so the same embedding
                    mk = mask[:, a0:a1, s0:s1]
                    g = torch.zeros(nf, a1 - a0, s1 - s0, self.dim_emb, dtype=rij.dtype, device=rij.device)
                    sp = rr[..., :1][mk]
                    if rep is not None and ti == tj:
                        nflat = n * self.nnei
                        own = torch.arange(nf * nflat, device=rij.device).view(nf, n, self.nnei)
                        own_p = own[:, a0:a1, s0:s1][mk]
                        rep_p = rep[:, a0:a1, s0:s1][mk]
                        canon = own_p == rep_p
                        idx = torch.searchsorted(own_p[canon], rep_p)
                        g[mk] = net(sp[canon])[idx]
                    else:
                        g[mk] = net(sp)
                    rpad = -self.davg[ti, s0] / self.dstd[ti, s0]  # pyright: ignore  (registered buffer)
                    gpad = net(rpad[:1].reshape(1, 1))
                    npad = ((s1 - s0) - mk.sum(dim=-1)).to(rij.dtype)
                    part = torch.matmul(rr.transpose(-1, -2), g) + npad.reshape(nf, a1 - a0, 1, 1) * (
                        rpad.unsqueeze(-1) * gpad
                    )
                if self.type_one_side:
                    for tc in range(nt):
                        tblocks[tc] = tblocks[tc] + part[:, aoff[tc] : aoff[tc + 1]]
                else:
                    tblocks[ti] = tblocks[ti] + part
        t = torch.cat(tblocks, dim=1) * (1.0 / self.nnei)
        d = torch.matmul(t.transpose(-1, -2), t[..., : self.axis_neuron])  # (nf, N, M1, M2)
        return d.reshape(nf, n, self.dim_emb * self.axis_neuron)
