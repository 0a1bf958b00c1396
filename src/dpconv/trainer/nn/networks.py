"""DeePMD-style dense layers and networks (notes §5, §7).

A hidden layer computes ``h' = tanh(h W + b)``; when the output width equals
the input width (or twice it) a skip connection adds ``h`` (or ``[h, h]``),
and with ``resnet_dt`` a learnable timestep ``idt`` multiplies the tanh branch
first. The last layer of a fitting net is linear with no skip.
"""
# pyright: reportCallIssue=false, reportArgumentType=false, reportOperatorIssue=false
# (nn.Module attributes are typed Tensor | Module by torch's stubs; they are tensors here)

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import List, Optional, Tuple

import torch
from torch import nn


# The chains below take 2-D rows (rows, in) with one net's weights, or 3-D (K, rows, in) with K nets'
# weights stacked (K, in, out) and vectors (K, out) (:func:`stack_nets`): K nets of one shape at once.
def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.mm(a, b) if a.dim() == 2 else torch.bmm(a, b)


def _addmm(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.addmm(c, a, b) if a.dim() == 2 else torch.baddbmm(c, a, b)


def _tr(w: torch.Tensor) -> torch.Tensor:
    return w.t() if w.dim() == 2 else w.transpose(1, 2)


def _per_row(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A layer's vector (out,) or (K, out), broadcastable over the rows of ``like``."""
    return v if like.dim() == 2 else v.unsqueeze(1)


def _halves(x: torch.Tensor, n: int) -> torch.Tensor:
    """(…, rows, 2n) viewed as (…, rows, 2, n)."""
    return x.view(-1, 2, n) if x.dim() == 2 else x.view(x.shape[0], x.shape[1], 2, n)


class Dense(nn.Module):
    """One layer; ``weight`` is stored (in, out) as DeePMD stores ``matrix``."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        activation: bool = True,
        resnet_dt: bool = False,
        allow_skip: bool = True,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        w = torch.randn(n_in, n_out, generator=generator, dtype=torch.float64) / math.sqrt(n_in + n_out)
        b = torch.randn(n_out, generator=generator, dtype=torch.float64)
        self.weight = nn.Parameter(w.to(dtype))
        self.bias = nn.Parameter(b.to(dtype))
        skip = 0
        if allow_skip and activation:
            if n_out == n_in:
                skip = 1
            elif n_out == 2 * n_in:
                skip = 2
        self.skip = skip
        self.activation = activation
        if resnet_dt and skip:
            idt = 0.1 + 0.001 * torch.randn(n_out, generator=generator, dtype=torch.float64)
            self.idt = nn.Parameter(idt.to(dtype))
            self.has_idt = True
        else:
            self.register_buffer("idt", torch.ones(1, dtype=dtype))
            self.has_idt = False

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n_in = h.shape[-1]
        h2 = h.reshape(-1, n_in)
        y = torch.addmm(self.bias, h2, self.weight)
        if not self.activation:
            return y.reshape(
                h.shape[:-1] + [y.shape[-1]]  # pyright: ignore[reportOperatorIssue]
                if torch.jit.is_scripting()  # pyright: ignore[reportPrivateImportUsage]
                else (*h.shape[:-1], y.shape[-1])
            )
        y = torch.tanh(y)
        if self.has_idt:
            y = y * self.idt
        if self.skip == 1:
            y = y + h2
        elif self.skip == 2:
            y = (y.view(-1, 2, n_in) + h2.unsqueeze(1)).view(-1, 2 * n_in)
        return y.reshape(
            h.shape[:-1] + [y.shape[-1]]  # pyright: ignore[reportOperatorIssue]
            if torch.jit.is_scripting()  # pyright: ignore[reportPrivateImportUsage]
            else (*h.shape[:-1], y.shape[-1])
        )


class MLP(nn.Sequential):
    """A stack of :class:`Dense` layers; besides ``forward`` (autograd), a forward that keeps what
    its hand-written input gradient :meth:`bwd` needs (first derivatives; differentiable again by
    autograd in training)."""

    def layers(self) -> Tuple[List[int], List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]:
        """Per layer: flags (skip 0/1/2 + 4·activation + 8·has_idt), weight, bias, idt."""
        flags: List[int] = []
        ws: List[torch.Tensor] = []
        bs: List[torch.Tensor] = []
        idts: List[torch.Tensor] = []
        for layer in self:
            flags.append(layer.skip + (4 if layer.activation else 0) + (8 if layer.has_idt else 0))
            ws.append(layer.weight)
            bs.append(layer.bias)
            idts.append(layer.idt)
        return flags, ws, bs, idts

    def fwd_cache(self, h: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Output for 2-D ``h`` (rows, in) and the tanh outputs of the layers."""
        flags, ws, bs, idts = self.layers()
        out, _, ys = _forward(flags, ws, bs, idts, h)
        return out, ys

    @torch.jit.unused
    def bwd_train(self, dout: torch.Tensor, ys: List[torch.Tensor]) -> torch.Tensor:
        """:meth:`bwd` for training: the same values, differentiated by a hand-written backward."""
        flags, ws, _, idts = self.layers()
        return _InputGrad.apply(tuple(flags), dout, *ws, *idts, *ys)

    @torch.jit.unused
    def fwd_cache_train(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """:meth:`fwd_cache` for training, differentiated by a hand-written backward."""
        flags, ws, bs, idts = self.layers()
        out = _ForwardCache.apply(tuple(flags), x, *ws, *bs, *idts)
        return out[0], list(out[1:])

    @torch.jit.unused
    def value_and_grad_train(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Output (rows, out) and ``∂(Σ output)/∂x`` (rows, in) for training, as :meth:`fwd_cache`
        then :meth:`bwd` with ones, differentiated by a hand-written backward."""
        flags, ws, bs, idts = self.layers()
        return _ValueAndInputGrad.apply(tuple(flags), x, *ws, *bs, *idts)

    def bwd(self, dout: torch.Tensor, ys: List[torch.Tensor]) -> torch.Tensor:
        """``∂L/∂h`` from ``dout = ∂L/∂output`` (rows, out) and :meth:`fwd_cache`'s ``ys``."""
        flags, ws, _, idts = self.layers()
        return _input_grad(flags, ws, idts, ys, dout)[0]


def _input_grad(
    flags: List[int],
    ws: List[torch.Tensor],
    idts: List[torch.Tensor],
    ys: List[torch.Tensor],
    dout: torch.Tensor,
) -> Tuple[torch.Tensor, List[torch.Tensor], List[Optional[torch.Tensor]]]:
    """:meth:`MLP.bwd`'s chain; also returns each layer's incoming ``dout`` and ``dz`` (for the adjoint)."""
    nl = len(flags)
    ins: List[torch.Tensor] = []
    dzs: List[Optional[torch.Tensor]] = []
    for _ in range(nl):
        ins.append(dout)
        dzs.append(None)
    for k in range(nl - 1, -1, -1):
        f, w = flags[k], ws[k]
        ins[k] = dout
        if f & 4:
            dz = torch.ops.aten.tanh_backward(dout * _per_row(idts[k], dout) if f & 8 else dout, ys[k])
            dzs[k] = dz
            if f & 3 == 1:
                dout = _addmm(dout, dz, _tr(w))
            elif f & 3 == 2:
                dout = _addmm(_halves(dout, w.shape[-2]).sum(dim=-2), dz, _tr(w))
            else:
                dout = _mm(dz, _tr(w))
        else:
            dout = _mm(dout, _tr(w))
    return dout, ins, dzs


def _input_grad_adjoint(
    flags: Tuple[int, ...],
    ws: Sequence[torch.Tensor],
    idts: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    ins: Sequence[torch.Tensor],
    dzs: Sequence[torch.Tensor | None],
    a: torch.Tensor,
    factors: List[Tuple[torch.Tensor, torch.Tensor] | None] | None = None,
) -> Tuple[torch.Tensor, List[torch.Tensor | None], List[torch.Tensor | None], List[torch.Tensor | None]]:
    """Backward of :func:`_input_grad` for ``a`` = ∂L/∂(its result): ∂L/∂dout and the gradients of
    the weights, the ``idt`` and the tanh outputs ``ys``, walking the layers in forward order.

    With ``factors`` (a list with one entry per layer), each weight gradient ``Aᵀ·B`` is not formed
    but its two factors are stored there, for :func:`_forward_adjoint` to fold into its own product
    for the same weight (one pass over the gradient instead of two)."""
    nl = len(flags)
    gws: List[torch.Tensor | None] = [None] * nl
    gidts: List[torch.Tensor | None] = [None] * nl
    gys: List[torch.Tensor | None] = [None] * nl
    for k in range(nl):
        f, w, c = flags[k], ws[k], ins[k]
        dz = dzs[k]
        if dz is not None:
            adz = _mm(a, w)  # result = dz·Wᵀ (+ skip of c)
            if factors is None:
                gws[k] = _mm(_tr(a), dz)
            else:
                factors[k] = (a, dz)
            y = ys[k]
            u = c * _per_row(idts[k], c) if f & 8 else c
            au = torch.ops.aten.tanh_backward(adz, y)  # dz = u·(1 − y²)
            gys[k] = (adz * u).mul_(y).mul_(-2.0)
            if f & 8:
                gidts[k] = (au * c).sum(dim=-2)
                au.mul_(_per_row(idts[k], au))
            if f & 3 == 1:
                au.add_(a)
            elif f & 3 == 2:
                _halves(au, w.shape[-2]).add_(a.unsqueeze(-2))
            a = au
        else:
            if factors is None:
                gws[k] = _mm(_tr(a), c)
            else:
                factors[k] = (a, c)
            a = _mm(a, w)
    return a, gws, gidts, gys


class _InputGrad(torch.autograd.Function):
    """:meth:`MLP.bwd` with a hand-written backward (training, embedding nets).

    Autograd would differentiate the chain op by op (``tanh_backward``'s own backward alone costs
    four passes and three temporaries per layer); this backward walks the layers once and returns
    the gradients of ``dout``, the weights, the ``idt`` and the tanh outputs ``ys`` (through which
    autograd carries on into the forward pass)."""

    @staticmethod
    def forward(ctx, flags: Tuple[int, ...], dout: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        nl = len(flags)
        ws, idts, ys = tensors[:nl], tensors[nl : 2 * nl], tensors[2 * nl :]
        din, ins, dzs = _input_grad(list(flags), list(ws), list(idts), list(ys), dout)
        ctx.flags = flags
        ctx.set_materialize_grads(False)  # unused outputs get None, not zero tensors to run through
        ctx.dzs = dzs
        ctx.save_for_backward(*ws, *idts, *ys, *ins)
        return din

    @staticmethod
    def backward(ctx, grad: torch.Tensor | None):  # type: ignore[override]
        flags = ctx.flags
        nl = len(flags)
        if grad is None:
            return (None,) * (2 + 3 * nl)
        sv = ctx.saved_tensors
        a, gws, gidts, gys = _input_grad_adjoint(
            flags, sv[:nl], sv[nl : 2 * nl], sv[2 * nl : 3 * nl], sv[3 * nl :], ctx.dzs, grad
        )
        ctx.dzs = None
        return (None, a, *gws, *_idt_grads(flags, gidts), *gys)


def _forward(
    flags: List[int],
    ws: List[torch.Tensor],
    bs: List[torch.Tensor],
    idts: List[torch.Tensor],
    x: torch.Tensor,
) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor]]:
    """:meth:`MLP.fwd_cache`'s chain; also returns each layer's input."""
    hs: List[torch.Tensor] = []
    ys: List[torch.Tensor] = []
    h = x
    for k in range(len(flags)):
        f = flags[k]
        hs.append(h)
        y = _addmm(_per_row(bs[k], h), h, ws[k])
        ys.append(torch.tanh(y) if f & 4 else y)
        if f & 4:
            y = ys[-1]
            o = y * _per_row(idts[k], y) if f & 8 else y
            if f & 3 == 1:
                o = o + h
            elif f & 3 == 2:
                o = (_halves(o, h.shape[-1]) + h.unsqueeze(-2)).view(o.shape)
            h = o
        else:
            h = y
    return h, hs, ys


def _forward_adjoint(
    flags: Tuple[int, ...],
    ws: Sequence[torch.Tensor],
    idts: Sequence[torch.Tensor],
    ys: Sequence[torch.Tensor],
    hs: Sequence[torch.Tensor],
    a: torch.Tensor | None,
    gys: Sequence[torch.Tensor | None],
    gws: List[torch.Tensor | None],
    gidts: List[torch.Tensor | None],
    need_x: bool,
    factors: List[Tuple[torch.Tensor, torch.Tensor] | None] | None = None,
) -> Tuple[torch.Tensor | None, List[torch.Tensor | None], List[torch.Tensor | None], List[torch.Tensor | None]]:
    """Backward of :func:`_forward` for ``a`` = ∂L/∂output and ``gys`` = ∂L/∂(tanh outputs) given
    directly; weight and ``idt`` gradients accumulate into ``gws``/``gidts`` (in place where set).
    ``factors[k] = (A, B)`` adds ``Aᵀ·B`` to layer k's weight gradient in the same product as this
    pass's ``hᵀ·az`` (stacked rows: the fitting nets' 1600 × 240 gradient is written once, not
    written and then read and written again). Each entry is consumed (set to None) once added."""
    nl = len(flags)
    gbs: List[torch.Tensor | None] = [None] * nl
    for k in range(nl - 1, -1, -1):
        f, w, h = flags[k], ws[k], hs[k]
        gy = gys[k]
        skip_a: torch.Tensor | None = None
        if f & 4:
            y = ys[k]
            if a is None:
                if gy is None:
                    continue
                ay = gy
            else:
                ay = a * _per_row(idts[k], a) if f & 8 else a
                if f & 8:
                    gi = (a * y).sum(dim=-2)
                    prev = gidts[k]
                    gidts[k] = gi if prev is None else prev + gi
                if gy is not None:
                    ay = ay + gy
                if f & 3 == 1:
                    skip_a = a
                elif f & 3 == 2:
                    skip_a = _halves(a, h.shape[-1]).sum(dim=-2)
            az = torch.ops.aten.tanh_backward(ay, y)
        elif a is None:  # linear: ys[k] is the output itself
            if gy is None:
                continue
            az = gy
        else:
            az = a if gy is None else a + gy
        gw = gws[k]
        hh, zz = h, az
        fk = None if factors is None else factors[k]
        if factors is not None and fk is not None:
            hh, zz = torch.cat([fk[0], h], dim=-2), torch.cat([fk[1], az], dim=-2)
            factors[k] = None
        gws[k] = _mm(_tr(hh), zz) if gw is None else _accumulate(gw, hh, zz)
        gbs[k] = az.sum(dim=-2)
        a = None
        if k > 0 or need_x:
            a = _mm(az, _tr(w)) if skip_a is None else _addmm(skip_a, az, _tr(w))
    for k, fk in enumerate(factors or []):  # left over: layers this pass had nothing to add to
        if fk is not None:
            gw = gws[k]
            gws[k] = _mm(_tr(fk[0]), fk[1]) if gw is None else _accumulate(gw, fk[0], fk[1])
    return a, gws, gbs, gidts


def _accumulate(gw: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``gw += aᵀ·b`` in place."""
    return gw.addmm_(a.t(), b) if a.dim() == 2 else gw.baddbmm_(a.transpose(1, 2), b)


def _idt_grads(flags: Tuple[int, ...], gidts: List[torch.Tensor | None]) -> List[torch.Tensor | None]:
    return [g if flags[k] & 8 else None for k, g in enumerate(gidts)]


class _ForwardCache(torch.autograd.Function):
    """:meth:`MLP.fwd_cache` (output and tanh outputs) with a hand-written backward (training)."""

    @staticmethod
    def forward(ctx, flags: Tuple[int, ...], x: torch.Tensor, *tensors: torch.Tensor):  # type: ignore[override]
        nl = len(flags)
        ws, bs, idts = tensors[:nl], tensors[nl : 2 * nl], tensors[2 * nl :]
        h, hs, ys = _forward(list(flags), list(ws), list(bs), list(idts), x)
        ctx.flags = flags
        ctx.set_materialize_grads(False)  # unused outputs get None, not zero tensors to run through
        ctx.save_for_backward(*ws, *idts, *ys, *hs)
        return (h, *ys)

    @staticmethod
    def backward(ctx, g_out: torch.Tensor | None, *g_ys: torch.Tensor | None):  # type: ignore[override]
        flags = ctx.flags
        nl = len(flags)
        sv = ctx.saved_tensors
        ws, idts, ys, hs = (sv[i * nl : (i + 1) * nl] for i in range(4))
        gidts: List[torch.Tensor | None] = [None] * nl
        a, gws, gbs, gidts = _forward_adjoint(
            flags, ws, idts, ys, hs, g_out, list(g_ys), [None] * nl, gidts, bool(ctx.needs_input_grad[1])
        )
        return (None, a, *gws, *gbs, *_idt_grads(flags, gidts))


class _ValueAndInputGrad(torch.autograd.Function):
    """Output of a fitting net and its input gradient for ``∂L/∂output = 1`` (:meth:`MLP.fwd_cache`
    then :meth:`MLP.bwd`) with a hand-written backward: both uses of each weight accumulate into one
    gradient buffer, and no autograd graph is kept for either chain."""

    @staticmethod
    def forward(ctx, flags: Tuple[int, ...], x: torch.Tensor, *tensors: torch.Tensor):  # type: ignore[override]
        nl = len(flags)
        ws, bs, idts = tensors[:nl], tensors[nl : 2 * nl], tensors[2 * nl :]
        h, hs, ys = _forward(list(flags), list(ws), list(bs), list(idts), x)
        din, ins, dzs = _input_grad(list(flags), list(ws), list(idts), ys, torch.ones_like(h))
        ctx.flags = flags
        ctx.set_materialize_grads(False)  # unused outputs get None, not zero tensors to run through
        ctx.dzs = dzs
        ctx.save_for_backward(*ws, *idts, *ys, *ins, *hs)
        return h, din

    @staticmethod
    def backward(ctx, g_out: torch.Tensor | None, g_din: torch.Tensor | None):  # type: ignore[override]
        flags = ctx.flags
        nl = len(flags)
        sv = ctx.saved_tensors
        ws, idts, ys, ins, hs = (sv[i * nl : (i + 1) * nl] for i in range(5))
        gws: List[torch.Tensor | None] = [None] * nl
        gidts: List[torch.Tensor | None] = [None] * nl
        gys: List[torch.Tensor | None] = [None] * nl
        factors: List[Tuple[torch.Tensor, torch.Tensor] | None] = [None] * nl
        if g_din is not None:
            _, gws, gidts, gys = _input_grad_adjoint(flags, ws, idts, ys, ins, ctx.dzs, g_din, factors)
        ctx.dzs = None
        a, gws, gbs, gidts = _forward_adjoint(
            flags, ws, idts, ys, hs, g_out, gys, gws, gidts, bool(ctx.needs_input_grad[1]), factors
        )
        return (None, a, *gws, *gbs, *_idt_grads(flags, gidts))


def stack_nets(nets: Sequence[MLP]) -> Tuple[List[int], List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]]:
    """Flags and the K nets' weights (K, in, out), biases and ``idt`` (K, out), layer by layer, for
    nets of one shape (differentiable: the gradients go back to each net's parameters)."""
    per = [net.layers() for net in nets]
    flags = per[0][0]
    ws = [torch.stack([p[1][k] for p in per]) for k in range(len(flags))]
    bs = [torch.stack([p[2][k] for p in per]) for k in range(len(flags))]
    idts = [torch.stack([p[3][k] for p in per]) for k in range(len(flags))]
    return flags, ws, bs, idts


def stacked_fwd_cache(
    layers: Tuple[List[int], List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]], x: torch.Tensor
) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """:meth:`MLP.fwd_cache` of K nets at once (:func:`stack_nets`) on ``x`` (K, rows, in): outputs
    (K, rows, out) and the tanh outputs (through the hand-written backward when grad is on)."""
    flags, ws, bs, idts = layers
    if torch.is_grad_enabled():
        out = _ForwardCache.apply(tuple(flags), x, *ws, *bs, *idts)
        return out[0], list(out[1:])
    h, _, ys = _forward(flags, ws, bs, idts, x)
    return h, ys


def stacked_bwd(
    layers: Tuple[List[int], List[torch.Tensor], List[torch.Tensor], List[torch.Tensor]],
    dout: torch.Tensor,
    ys: List[torch.Tensor],
) -> torch.Tensor:
    """:meth:`MLP.bwd` of K nets at once: ``∂L/∂x`` (K, rows, in) from ``dout`` (K, rows, out)."""
    flags, ws, _, idts = layers
    if torch.is_grad_enabled():
        return _InputGrad.apply(tuple(flags), dout, *ws, *idts, *ys)
    return _input_grad(flags, ws, idts, ys, dout)[0]


def mlp(
    sizes: Sequence[int], *, resnet_dt: bool, linear_out: bool, dtype: torch.dtype, generator: torch.Generator | None
) -> MLP:
    """Layers ``sizes[0] → sizes[1] → …``; with ``linear_out`` the last layer has no activation."""
    layers = []
    for k in range(len(sizes) - 1):
        last = linear_out and k == len(sizes) - 2
        layers.append(
            Dense(sizes[k], sizes[k + 1], activation=not last, resnet_dt=resnet_dt, dtype=dtype, generator=generator)
        )
    return MLP(*layers)
