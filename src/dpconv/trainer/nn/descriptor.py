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

from dpconv.trainer.nn.chebyshev import basis_on, fit, interpolate
from dpconv.trainer.nn.env import env_grad_from_factors, env_matrix, env_matrix_factors, switch
from dpconv.trainer.nn.networks import mlp, stack_nets, stacked_bwd, stacked_fwd_cache


class SeA(nn.Module):
    """``D_i = T_iᵀ T_i[:, :M2]`` with ``T_i = (1/Nc) Σ_j R_ijᵀ ⊗ G(R_ij,0)``."""

    __jit_ignored_attributes__ = ("_dense_index_cache",)  # Python-side cache of index tensors

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
        # frozen models only (:meth:`tabulate`): per net, Chebyshev coefficients (K, 2·M1) of
        # [G | dG/ds] and the s range (2,) they serve; empty tensors where the net runs as is
        self.tables = [torch.zeros(0, dtype=dtype) for _ in range(nnets)]
        self.table_ranges = [torch.zeros(2, dtype=torch.float64) for _ in range(nnets)]
        self.table_bounds = [0.0] * (2 * nnets)  # the same ranges as Python floats: (lo, hi) per table
        # with the tables: per net, its output (1, M1) for the empty slot's row, which the frozen
        # model would otherwise compute per block and call (the net's weights no longer change)
        self.pad_rows = [torch.zeros(0, dtype=dtype) for _ in range(nnets)]
        # float64, hand-written path, not TorchScript (training, validation): each call, each net is
        # interpolated at Chebyshev nodes spanning its block's inputs instead of running on every
        # neighbour (:meth:`_interpolated`)
        self.interpolate_nets = True
        self.interpolate_min_slots = 1024  # smaller blocks: the net on their rows costs less
        self.pad_row_max = 512  # blocks embedding at most this many rows take G(empty slot) from them
        # small batches (at most this many slots, nf·N·Σsel), not TorchScript, no tables: every slot
        # goes through its net, all nets at once (:meth:`_forward_cache_dense`); a few tens of ops
        # instead of a few hundred, which is what such batches (methane: 280 slots) spend their time on
        self.dense_max_slots = 2048
        self._dense_index_cache: dict[tuple, tuple[list[int], torch.Tensor, torch.Tensor]] = {}

    def _used(self, mask: torch.Tensor, s0: int, s1: int) -> int:
        """End of the used slots of block ``s0:s1`` (last real neighbour + 1 over the batch): the
        slots after it are empty for every centre and are accounted for by the padding term."""
        mk = mask[..., s0:s1]
        if mk.numel() == 0:
            return s0
        pos = torch.arange(1, s1 - s0 + 1, device=mask.device)
        return s0 + int((mk * pos).amax())

    @torch.jit.unused
    def tabulate(self, rmin: float, rnear: float = 0.0, tol: float = 1e-12) -> List[int]:
        """Chebyshev tables of the embedding nets for distances ≥ ``rmin`` (inference of frozen
        models; :mod:`.chebyshev`), and with ``rnear > rmin`` a first, shorter table per net for
        distances ≥ ``rnear``, used by every block whose pairs all lie there (fewer terms).
        Returns the number of terms per table, level by level (0: no table, the net runs)."""
        nt = self.ntypes
        tables: List[torch.Tensor] = []
        ranges: List[torch.Tensor] = []
        terms: List[int] = []
        # float32: the basis' rounding (~k²·eps) would show; such models keep their nets
        exact = self.type_one_side or self.davg.dtype != torch.float64  # pyright: ignore
        dev = self.davg.device  # pyright: ignore
        for rm in ([rnear] if rnear > rmin else []) + [rmin]:
            r = torch.tensor(rm, dtype=torch.float64)
            top = float(switch(r, self.rcut_smth, self.rcut)) / rm
            for k, net in enumerate(self.nets):
                ti = k % nt
                avg, std = float(self.davg[ti, 0, 0]), float(self.dstd[ti, 0, 0])  # pyright: ignore
                lo, hi = -avg / std, (top - avg) / std  # sw(r)/r spans [0, top] for r ≥ rm
                c = None if exact else fit(net, lo, hi, tol)
                tables.append(torch.zeros(0, dtype=self.davg.dtype, device=dev) if c is None else c)  # pyright: ignore
                ranges.append(torch.tensor([lo, hi], dtype=torch.float64, device=dev))
                terms.append(0 if c is None else c.shape[0])
        self.tables = tables
        self.table_ranges = ranges
        self.table_bounds = [float(v) for r in ranges for v in r]
        pads: List[torch.Tensor] = []
        with torch.no_grad():
            for k, net in enumerate(self.nets):
                ti, s0 = k % nt, self.sel_offsets[k // nt]
                rpad = -self.davg[ti, s0, :1] / self.dstd[ti, s0, :1]  # pyright: ignore  (registered buffer)
                pads.append(net(rpad.reshape(1, 1)))
        self.pad_rows = pads
        return terms

    def tabulated(self) -> bool:
        """True when every embedding net has a table (:meth:`tabulate`; the widest level)."""
        nn_ = len(self.nets)
        return len(self.tables) >= nn_ and all(c.numel() != 0 for c in self.tables[len(self.tables) - nn_ :])

    def _basis(self, k: int, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Chebyshev basis ``T_0..T_{K-1}`` (rows, K) at ``x`` (rows,) and the coefficients (K, 2·M1)
        of the first of net ``k``'s tables that covers ``x``; two empty tensors if none does (the
        net then runs)."""
        none = torch.zeros(0, dtype=x.dtype, device=x.device)
        nn_ = len(self.nets)
        if len(self.tables) < nn_ or self.tables[len(self.tables) - nn_ + k].numel() == 0:
            return none, none
        xmin, xmax = 0.0, 0.0
        if x.numel() > 0:
            ext = torch.aminmax(x)
            xmin, xmax = float(ext[0]), float(ext[1])
        for i in range(k, len(self.tables), nn_):
            c = self.tables[i]
            lo, hi = self.table_bounds[2 * i], self.table_bounds[2 * i + 1]
            eps = 1e-9 * (hi - lo)
            if c.numel() > 0 and (x.numel() == 0 or (xmin >= lo - eps and xmax <= hi + eps)):
                c = c.to(x.device)  # list attributes do not follow Module.to()
                return basis_on(x, lo, hi, c.shape[0]), c
        return none, none

    @torch.jit.unused
    def _interpolated(self, net: nn.Module, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Training: the basis (rows, K) at ``x`` (rows,) and the coefficients (K, 2·M1) of
        ``[G | dG/ds]`` interpolating ``net`` at K Chebyshev nodes of ``[min x, max x]``,
        differentiable with respect to the net's parameters (:func:`~.chebyshev.interpolate`: the
        series equals the net to ~1e-12). Two empty tensors when the inputs do not span an interval
        or the series does not converge: the net then runs on the rows."""
        none = torch.zeros(0, dtype=x.dtype, device=x.device)
        if x.numel() == 0:
            return none, none
        lo, hi = float(x.min()), float(x.max())
        if not hi - lo > 1e-9 * max(1.0, abs(lo), abs(hi)):
            return none, none
        c = interpolate(net, lo, hi)
        if c is None:
            return none, none
        return basis_on(x, lo, hi, c.shape[0]), c

    def _pad_row(self, k: int, rpad: torch.Tensor) -> torch.Tensor:
        """Net ``k``'s output (1, M1) for the empty slot's normalised row ``rpad`` (4,): the frozen
        model's stored row (:meth:`tabulate`) under no_grad, else one 1-row call of the net (in
        training through its hand-written Function: one autograd node instead of one per op)."""
        if self.pad_rows[k].numel() > 0 and not torch.is_grad_enabled():
            return self.pad_rows[k].to(rpad.device)  # list attributes do not follow Module.to()
        xp = rpad[:1].reshape(1, 1)
        out = torch.zeros(0, dtype=rpad.dtype, device=rpad.device)
        for i, net in enumerate(self.nets):  # (TorchScript indexes a ModuleList only in a loop)
            if i == k:
                if not torch.jit.is_scripting() and torch.is_grad_enabled():  # pyright: ignore[reportPrivateImportUsage]  (training)
                    out = net.fwd_cache_train(xp)[0]
                else:
                    out = net(xp)
        return out

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
        if not self.type_one_side:
            # the same ops as the hand-written path's forward (autograd differentiates them)
            return self.forward_cache(rij, mask, counts, rep)[0]
        nf, n = rij.shape[0], rij.shape[1]
        env = (self.raw_env(rij, mask) - self.davg[atype]) / self.dstd[atype]  # pyright: ignore  (registered buffer)
        t = torch.zeros(nf, n, 4, self.dim_emb, dtype=rij.dtype, device=rij.device)
        for tj, net in enumerate(self.nets):  # type_one_side: one net per neighbour type, all centres
            s0, s1 = self.sel_offsets[tj], self.sel_offsets[tj + 1]
            rr = env[:, :, s0:s1, :]
            t = t + torch.matmul(rr.transpose(-1, -2), net(rr[..., :1]))  # (nf, N, 4, M1)
        t = t * (1.0 / self.nnei)
        d = torch.matmul(t.transpose(-1, -2), t[..., : self.axis_neuron])  # (nf, N, M1, M2)
        return d.reshape(nf, n, self.dim_emb * self.axis_neuron)

    # -- explicit first derivative: forward keeping caches + hand-written backward ---------------
    # Used under no_grad for inference, and with autograd on in training, where the loss gradient
    # is then one first-order backward through these ops instead of autograd's double backward.
    def _rows(
        self, mk: torch.Tensor, rep: torch.Tensor | None, nf: int, n: int, a0: int, a1: int, s0: int, s1: int
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows of block ``[a0:a1, s0:s1]`` that go through its embedding net (flat slot indices of
        the real neighbours, one per same-type pair with ``rep``); for every slot of the block, its
        row in the net's output, where row ``len(rows)`` is the empty slot's embedding; and the row
        whose input derivative the slot receives: its own if it was embedded, else ``len(rows)``
        (zero: empty slots, and the second slot of a shared pair, whose derivative goes to the first
        slot — the same pair force, as ``r_ji = −r_ij``)."""
        flat = mk.reshape(-1)
        if rep is not None:
            own = torch.arange(nf * n * self.nnei, device=mk.device).view(nf, n, self.nnei)[:, a0:a1, s0:s1]
            own_p = own.reshape(-1)[flat]
            rep_p = rep[:, a0:a1, s0:s1].reshape(-1)[flat]
            canon = own_p == rep_p
            rows = torch.nonzero(flat).squeeze(-1)[canon]
            ridx = torch.searchsorted(own_p[canon], rep_p)
        else:
            rows = torch.nonzero(flat).squeeze(-1)
            ridx = torch.arange(rows.shape[0], device=mk.device)
        nr = rows.shape[0]
        idx = torch.full(flat.shape, nr, dtype=torch.long, device=mk.device)
        idx[flat] = ridx
        sidx = torch.full(flat.shape, nr, dtype=torch.long, device=mk.device)
        sidx[rows] = torch.arange(nr, device=mk.device)
        return rows, idx, sidx

    def _dt(self, dd: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """``∂L/∂T`` (nf·N, 4, M1), the 1/Nc included, from ``dd = ∂L/∂D`` (nf, N, M1·M2)."""
        nf, n = t.shape[0], t.shape[1]
        m1 = self.dim_emb
        m2 = self.axis_neuron
        dd = dd.reshape(nf * n, m1, m2)
        t3 = t.view(nf * n, 4, m1)
        dt = torch.bmm(t3[:, :, :m2], dd.transpose(1, 2))  # (nf·N, 4, M1)
        dt[:, :, :m2] += torch.bmm(t3, dd)  # (in place: fewer nodes for autograd to go back through)
        return dt.mul_(1.0 / self.nnei)

    def _dense(self, slots: int) -> bool:
        """Whether a batch of ``slots`` slots takes the dense path (see ``dense_max_slots``)."""
        if self.type_one_side or slots == 0 or slots > self.dense_max_slots:
            return False
        return all(c.numel() == 0 for c in self.tables)  # tables: the frozen model's path

    @torch.jit.unused
    def _dense_index(
        self, nf: int, counts: List[int], device: torch.device
    ) -> Tuple[List[int], torch.Tensor, torch.Tensor]:
        """For the dense path: the nets with slots (centre type with atoms, neighbour type with
        ``sel`` > 0), ``idx`` (K, R) the flat slot (over nf·N·Nc) behind row r of net k (nf·N·Nc:
        padding) and ``inv`` (nf·N·Nc,) the row (k·R + r) of each slot. Cached per batch shape."""
        key = (nf, tuple(counts), str(device))
        hit = self._dense_index_cache.get(key)
        if hit is not None:
            return hit
        nt, nc = self.ntypes, self.nnei
        n = sum(counts)
        aoff = [0]
        for c in counts:
            aoff.append(aoff[-1] + c)
        active: List[int] = []
        pieces: List[torch.Tensor] = []
        for k in range(len(self.nets)):
            ti, tj = k % nt, k // nt
            s0, s1 = self.sel_offsets[tj], self.sel_offsets[tj + 1]
            if counts[ti] == 0 or s1 == s0:
                continue
            f = torch.arange(nf, device=device).view(nf, 1, 1) * (n * nc)
            i = torch.arange(aoff[ti], aoff[ti + 1], device=device).view(1, -1, 1) * nc
            sl = torch.arange(s0, s1, device=device).view(1, 1, -1)
            active.append(k)
            pieces.append((f + i + sl).reshape(-1))
        rows = max(p.shape[0] for p in pieces)
        idx = torch.full((len(pieces), rows), nf * n * nc, dtype=torch.long, device=device)
        inv = torch.empty(nf * n * nc, dtype=torch.long, device=device)
        for k, p in enumerate(pieces):
            idx[k, : p.shape[0]] = p
            inv[p] = k * rows + torch.arange(p.shape[0], device=device)
        out = (active, idx, inv)
        if len(self._dense_index_cache) > 64:
            self._dense_index_cache.clear()
        self._dense_index_cache[key] = out
        return out

    @torch.jit.unused
    def _forward_cache_dense(
        self, rij: torch.Tensor, mask: torch.Tensor, counts: List[int]
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor], List[List[torch.Tensor]]]:
        """:meth:`forward_cache` for small batches: every slot, empty ones included (their row is
        the empty slot's, as the padding term assumes), goes through its (centre, neighbour) net;
        the nets run stacked (:func:`~dpconv.trainer.nn.networks.stack_nets`) on rows gathered
        from the slots with one index, and one more gathers their outputs back to the slots. The
        same sums as the block path, in another order (equal to rounding)."""
        nf, n, nc = rij.shape[0], rij.shape[1], self.nnei
        m1 = self.dim_emb
        raw, factors = env_matrix_factors(rij, mask, self.rcut_smth, self.rcut, self.env_protection)
        ct = torch.tensor(counts, device=rij.device)
        dsd = torch.repeat_interleave(self.dstd, ct, dim=0)  # (N, Nc, 4)
        rn = ((raw - torch.repeat_interleave(self.davg, ct, dim=0)) / dsd).view(nf * n, nc, 4)
        active, idx, inv = self._dense_index(nf, counts, rij.device)
        nk, rows = idx.shape[0], idx.shape[1]
        x = torch.cat([rn[..., 0].reshape(-1), rn.new_zeros(1)]).index_select(0, idx.view(-1))
        layers = stack_nets([self.nets[k] for k in active])
        g, ys = stacked_fwd_cache(layers, x.view(nk, rows, 1))  # (K, R, M1)
        gall = g.reshape(nk * rows, m1).index_select(0, inv).view(nf * n, nc, m1)
        t3 = torch.bmm(rn.transpose(1, 2), gall) * (1.0 / nc)  # (nf·N, 4, M1)
        d = torch.bmm(t3.transpose(1, 2), t3[:, :, : self.axis_neuron])
        cache = [gall, rn, dsd, idx, inv, *factors]
        return d.reshape(nf, n, m1 * self.axis_neuron), t3.view(nf, n, 4, m1), cache, [ys, *layers[1:]]

    @torch.jit.unused
    def _backward_rij_dense(
        self,
        dt: torch.Tensor,
        cache: List[torch.Tensor],
        ycache: List[List[torch.Tensor]],
        nf: int,
        n: int,
    ) -> torch.Tensor:
        """:meth:`backward_rij` of :meth:`_forward_cache_dense`, from ``dt = ∂L/∂T``."""
        gall, rn, dsd, idx, inv = cache[0], cache[1], cache[2], cache[3], cache[4]
        m1 = self.dim_emb
        nk, rows = idx.shape[0], idx.shape[1]
        blk = torch.bmm(gall, dt.transpose(1, 2))  # ∂L/∂R through R itself (nf·N, Nc, 4)
        dg = torch.bmm(rn, dt).reshape(-1, m1)  # ∂L/∂G of every slot
        dg = torch.cat([dg, dg.new_zeros(1, m1)]).index_select(0, idx.view(-1)).view(nk, rows, m1)
        ys, ws, bs, idts = ycache
        flags = self.nets[0].layers()[0]
        ds = stacked_bwd((flags, ws, bs, idts), dg, ys).reshape(-1).index_select(0, inv)
        e0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=dt.dtype, device=dt.device)
        blk = torch.addcmul(blk, ds.view(-1, blk.shape[1], 1), e0)
        draw = blk.view(nf, n, -1, 4) / dsd
        return env_grad_from_factors(draw, cache[5:])

    def forward_cache(
        self,
        rij: torch.Tensor,
        mask: torch.Tensor,
        counts: List[int],
        rep: torch.Tensor | None = None,
    ) -> Tuple[torch.Tensor, torch.Tensor, List[torch.Tensor], List[List[torch.Tensor]]]:
        """As :meth:`forward` (``type_one_side`` false), also returning ``T`` and the per-net caches
        that :meth:`backward_rij` needs.

        Per (centre, neighbour) block the net embeds the real neighbours (once per same-type pair
        with ``rep``) and, as one extra row, the empty slot (every empty slot of a centre type has the
        same normalised row); one gather then gives the embedding of every slot of the trimmed block.
        """
        nf, n = rij.shape[0], rij.shape[1]
        if not torch.jit.is_scripting() and self._dense(nf * n * self.nnei):  # pyright: ignore[reportPrivateImportUsage]
            return self._forward_cache_dense(rij, mask, counts)
        m1 = self.dim_emb
        raw, factors = env_matrix_factors(rij, mask, self.rcut_smth, self.rcut, self.env_protection)
        nt = self.ntypes
        aoff = [0]
        for c in counts:
            aoff.append(aoff[-1] + c)
        tparts: List[torch.Tensor] = []
        for _ in range(nt):
            tparts.append(torch.zeros(0, dtype=rij.dtype, device=rij.device))
        # per net: g (nf·na, ns, M1) embeddings of the block's slots (with a table: its basis
        # (nf·na, ns, K)), idx, sidx, its normalised rows rr; then the environment matrix's
        # derivative factors and the raw matrix (not normalised)
        cache: List[torch.Tensor] = []
        ycache: List[List[torch.Tensor]] = []
        empty = torch.zeros(0, dtype=torch.long, device=rij.device)
        for k, net in enumerate(self.nets):
            ti = k % nt
            tj = k // nt
            a0, a1 = aoff[ti], aoff[ti + 1]
            s0, s_end = self.sel_offsets[tj], self.sel_offsets[tj + 1]
            s1 = self._used(mask[:, a0:a1], s0, s_end) if a1 > a0 else s0
            if a1 > a0 and s1 == s0 and s_end > s0 and not rij.requires_grad:  # (autograd wants rij used)
                # no neighbour of this type for any centre: every slot holds the empty row
                rpad = -self.davg[ti, s0] / self.dstd[ti, s0]  # pyright: ignore  (registered buffer)
                gpad = self._pad_row(k, rpad)
                part = (float(s_end - s0) * (rpad.unsqueeze(-1) * gpad)).expand(nf, a1 - a0, 4, m1)
                tparts[ti] = part if tparts[ti].numel() == 0 else tparts[ti] + part
                cache += [empty, empty, empty, empty]
                ycache.append([empty])  # nothing to go back through: the slots do not move
            elif a1 > a0:
                na, ns = a1 - a0, s1 - s0
                # normalised per block (centre type ti): no (N, Nc, 4) gathers of davg/dstd by atom type;
                # the result is contiguous (a strided rr makes the bmm below 5x slower)
                davg, dstd = self.davg[ti, s0:s1], self.dstd[ti, s0:s1]  # pyright: ignore  (registered buffer)
                rr = ((raw[:, a0:a1, s0:s1, :] - davg) / dstd).reshape(nf * na, ns, 4)
                rpad = -self.davg[ti, s0] / self.dstd[ti, s0]  # pyright: ignore  (registered buffer)
                # frozen model (no grad): the table's basis b on every slot of the block (empty ones
                # hold rpad already); training and table-less inference in Python (validation): the
                # same with the net interpolated afresh. G = b·C, so
                # Σ_j R_jᵀ G_j = (Σ_j R_jᵀ b_j)·C: (4 × K) per centre first, then one product with the
                # coefficients C. No G per slot at all.
                bas = coef = gpad = torch.zeros(0, dtype=rij.dtype, device=rij.device)
                if len(self.tables) > 0 and not torch.is_grad_enabled():
                    bas, coef = self._basis(k, rr[..., 0].reshape(-1))
                if (
                    coef.numel() == 0
                    and not torch.jit.is_scripting()  # pyright: ignore[reportPrivateImportUsage]
                    and self.interpolate_nets
                    and not rr.requires_grad  # the hand-written first derivative, not autograd's
                    and rr.dtype == torch.float64
                    and nf * na * ns >= self.interpolate_min_slots
                ):
                    bas, coef = self._interpolated(net, rr[..., 0].reshape(-1))
                if coef.numel() > 0:
                    g2 = bas.view(nf * na, ns, coef.shape[0])
                    rb = torch.bmm(rr.transpose(1, 2), g2).view(nf * na * 4, coef.shape[0])
                    part = torch.mm(rb, coef[:, :m1]).view(nf * na, 4, m1)
                    idx = sidx = empty
                    ys = [empty.to(rij.dtype), coef]
                else:
                    rows, idx, sidx = self._rows(
                        mask[:, a0:a1, s0:s1], rep if ti == tj else None, nf, n, a0, a1, s0, s1
                    )
                    x = torch.cat([rr[..., 0].reshape(-1)[rows], rpad[:1]]).unsqueeze(-1)
                    if not torch.jit.is_scripting() and torch.is_grad_enabled():  # pyright: ignore[reportPrivateImportUsage]  (training)
                        gc, ys = net.fwd_cache_train(x)
                    else:
                        gc, ys = net.fwd_cache(x)
                    g2 = gc.index_select(0, idx).view(nf * na, ns, m1)
                    part = torch.bmm(rr.transpose(1, 2), g2)  # (nf·na, 4, M1)
                    if s1 < s_end and gc.shape[0] <= self.pad_row_max:
                        gpad = gc[-1:]  # the empty slot's row (small blocks: see below)
                if s1 < s_end:  # the cut-off slots: empty everywhere. Large blocks use a separate
                    # 1-row net call: in training, taking the row out of a large gc would cost a
                    # zero-filled gradient of gc; for small ones the extra net call costs more
                    if gpad.numel() == 0:
                        gpad = self._pad_row(k, rpad)
                    part = torch.addcmul(part, rpad.unsqueeze(-1), gpad, value=float(s_end - s1))
                part = part.view(nf, na, 4, m1)
                tparts[ti] = part if tparts[ti].numel() == 0 else tparts[ti] + part
                cache += [g2, idx, sidx, rr]
                ycache.append(ys)
            else:
                cache += [empty, empty, empty, empty]
                ycache.append([empty])
        for ti in range(nt):
            if tparts[ti].numel() == 0:
                tparts[ti] = torch.zeros(nf, counts[ti], 4, m1, dtype=rij.dtype, device=rij.device)
        t = torch.cat(tparts, dim=1) * (1.0 / self.nnei)
        t3 = t.view(nf * n, 4, m1)
        d = torch.bmm(t3.transpose(1, 2), t3[:, :, : self.axis_neuron])  # (nf·N, M1, M2)
        cache += factors  # the environment matrix's derivative factors, then the raw matrix
        cache.append(raw)
        return d.reshape(nf, n, m1 * self.axis_neuron), t, cache, ycache

    def backward_rij(
        self,
        dd: torch.Tensor,
        t: torch.Tensor,
        cache: List[torch.Tensor],
        ycache: List[List[torch.Tensor]],
        counts: List[int],
    ) -> torch.Tensor:
        """``∂L/∂rij`` from ``dd = ∂L/∂D`` (nf, N, M1·M2) and :meth:`forward_cache`'s outputs."""
        nf, n = t.shape[0], t.shape[1]
        m1 = self.dim_emb
        dt = self._dt(dd, t)
        if not torch.jit.is_scripting() and self._dense(nf * n * self.nnei):  # pyright: ignore[reportPrivateImportUsage]
            return self._backward_rij_dense(dt, cache, ycache, nf, n)
        # one split, not a slice per block (see EnergyFitting.energy_grad)
        dts = dt.view(nf, n, 4, m1).split(counts, dim=1)
        # ∂L/∂(raw environment matrix) assembled from the blocks with one cat per centre type and one
        # over the types (no zero-filled full-size tensor written block by block)
        e0 = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=t.dtype, device=t.device)
        rows: List[torch.Tensor] = []
        nt = self.ntypes
        aoff = [0]
        for c in counts:
            aoff.append(aoff[-1] + c)
        blocks: List[torch.Tensor] = []
        empty = torch.zeros(0, dtype=t.dtype, device=t.device)
        for k, net in enumerate(self.nets):
            ti = k % nt
            tj = k // nt
            a0, a1 = aoff[ti], aoff[ti + 1]
            width = self.sel[tj]
            blocks.append(empty)
            if a1 > a0 and cache[4 * k].dim() == 3:  # (a block without neighbours has nothing here)
                g, idx, sidx, rr = cache[4 * k], cache[4 * k + 1], cache[4 * k + 2], cache[4 * k + 3]
                na, ns = a1 - a0, g.shape[1]
                s0 = self.sel_offsets[tj]
                s1 = s0 + ns
                dpart = dts[ti].reshape(nf * na, 4, m1)
                ys = ycache[k]
                if ys[0].numel() == 0:
                    # table: g is the basis b (nf·na, ns, K) and the coefficients [C | D] (ys[1]) give G = b·C,
                    # dG/ds = b·D. Per slot ∂L/∂R = G·dTᵀ = b·(C·dTᵀ) and ∂L/∂s = R·(b·(D·dTᵀ)): the
                    # two (K × 4) products per centre first (rows of w interleave C and D), then one
                    # product with the basis. No ∂L/∂G, no pass back through the net.
                    c = ys[1]
                    kk = c.shape[0]
                    cd = c.view(kk, 2, m1).transpose(0, 1).reshape(2 * kk, m1)  # [C; D] (2K, M1)
                    # row 2a of w: C·dT_a, row 2a+1: D·dT_a
                    w = torch.mm(dpart.reshape(nf * na * 4, m1), cd.t()).view(nf * na, 8, kk)
                    both = torch.bmm(g, w.transpose(1, 2)).view(nf * na, ns, 4, 2)
                    blk = both[..., 0]  # (nf·na, ns, 4)
                    ds = (both[..., 1] * rr).sum(dim=-1, keepdim=True)
                else:
                    blk = torch.bmm(g, dpart.transpose(1, 2))  # (nf·na, ns, 4)
                    dg = torch.bmm(rr, dpart).view(nf * na * ns, m1)  # ∂L/∂g of every slot
                    dgc = torch.zeros(ys[-1].shape[0], m1, dtype=dg.dtype, device=dg.device).index_add(0, idx, dg)
                    if not torch.jit.is_scripting() and torch.is_grad_enabled():  # pyright: ignore[reportPrivateImportUsage]
                        dsc = net.bwd_train(dgc, ys).view(-1)  # training: hand-written backward
                    else:
                        dsc = net.bwd(dgc, ys).view(-1)
                    ds = torch.cat([dsc[:-1], torch.zeros_like(dsc[:1])]).index_select(0, sidx).view(nf * na, ns, 1)
                blk = torch.addcmul(blk, ds, e0).reshape(nf, na, ns, 4) / self.dstd[ti, s0:s1]  # pyright: ignore  (registered buffer)
                if ns < width:  # the slots cut off after the last used one
                    blk = torch.nn.functional.pad(blk, [0, 0, 0, width - ns])
                blocks[k] = blk
        for k in range(len(blocks)):
            if blocks[k].numel() == 0:  # no centre of this type, or no neighbour of that type
                ti, tj = k % nt, k // nt
                blocks[k] = torch.zeros(nf, aoff[ti + 1] - aoff[ti], self.sel[tj], 4, dtype=t.dtype, device=t.device)
        for ti in range(nt):
            rows.append(torch.cat([blocks[ti + nt * tj] for tj in range(nt)], dim=2) if nt > 1 else blocks[ti])
        draw = torch.cat(rows, dim=1) if nt > 1 else rows[0]
        return env_grad_from_factors(draw, cache[-6:-1])
