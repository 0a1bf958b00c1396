"""The frozen model's ``forward_lower`` (engines with their own ghost atoms) agrees with ``forward``."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import torch

from dpconv.trainer.export import FrozenModel

from .conftest import lj_system, tiny_model


def test_forward_lower_matches_forward():
    fm = FrozenModel(tiny_model())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sm = torch.jit.script(fm)
    s = lj_system(1, seed=11)
    x = torch.tensor(s.data["coords"][0])
    cell = torch.tensor(s.data["cells"][0])
    types = torch.tensor(s.data["atom_types"])
    n = len(types)
    ref = sm(x[None], types, cell.reshape(1, 9))
    shifts = [np.array(v) for v in itertools.product((-1, 0, 1), repeat=3) if v != (0, 0, 0)]
    ext = [x] + [x + torch.tensor(sv, dtype=torch.float64) @ cell for sv in shifts]
    ext_x = torch.cat(ext)[None]
    ext_t = types.repeat(len(ext))[None]
    mapping = torch.arange(n).repeat(len(ext))
    for nlist in (None, torch.arange(ext_x.shape[1]).repeat(n, 1)[None]):
        out = sm.forward_lower(ext_x, ext_t, n, nlist, True)
        torch.testing.assert_close(out["energy"], ref["energy"], atol=1e-10, rtol=0)
        torch.testing.assert_close(out["atom_energy"], ref["atom_energy"], atol=1e-10, rtol=0)
        f = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, mapping, out["extended_force"][0])
        torch.testing.assert_close(f[None], ref["force"], atol=1e-10, rtol=0)
        torch.testing.assert_close(out["virial"], ref["virial"], atol=1e-10, rtol=0)
        torch.testing.assert_close(out["extended_virial"].sum(1), ref["virial"], atol=1e-10, rtol=0)
