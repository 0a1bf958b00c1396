"""Model deviation of an ensemble, in DeePMD-kit's definitions and ``model_devi.out`` layout.

Force deviation of atom i: ``sqrt(<|F_i - <F_i>|²>)`` over the models; virial deviation of each of
the 9 components: ``std / N``. A row holds the step, max/min/avg of the virial deviation (avg = root
mean square of the 9) and max/min/avg of the force deviation (avg = mean over atoms), the columns
of DeePMD-kit's ``pair_style deepmd ... out_file`` (``%12d`` then ``%19.6e``).
"""

from __future__ import annotations

import numpy as np

HEADER = (
    "#"
    + f"{'step':>11}"
    + "".join(f"{n:>19}" for n in ("max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f", "min_devi_f", "avg_devi_f"))
)


def model_devi(forces: np.ndarray, virials: np.ndarray) -> np.ndarray:
    """The six deviations from ``forces`` (nmodels, N, 3) and ``virials`` (nmodels, 9) in eV."""
    f = np.asarray(forces, dtype=np.float64)
    v = np.asarray(virials, dtype=np.float64).reshape(f.shape[0], 9)
    n = f.shape[1]
    df = np.sqrt(np.mean(np.sum((f - f.mean(axis=0)) ** 2, axis=-1), axis=0))
    dv = np.std(v, axis=0) / n
    return np.array([dv.max(), dv.min(), np.sqrt(np.mean(dv**2)), df.max(), df.min(), df.mean()])


def format_row(step: int, devi: np.ndarray) -> str:
    return f"{step:12d}" + "".join(f"{x:19.6e}" for x in devi)


def read_model_devi(path: str) -> np.ndarray:
    """Rows (nsteps, 7) of a ``model_devi.out`` file (step first)."""
    return np.loadtxt(path, comments="#", ndmin=2)
