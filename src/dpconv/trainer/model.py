"""The se_e2_a energy model: descriptor + type-wise fitting, forces and virial.

Everything is a function of the pair vectors ``r_ij`` (nf, N, Nc, 3); with
``g = ∂E/∂r_ij`` (autograd, or the hand-written first derivative :meth:`EnergyModel.energy_grad`
used in training and inference):

* ``F_i = Σ_j g_ij − Σ_{k: j(k)=i} g_k`` (centre and neighbour side of each pair);
* ``W = −Σ_pairs g ⊗ r`` (first index: force component), DeePMD's virial.

Atoms must come sorted by type (``counts`` per type); :mod:`.data` and the
frozen model take care of that.
"""

from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np
import torch
from torch import nn

from dpconv.trainer.nn.descriptor import SeA
from dpconv.trainer.nn.fitting import EnergyFitting
from dpconv.trainer.nn.neighbor import pair_vectors

DTYPES = {"float64": torch.float64, "float32": torch.float32}


class EnergyModel(nn.Module):
    """Energy, atomic energies, forces and virial of batches of frames of the same atoms."""

    def __init__(self, type_map: List[str], descriptor: SeA, fitting: EnergyFitting) -> None:
        super().__init__()
        self.type_map = list(type_map)
        self.descriptor = descriptor
        self.fitting = fitting
        self.rcut = descriptor.rcut
        self.sel = list(descriptor.sel)
        self.ntypes = len(type_map)

    @classmethod
    def from_config(cls, model_cfg: dict[str, Any]) -> EnergyModel:
        """Build from the normalised ``model`` section (``sel`` already a list)."""
        d = model_cfg["descriptor"]
        f = model_cfg["fitting_net"]
        dtype = DTYPES[model_cfg.get("precision_resolved", "float64")]
        nt = len(model_cfg["type_map"])
        desc = SeA(
            nt,
            d["sel"],
            d["rcut"],
            d["rcut_smth"],
            d["neuron"],
            d["axis_neuron"],
            resnet_dt=d["resnet_dt"],
            type_one_side=d["type_one_side"],
            env_protection=d["env_protection"],
            dtype=dtype,
            seed=d.get("seed"),
        )
        fseed = f.get("seed")
        fit = EnergyFitting(
            nt,
            desc.dim_out,
            f["neuron"],
            resnet_dt=f["resnet_dt"],
            dtype=dtype,
            seed=None if fseed is None else fseed + 1,
        )
        return cls(model_cfg["type_map"], desc, fit)

    def atomic_energy(
        self,
        rij: torch.Tensor,
        mask: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
        rep: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.fitting(self.descriptor(rij, mask, atype, counts, rep), counts)

    def forward(
        self,
        coords: torch.Tensor,
        cells: torch.Tensor | None,
        nlist: torch.Tensor,
        shifts: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
        create_graph: bool = False,
        rep: torch.Tensor | None = None,
    ) -> Dict[str, torch.Tensor]:
        """Outputs for type-sorted ``coords`` (nf, N, 3) with neighbour list ``nlist``/``shifts``."""
        rij = pair_vectors(coords, cells, nlist, shifts).detach()
        rij.requires_grad_(True)
        return self.from_pairs(rij, nlist, atype, counts, create_graph, rep)

    def from_pairs(
        self,
        rij: torch.Tensor,
        nlist: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
        create_graph: bool,
        rep: torch.Tensor | None = None,
    ) -> Dict[str, torch.Tensor]:
        mask = nlist >= 0
        if create_graph and not self.descriptor.type_one_side:
            # training: forces from the hand-written first derivative, built with autograd on, so the
            # loss gradient is one first-order backward through explicit ops (no double backward)
            r = rij.detach()
            ae, g = self.energy_grad(r, mask, atype, counts, rep)
            return self._outputs(ae, g, r, nlist)
        ae = self.atomic_energy(rij, mask, atype, counts, rep)
        energy = ae.sum(dim=1)
        grads = torch.autograd.grad([energy.sum()], [rij], create_graph=create_graph)
        g = grads[0]
        assert g is not None
        return self._outputs(ae, g, rij, nlist)

    def energy_grad(
        self,
        rij: torch.Tensor,
        mask: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
        rep: torch.Tensor | None = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Atomic energies and ``g = ∂E/∂rij`` with hand-written first derivatives, equal to the
        autograd result to rounding. Under ``torch.no_grad`` (inference) no graph is built; with
        autograd on (training) ``g`` is differentiable w.r.t. the parameters by a first-order
        backward. Not for ``type_one_side``."""
        d, t, cache, ycache = self.descriptor.forward_cache(rij, mask, counts, rep)
        ae, dd = self.fitting.energy_grad(d, counts)
        g = self.descriptor.backward_rij(dd, t, cache, ycache, counts)
        return ae, g

    def autograd_energy_grad(
        self,
        rij: torch.Tensor,
        mask: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
        rep: torch.Tensor | None = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """:meth:`energy_grad` by autograd (call with grad mode on)."""
        r = rij.detach()
        r.requires_grad_(True)
        ae = self.atomic_energy(r, mask, atype, counts, rep)
        grads = torch.autograd.grad([ae.sum()], [r])
        g = grads[0]
        assert g is not None
        return ae.detach(), g

    def from_pairs_inference(
        self,
        rij: torch.Tensor,
        nlist: torch.Tensor,
        atype: torch.Tensor,
        counts: List[int],
        rep: torch.Tensor | None = None,
    ) -> Dict[str, torch.Tensor]:
        """:meth:`from_pairs` for inference: same outputs, no autograd (see :meth:`energy_grad`)."""
        if self.descriptor.type_one_side:
            ae, g = self.autograd_energy_grad(rij, nlist >= 0, atype, counts, rep)
        else:
            with torch.no_grad():
                ae, g = self.energy_grad(rij, nlist >= 0, atype, counts, rep)
        return self._outputs(ae, g, rij, nlist)

    def _outputs(
        self, ae: torch.Tensor, g: torch.Tensor, rij: torch.Tensor, nlist: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        energy = ae.sum(dim=1)
        nf, n = nlist.shape[0], nlist.shape[1]
        base = (torch.arange(nf, device=nlist.device) * n).view(nf, 1, 1)
        # flat (atom·3 + component) indices: a 1-D index_add (row-wise it is ~4× slower on two threads)
        idx = (nlist.clamp(min=0) + base).reshape(-1, 1) * 3 + torch.arange(3, device=nlist.device)
        force = g.sum(dim=2).reshape(-1).index_add(0, idx.reshape(-1), -g.reshape(-1)).reshape(nf, n, 3)
        virial = -torch.einsum("fnsa,fnsb->fab", g, rij)
        return {"energy": energy, "atom_energy": ae, "force": force, "virial": virial}


# -- statistics (notes §4, §8) ------------------------------------------------------------
@torch.no_grad()
def compute_env_stats(
    model: EnergyModel,
    batches: List[Dict[str, Any]],
    protection: float = 1e-2,
) -> None:
    """Set ``davg``/``dstd`` per centre type from sampled batches (padding counted, as DeePMD)."""
    desc = model.descriptor
    nt = model.ntypes
    acc = np.zeros((nt, 2, 3))  # [type, radial/angular, (n, Σv, Σv²)]
    for b in batches:
        rij = pair_vectors(b["coords"], b["cells"], b["nlist"], b["shifts"])
        raw = desc.raw_env(rij, b["nlist"] >= 0).double()
        for t in range(nt):
            rows = raw[:, b["atype"] == t]
            if rows.numel() == 0:
                continue
            rad = rows[..., 0]
            ang = rows[..., 1:]
            acc[t, 0] += [rad.numel(), float(rad.sum()), float(rad.square().sum())]
            acc[t, 1] += [ang.numel(), float(ang.sum()), float(ang.square().sum())]
    davg = torch.zeros(nt, desc.nnei, 4, dtype=torch.float64)
    dstd = torch.full((nt, desc.nnei, 4), 0.1, dtype=torch.float64)
    for t in range(nt):
        n_r, s_r, q_r = acc[t, 0]
        n_a, s_a, q_a = acc[t, 1]
        if n_r == 0:
            continue
        mean_r = s_r / n_r
        std_r = np.sqrt(max(q_r / n_r - mean_r**2, 0.0))
        std_a = np.sqrt(max(q_a / n_a - (s_a / n_a) ** 2, 0.0))
        davg[t, :, 0] = mean_r
        dstd[t, :, 0] = max(std_r, protection)
        dstd[t, :, 1:] = max(std_a, protection)
    desc.davg.copy_(davg.to(desc.davg))  # pyright: ignore  (registered buffer)
    desc.dstd.copy_(dstd.to(desc.dstd))  # pyright: ignore  (registered buffer)


@torch.no_grad()
def compute_energy_bias(
    model: EnergyModel, type_counts: np.ndarray, energies: np.ndarray, rcond: float | None = None
) -> float:
    """``out_bias = lstsq(counts, E)`` (minimum norm when rank deficient); returns the RMSE/atom."""
    a = np.asarray(type_counts, dtype=np.float64)
    y = np.asarray(energies, dtype=np.float64)
    bias = np.linalg.lstsq(a, y, rcond=rcond)[0]
    model.fitting.out_bias.copy_(torch.as_tensor(bias).to(model.fitting.out_bias))  # pyright: ignore  (registered buffer)
    resid = (a @ bias - y) / a.sum(axis=1)
    return float(np.sqrt(np.mean(resid**2)))
