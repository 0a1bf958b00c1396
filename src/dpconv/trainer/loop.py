"""The training loop (notes §10–§13): exp learning rate, ener loss, lcurve.out, checkpoints."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from dpconv.errors import ConfigError
from dpconv.system import LabeledSystem
from dpconv.trainer import checkpoint, malloc
from dpconv.trainer.config import normalize, resolve_seed
from dpconv.trainer.data import Sampler, SystemData, batch_size_for, expand_systems, resolve_sel
from dpconv.trainer.dist import average_gradients, init_distributed, resolve_device
from dpconv.trainer.model import DTYPES, EnergyModel, compute_energy_bias, compute_env_stats
from dpconv.trainer.nn.neighbor import pair_vectors

Log = Callable[[str], None]


# -- learning rate and loss ---------------------------------------------------------------------
class ExpLR:
    """``lr(t) = max(start·r^floor(t/decay_steps), stop)`` with ``r = (stop/start)^(decay_steps/numb_steps)``."""

    def __init__(self, start_lr: float, stop_lr: float, decay_steps: int, numb_steps: int) -> None:
        if decay_steps >= numb_steps:
            decay_steps = 100 if numb_steps // 10 > 100 else numb_steps // 100 + 1
        self.start, self.stop, self.decay_steps = float(start_lr), float(stop_lr), int(decay_steps)
        self.rate = math.exp(math.log(stop_lr / start_lr) / (numb_steps / decay_steps)) if numb_steps else 1.0

    def __call__(self, step: int) -> float:
        return max(self.start * self.rate ** (step // self.decay_steps), self.stop)


class EnerLoss:
    """DeePMD-kit's ``ener`` loss; prefactors interpolate with ``lr(t)/start_lr``."""

    def __init__(self, cfg: dict[str, Any], start_lr: float) -> None:
        self.cfg = cfg
        self.start_lr = start_lr
        self.has_e = bool(cfg["start_pref_e"] and cfg["limit_pref_e"])
        self.has_f = bool(cfg["start_pref_f"] and cfg["limit_pref_f"])
        self.has_v = bool(cfg["start_pref_v"] and cfg["limit_pref_v"])
        self.intensive = bool(cfg["intensive_ener_virial"])

    @property
    def keys(self) -> list[str]:
        k = ["rmse"]
        if self.has_e:
            k.append("rmse_e")
        if self.has_f:
            k.append("rmse_f")
        if self.has_v:
            k.append("rmse_v")
        return sorted(k)

    def pref(self, name: str, lr: float) -> float:
        start, limit = self.cfg[f"start_pref_{name}"], self.cfg[f"limit_pref_{name}"]
        return limit + (start - limit) * lr / self.start_lr

    def __call__(
        self, pred: dict[str, torch.Tensor], batch: dict[str, Any], lr: float
    ) -> tuple[torch.Tensor, dict[str, float]]:
        n = batch["natoms"]
        norm = 1.0 / (n * n) if self.intensive else 1.0 / n
        loss = torch.zeros((), dtype=torch.float64, device=pred["energy"].device)
        more: dict[str, float] = {}
        if self.has_e:
            l2 = (pred["energy"].double() - batch["energies"]).square().mean()
            loss = loss + self.pref("e", lr) * norm * l2
            more["rmse_e"] = float(l2.detach().sqrt()) / n
        if self.has_f:
            l2 = (pred["force"] - batch["forces"]).square().mean()
            loss = loss + self.pref("f", lr) * l2.double()
            more["rmse_f"] = float(l2.detach().sqrt())
        if self.has_v:
            if "virials" in batch:
                l2 = (pred["virial"] - batch["virials"]).square().mean()
                loss = loss + self.pref("v", lr) * norm * l2.double()
                more["rmse_v"] = float(l2.detach().sqrt()) / n
            else:
                more["rmse_v"] = float("nan")
        more["rmse"] = float(loss.detach().sqrt())
        return loss, more


def _stacked_predictions(
    drawn: Sequence[tuple[int, dict[str, Any]]], predict: Callable[[dict[str, Any]], dict[str, torch.Tensor]]
) -> list[dict[str, torch.Tensor]]:
    """Predictions for each drawn ``(system, batch)``, computed with one call per system: that
    system's batches stacked along the frames (fewer, larger calls; the same numbers)."""
    out: list[dict[str, torch.Tensor] | None] = [None] * len(drawn)
    by_sys: dict[int, list[int]] = {}
    for pos, (k, _) in enumerate(drawn):
        by_sys.setdefault(k, []).append(pos)
    for poss in by_sys.values():
        bs = [drawn[p][1] for p in poss]
        nfs = [int(b["coords"].shape[0]) for b in bs]
        big = dict(bs[0])
        for key in ("coords", "cells", "nlist", "shifts"):
            big[key] = None if bs[0][key] is None else torch.cat([b[key] for b in bs])
        # rep holds flat slot indices over the batch's frames: shift each batch by the frames before it
        per_frame = bs[0]["nlist"].shape[1] * bs[0]["nlist"].shape[2]
        first = np.cumsum([0, *nfs[:-1]])
        big["rep"] = torch.cat([b["rep"] + int(f) * per_frame for b, f in zip(bs, first)])
        pred = predict(big)
        for p, f, nf in zip(poss, first, nfs):
            out[p] = {k: v[int(f) : int(f) + nf] for k, v in pred.items()}
    return [o for o in out if o is not None]


# -- lcurve -------------------------------------------------------------------------------------
# DeePMD-kit writes lcurve.out with %-formats; mirrored literally for byte compatibility
def lcurve_header(keys: Sequence[str], with_val: bool) -> str:
    """The two header lines of DeePMD-kit's ``lcurve.out``."""
    line = "# " + "step".ljust(5)
    for k in keys:
        line += "   %11s %11s" % (k + "_val", k + "_trn") if with_val else "   %11s" % (k + "_trn")  # noqa: UP031
    line += "   " + "lr".ljust(8) + "\n"
    line += "# If there is no available reference data, rmse_*_{val,trn} will print nan\n"
    return line


def lcurve_row(step: int, keys: Sequence[str], val: dict[str, float] | None, trn: dict[str, float], lr: float) -> str:
    line = "%7d" % step  # noqa: UP031
    for k in keys:
        if val is not None:
            line += "   %11.2e %11.2e" % (val.get(k, float("nan")), trn.get(k, float("nan")))  # noqa: UP031
        else:
            line += "   %11.2e" % trn.get(k, float("nan"))  # noqa: UP031
    return line + "   %8.1e\n" % lr  # noqa: UP031


def _fmt(metrics: dict[str, float], keys: Sequence[str]) -> str:
    return ", ".join(f"{k} = {metrics.get(k, float('nan')):8.2e}" for k in keys)


# -- the trainer --------------------------------------------------------------------------------
class Trainer:
    """Holds data, model, optimizer and sampler state for one run."""

    def __init__(
        self,
        config: dict[str, Any],
        training: Sequence[LabeledSystem] | None = None,
        validation: Sequence[LabeledSystem] | None = None,
        *,
        workdir: str = ".",
        restart: str | None = None,
        init_model: str | None = None,
        skip_neighbor_stat: bool = False,
        device: str | None = "auto",
        log: Log | None = None,
    ) -> None:
        self.log_fn = log or (lambda s: None)
        self.workdir = workdir
        malloc.tune()  # keep freed tensor pages in the process (see dpconv.trainer.malloc)
        self.device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
        self.rank, self.world = init_distributed(self.device)
        self.ckpt: dict[str, Any] | None = None
        if restart:
            self.ckpt = checkpoint.load(restart)
            if config is None:
                config = self.ckpt["config"]
        cfg_in = json.loads(json.dumps(config))
        tr = cfg_in.setdefault("training", {})
        if training is not None:
            tr.setdefault("training_data", {}).setdefault("systems", [])
        if validation is not None:
            tr.setdefault("validation_data", {}).setdefault("systems", [])
        cfg = normalize(cfg_in)
        self.seed = resolve_seed(cfg)
        mcfg = cfg["model"]
        d = mcfg["descriptor"]
        if d["seed"] is None:
            d["seed"] = self.seed
        if mcfg["fitting_net"]["seed"] is None:
            mcfg["fitting_net"]["seed"] = self.seed + 7
        self.cfg = cfg
        self.dtype = DTYPES[mcfg["precision_resolved"]]
        type_map = mcfg["type_map"]
        tcfg = cfg["training"]

        t0 = time.perf_counter()
        train_sys = list(training) if training is not None else expand_systems(tcfg["training_data"]["systems"])
        if not train_sys:
            raise ConfigError("no training systems")
        vcfg = tcfg.get("validation_data")
        if validation is not None:
            val_sys = list(validation)
        elif vcfg is not None:
            val_sys = expand_systems(vcfg["systems"])
        else:
            val_sys = []
        self.train_data, self.train_bs = self._wrap(train_sys, tcfg["training_data"]["batch_size"], type_map, "train")
        self.val_data, self.val_bs = self._wrap(val_sys, (vcfg or {}).get("batch_size", "auto"), type_map, "val")
        self.log(
            f"training data: {len(self.train_data)} system(s), "
            f"{sum(s.nframes for s in self.train_data)} frames; batch sizes {self.train_bs}"
        )
        if self.val_data:
            self.log(f"validation data: {len(self.val_data)} system(s), {sum(s.nframes for s in self.val_data)} frames")

        # sel / neighbour statistics
        rcut = float(d["rcut"])
        self.min_nbor_dist = 0.0
        init_blob = checkpoint.load(init_model) if init_model and self.ckpt is None else None
        if self.ckpt is not None:
            d["sel"] = self.ckpt["config"]["model"]["descriptor"]["sel"]
        elif init_blob is not None and isinstance(d["sel"], str):
            d["sel"] = init_blob["config"]["model"]["descriptor"]["sel"]  # sel: auto takes the model's
        elif isinstance(d["sel"], str) or not skip_neighbor_stat:
            if isinstance(d["sel"], str) and skip_neighbor_stat:
                self.log("sel is 'auto': the neighbour statistics run despite --skip-neighbor-stat")
            d["sel"], self.min_nbor_dist = resolve_sel(self.train_data, rcut, d["sel"], len(type_map), self.log)
        sel = list(d["sel"])
        for s in (*self.train_data, *self.val_data):
            s.prepare(rcut, sel, self.dtype, self.device)
        self.log(f"data prepared (neighbour lists) in {time.perf_counter() - t0:.2f} s")

        self.model = EnergyModel.from_config(mcfg).to(self.device)
        # the embedding nets interpolated at Chebyshev nodes each step (equal to ~1e-12, docs/trainer.md);
        # DPCONV_NET_INTERPOLATION=0 runs them on every neighbour instead
        desc = self.model.descriptor
        desc.interpolate_nets = os.environ.get("DPCONV_NET_INTERPOLATION", "1") != "0"
        interp = desc.interpolate_nets and self.dtype == torch.float64 and not desc.type_one_side
        nparam = sum(p.numel() for p in self.model.parameters())
        self.log(
            f"model: se_e2_a, sel {sel}, rcut {rcut}, {nparam / 1e6:.3f} M parameters, {self.dtype}, "
            f"device {self.device}"
            + (f", {self.world} ranks" if self.world > 1 else "")
            + (", embedding nets interpolated at Chebyshev nodes" if interp else "")
        )

        lr_cfg = cfg["learning_rate"]
        start_lr = float(lr_cfg["start_lr"])
        if self.world > 1:
            scale = lr_cfg["scale_by_worker"]
            start_lr *= {"linear": self.world, "sqrt": math.sqrt(self.world)}.get(scale, 1.0)
        self.numb_steps = int(tcfg["numb_steps"])
        self.lr = ExpLR(start_lr, float(lr_cfg["stop_lr"]), int(lr_cfg["decay_steps"]), self.numb_steps)
        self.loss = EnerLoss(cfg["loss"], start_lr)
        ocfg = cfg["optimizer"]
        adam = {"lr": start_lr, "betas": (ocfg["adam_beta1"], ocfg["adam_beta2"]), "weight_decay": ocfg["weight_decay"]}
        try:  # one fused kernel per step: 3x cheaper than the per-tensor loop on CPU (same update)
            self.optimizer = torch.optim.Adam(self.model.parameters(), fused=True, **adam)
        except (RuntimeError, TypeError):
            self.optimizer = torch.optim.Adam(self.model.parameters(), **adam)
        tdc = tcfg["training_data"]
        self.sampler = Sampler(
            self.train_data,
            self.train_bs,
            self.seed,
            auto_prob=tdc["auto_prob"],
            sys_probs=tdc["sys_probs"],
            rank=self.rank,
            world=self.world,
        )
        self.val_sampler = None
        if self.val_data:
            self.val_sampler = Sampler(
                self.val_data,
                self.val_bs,
                self.seed,
                auto_prob=vcfg["auto_prob"] if vcfg else "prob_sys_size",
                sys_probs=vcfg["sys_probs"] if vcfg else None,
                stream=1,
            )
        self.start_step = 0
        if self.ckpt is not None:
            self.model.load_state_dict(self.ckpt["model"])
            self.optimizer.load_state_dict(self.ckpt["optimizer"])
            self.start_step = int(self.ckpt["step"])
            smp = self.ckpt["sampler"]
            self.sampler.load_state(smp["train"])
            if self.val_sampler is not None and smp.get("val"):
                self.val_sampler.load_state(smp["val"])
            self.min_nbor_dist = float(self.ckpt["extra"].get("min_nbor_dist", 0.0))
            self.log(f"restarting from {restart} at step {self.start_step}")
        elif init_blob is not None:
            try:
                self.model.load_state_dict(init_blob["model"])
            except RuntimeError as exc:
                raise ConfigError(f"--init-model {init_model}: the model does not match this input ({exc})") from None
            self.log(f"initialised the weights and statistics from {init_model}")
        else:
            self._statistics(int(mcfg["data_stat_nbatch"]), mcfg["fitting_net"]["rcond"])

    def log(self, msg: str) -> None:
        if self.rank == 0:
            self.log_fn(msg)

    def _wrap(
        self, systems: Sequence[LabeledSystem], spec: Any, type_map: list[str], what: str
    ) -> tuple[list[SystemData], list[int]]:
        out, sizes = [], []
        for i, s in enumerate(systems):
            if not getattr(s, "labeled", False):
                raise ConfigError(f"{what} system {i} ({s!r}) has no labels")
            bs = batch_size_for(spec, s.get_natoms(), i)
            if bs is None:
                continue
            out.append(SystemData(s, type_map, name=f"{what}[{i}] {s!r}"))
            sizes.append(bs)
        return out, sizes

    def _statistics(self, nbatch: int, rcond: float | None) -> None:
        """davg/dstd and the energy bias from up to ``nbatch`` shuffled batches per system."""
        batches = []
        counts, energies = [], []
        for k, s in enumerate(self.train_data):
            perm = np.random.default_rng([self.seed, 99, k]).permutation(s.nframes)
            bs = self.train_bs[k]
            nb = min(nbatch, math.ceil(s.nframes / bs))
            idx = perm[: nb * bs]
            for a in range(0, len(idx), bs):
                b = s.batch(idx[a : a + bs])
                batches.append(b)
                counts.append(np.tile(s.counts, (len(idx[a : a + bs]), 1)))
                energies.append(b["energies"].cpu().numpy())
        compute_env_stats(self.model, batches)
        rmse = compute_energy_bias(self.model, np.concatenate(counts), np.concatenate(energies), rcond)
        self.log(
            f"RMSE of energy per atom after linear regression is: {rmse:.5g} eV "
            f"(out_bias {self.model.fitting.out_bias.tolist()})"  # pyright: ignore[reportCallIssue]
        )

    def _predict(self, batch: dict[str, Any], create_graph: bool) -> dict[str, torch.Tensor]:
        return self.model(
            batch["coords"],
            batch["cells"],
            batch["nlist"],
            batch["shifts"],
            batch["atype"],
            batch["counts"],
            create_graph=create_graph,
            rep=batch.get("rep"),
        )

    def _predict_inference(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """As :meth:`_predict`, with hand-written first derivatives (no autograd graph)."""
        m = self.model
        with torch.no_grad():
            rij = pair_vectors(batch["coords"], batch["cells"], batch["nlist"], batch["shifts"])
        return m.from_pairs_inference(rij, batch["nlist"], batch["atype"], batch["counts"], batch.get("rep"))

    def validate(self, lr: float) -> dict[str, float] | None:
        if self.val_sampler is None:
            return None
        nb = int((self.cfg["training"].get("validation_data") or {}).get("numb_btch", 1))
        drawn = [self.val_sampler.next() for _ in range(max(nb, 1))]
        preds = _stacked_predictions(drawn, self._predict_inference)
        sums: dict[str, float] = {}
        wsum = 0.0
        for (_, b), pred in zip(drawn, preds):
            _, more = self.loss(pred, b, lr)
            w = float(b["natoms"])
            for k, v in more.items():
                sums[k] = sums.get(k, 0.0) + v * w
            wsum += w
        return {k: v / wsum for k, v in sums.items()}

    def save(self, step: int) -> str | None:
        if self.rank != 0:
            return None
        prefix = self.cfg["training"]["save_ckpt"]
        path = os.path.join(self.workdir, f"{prefix}-{step}.pt")
        state = {"train": self.sampler.state(), "val": self.val_sampler.state() if self.val_sampler else None}
        checkpoint.save(
            path,
            model=self.model,
            optimizer=self.optimizer,
            config=self.cfg,
            step=step,
            sampler=state,
            extra={"min_nbor_dist": self.min_nbor_dist},
        )
        name = checkpoint.write_latest(self.workdir, prefix, step, int(self.cfg["training"]["max_ckpt_keep"]))
        self.log(f"saved checkpoint {name}")
        return name

    def run(self) -> EnergyModel:
        tcfg = self.cfg["training"]
        disp_freq, save_freq = int(tcfg["disp_freq"]), int(tcfg["save_freq"])
        keys = self.loss.keys
        with_val = self.val_sampler is not None
        lc = None
        if self.rank == 0:
            os.makedirs(self.workdir, exist_ok=True)
            with open(os.path.join(self.workdir, "out.json"), "w") as fh:
                json.dump(self.cfg, fh, indent=2)
            lpath = os.path.join(self.workdir, tcfg["disp_file"])
            if self.ckpt is not None and os.path.exists(lpath):
                lc = open(lpath, "a")  # noqa: SIM115 - kept open for the whole run
            else:
                lc = open(lpath, "w")  # noqa: SIM115
                lc.write(lcurve_header(keys, with_val))
        params = list(self.model.parameters())
        self.model.train()
        t_last = time.perf_counter()
        intervals: list[tuple[int, float]] = []
        last_disp = self.start_step
        try:
            for step in range(self.start_step, self.numb_steps):
                lr = self.lr(step)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                _, batch = self.sampler.next()
                pred = self._predict(batch, create_graph=True)
                loss, more = self.loss(pred, batch, lr)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                average_gradients(params, self.world)
                self.optimizer.step()
                shown = step + 1
                if shown % disp_freq == 0 or shown == 1:
                    val = self.validate(lr)
                    now = time.perf_counter()
                    dt = now - t_last
                    t_last = now
                    intervals.append((shown - last_disp, dt))
                    last_disp = shown
                    if self.rank == 0:
                        assert lc is not None
                        lc.write(lcurve_row(shown, keys, val, more, lr))
                        lc.flush()
                        self.log(f"batch {shown:7d}: trn: {_fmt(more, keys)}, lr = {lr:8.2e}")
                        if val is not None:
                            self.log(f"batch {shown:7d}: val: {_fmt(val, keys)}")
                        self.log(f"batch {shown:7d}: total wall time = {dt:.2f} s")
                if shown % save_freq == 0 or shown == self.numb_steps:
                    self.save(shown)
        finally:
            if lc is not None:
                lc.close()
        if intervals:
            excl = intervals[2:] if len(intervals) > 2 else intervals
            nsteps = sum(n for n, _ in excl)
            if nsteps:
                self.log(
                    f"average training time: {sum(t for _, t in excl) / nsteps:.4f} s/batch "
                    f"({sum(n for n, _ in intervals) - nsteps} batches excluded)"
                )
        self.model.eval()
        return self.model


def train(
    config: dict[str, Any],
    training: Sequence[LabeledSystem] | None = None,
    validation: Sequence[LabeledSystem] | None = None,
    *,
    workdir: str = ".",
    restart: str | None = None,
    init_model: str | None = None,
    skip_neighbor_stat: bool = False,
    device: str | None = "auto",
    log: Log | None = None,
) -> EnergyModel:
    """Train an se_e2_a energy model from a DeePMD-kit ``input.json`` dict.

    ``training``/``validation`` (LabeledSystems) replace the config's
    ``training_data``/``validation_data`` systems. Writes ``lcurve.out``,
    checkpoints and ``out.json`` into ``workdir``; returns the trained model.
    """
    return Trainer(
        config,
        training,
        validation,
        workdir=workdir,
        restart=restart,
        init_model=init_model,
        skip_neighbor_stat=skip_neighbor_stat,
        device=device,
        log=log,
    ).run()
