"""``dpconv plot``: the learning curve and parity plots as PNG (matplotlib is optional)."""

from __future__ import annotations

import os

import numpy as np

from dpconv.errors import DpconvError


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DpconvError("plotting needs matplotlib: pip install 'dpconv[plot]'") from None
    return plt


def read_lcurve(path: str) -> tuple[list[str], np.ndarray]:
    """Column names (from the header) and the rows of an ``lcurve.out``."""
    with open(path) as fh:
        head = fh.readline()
    if not head.startswith("#"):
        raise DpconvError(f"{path}: not an lcurve.out (no '#' header line)")
    names = head[1:].split()
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.size and data.shape[1] != len(names):
        raise DpconvError(f"{path}: {data.shape[1]} columns but {len(names)} header names")
    return names, data


def plot_lcurve(path: str, output: str | None = None) -> str:
    """Loss terms against step (log scale); one panel per quantity, val and trn together."""
    plt = _plt()
    names, data = read_lcurve(path)
    keys = sorted({n.rsplit("_", 1)[0] for n in names if n.endswith(("_val", "_trn"))})
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4 * (len(keys) + 1), 3.5))
    step = data[:, names.index("step")]
    for ax, k in zip(axes, keys):
        for suffix in ("trn", "val"):
            name = f"{k}_{suffix}"
            if name in names:
                ax.loglog(step, data[:, names.index(name)], label=suffix)
        ax.set_xlabel("step")
        ax.set_title(k)
        ax.legend()
    axes[-1].semilogy(step, data[:, names.index("lr")])
    axes[-1].set_title("lr")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    output = output or os.path.splitext(path)[0] + ".png"
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output


def plot_parity(path: str, output: str | None = None) -> str:
    """Predicted vs reference from a ``dpconv test -d`` file (.e.out, .f.out, .v.out …)."""
    plt = _plt()
    data = np.loadtxt(path, ndmin=2)
    half = data.shape[1] // 2
    ref, pred = data[:, :half].ravel(), data[:, half:].ravel()
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot(ref, pred, ".", ms=2)
    lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    rmse = float(np.sqrt(np.mean((pred - ref) ** 2)))
    ax.set_xlabel("reference")
    ax.set_ylabel("predicted")
    ax.set_title(f"{os.path.basename(path)}  RMSE {rmse:.3g}")
    fig.tight_layout()
    output = output or path + ".png"
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output
