"""``dpconv freeze``: one TorchScript file that needs torch alone (notes §15).

The file holds the scripted :class:`FrozenModel` (weights, statistics, and the
neighbour-list code) plus ``dpconv.json`` in its extra files: type map, rcut,
sel, units, dpconv version and the model section of the input. Load it with
``torch.jit.load(path)``; ``forward(coord, atype, box=None)`` returns a dict
with ``energy`` (nf, 1), ``atom_energy`` (nf, N, 1), ``force`` (nf, N, 3),
``virial`` (nf, 9) and ``mask``, the keys and shapes of DeePMD-kit's frozen
``.pth`` models; the ``get_*`` methods match theirs.
"""

from __future__ import annotations

import json
import warnings
from typing import Dict, List

import torch
from torch import nn

from dpconv.trainer.model import EnergyModel
from dpconv.trainer.nn.neighbor import build_neighbors, pair_representatives, pair_vectors, select_by_type

UNITS = {"length": "Angstrom", "energy": "eV", "force": "eV/Angstrom", "virial": "eV"}
EXTRA = "dpconv.json"


def lower_neighbors(
    x: torch.Tensor, types: torch.Tensor, centers: torch.Tensor, cand: torch.Tensor | None, rcut: float, sel: List[int]
) -> torch.Tensor:
    """Type-split neighbour list (n, Σsel) of indices into ``x`` (-1 = empty) for the atoms ``centers``.

    ``x`` (nall, 3) is a non-periodic cluster (local and ghost atoms); ``cand`` (n, K) optional
    candidate indices per centre (an engine's neighbour list, -1 padded), else all atoms. The
    same selection as :func:`build_neighbors`: the nearest within ``rcut``, split by type.
    Atoms of type < 0 are never neighbours.
    """
    n, nall = centers.shape[0], x.shape[0]
    xc = x[centers]
    if cand is None:  # noqa: SIM108 - TorchScript refines Optional in if-blocks
        idx = torch.arange(nall, device=x.device).unsqueeze(0).expand(n, nall)
    else:
        idx = cand
    ok = (idx >= 0) & (idx != centers.unsqueeze(1))
    ic = idx.clamp(min=0)
    ok = ok & (types[ic] >= 0)
    d = torch.linalg.vector_norm(x[ic] - xc.unsqueeze(1), dim=-1)
    d = torch.where(ok & (d <= rcut), d, torch.full_like(d, float("inf")))
    return select_by_type(d, ic, types[ic], sel)


class FrozenModel(nn.Module):
    """An :class:`EnergyModel` that takes raw frames (any atom order, optional cell)."""

    __jit_ignored_attributes__ = ("table_terms",)  # Python-side record (the metadata has it)

    def __init__(self, model: EnergyModel, model_def: str = "{}", min_nbor_dist: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.rcut = float(model.rcut)
        self.sel: List[int] = list(model.sel)
        self.type_map: List[str] = list(model.type_map)
        self.ntypes = len(model.type_map)
        self.model_def = model_def
        self.min_nbor_dist = float(min_nbor_dist)
        self.table_terms = list[int]()  # Chebyshev terms per embedding net (0: none), set by build_frozen

    @torch.jit.export
    def get_rcut(self) -> float:
        return self.rcut

    @torch.jit.export
    def get_ntypes(self) -> int:
        return self.ntypes

    @torch.jit.export
    def get_type_map(self) -> List[str]:
        return self.type_map

    @torch.jit.export
    def get_sel(self) -> List[int]:
        return self.sel

    @torch.jit.export
    def get_dim_fparam(self) -> int:
        return 0

    @torch.jit.export
    def get_dim_aparam(self) -> int:
        return 0

    @torch.jit.export
    def mixed_types(self) -> bool:
        return False

    @torch.jit.export
    def has_message_passing(self) -> bool:
        return False

    @torch.jit.export
    def is_aparam_nall(self) -> bool:
        return False

    @torch.jit.export
    def get_model_def_script(self) -> str:
        return self.model_def

    @torch.jit.export
    def get_min_nbor_dist(self) -> float:
        return self.min_nbor_dist

    def _frames(self, coord: torch.Tensor, types: torch.Tensor, box: torch.Tensor | None) -> Dict[str, torch.Tensor]:
        """Frames sharing the atom types ``types`` (N,)."""
        nf, n = coord.shape[0], coord.shape[1]
        order = torch.argsort(types, stable=True)
        inv = torch.argsort(order)
        t = types[order]
        x = coord[:, order]
        counts: List[int] = torch.bincount(t, minlength=self.ntypes).tolist()
        cells: torch.Tensor | None = None
        if box is not None:
            cells = box.reshape(nf, 3, 3).to(x.dtype)
        with torch.no_grad():
            nlist, shifts = build_neighbors(x.detach(), cells, t, self.rcut, self.sel)
            rij = pair_vectors(x.detach(), cells, nlist, shifts)
            nc = nlist.shape[2]
            rep: torch.Tensor | None = None
            if not self.model.descriptor.tabulated():  # shared pairs only save net evaluations
                rep = pair_representatives(nlist, shifts, t) + (torch.arange(nf, device=x.device) * (n * nc)).view(
                    nf, 1, 1
                )
        # first derivatives by hand (EnergyModel.energy_grad): no autograd graph
        out = self.model.from_pairs_inference(rij, nlist, t, counts, rep)
        return {
            "energy": out["energy"].detach().reshape(nf, 1),
            "atom_energy": out["atom_energy"].detach()[:, inv].reshape(nf, n, 1),
            "force": out["force"].detach()[:, inv],
            "virial": out["virial"].detach().reshape(nf, 9),
            "mask": torch.ones(nf, n, dtype=torch.int32, device=coord.device),
        }

    def forward(
        self,
        coord: torch.Tensor,
        atype: torch.Tensor,
        box: torch.Tensor | None = None,
        fparam: torch.Tensor | None = None,
        aparam: torch.Tensor | None = None,
        do_atomic_virial: bool = False,
    ) -> Dict[str, torch.Tensor]:
        """``coord`` (nf, N, 3) or (nf, 3N) Å, ``atype`` (nf, N) or (N,), ``box`` (nf, 9)/(nf, 3, 3) or None."""
        dtype = self.model.descriptor.davg.dtype
        nf = coord.shape[0] if (coord.dim() == 2 and coord.shape[1] != 3) or coord.dim() == 3 else 1
        x = coord.reshape(nf, -1, 3).to(dtype)  # pyright: ignore  (registered buffer)
        n = x.shape[1]
        at = atype.reshape(-1, n).to(torch.long)
        if at.shape[0] == 1 or bool((at == at[0:1]).all()):
            return self._frames(x, at[0], box)
        outs: List[Dict[str, torch.Tensor]] = []
        for f in range(nf):
            b: torch.Tensor | None = None
            if box is not None:
                b = box.reshape(nf, 9)[f : f + 1]
            outs.append(self._frames(x[f : f + 1], at[f], b))
        res: Dict[str, torch.Tensor] = {}
        for k in outs[0]:
            res[k] = torch.cat([o[k] for o in outs], dim=0)
        return res

    @torch.jit.export
    def forward_lower(
        self,
        extended_coord: torch.Tensor,
        extended_atype: torch.Tensor,
        nlocal: int,
        nlist: torch.Tensor | None = None,
        do_atomic_virial: bool = False,
    ) -> Dict[str, torch.Tensor]:
        """For engines that bring their own ghost atoms (LAMMPS): one frame, no cell.

        ``extended_coord`` (1, nall, 3) Å with the ``nlocal`` owned atoms first, ``extended_atype``
        (1, nall) (< 0: ignored), ``nlist`` optional (1, nlocal, K) candidate neighbours (indices
        into the extended atoms, -1 padded; e.g. LAMMPS' full list), else all atoms are candidates.
        Ghost atoms must cover ``rcut`` around every owned atom. Returns ``energy`` (1, 1) and
        ``atom_energy`` (1, nlocal, 1) of the owned atoms, ``extended_force`` (1, nall, 3) on every
        atom (ghost forces to be reverse-communicated), ``virial`` (1, 9) of the owned atoms'
        energy, and with ``do_atomic_virial`` ``extended_virial`` (1, nall, 9): the pair term
        ``-∂E_i/∂r_ij ⊗ r_ij`` given to neighbour ``j`` (DeePMD-kit's convention).
        """
        dtype = self.model.descriptor.davg.dtype
        x = extended_coord.reshape(-1, 3).to(dtype).detach()  # pyright: ignore[reportCallIssue, reportArgumentType]
        te = extended_atype.reshape(-1).to(torch.long)
        nall = x.shape[0]
        tl = te[:nlocal]
        order = torch.argsort(tl, stable=True)
        ts = tl[order]
        counts: List[int] = torch.bincount(ts, minlength=self.ntypes).tolist()
        cand: torch.Tensor | None = None
        if nlist is not None:
            cand = nlist.reshape(nlocal, -1).to(torch.long)[order]
        nl = lower_neighbors(x, te, order, cand, self.rcut, self.sel)
        mask = nl >= 0
        jn = nl.clamp(min=0)
        rij = (x[jn] - x[order].unsqueeze(1)).unsqueeze(0)
        if self.model.descriptor.type_one_side:
            ae, g0 = self.model.autograd_energy_grad(rij, mask.unsqueeze(0), ts, counts)
        else:
            with torch.no_grad():  # first derivatives by hand (EnergyModel.energy_grad): no autograd graph
                ae, g0 = self.model.energy_grad(rij, mask.unsqueeze(0), ts, counts)
        ae = ae.reshape(1, nlocal)
        energy = ae.sum(dim=1)
        g = g0[0] * mask.unsqueeze(-1).to(g0.dtype)
        r = rij.detach()[0]
        nc = nl.shape[1]
        force = torch.zeros(nall, 3, dtype=x.dtype, device=x.device)
        force.index_add_(0, order, g.sum(dim=1))
        flat = (jn.reshape(-1, 1) * 3 + torch.arange(3, device=jn.device)).reshape(-1)  # 1-D: faster
        force.view(-1).index_add_(0, flat, -g.reshape(-1))
        pv = -torch.einsum("nsa,nsb->nsab", g, r)
        inv = torch.argsort(order)
        out: Dict[str, torch.Tensor] = {
            "energy": energy.detach().reshape(1, 1),
            "atom_energy": ae.detach()[:, inv].reshape(1, nlocal, 1),
            "extended_force": force.reshape(1, nall, 3),
            "virial": pv.sum(dim=(0, 1)).reshape(1, 9),
        }
        if do_atomic_virial:
            av = torch.zeros(nall, 9, dtype=x.dtype, device=x.device)
            av.index_add_(0, jn.reshape(-1), pv.reshape(nlocal * nc, 9))
            out["extended_virial"] = av.reshape(1, nall, 9)
        return out


def min_nbor_dist(blob: dict) -> float:
    """The training data's closest pair (Å) recorded in a checkpoint dict; 0 when unknown."""
    return float(blob.get("extra", {}).get("min_nbor_dist", 0.0))


def table_rmin(blob: dict) -> float:
    """Closest distance (Å) the embedding tables serve: half the training data's closest pair (0.4 Å
    when unknown); closer pairs make their block run the nets themselves."""
    mnd = min_nbor_dist(blob)
    return 0.5 * mnd if mnd > 0 else 0.4


def build_frozen(blob: dict, device: str | torch.device = "cpu", tables: bool = True) -> FrozenModel:
    """A FrozenModel (eager) from a loaded checkpoint dict; with ``tables``, the embedding nets get
    Chebyshev tables equal to them to ~1e-12 (:mod:`dpconv.trainer.nn.chebyshev`): a short one down
    to the training data's closest pair, which serves the usual frame, and a longer one down to
    :func:`table_rmin`."""
    cfg = blob["config"]
    model = EnergyModel.from_config(cfg["model"])
    model.load_state_dict(blob["model"])
    model.eval()
    mdef = {k: v for k, v in cfg["model"].items() if k != "precision_resolved"}
    fm = FrozenModel(model, json.dumps(mdef), min_nbor_dist(blob)).to(device)
    fm.table_terms = model.descriptor.tabulate(table_rmin(blob), min_nbor_dist(blob)) if tables else []
    return fm


def metadata(blob: dict, table_terms: List[int] | None = None) -> dict:
    from dpconv import __version__

    m = blob["config"]["model"]
    d = m["descriptor"]
    return {
        "type_map": m["type_map"],
        "rcut": d["rcut"],
        "rcut_smth": d["rcut_smth"],
        "sel": d["sel"],
        "units": UNITS,
        "dpconv_version": __version__,
        "torch_version": torch.__version__,
        "precision": m.get("precision_resolved", "float64"),
        "step": blob.get("step"),
        "model": {k: v for k, v in m.items() if k != "precision_resolved"},
        "embedding_tables": {  # terms per net, level by level (rmin: the closest distance served)
            "terms": list(table_terms or []),
            "rmin": [min_nbor_dist(blob), table_rmin(blob)] if min_nbor_dist(blob) > 0 else [table_rmin(blob)],
        },
    }


def freeze(checkpoint_path: str = ".", output: str = "model.pth", tables: bool = True) -> str:
    """Script the model in ``checkpoint_path`` (a file, or a folder with a ``checkpoint`` marker);
    ``tables=False`` keeps the embedding nets only (no Chebyshev tables)."""
    from dpconv.trainer import checkpoint

    if not output.endswith(".pth"):
        output += ".pth"
    blob = checkpoint.load(checkpoint_path)
    fm = build_frozen(blob, tables=tables)
    extra = {EXTRA: json.dumps(metadata(blob, fm.table_terms)), "data_modifier.pth": ""}
    with warnings.catch_warnings():  # TorchScript is what DeePMD-kit's consumers (LAMMPS, ASE) load
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(fm)
        torch.jit.save(scripted, output, _extra_files=extra)
    return output
