"""The DeePMD-kit ``input.json`` subset dpconv trains, with DeePMD-kit 3.2's defaults.

:func:`normalize` returns a new dict with every default filled in (like
DeePMD-kit's ``out.json``) and raises one :class:`~dpconv.errors.ConfigError`
naming every key it does not support. Keys starting with ``_`` (``_comment``)
are ignored everywhere. Keys that DeePMD-kit accepts and that only change
logging or files we do not write (``disp_training``, ``tensorboard`` …) are
accepted and ignored.
"""

from __future__ import annotations

import copy
from typing import Any

from dpconv.errors import ConfigError

REQUIRED = object()
ANY = object()  # a sub-dict we validate elsewhere (data systems)

#: key → default (a nested dict is a section). ``REQUIRED`` keys must be given.
SCHEMA: dict[str, Any] = {
    "model": {
        "type_map": REQUIRED,
        "data_stat_nbatch": 10,
        "data_stat_protect": 1e-2,
        "descriptor": {
            "type": "se_e2_a",
            "sel": "auto",
            "rcut": 6.0,
            "rcut_smth": 0.5,
            "neuron": [10, 20, 40],
            "axis_neuron": 4,
            "resnet_dt": False,
            "type_one_side": False,
            "precision": "default",
            "activation_function": "tanh",
            "trainable": True,
            "seed": None,
            "exclude_types": [],
            "env_protection": 0.0,
            "set_davg_zero": False,
        },
        "fitting_net": {
            "type": "ener",
            "neuron": [120, 120, 120],
            "resnet_dt": True,
            "precision": "default",
            "activation_function": "tanh",
            "trainable": True,
            "seed": None,
            "rcond": None,
            "numb_fparam": 0,
            "numb_aparam": 0,
            "atom_ener": [],
        },
    },
    "learning_rate": {
        "type": "exp",
        "start_lr": 1e-3,
        "stop_lr": 1e-8,
        "decay_steps": 5000,
        "scale_by_worker": "linear",
        "warmup_steps": 0,
    },
    "loss": {
        "type": "ener",
        "start_pref_e": 0.02,
        "limit_pref_e": 1.0,
        "start_pref_f": 1000.0,
        "limit_pref_f": 1.0,
        "start_pref_v": 0.0,
        "limit_pref_v": 0.0,
        "start_pref_ae": 0.0,
        "limit_pref_ae": 0.0,
        "start_pref_pf": 0.0,
        "limit_pref_pf": 0.0,
        "relative_f": None,
        "enable_atom_ener_coeff": False,
        "intensive_ener_virial": False,
    },
    "optimizer": {"type": "Adam", "adam_beta1": 0.9, "adam_beta2": 0.999, "weight_decay": 0.0},
    "training": {
        "training_data": {
            "systems": REQUIRED,
            "batch_size": "auto",
            "auto_prob": "prob_sys_size",
            "sys_probs": None,
            "set_prefix": "set",
        },
        "validation_data": {
            "systems": REQUIRED,
            "batch_size": "auto",
            "auto_prob": "prob_sys_size",
            "sys_probs": None,
            "numb_btch": 1,
            "set_prefix": "set",
        },
        "numb_steps": REQUIRED,
        "seed": None,
        "disp_file": "lcurve.out",
        "disp_freq": 1000,
        "save_freq": 1000,
        "save_ckpt": "model.ckpt",
        "max_ckpt_keep": 5,
        "disp_training": True,
        "time_training": True,
        "disp_avg": False,
        "profiling": False,
        "profiling_file": "timeline.json",
        "tensorboard": False,
        "tensorboard_log_dir": "log",
        "tensorboard_freq": 1,
        "gradient_max_norm": 0.0,
        "numb_test": 1,
        "mixed_precision": None,
        "change_bias_after_training": False,
    },
}

#: keys accepted only with these values (anything else is a feature we lack).
ONLY = {
    ("model", "descriptor", "type"): ("se_e2_a", "se_a"),
    ("model", "descriptor", "activation_function"): ("tanh",),
    ("model", "descriptor", "exclude_types"): ([],),
    ("model", "descriptor", "trainable"): (True,),
    ("model", "descriptor", "set_davg_zero"): (False,),
    ("model", "fitting_net", "type"): ("ener",),
    ("model", "fitting_net", "activation_function"): ("tanh",),
    ("model", "fitting_net", "trainable"): (True,),
    ("model", "fitting_net", "numb_fparam"): (0,),
    ("model", "fitting_net", "numb_aparam"): (0,),
    ("model", "fitting_net", "atom_ener"): ([],),
    ("learning_rate", "type"): ("exp",),
    ("learning_rate", "warmup_steps"): (0,),
    ("loss", "type"): ("ener",),
    ("loss", "start_pref_ae"): (0, 0.0),
    ("loss", "limit_pref_ae"): (0, 0.0),
    ("loss", "start_pref_pf"): (0, 0.0),
    ("loss", "limit_pref_pf"): (0, 0.0),
    ("loss", "relative_f"): (None,),
    ("loss", "enable_atom_ener_coeff"): (False,),
    ("optimizer", "type"): ("Adam",),
    ("training", "profiling"): (False,),
    ("training", "tensorboard"): (False,),
    ("training", "mixed_precision"): (None,),
    ("training", "change_bias_after_training"): (False,),
    ("training", "disp_avg"): (False,),
}

PRECISIONS = {
    "default": "float64",
    "float64": "float64",
    "double": "float64",
    "float32": "float32",
    "single": "float32",
}


def _walk(
    schema: dict[str, Any], given: dict[str, Any], path: tuple[str, ...], unknown: list[str], missing: list[str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in given:
        if key.startswith("_"):
            continue
        if key not in schema:
            unknown.append(".".join((*path, key)))
    for key, default in schema.items():
        if isinstance(default, dict):
            sub = given.get(key)
            if sub is None:
                if key == "validation_data":
                    continue
                sub = {}
            if not isinstance(sub, dict):
                raise ConfigError(f"{'.'.join((*path, key))} must be an object, got {type(sub).__name__}")
            out[key] = _walk(default, sub, (*path, key), unknown, missing)
        elif key in given:
            out[key] = copy.deepcopy(given[key])
        elif default is REQUIRED:
            missing.append(".".join((*path, key)))
        else:
            out[key] = copy.deepcopy(default)
    return out


def normalize(config: dict[str, Any]) -> dict[str, Any]:
    """Validate ``config`` (an input.json dict) and return it with every default filled in."""
    if not isinstance(config, dict):
        raise ConfigError("the input must be a JSON object")
    cfg = dict(config)
    # DeePMD-kit v1 placed the data sections here; v2+ under training
    unknown: list[str] = []
    missing: list[str] = []
    out = _walk(SCHEMA, cfg, (), unknown, missing)
    if unknown:
        raise ConfigError(
            "unsupported key(s) in input: "
            + ", ".join(sorted(unknown))
            + " (dpconv trains se_e2_a energy models; see docs/trainer.md for the supported subset)"
        )
    if missing:
        raise ConfigError("missing required key(s): " + ", ".join(missing))
    bad = []
    for path, allowed in ONLY.items():
        node: Any = out
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        if node is not None and node not in allowed:
            bad.append(f"{'.'.join(path)}={node!r} (supported: {', '.join(repr(a) for a in allowed)})")
    if bad:
        raise ConfigError("unsupported value(s): " + "; ".join(bad))
    _check_values(out)
    return out


def _check_values(cfg: dict[str, Any]) -> None:
    m = cfg["model"]
    d, f = m["descriptor"], m["fitting_net"]
    tm = m["type_map"]
    if not isinstance(tm, list) or not tm or not all(isinstance(t, str) for t in tm):
        raise ConfigError("model.type_map must be a non-empty list of element names")
    sel = d["sel"]
    if isinstance(sel, str):
        if not (sel == "auto" or sel.startswith("auto:")):
            raise ConfigError(f"model.descriptor.sel must be a list or 'auto'/'auto:RATIO', got {sel!r}")
        if sel.startswith("auto:"):
            try:
                float(sel[5:])
            except ValueError:
                raise ConfigError(f"model.descriptor.sel: bad ratio in {sel!r}") from None
    elif isinstance(sel, int):
        d["sel"] = [sel] * len(tm)
    elif not (isinstance(sel, list) and len(sel) == len(tm) and all(isinstance(s, int) and s >= 0 for s in sel)):
        raise ConfigError(f"model.descriptor.sel must have one non-negative integer per type ({len(tm)}), got {sel!r}")
    if not 0 <= d["rcut_smth"] < d["rcut"]:
        raise ConfigError(f"need 0 <= rcut_smth < rcut, got rcut_smth={d['rcut_smth']}, rcut={d['rcut']}")
    if d["axis_neuron"] > d["neuron"][-1]:
        raise ConfigError("model.descriptor.axis_neuron must not exceed the last embedding width")
    for sec, name in ((d, "descriptor"), (f, "fitting_net")):
        if sec["precision"] not in PRECISIONS:
            raise ConfigError(f"model.{name}.precision: unsupported {sec['precision']!r}")
    pd, pf = PRECISIONS[d["precision"]], PRECISIONS[f["precision"]]
    if pd != pf:
        raise ConfigError("descriptor and fitting_net precision must be the same in dpconv")
    m["precision_resolved"] = pd
    t = cfg["training"]
    if not isinstance(t["numb_steps"], int) or t["numb_steps"] < 0:
        raise ConfigError("training.numb_steps must be a non-negative integer")
    for k in ("disp_freq", "save_freq"):
        if not isinstance(t[k], int) or t[k] < 1:
            raise ConfigError(f"training.{k} must be a positive integer")
    lr = cfg["learning_rate"]
    if lr["start_lr"] <= 0 or lr["stop_lr"] <= 0:
        raise ConfigError("learning_rate.start_lr and stop_lr must be positive")


def resolve_seed(cfg: dict[str, Any]) -> int:
    """The training seed (DeePMD-kit draws one when absent; we draw and record it)."""
    seed = cfg["training"]["seed"]
    if seed is None:
        import random

        seed = random.SystemRandom().randrange(2**31)
        cfg["training"]["seed"] = seed
    return int(seed)
