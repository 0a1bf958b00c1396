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
from typing import List, Tuple

import torch
from torch import nn


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

    def fwd_cache(self, h: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Output for 2-D ``h`` (rows, in) and the tanh outputs of the layers."""
        ys: List[torch.Tensor] = []
        for layer in self:
            y = torch.addmm(layer.bias, h, layer.weight)
            if layer.activation:
                y = torch.tanh(y)
                ys.append(y)
                o = y * layer.idt if layer.has_idt else y
                if layer.skip == 1:
                    o = o + h
                elif layer.skip == 2:
                    n_in = h.shape[1]
                    o = (o.view(-1, 2, n_in) + h.unsqueeze(1)).view(-1, 2 * n_in)
                h = o
            else:
                ys.append(y)
                h = y
        return h, ys

    def bwd(self, dout: torch.Tensor, ys: List[torch.Tensor]) -> torch.Tensor:
        """``∂L/∂h`` from ``dout = ∂L/∂output`` (rows, out) and :meth:`fwd_cache`'s ``ys``."""
        ws: List[torch.Tensor] = []
        idts: List[torch.Tensor] = []
        flags: List[int] = []  # skip + 4·activation + 8·has_idt
        for layer in self:
            ws.append(layer.weight)
            idts.append(layer.idt)
            flags.append(layer.skip + (4 if layer.activation else 0) + (8 if layer.has_idt else 0))
        for k in range(len(ws) - 1, -1, -1):
            f = flags[k]
            w = ws[k]
            if f & 4:
                y = ys[k]
                dz = torch.ops.aten.tanh_backward(dout * idts[k] if f & 8 else dout, y)
                if f & 3 == 1:
                    din = torch.addmm(dout, dz, w.t())
                elif f & 3 == 2:
                    din = torch.addmm(dout.view(-1, 2, w.shape[0]).sum(dim=1), dz, w.t())
                else:
                    din = torch.mm(dz, w.t())
            else:
                din = torch.mm(dout, w.t())
            dout = din
        return dout


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
