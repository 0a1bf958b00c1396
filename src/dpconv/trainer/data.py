"""LabeledSystems → type-sorted tensors, neighbour lists, batches and system sampling (notes §1, §12).

Each system is prepared once: atoms sorted by type, and the neighbour list of
every frame built up front (the data never moves), so a training step only
gathers pair vectors. Batches are drawn as DeePMD-kit does: a system is chosen
with probability ∝ its number of batches (``prob_sys_size``), and each system
walks through its own shuffled frames (a new permutation per epoch, the last
batch possibly short).

Every random draw is a pure function of (seed, rank, system, epoch/step), so
the sampler state is a few counters that a checkpoint stores: resuming gives
the same batches as an uninterrupted run.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dpconv.errors import ConfigError
from dpconv.system import LabeledSystem
from dpconv.trainer.nn.neighbor import build_neighbors, neighbor_stat, pair_representatives

#: neighbour-list memory per chunk (distance matrix entries)
_CHUNK_ENTRIES = 4_000_000


# -- reading ------------------------------------------------------------------------------------
def expand_systems(entries: Any, base: str = ".") -> list[LabeledSystem]:
    """Read ``training_data.systems``: folders (deepmd/npy, searched recursively like DeePMD-kit
    for ``type.raw``), or ``{"path": ..., "fmt": ...}`` for any file dpconv reads."""
    import dpconv

    if isinstance(entries, (str, dict)):
        entries = [entries]
    out: list[LabeledSystem] = []
    for e in entries:
        if isinstance(e, dict):
            extra = set(e) - {"path", "fmt"}
            if "path" not in e or extra:
                raise ConfigError(f"a system given as an object needs 'path' (and optional 'fmt'), got {e}")
            path = os.path.join(base, os.fspath(e["path"]))
            s = dpconv.read(path, e.get("fmt", "auto"), labeled=True)
            out.append(s)  # type: ignore[arg-type]
            continue
        path = os.path.join(base, os.fspath(e))
        if not os.path.exists(path):
            raise ConfigError(f"training system {e!r} not found")
        if os.path.isfile(os.path.join(path, "type.raw")):
            folders = [path]
        else:
            folders = sorted(
                os.path.dirname(p) for p in glob.glob(os.path.join(path, "**", "type.raw"), recursive=True)
            )
            if not folders:
                raise ConfigError(f"{e!r}: no deepmd/npy system (no type.raw) found under it")
        for f in folders:
            out.append(dpconv.read(f, "deepmd/npy", labeled=True))  # type: ignore[arg-type]
    return out


# -- batch sizes --------------------------------------------------------------------------------
def batch_size_for(spec: Any, natoms: int, index: int = 0) -> int | None:
    """DeePMD-kit's ``batch_size`` rules; None means the system is filtered out."""
    if isinstance(spec, bool):
        raise ConfigError(f"batch_size: bad value {spec!r}")
    if isinstance(spec, int):
        return spec
    if isinstance(spec, list):
        return int(spec[index])
    if isinstance(spec, str):
        kind, _, num = spec.partition(":")
        try:
            rule = int(num) if num else 32
        except ValueError:
            raise ConfigError(f"batch_size: bad value {spec!r}") from None
        if kind == "auto":
            bs = rule // natoms
            if bs * natoms < rule:
                bs += 1
            return max(bs, 1)
        if kind == "max":
            return max(1, rule // natoms)
        if kind == "filter":
            if natoms > rule:
                return None
            bs = rule // natoms
            return bs + 1 if bs * natoms < rule else max(bs, 1)
    raise ConfigError(f"batch_size: unsupported value {spec!r} (int, list, 'auto', 'auto:N', 'max:N', 'filter:N')")


# -- prepared systems ---------------------------------------------------------------------------
class SystemData:
    """One system on the training device: type-sorted frames and their neighbour lists."""

    def __init__(self, system: LabeledSystem, type_map: Sequence[str], name: str = "") -> None:
        d = system.data
        names = list(d["atom_names"])
        types = np.asarray(d["atom_types"], dtype=np.int64)
        present = sorted(set(types.tolist()))
        lacking = [names[t] for t in present if names[t] not in type_map]
        if lacking:
            raise ConfigError(f"system {name or system}: elements {lacking} are not in model.type_map {list(type_map)}")
        lut = np.array([list(type_map).index(n) if n in type_map else -1 for n in names], dtype=np.int64)
        mtypes = lut[types]
        self.order = np.argsort(mtypes, kind="stable")
        self.name = name or repr(system)
        self.atype_np = mtypes[self.order]
        self.ntypes = len(type_map)
        self.counts = np.bincount(self.atype_np, minlength=self.ntypes).astype(np.int64)
        self.natoms = len(types)
        self.nframes = len(system)
        self.nopbc = bool(d.get("nopbc", False))
        self._np = {
            "coords": np.asarray(d["coords"], dtype=np.float64)[:, self.order],
            "cells": np.asarray(d["cells"], dtype=np.float64),
            "energies": np.asarray(d["energies"], dtype=np.float64),
            "forces": np.asarray(d["forces"], dtype=np.float64)[:, self.order],
        }
        if "virials" in d:
            self._np["virials"] = np.asarray(d["virials"], dtype=np.float64)
        self.has_virial = "virials" in d
        self.t: dict[str, torch.Tensor] = {}

    def _chunk(self, rcut: float) -> int:
        if self.nopbc:
            images = 1
        else:
            cells = torch.as_tensor(self._np["cells"][:1])
            from dpconv.trainer.nn.neighbor import image_shifts

            images = int(image_shifts(cells, rcut).shape[0])
        return max(1, _CHUNK_ENTRIES // max(1, self.natoms * self.natoms * images))

    def neighbor_stat(self, rcut: float) -> tuple[np.ndarray, float]:
        """Max type-t neighbour counts and the min distance over all frames."""
        atype = torch.as_tensor(self.atype_np)
        best = np.zeros(self.ntypes, dtype=np.int64)
        dmin = math.inf
        step = self._chunk(rcut)
        for a in range(0, self.nframes, step):
            x = torch.as_tensor(self._np["coords"][a : a + step])
            c = None if self.nopbc else torch.as_tensor(self._np["cells"][a : a + step])
            counts, dm = neighbor_stat(x, c, atype, self.ntypes, rcut)
            best = np.maximum(best, counts.numpy())
            dmin = min(dmin, dm)
        return best, dmin

    def prepare(self, rcut: float, sel: Sequence[int], dtype: torch.dtype, device: torch.device) -> None:
        """Build all neighbour lists and move the frames to ``device`` in ``dtype``."""
        atype = torch.as_tensor(self.atype_np)
        nls, shs, reps = [], [], []
        step = self._chunk(rcut)
        for a in range(0, self.nframes, step):
            x = torch.as_tensor(self._np["coords"][a : a + step])
            c = None if self.nopbc else torch.as_tensor(self._np["cells"][a : a + step])
            nl, sh = build_neighbors(x, c, atype, rcut, list(sel))
            nls.append(nl.to(torch.int32))
            shs.append(sh.to(torch.int8))
            reps.append(pair_representatives(nl, sh, atype).to(torch.int32))
        self.t = {
            "coords": torch.as_tensor(self._np["coords"], dtype=dtype, device=device),
            "cells": torch.as_tensor(self._np["cells"], dtype=dtype, device=device),
            "energies": torch.as_tensor(self._np["energies"], dtype=torch.float64, device=device),
            "forces": torch.as_tensor(self._np["forces"], dtype=dtype, device=device),
            "nlist": torch.cat(nls).to(device),
            "shifts": torch.cat(shs).to(device),
            "rep": torch.cat(reps).to(device),
            "atype": torch.as_tensor(self.atype_np, device=device),
        }
        if self.has_virial:
            self.t["virials"] = torch.as_tensor(self._np["virials"], dtype=dtype, device=device)

    def batch(self, idx: np.ndarray | Sequence[int]) -> dict[str, Any]:
        """Frames ``idx`` as a batch dict for the model and the loss."""
        t = self.t
        i = torch.as_tensor(np.asarray(idx, dtype=np.int64), device=t["coords"].device)
        b: dict[str, Any] = {
            "coords": t["coords"].index_select(0, i),
            "cells": None if self.nopbc else t["cells"].index_select(0, i),
            "nlist": t["nlist"].index_select(0, i).long(),
            "shifts": t["shifts"].index_select(0, i),
            "rep": t["rep"].index_select(0, i).long()
            + (torch.arange(len(i), device=i.device) * (self.natoms * t["rep"].shape[2])).view(-1, 1, 1),
            "atype": t["atype"],
            "counts": [int(c) for c in self.counts],
            "energies": t["energies"].index_select(0, i),
            "forces": t["forces"].index_select(0, i),
            "natoms": self.natoms,
        }
        if self.has_virial:
            b["virials"] = t["virials"].index_select(0, i)
        return b


def resolve_sel(
    systems: Sequence[SystemData], rcut: float, sel: Any, ntypes: int, log: Any = None
) -> tuple[list[int], float]:
    """``sel: auto[:ratio]`` → per-type slots ``4·ceil(floor(max·ratio)/4)``; also warns for a given sel."""
    best = np.zeros(ntypes, dtype=np.int64)
    dmin = math.inf
    for s in systems:
        b, dm = s.neighbor_stat(rcut)
        best = np.maximum(best, b)
        dmin = min(dmin, dm)
    if isinstance(sel, str):
        ratio = float(sel[5:]) if sel.startswith("auto:") else 1.1
        out = [int(4 * math.ceil(int(m * ratio) / 4)) for m in best.tolist()]
        if log:
            log(
                f"neighbour statistics: max neighbours per type {best.tolist()}, min distance {dmin:.4f} Å; sel = {out}"
            )
        return out, dmin
    if log:
        for t, (s, m) in enumerate(zip(sel, best.tolist())):
            if s < m:
                log(
                    f"WARNING: sel[{t}] = {s} is smaller than the largest neighbour count {m}; "
                    "the farthest neighbours are dropped"
                )
    return list(sel), dmin


# -- sampling -----------------------------------------------------------------------------------
class Sampler:
    """Chooses (system, frames) per step; state = per-system counters (saved in checkpoints).

    With ``world > 1`` each epoch's permutation is split among ranks (one shard
    per rank, like ``DistributedSampler``) and each rank draws its own systems.
    """

    def __init__(
        self,
        systems: Sequence[SystemData],
        batch_sizes: Sequence[int],
        seed: int,
        *,
        auto_prob: str = "prob_sys_size",
        sys_probs: Sequence[float] | None = None,
        rank: int = 0,
        world: int = 1,
        stream: int = 0,
    ) -> None:
        self.systems = list(systems)
        self.bs = list(batch_sizes)
        self.seed = int(seed)
        self.rank, self.world, self.stream = rank, world, stream
        self.shard = [len(range(rank, s.nframes, world)) for s in self.systems]
        self.nbatch = [max(1, math.ceil(n / b)) for n, b in zip(self.shard, self.bs)]
        if sys_probs is not None:
            p = np.asarray(sys_probs, dtype=np.float64)
            if len(p) != len(self.systems):
                raise ConfigError(f"sys_probs has {len(p)} entries for {len(self.systems)} systems")
        elif auto_prob == "prob_uniform":
            p = np.ones(len(self.systems))
        elif auto_prob == "prob_sys_size":
            p = np.asarray(self.nbatch, dtype=np.float64)
        else:
            raise ConfigError(f"auto_prob {auto_prob!r} is not supported (prob_sys_size, prob_uniform)")
        self.probs = p / p.sum()
        self.cdf = np.cumsum(self.probs)
        self.epoch = np.zeros(len(self.systems), dtype=np.int64)
        self.pos = np.zeros(len(self.systems), dtype=np.int64)
        self.draws = 0
        self._perms: dict[int, tuple[int, np.ndarray]] = {}  # system → (epoch, this rank's permutation)

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch.tolist(), "pos": self.pos.tolist(), "draws": self.draws}

    def load_state(self, st: dict[str, Any]) -> None:
        self.epoch = np.asarray(st["epoch"], dtype=np.int64)
        self.pos = np.asarray(st["pos"], dtype=np.int64)
        self.draws = int(st["draws"])

    def _pick_system(self) -> int:
        self.draws += 1
        if len(self.systems) == 1:  # the draw below could only give 0
            return 0
        u = np.random.default_rng([self.seed, self.stream, self.rank, self.draws - 1]).random()
        return int(min(np.searchsorted(self.cdf, u, side="right"), len(self.systems) - 1))

    def frames(self, k: int) -> np.ndarray:
        """Next batch of frame indices of system ``k``."""
        epoch = int(self.epoch[k])
        cached = self._perms.get(k)
        if cached is None or cached[0] != epoch:  # one permutation per epoch, not per batch
            perm = np.random.default_rng([self.seed, self.stream, k, epoch]).permutation(self.systems[k].nframes)
            cached = (epoch, perm[self.rank :: self.world])
            self._perms[k] = cached
        mine = cached[1]
        a = int(self.pos[k]) * self.bs[k]
        idx = mine[a : a + self.bs[k]].copy()
        self.pos[k] += 1
        if self.pos[k] >= self.nbatch[k]:
            self.pos[k] = 0
            self.epoch[k] += 1
        return idx

    def next(self) -> tuple[int, dict[str, Any]]:
        k = self._pick_system()
        return k, self.systems[k].batch(self.frames(k))
