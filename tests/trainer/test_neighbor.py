"""Neighbour lists against brute force: small triclinic cells (shorter than rcut) and no PBC."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from dpconv.trainer.nn.neighbor import build_neighbors, neighbor_stat, pair_vectors


def brute(x, cell, types, rcut):
    """All (j, distance) with 0 < r ≤ rcut per atom, by explicit images up to ±4 cells."""
    n = len(x)
    rng = range(-4, 5) if cell is not None else [0]
    out = [[] for _ in range(n)]
    for i in range(n):
        for j in range(n):
            for s in itertools.product(rng, rng, rng) if cell is not None else [(0, 0, 0)]:
                d = x[j] - x[i] + (np.array(s) @ cell if cell is not None else 0)
                r = np.linalg.norm(d)
                if 1e-12 < r <= rcut:
                    out[i].append((int(types[j]), round(r, 9)))
    return [sorted(o) for o in out]


@pytest.mark.parametrize(
    "cell",
    [
        np.array([[2.5, 0, 0], [0.9, 2.2, 0], [-0.7, 0.4, 2.6]]),  # triclinic, every side < rcut
        np.array([[7.0, 0, 0], [0, 3.0, 0], [0, 0, 9.0]]),
        np.array([[9.0, 0, 0], [2.0, 9.5, 0], [1.0, -1.5, 10.0]]),  # minimum-image fast path
        None,
    ],
)
@pytest.mark.parametrize("type_sorted", [False, True])
def test_neighbors_match_brute_force(cell, type_sorted):
    rng = np.random.default_rng(1)
    n = 6 if cell is None or np.linalg.det(cell) < 500 else 40
    types = np.array([0, 1, 1, 0, 1, 1] * (n // 6) + [1] * (n % 6))
    if type_sorted:  # the per-type column ranges of _select_sorted, else select_by_type's type tests
        types = np.sort(types)
    frac = rng.random((n, 3))
    x = frac @ cell + rng.normal(0, 3, (1, 3)) if cell is not None else rng.random((n, 3)) * 5
    rcut = 4.0
    ref = brute(x, cell, types, rcut)
    counts = [max(sum(1 for t, _ in o if t == k) for o in ref) for k in (0, 1)]
    sel = [c + 2 for c in counts]
    xt = torch.tensor(x[None])
    ct = None if cell is None else torch.tensor(cell[None])
    tt = torch.tensor(types)
    # atoms must be type-sorted for the model, but the list itself works in any order
    nl, sh = build_neighbors(xt, ct, tt, rcut, sel)
    rij = pair_vectors(xt, ct, nl, sh)[0].numpy()
    got = []
    for i in range(n):
        row = []
        for k in range(sum(sel)):
            j = int(nl[0, i, k])
            if j >= 0:
                row.append((int(types[j]), round(float(np.linalg.norm(rij[i, k])), 9)))
                assert (k < sel[0]) == (types[j] == 0)  # type blocks
        got.append(sorted(row))
    assert got == ref
    st, _ = neighbor_stat(xt, ct, tt, 2, rcut)
    assert st.tolist() == counts


def test_overflow_drops_farthest_of_type():
    x = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0], [3.0, 0, 0]]], dtype=torch.float64)
    types = torch.tensor([0, 0, 0, 0])
    nl, _ = build_neighbors(x, None, types, 5.0, [2, 0])
    assert nl[0, 0].tolist() == [1, 2]
    assert sorted(nl[0, 1].tolist()) == [0, 2]


def test_cells_differ_per_frame():
    x = torch.tensor(np.random.default_rng(0).random((2, 5, 3)) * 2)
    cells = torch.tensor(np.stack([np.eye(3) * 2.0, np.eye(3) * 3.0]))
    types = torch.zeros(5, dtype=torch.long)
    nl, _ = build_neighbors(x, cells, types, 3.5, [200])
    for f in range(2):
        n1, _ = build_neighbors(x[f : f + 1], cells[f : f + 1], types, 3.5, [200])
        assert (nl[f] >= 0).sum() == (n1[0] >= 0).sum()


def test_min_image_path_equals_general_path(monkeypatch):
    from dpconv.trainer.nn import neighbor

    rng = np.random.default_rng(3)
    cell = torch.tensor([[[9.0, 0, 0], [2.0, 9.5, 0], [1.0, -1.5, 10.0]]], dtype=torch.float64)
    x = torch.tensor(rng.random((1, 30, 3)) * 12 - 1.0)
    types = torch.tensor(rng.integers(0, 2, 30))
    assert neighbor._min_image(x, cell, 4.0)
    nl1, sh1 = build_neighbors(x, cell, types, 4.0, [20, 20])
    r1 = pair_vectors(x, cell, nl1, sh1)
    monkeypatch.setattr(neighbor, "_min_image", lambda *a: False)
    nl2, sh2 = build_neighbors(x, cell, types, 4.0, [20, 20])
    r2 = pair_vectors(x, cell, nl2, sh2)
    # the same pairs in each type block (the order within a block follows the candidates)
    o1, o2 = _block_order(nl1, sh1, [20, 20]), _block_order(nl2, sh2, [20, 20])
    assert torch.equal(torch.gather(nl1, 2, o1), torch.gather(nl2, 2, o2))
    r1s = torch.gather(r1, 2, o1.unsqueeze(-1).expand(r1.shape))
    r2s = torch.gather(r2, 2, o2.unsqueeze(-1).expand(r2.shape))
    torch.testing.assert_close(r1s, r2s, atol=1e-12, rtol=0)


def _block_order(nl, sh, sel):
    """Slot order sorting each type block by (neighbour, shift), empty slots last."""
    s = sh.to(torch.long) + 8
    key = ((nl * 16 + s[..., 0]) * 16 + s[..., 1]) * 16 + s[..., 2]
    key = torch.where(nl >= 0, key, torch.full_like(key, 1 << 40))
    parts, off = [], 0
    for st in sel:
        parts.append(torch.argsort(key[..., off : off + st], dim=-1) + off)
        off += st
    return torch.cat(parts, dim=-1)


def test_without_overflow_every_candidate_is_kept_unsorted():
    """With room for every neighbour no sort is needed: candidate (index) order within a block."""
    x = torch.tensor([[[0.0, 0, 0], [3.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]]], dtype=torch.float64)
    nl, _ = build_neighbors(x, None, torch.zeros(4, dtype=torch.long), 5.0, [4])
    assert nl[0, 0].tolist() == [1, 2, 3, -1]
    # one slot fewer than neighbours: DeePMD-kit's rule, nearest first, the farthest dropped
    nl, _ = build_neighbors(x, None, torch.zeros(4, dtype=torch.long), 5.0, [2])
    assert nl[0, 0].tolist() == [2, 3]


@pytest.mark.parametrize(
    "cell",
    [
        np.array([[2.5, 0, 0], [0.9, 2.2, 0], [-0.7, 0.4, 2.6]]),  # 27+ images
        np.array([[9.0, 0, 0], [2.0, 9.5, 0], [1.0, -1.5, 10.0]]),  # minimum image
        None,
    ],
)
def test_type_sorted_selection_equals_general_selection(monkeypatch, cell):
    """Type-sorted atoms take per-type column ranges; the result is select_by_type's, slot for slot."""
    from dpconv.trainer.nn import neighbor

    rng = np.random.default_rng(5)
    n = 30 if cell is not None and np.linalg.det(cell) > 500 else 8
    types = torch.tensor(np.sort(rng.integers(0, 3, n)))
    ct = None if cell is None else torch.tensor(cell[None])
    x = torch.tensor(rng.random((2, n, 3)) * (12 if ct is not None else 4) - 1.0)
    if ct is not None:
        ct = ct.expand(2, 3, 3).contiguous()
    sel = [40, 40, 40]
    calls = []
    real = neighbor._select_sorted
    monkeypatch.setattr(neighbor, "_select_sorted", lambda *a: calls.append(1) or real(*a))
    nl1, sh1 = build_neighbors(x, ct, types, 4.0, sel)
    assert calls  # the sorted path ran
    monkeypatch.setattr(neighbor, "_select_sorted", lambda *a: None)
    nl2, sh2 = build_neighbors(x, ct, types, 4.0, sel)
    assert (nl1 >= 0).sum() > 0
    assert torch.equal(nl1, nl2)
    assert torch.equal(sh1, sh2)
