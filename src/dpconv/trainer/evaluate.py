"""Evaluating a trained model: :class:`Evaluator` and ``dpconv test`` (notes §14)."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dpconv.errors import ConfigError
from dpconv.system import LabeledSystem, System

_CHUNK_ENTRIES = 8_000_000


class Evaluator:
    """A frozen ``model.pth`` (or a checkpoint) ready to evaluate frames.

    ``evaluate(coords, cells, types)`` → ``(energies (nf,), forces (nf, N, 3),
    virials (nf, 3, 3))`` as numpy arrays, in eV, eV/Å and eV. ``types``
    index :attr:`type_map`; ``cells`` None means no periodicity.
    """

    def __init__(self, path: str, device: str = "cpu") -> None:
        from dpconv.trainer import malloc
        from dpconv.trainer.dist import resolve_device

        malloc.tune()
        self.device = resolve_device(device)
        self.path = path
        if not os.path.exists(path):
            raise ConfigError(f"model {path!r} not found")
        if path.endswith(".pth"):
            from dpconv.trainer.export import EXTRA

            extra = {EXTRA: ""}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.module = torch.jit.load(path, map_location=self.device, _extra_files=extra)
            self.metadata: dict[str, Any] = json.loads(extra[EXTRA]) if extra[EXTRA] else {}
        else:
            from dpconv.trainer import checkpoint
            from dpconv.trainer.export import build_frozen, metadata

            blob = checkpoint.load(path)
            self.module = build_frozen(blob, self.device)
            self.metadata = metadata(blob, self.module.table_terms)
        self.type_map: list[str] = list(self.module.get_type_map())
        self.rcut = float(self.module.get_rcut())

    def _chunk(self, natoms: int, cells: np.ndarray | None) -> int:
        images = 1
        if cells is not None:
            from dpconv.trainer.nn.neighbor import image_shifts

            images = int(image_shifts(torch.as_tensor(cells[:1], dtype=torch.float64), self.rcut).shape[0])
        return max(1, _CHUNK_ENTRIES // max(1, natoms * natoms * images))

    def evaluate_all(self, coords: Any, cells: Any, types: Any) -> dict[str, np.ndarray]:
        """All outputs (energy, atom_energy, force, virial) for frames of the same atoms."""
        x = np.asarray(coords, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        nf, n = x.shape[0], x.shape[1]
        c = None if cells is None else np.asarray(cells, dtype=np.float64).reshape(-1, 3, 3)
        if c is not None and c.shape[0] == 1 and nf > 1:
            c = np.repeat(c, nf, axis=0)
        t = torch.as_tensor(np.asarray(types, dtype=np.int64).reshape(n), device=self.device)
        step = self._chunk(n, c) if nf > 1 else 1  # (one frame, as in MD: nothing to size)
        parts: dict[str, list[np.ndarray]] = {}
        for a in range(0, nf, step):
            xx = torch.as_tensor(x[a : a + step], device=self.device)
            bb = None if c is None else torch.as_tensor(c[a : a + step].reshape(-1, 9), device=self.device)
            out = self.module(xx, t, bb)
            for k in ("energy", "atom_energy", "force", "virial"):
                parts.setdefault(k, []).append(out[k].detach().cpu().double().numpy())
        res = {k: np.concatenate(v) for k, v in parts.items()}
        res["energy"] = res["energy"].reshape(nf)
        res["atom_energy"] = res["atom_energy"].reshape(nf, n)
        res["virial"] = res["virial"].reshape(nf, 3, 3)
        return res

    def evaluate(self, coords: Any, cells: Any, types: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.evaluate_all(coords, cells, types)
        return r["energy"], r["force"], r["virial"]

    def model_types(self, system: System) -> np.ndarray:
        names = system.get_atom_names()
        lacking = [
            n
            for n in names
            if n not in self.type_map and n in [names[i] for i in set(system.get_atom_types().tolist())]
        ]
        if lacking:
            raise ConfigError(f"elements {lacking} are not in the model's type map {self.type_map}")
        lut = np.array([self.type_map.index(n) if n in self.type_map else -1 for n in names])
        return lut[system.get_atom_types()]

    def evaluate_system(self, system: System) -> dict[str, np.ndarray]:
        """Outputs for every frame of a dpconv System (atom names mapped onto the model's type map)."""
        d = system.data
        return self.evaluate_all(d["coords"], None if system.nopbc else d["cells"], self.model_types(system))


def _errors(pred: dict[str, np.ndarray], s: LabeledSystem) -> dict[str, tuple[float, int]]:
    n = s.get_natoms()
    de = pred["energy"] - s.data["energies"]
    df = (pred["force"] - s.data["forces"]).ravel()
    out = {
        "mae_e": (float(np.abs(de).mean()), de.size),
        "rmse_e": (float(np.sqrt((de**2).mean())), de.size),
        "mae_ea": (float(np.abs(de).mean()) / n, de.size),
        "rmse_ea": (float(np.sqrt((de**2).mean())) / n, de.size),
        "mae_f": (float(np.abs(df).mean()), df.size),
        "rmse_f": (float(np.sqrt((df**2).mean())), df.size),
    }
    if "virials" in s.data:
        dv = (pred["virial"] - s.data["virials"]).reshape(len(s), 9)
        out.update(
            {
                "mae_v": (float(np.abs(dv).mean()), dv.size),
                "rmse_v": (float(np.sqrt((dv**2).mean())), dv.size),
                "mae_va": (float(np.abs(dv).mean()) / n, dv.size),
                "rmse_va": (float(np.sqrt((dv**2).mean())) / n, dv.size),
            }
        )
    return out


def _report(err: dict[str, tuple[float, int]]) -> list[str]:
    lines = [
        f"Energy MAE         : {err['mae_e'][0]:e} eV",
        f"Energy RMSE        : {err['rmse_e'][0]:e} eV",
        f"Energy MAE/Natoms  : {err['mae_ea'][0]:e} eV",
        f"Energy RMSE/Natoms : {err['rmse_ea'][0]:e} eV",
        f"Force  MAE         : {err['mae_f'][0]:e} eV/Å",
        f"Force  RMSE        : {err['rmse_f'][0]:e} eV/Å",
    ]
    if "mae_v" in err:
        lines += [
            f"Virial MAE         : {err['mae_v'][0]:e} eV",
            f"Virial RMSE        : {err['rmse_v'][0]:e} eV",
            f"Virial MAE/Natoms  : {err['mae_va'][0]:e} eV",
            f"Virial RMSE/Natoms : {err['rmse_va'][0]:e} eV",
        ]
    return lines


def _weighted(all_err: list[dict[str, tuple[float, int]]]) -> dict[str, tuple[float, int]]:
    out: dict[str, tuple[float, int]] = {}
    for key in all_err[0]:
        items = [e[key] for e in all_err if key in e]
        w = sum(n for _, n in items)
        if key.startswith("rmse"):
            out[key] = (float(np.sqrt(sum(v * v * n for v, n in items) / w)), w)
        else:
            out[key] = (sum(v * n for v, n in items) / w, w)
    return out


def test(
    model: str | Evaluator,
    systems: Sequence[tuple[str, LabeledSystem]] | Sequence[LabeledSystem],
    *,
    numb_test: int = 0,
    detail_file: str | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """DeePMD-kit's ``dp test``: per-system errors, the weighted average, optional parity files."""
    ev = model if isinstance(model, Evaluator) else Evaluator(model)
    say = log or (lambda s: None)
    named = [(x if isinstance(x, tuple) else (repr(x), x)) for x in systems]
    results = []
    for k, (name, s) in enumerate(named):
        if not getattr(s, "labeled", False):
            raise ConfigError(f"system {name} has no labels to test against")
        nf = len(s)
        idx = np.arange(nf)
        if shuffle:
            idx = np.random.default_rng(seed).permutation(nf)
        if numb_test and numb_test < nf:
            idx = idx[:numb_test]
        sub = s.sub_system(idx) if len(idx) != nf or shuffle else s
        pred = ev.evaluate_system(sub)
        err = _errors(pred, sub)  # type: ignore[arg-type]
        results.append(err)
        say("# ---------------output of dp test--------------- ")
        say(f"# testing system : {name}")
        say(f"# number of test data : {len(sub)} ")
        for line in _report(err):
            say(line)
        say("# ----------------------------------------------- ")
        if detail_file:
            _write_detail(detail_file, name, sub, pred, append=k > 0)  # type: ignore[arg-type]
    avg = _weighted(results)
    say("# ----------weighted average of errors----------- ")
    say(f"# number of systems : {len(named)}")
    for line in _report(avg):
        say(line)
    say("# ----------------------------------------------- ")
    return {"systems": [{k: v[0] for k, v in e.items()} for e in results], "average": {k: v[0] for k, v in avg.items()}}


def _write_detail(prefix: str, name: str, s: LabeledSystem, pred: dict[str, np.ndarray], append: bool) -> None:
    mode = "ab" if append else "wb"
    nf, n = len(s), s.get_natoms()
    with open(prefix + ".e.out", mode) as fh:
        np.savetxt(fh, np.c_[s.data["energies"], pred["energy"]], header=f"{name}: data_e pred_e")
    with open(prefix + ".e_peratom.out", mode) as fh:
        np.savetxt(fh, np.c_[s.data["energies"] / n, pred["energy"] / n], header=f"{name}: data_e pred_e")
    with open(prefix + ".f.out", mode) as fh:
        np.savetxt(
            fh,
            np.c_[s.data["forces"].reshape(-1, 3), pred["force"].reshape(-1, 3)],
            header=f"{name}: data_fx data_fy data_fz pred_fx pred_fy pred_fz",
        )
    if "virials" in s.data:
        comps = [f"v{a}{b}" for a in "xyz" for b in "xyz"]
        with open(prefix + ".v.out", mode) as fh:
            np.savetxt(
                fh,
                np.c_[s.data["virials"].reshape(nf, 9), pred["virial"].reshape(nf, 9)],
                header=f"{name}: " + " ".join([f"data_{c}" for c in comps] + [f"pred_{c}" for c in comps]),
            )
        with open(prefix + ".v_peratom.out", mode) as fh:
            np.savetxt(
                fh,
                np.c_[s.data["virials"].reshape(nf, 9) / n, pred["virial"].reshape(nf, 9) / n],
                header=f"{name}: " + " ".join([f"data_{c}" for c in comps] + [f"pred_{c}" for c in comps]),
            )
