"""LAMMPS simulation boxes: bounds and tilts <-> cell matrices (rows are lattice vectors).

LAMMPS describes a restricted triclinic box by ``xlo xhi ylo yhi zlo zhi`` and the
tilt factors ``xy xz yz``; the lattice vectors are

    a = (xhi - xlo, 0, 0),  b = (xy, yhi - ylo, 0),  c = (xz, yz, zhi - zlo)

and the box origin is ``(xlo, ylo, zlo)``. Dump files print *bounding-box* values
instead (``xlo_bound = xlo + min(0, xy, xz, xy + xz)`` and so on, see the LAMMPS
``dump`` and "Howto triclinic" pages); :func:`dump_bounds_to_cell` removes the
tilt contributions before building the cell.
"""

from __future__ import annotations

import numpy as np


def lohi_to_cell(lohi: np.ndarray, tilt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(origin, cell)`` from ``lohi`` (3x2: lo, hi per axis) and ``tilt`` (xy, xz, yz)."""
    xy, xz, yz = (float(t) for t in tilt)
    lens = lohi[:, 1] - lohi[:, 0]
    cell = np.array([[lens[0], 0.0, 0.0], [xy, lens[1], 0.0], [xz, yz, lens[2]]])
    return lohi[:, 0].astype(np.float64), cell


def dump_bounds_to_cell(bounds: np.ndarray, tilt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(origin, cell)`` from a dump's ``ITEM: BOX BOUNDS`` values (bounding box + tilts)."""
    xy, xz, yz = (float(t) for t in tilt)
    lohi = np.array(bounds, dtype=np.float64).copy()
    lohi[0, 0] -= min(0.0, xy, xz, xy + xz)
    lohi[0, 1] -= max(0.0, xy, xz, xy + xz)
    lohi[1, 0] -= min(0.0, yz)
    lohi[1, 1] -= max(0.0, yz)
    return lohi_to_cell(lohi, tilt)


def cell_to_dump_bounds(cell: np.ndarray, origin: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`dump_bounds_to_cell` for a lower-triangular ``cell``: (bounds 3x2, tilt)."""
    o = np.zeros(3) if origin is None else np.asarray(origin, dtype=np.float64)
    xy, xz, yz = cell[1, 0], cell[2, 0], cell[2, 1]
    bounds = np.empty((3, 2))
    bounds[:, 0] = o
    bounds[:, 1] = o + np.diag(cell)
    bounds[0, 0] += min(0.0, xy, xz, xy + xz)
    bounds[0, 1] += max(0.0, xy, xz, xy + xz)
    bounds[1, 0] += min(0.0, yz)
    bounds[1, 1] += max(0.0, yz)
    return bounds, np.array([xy, xz, yz])


def is_lower_triangular(cell: np.ndarray, rtol: float = 1e-12) -> bool:
    """Whether ``cell`` has a along x, b in the xy plane, and a positive diagonal."""
    scale = max(float(np.abs(cell).max()), 1e-300)
    upper = np.abs(np.array([cell[0, 1], cell[0, 2], cell[1, 2]]))
    return bool((upper <= rtol * scale).all() and (np.diag(cell) > 0).all())


def lower_triangular_rotation(cell: np.ndarray) -> np.ndarray:
    """An orthogonal ``q`` such that ``cell @ q`` is lower triangular with a positive diagonal.

    For a left-handed cell no rotation can do this; ``q`` is then improper (it
    includes a reflection of the z axis), which LAMMPS needs anyway.
    """
    q, r = np.linalg.qr(np.asarray(cell, dtype=np.float64).T)
    sign = np.sign(np.diag(r))
    sign[sign == 0] = 1.0
    return q * sign


def to_lower_triangular(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(new_cell, q)`` with ``new_cell = cell @ q`` exactly lower triangular (tiny
    upper elements set to zero); vectors (positions, forces) rotate as ``v @ q``."""
    q = lower_triangular_rotation(cell)
    new = np.asarray(cell, dtype=np.float64) @ q
    new[0, 1] = new[0, 2] = new[1, 2] = 0.0
    return new, q
