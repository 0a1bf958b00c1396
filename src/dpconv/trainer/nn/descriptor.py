"""The se_e2_a descriptor (notes §5–§6).

Atoms arrive sorted by type (``counts[t]`` atoms of type t, contiguous) and the
neighbour slots come in type blocks of ``sel[t]``, so every (centre type,
neighbour type) embedding net works on one contiguous slice: no masks, no
gathers.
"""
# pyright: reportCallIssue=false, reportArgumentType=false, reportOperatorIssue=false
# (nn.Module attributes are typed Tensor | Module by torch's stubs; they are tensors here)

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from dpconv.trainer.nn.env import env_matrix, env_matrix_grad
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

    def _used(self, mask: torch.Tensor, s0: int, s1: int) -> int:
        """End of the used slots of block ``s0:s1`` (last real neighbour + 1 over the batch): the
        slots after it are empty for every centre and are accounted for by the padding term."""
        mk = mask[..., s0:s1]
        if mk.numel() == 0:
            return s0
        pos = torch.arange(1, s1 - s0 + 1, device=mask.device)
        return s0 + int((mk * pos).amax())

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
                ns = s1 - s0
                if not self.type_one_side:
                    s1 = self._used(mask[:, a0:a1], s0, s1)
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
                    npad = (ns - mk.sum(dim=-1)).to(rij.dtype)
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

    # -- inference: forward keeping caches + hand-written first derivative (no autograd) ---------
    def forward_cache(
        self,
        rij: torch.Tensor,
        mask: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
        rep: torch.Tensor | None = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor], List[List[torch.Tensor]]]:
        """As :meth:`forward` (``type_one_side`` false), also returning ``T`` and the per-net caches
        that :meth:`backward_rij` needs. Call without autograd (``torch.no_grad``)."""
        nf, n = rij.shape[0], rij.shape[1]
        env = (self.raw_env(rij, mask) - self.davg[atype]) / self.dstd[atype]  # pyright: ignore  (registered buffer)
        nt = self.ntypes
        aoff = [0]
        for c in counts:
            aoff.append(aoff[-1] + c)
        t = torch.zeros(nf, n, 4, self.dim_emb, dtype=rij.dtype, device=rij.device)
        cache: List[torch.Tensor] = []  # per net: g (full block), idx (or empty), canon (or empty)
        ycache: List[List[torch.Tensor]] = []
        empty = torch.zeros(0, dtype=torch.long, device=rij.device)
        for k, net in enumerate(self.nets):
            ti = k % nt
            tj = k // nt
            a0, a1 = aoff[ti], aoff[ti + 1]
            if a1 > a0:
                s0, s1 = self.sel_offsets[tj], self.sel_offsets[tj + 1]
                ns = s1 - s0
                s1 = self._used(mask[:, a0:a1], s0, s1)
                rr = env[:, a0:a1, s0:s1, :]
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
                    gc, ys = net.fwd_cache(sp[canon])
                    g[mk] = gc[idx]
                    cache += [g, idx, canon]
                else:
                    gc, ys = net.fwd_cache(sp)
                    g[mk] = gc
                    cache += [g, empty, empty]
                ycache.append(ys)
                rpad = -self.davg[ti, s0] / self.dstd[ti, s0]  # pyright: ignore  (registered buffer)
                gpad = net(rpad[:1].reshape(1, 1))
                npad = (ns - mk.sum(dim=-1)).to(rij.dtype)
                t[:, a0:a1] += torch.matmul(g.transpose(-1, -2), rr).transpose(-1, -2) + npad.reshape(
                    nf, a1 - a0, 1, 1
                ) * (rpad.unsqueeze(-1) * gpad)
            else:
                cache += [empty, empty, empty]
                ycache.append([empty])
        t = t * (1.0 / self.nnei)
        d = torch.matmul(t.transpose(-1, -2), t[..., : self.axis_neuron])  # (nf, N, M1, M2)
        cache.append(env)
        return d.reshape(nf, n, self.dim_emb * self.axis_neuron), t, cache, ycache

    def backward_rij(
        self,
        dd: torch.Tensor,
        t: torch.Tensor,
        cache: List[torch.Tensor],
        ycache: List[List[torch.Tensor]],
        rij: torch.Tensor,
        mask: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
    ) -> torch.Tensor:
        """``∂L/∂rij`` from ``dd = ∂L/∂D`` (nf, N, M1·M2) and :meth:`forward_cache`'s outputs."""
        nf, n = rij.shape[0], rij.shape[1]
        m2 = self.axis_neuron
        dd = dd.reshape(nf, n, self.dim_emb, m2)
        dt = torch.matmul(t[..., :m2], dd.transpose(-1, -2))  # (nf, N, 4, M1)
        dt[..., :m2] += torch.matmul(t, dd)
        dt = dt * (1.0 / self.nnei)
        env = cache[-1]
        denv = torch.zeros_like(env)
        nt = self.ntypes
        aoff = [0]
        for c in counts:
            aoff.append(aoff[-1] + c)
        for k, net in enumerate(self.nets):
            ti = k % nt
            tj = k // nt
            a0, a1 = aoff[ti], aoff[ti + 1]
            if a1 > a0:
                g, idx, canon = cache[3 * k], cache[3 * k + 1], cache[3 * k + 2]
                s0 = self.sel_offsets[tj]
                s1 = s0 + g.shape[2]
                rr = env[:, a0:a1, s0:s1, :]
                mk = mask[:, a0:a1, s0:s1]
                dpart = dt[:, a0:a1]  # (nf, na, 4, M1)
                # products with a dimension of 4 are fastest with the 4 as the gemm's M
                blk = torch.matmul(dpart, g.transpose(-1, -2)).transpose(-1, -2)  # (nf, na, ns, 4)
                dg = torch.matmul(dpart.transpose(-1, -2), rr.transpose(-1, -2)).transpose(-1, -2)[mk]  # (P, M1)
                if canon.numel() > 0:
                    dgc = torch.zeros(int(canon.sum()), dg.shape[1], dtype=dg.dtype, device=dg.device)
                    dgc.index_add_(0, idx, dg)
                    dsc = net.bwd(dgc, ycache[k])
                    ds = torch.zeros(dg.shape[0], 1, dtype=dg.dtype, device=dg.device)
                    ds[canon] = dsc
                else:
                    ds = net.bwd(dg, ycache[k])
                blk[..., 0] += torch.zeros_like(mk, dtype=dg.dtype).masked_scatter(mk, ds.reshape(-1))
                denv[:, a0:a1, s0:s1] = blk
        draw = denv / self.dstd[atype]  # pyright: ignore  (registered buffer)
        return env_matrix_grad(rij, mask, draw, self.rcut_smth, self.rcut, self.env_protection)
