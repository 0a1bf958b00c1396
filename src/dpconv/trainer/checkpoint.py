"""Checkpoints: ``torch.save`` of plain dicts (tensors, numbers, strings, the JSON config).

They load with ``torch.load(weights_only=True)``: no pickled code paths.
Files as DeePMD-kit names them: ``model.ckpt-<step>.pt``, a ``model.ckpt.pt``
symlink to the latest one and a ``checkpoint`` text file naming it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from dpconv.errors import ConfigError

FORMAT = "dpconv-se_e2_a-ckpt-1"


def save(
    path: str,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    config: dict[str, Any],
    step: int,
    sampler: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write one checkpoint atomically."""
    blob = {
        "format": FORMAT,
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "config": json.dumps(config),
        "step": int(step),
        "sampler": json.dumps(sampler or {}),
        "extra": json.dumps(extra or {}),
    }
    tmp = path + ".tmp"
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load(path: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (``weights_only=True``); ``config``/``sampler``/``extra`` parsed back from JSON."""
    if os.path.isdir(path):
        path = latest(path)
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"checkpoint {path!r} not found") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ConfigError(f"{path}: not a dpconv checkpoint")
    blob["config"] = json.loads(blob["config"])
    blob["sampler"] = json.loads(blob["sampler"])
    blob["extra"] = json.loads(blob["extra"])
    return blob


def latest(folder: str = ".") -> str:
    """The checkpoint named in ``folder/checkpoint``."""
    marker = os.path.join(folder, "checkpoint")
    if not os.path.isfile(marker):
        raise ConfigError(f"no 'checkpoint' file in {os.path.abspath(folder)}: train first or pass a checkpoint")
    with open(marker) as fh:
        name = fh.read().strip()
    return os.path.join(folder, name)


def write_latest(folder: str, prefix: str, step: int, keep: int) -> str:
    """After saving ``<prefix>-<step>.pt``: update the symlink and marker, drop old checkpoints."""
    name = f"{prefix}-{step}.pt"
    link = os.path.join(folder, f"{prefix}.pt")
    try:
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(name, link)
    except OSError:
        pass
    with open(os.path.join(folder, "checkpoint"), "w") as fh:
        fh.write(name + "\n")
    if keep > 0:
        import glob
        import re

        pat = re.compile(re.escape(os.path.basename(prefix)) + r"-(\d+)\.pt$")
        found = []
        for p in glob.glob(os.path.join(folder, f"{prefix}-*.pt")):
            m = pat.search(os.path.basename(p))
            if m:
                found.append((int(m.group(1)), p))
        for _, p in sorted(found)[:-keep]:
            os.remove(p)
    return name
