"""Test helpers for dpconv and for authors of format plugins.

``assert_systems_equal`` compares two data dicts the way the fixture corpus
defines equality (same frames, names, types; arrays to ``atol``);
``ReaderConformance`` is a pytest mixin every reader test can reuse.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

ARRAY_KEYS = ("cells", "coords", "energies", "forces", "virials")

#: Inputs every text reader must refuse with a ParseError: (stem, bytes) — an empty file, binary
#: garbage, and another code's file (a VASP POSCAR).
BAD_INPUTS: tuple[tuple[str, bytes], ...] = (
    ("empty", b""),
    ("garbage", bytes(range(256)) * 40),
    ("poscar", b"Si\n1.0\n5.43 0 0\n0 5.43 0\n0 0 5.43\nSi\n2\nDirect\n0 0 0\n0.25 0.25 0.25\n"),
)


def fixtures_dir() -> str:
    """The shared fixture corpus: ``$DPCONV_FIXTURES``, else ``shared/fixtures`` beside the
    checkout (looked for above this package and above the working directory), else the
    workplace's ``/work/shared/fixtures``."""
    env = os.environ.get("DPCONV_FIXTURES")
    if env:
        return env
    starts = [os.path.dirname(os.path.abspath(__file__)), os.getcwd()]
    for start in starts:
        d = start
        for _ in range(7):
            cand = os.path.join(d, "shared", "fixtures")
            if os.path.isdir(cand):
                return os.path.abspath(cand)
            d = os.path.dirname(d)
    return "/work/shared/fixtures"


def load_expected(npz_path: str) -> dict[str, Any]:
    """An ``expected.npz`` of the fixture corpus as a data dict (no pickle)."""
    with np.load(npz_path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    out["atom_names"] = [str(n) for n in out["atom_names"]]
    out["nopbc"] = bool(out.get("nopbc", False))
    for k in ARRAY_KEYS:
        if k in out and out[k].size == 0 and k == "virials":
            del out[k]
    return out


def assert_systems_equal(
    actual: Mapping[str, Any],
    expected: Mapping[str, Any],
    atol: float = 1e-6,
    check_nopbc: bool = True,
    labels: bool = True,
) -> None:
    """Same names, numbers, types, nopbc, frame count, and arrays within ``atol``."""
    assert list(actual["atom_names"]) == list(expected["atom_names"]), (actual["atom_names"], expected["atom_names"])
    np.testing.assert_array_equal(np.asarray(actual["atom_numbs"]), np.asarray(expected["atom_numbs"]))
    np.testing.assert_array_equal(np.asarray(actual["atom_types"]), np.asarray(expected["atom_types"]))
    if check_nopbc:
        assert bool(actual.get("nopbc", False)) == bool(expected.get("nopbc", False))
    keys = ARRAY_KEYS if labels else ("cells", "coords")
    for k in keys:
        has_a = k in actual and np.asarray(actual[k]).size > 0
        has_e = k in expected and np.asarray(expected[k]).size > 0
        assert has_a == has_e, f"{k}: present in actual={has_a}, expected={has_e}"
        if has_e:
            a, e = np.asarray(actual[k], dtype=np.float64), np.asarray(expected[k], dtype=np.float64)
            assert a.shape == e.shape, f"{k}: shape {a.shape} != {e.shape}"
            np.testing.assert_allclose(a, e, atol=atol, rtol=0, err_msg=k)
