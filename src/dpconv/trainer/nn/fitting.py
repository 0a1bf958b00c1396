"""Energy fitting: one net per atom type, applied to that type's contiguous atoms (notes §7)."""
# pyright: reportCallIssue=false, reportArgumentType=false, reportOperatorIssue=false
# (nn.Module attributes are typed Tensor | Module by torch's stubs; they are tensors here)

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from dpconv.trainer.nn.networks import mlp


class EnergyFitting(nn.Module):
    """``E_i = F_{t_i}(D_i) + out_bias[t_i]``."""

    def __init__(
        self,
        ntypes: int,
        dim_in: int,
        neuron: List[int],
        resnet_dt: bool = True,
        dtype: torch.dtype = torch.float64,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        self.ntypes = ntypes
        self.nets = nn.ModuleList(
            [
                mlp([dim_in, *neuron, 1], resnet_dt=resnet_dt, linear_out=True, dtype=dtype, generator=gen)
                for _ in range(ntypes)
            ]
        )
        self.register_buffer("out_bias", torch.zeros(ntypes, dtype=dtype))

    def forward(self, d: torch.Tensor, counts: List[int]) -> torch.Tensor:
        """Atomic energies (nf, N) of type-sorted atoms."""
        outs: List[torch.Tensor] = []
        a0 = 0
        for t, net in enumerate(self.nets):
            a1 = a0 + counts[t]
            if a1 > a0:
                outs.append(net(d[:, a0:a1]).squeeze(-1) + self.out_bias[t])  # pyright: ignore  (registered buffer)
            a0 = a1
        return torch.cat(outs, dim=1)

    def energy_grad(self, d: torch.Tensor, counts: List[int]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Atomic energies (nf, N) and ``∂(Σ E_i)/∂D`` (nf, N, dim), without autograd."""
        nf = d.shape[0]
        outs: List[torch.Tensor] = []
        grads: List[torch.Tensor] = []
        # one split, not a slice per type: going back, autograd assembles ∂L/∂D with one cat instead
        # of a zero-filled full-size gradient per type added up
        parts = d.split(counts, dim=1)
        for t, net in enumerate(self.nets):
            na = counts[t]
            if na > 0:
                x = parts[t].reshape(nf * na, d.shape[2])
                if not torch.jit.is_scripting() and torch.is_grad_enabled():  # pyright: ignore[reportPrivateImportUsage]  (training)
                    e, gin = net.value_and_grad_train(x)
                else:
                    e, ys = net.fwd_cache(x)
                    gin = net.bwd(torch.ones_like(e), ys)
                outs.append(e.reshape(nf, na) + self.out_bias[t])  # pyright: ignore  (registered buffer)
                grads.append(gin.reshape(nf, na, d.shape[2]))
        return torch.cat(outs, dim=1), torch.cat(grads, dim=1)
