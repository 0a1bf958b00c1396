"""Periodic images and type-split neighbour lists (notes §2), vectorised over frames.

A neighbour is stored as a local atom index ``j`` and an integer cell shift
``S`` so that the pair vector is ``r_ij = x_j + S·cell − x_i`` with the
caller's (unwrapped) coordinates. Forces then follow from ``∂E/∂r_ij`` with
no ghost atoms to fold back, and the virial is ``−Σ ∂E/∂r_ij ⊗ r_ij``.

Everything here is TorchScript-compatible: the frozen model builds its own
lists with these functions.
"""

from __future__ import annotations

import torch


def face_distances(cells: torch.Tensor) -> torch.Tensor:
    """Distances (nf, 3) between opposite faces of the cells (nf, 3, 3) (rows: cell vectors): the
    inverse lengths of the reciprocal vectors, which are the columns of the inverse cell matrix."""
    return 1.0 / torch.linalg.vector_norm(torch.linalg.inv(cells), dim=-2)


def image_shifts(cells: torch.Tensor, rcut: float) -> torch.Tensor:
    """Integer shifts (S, 3) reaching every image within ``rcut`` of a wrapped atom, zero first.

    ``|S_k| ≤ ceil(rcut / d_k)`` with ``d_k`` the distance between opposite faces
    (largest over the frames), so cells shorter than ``rcut`` and triclinic
    cells are covered.
    """
    n = torch.ceil(rcut / face_distances(cells)).amax(dim=0).to(torch.long)
    n0, n1, n2 = int(n[0]), int(n[1]), int(n[2])
    r0 = torch.arange(-n0, n0 + 1, device=cells.device)
    r1 = torch.arange(-n1, n1 + 1, device=cells.device)
    r2 = torch.arange(-n2, n2 + 1, device=cells.device)
    g = torch.meshgrid(r0, r1, r2, indexing="ij")
    s = torch.stack([g[0].reshape(-1), g[1].reshape(-1), g[2].reshape(-1)], dim=-1).to(cells.dtype)
    order = torch.argsort(s.square().sum(-1), stable=True)
    return s[order]


def _extended(
    coords: torch.Tensor, cells: torch.Tensor | None, rcut: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Wrapped coordinates, their image offsets, the shifts and the extended coordinates."""
    nf, n = coords.shape[0], coords.shape[1]
    if cells is None:
        shifts = torch.zeros(1, 3, dtype=coords.dtype, device=coords.device)
        return coords, torch.zeros_like(coords), shifts, coords
    frac = torch.linalg.solve(cells.transpose(1, 2), coords.transpose(1, 2)).transpose(1, 2)
    nimg = torch.floor(frac)
    xw = coords - torch.bmm(nimg, cells)
    shifts = image_shifts(cells, rcut)
    sc = torch.einsum("sk,fkc->fsc", shifts, cells)
    ext = (xw.unsqueeze(1) + sc.unsqueeze(2)).reshape(nf, shifts.shape[0] * n, 3)
    return xw, nimg, shifts, ext


def _distances(xw: torch.Tensor, ext: torch.Tensor) -> torch.Tensor:
    """Local-to-extended distances (nf, N, S·N), exact (no matmul expansion), self = inf."""
    n = xw.shape[1]
    d = torch.linalg.vector_norm(xw.unsqueeze(2) - ext.unsqueeze(1), dim=-1)
    ar = torch.arange(n, device=xw.device)
    d[:, ar, ar] = float("inf")
    return d


def _min_image(coords: torch.Tensor, cells: torch.Tensor, rcut: float) -> bool:
    """True when every frame's cell has ``rcut`` below half its smallest face distance, so the
    minimum image (rounded fractional difference) is the only image that can be within rcut."""
    dmin = face_distances(cells).amin()
    return bool(rcut < 0.5 * dmin)


def _candidates(
    coords: torch.Tensor, cells: torch.Tensor | None, rcut: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Distances (nf, N, M) to candidate neighbours (self = inf), what gives each candidate's
    integer shift relative to the caller's coordinates, and M // N images.

    Minimum image: ``M = N`` and the second item is the rounded fractional difference
    (nf, 3, N, N), coordinate-major (the shift is its negative); ``[f, c, i, j]`` is for atom j
    seen from atom i. Otherwise the image shifts (S, 3) and the image offsets (nf, N, 3) of the
    wrapped atoms (:func:`_extended`), or, with no cell, empty tensors.
    """
    nf, n = coords.shape[0], coords.shape[1]
    if cells is not None and _min_image(coords, cells, rcut):
        # coordinate-major (nf, 3, N, N): every op runs along contiguous rows of N (with the
        # component last, each inner loop would be 3 long); contiguous, as LAPACK's result is not
        frac = torch.linalg.solve(cells.transpose(1, 2), coords.transpose(1, 2)).contiguous()
        df = frac.unsqueeze(2) - frac.unsqueeze(3)  # [f, c, i, j] = frac_cj - frac_ci
        rd = torch.round(df)
        vec = torch.bmm(cells.transpose(1, 2), (df - rd).view(nf, 3, n * n))  # (nf, 3, N²) Å
        d = (vec * vec).sum(dim=1).sqrt_().view(nf, n, n)  # (vector_norm over dim 1 is ~50x slower)
        d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        return d, rd, torch.zeros(0), 1
    xw, nimg, shifts, ext = _extended(coords, cells, rcut)
    d = _distances(xw, ext)
    s = shifts.shape[0]
    if cells is None:
        return d, torch.zeros(0), torch.zeros(0), s
    # shift of candidate (image k, atom j) seen from atom i: S_k − n_j + n_i
    return d, shifts, nimg, s


def _select_sorted(within: torch.Tensor, counts: list[int], sel: list[int], nimages: int) -> torch.Tensor | None:
    """:func:`select_by_type` for candidates ``image · N + atom`` of type-sorted atoms (``counts``
    per type): a type's candidates are a contiguous column range per image, so each block is
    filled from its own columns, with no per-candidate type test. ``within`` (nf, N, S·N) bool.
    Returns the candidate ids (nf, N, Σ sel), −1 for empty slots, or None when some type has more
    candidates than slots (the caller then selects the nearest)."""
    nf, n = within.shape[0], within.shape[1]
    nc = 0
    for s in sel:
        nc += s
    out = torch.full([nf, n, nc + 1], -1, dtype=torch.long, device=within.device)
    w4 = within.view(nf, n, nimages, n)
    img = torch.arange(nimages, device=within.device).unsqueeze(1) * n
    a0 = 0
    off = 0
    for t, st in enumerate(sel):
        a1 = a0 + counts[t]
        if a1 > a0:
            mt = w4[:, :, :, a0:a1].reshape(nf, n, nimages * (a1 - a0))
            rank = torch.cumsum(mt, dim=-1)
            if rank.numel() > 0 and int(rank[:, :, -1].amax()) > st:
                return None
            slot = torch.where(mt, rank + (off - 1), nc)  # the others land in the dropped last column
            ids = (img + torch.arange(a0, a1, device=within.device)).reshape(1, 1, -1)
            out.scatter_(-1, slot, ids.expand(nf, n, ids.shape[2]))
        a0 = a1
        off += st
    return out[..., :nc]


def select_by_type(d: torch.Tensor, cand: torch.Tensor, ctypes: torch.Tensor, sel: list[int]) -> torch.Tensor:
    """DeePMD-kit's selection: the ``Σ sel`` nearest candidates, split by type into blocks of ``sel[t]``.

    ``d`` (..., K) distances (``inf``: not a neighbour), ``cand`` (..., K) int64 candidate ids and
    ``ctypes`` (..., K) their types. Returns (..., Σ sel) candidate ids per type block, real
    neighbours first and −1 for empty slots. When no type has more candidates than its ``sel[t]``
    (``sel: auto`` makes sure of it for the training data) every candidate is kept, in candidate
    order, with no sort; otherwise the ``Σ sel`` nearest are taken in ascending distance and the
    farthest of an overflowing type dropped, as DeePMD-kit does.
    """
    nc = 0
    for s in sel:
        nc += s
    valid = torch.isfinite(d)
    # the usual case: no type has more candidates than slots, so every candidate is kept and only
    # its slot is needed (candidate order within a block: the sums over a block do not depend on it)
    masks: list[torch.Tensor] = []
    ranks: list[torch.Tensor] = []
    fits = True
    for t, st in enumerate(sel):
        mt = valid & (ctypes == t)
        p = torch.cumsum(mt.to(torch.long), dim=-1)
        if p.numel() > 0 and int(p.select(-1, -1).amax()) > st:
            fits = False
            break
        masks.append(mt)
        ranks.append(p)
    if fits:
        out = torch.full(list(d.shape[:-1]) + [nc + 1], -1, dtype=torch.long, device=d.device)
        off = 0
        for t, st in enumerate(sel):
            slot = torch.where(masks[t], ranks[t] + (off - 1), torch.full_like(ranks[t], nc))
            out.scatter_(-1, slot, cand)  # the non-candidates all land in the dropped last column
            off += st
        return out[..., :nc]
    if d.shape[-1] < nc:
        shape = list(d.shape[:-1]) + [nc - d.shape[-1]]
        d = torch.cat([d, torch.full(shape, float("inf"), dtype=d.dtype, device=d.device)], dim=-1)
        cand = torch.cat([cand, torch.zeros(shape, dtype=cand.dtype, device=d.device)], dim=-1)
        ctypes = torch.cat([ctypes, torch.full(shape, -1, dtype=ctypes.dtype, device=d.device)], dim=-1)
    val, pos = torch.topk(d, nc, dim=-1, largest=False, sorted=True)
    valid = torch.isfinite(val)
    j = torch.gather(cand, -1, pos)
    jt = torch.gather(ctypes, -1, pos)
    out = torch.full(list(d.shape[:-1]) + [nc + 1], -1, dtype=torch.long, device=d.device)
    off = 0
    for t, st in enumerate(sel):
        mt = valid & (jt == t)
        p = torch.cumsum(mt.to(torch.long), dim=-1) - 1
        keep = mt & (p < st)
        slot = torch.where(keep, off + p, torch.full_like(p, nc))
        out.scatter_(-1, slot, torch.where(keep, j, torch.full_like(j, -1)))
        off += st
    return out[..., :nc]


def build_neighbors(
    coords: torch.Tensor, cells: torch.Tensor | None, types: torch.Tensor, rcut: float, sel: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Neighbour list (nf, N, Nc) of local indices (−1 = empty) and shifts (nf, N, Nc, 3).

    As DeePMD-kit: the ``Nc = Σ sel`` nearest neighbours with ``r ≤ rcut`` are
    taken regardless of type, then split by type into blocks of ``sel[t]`` slots
    (the farthest of a type dropped on overflow). Without overflow every neighbour
    is kept and a block holds them in candidate order (:func:`select_by_type`).
    ``types`` (N,) is shared by all frames; ``cells`` None means no periodicity.
    """
    nf, n = coords.shape[0], coords.shape[1]
    d, sh_info, nimg, nimages = _candidates(coords, cells, rcut)
    ext_idx: torch.Tensor | None = None
    if n > 0 and bool((types[1:] >= types[:-1]).all()) and int(types[0]) >= 0:
        counts: list[int] = torch.bincount(types, minlength=len(sel)).tolist()
        ext_idx = _select_sorted(d <= rcut, counts, sel, nimages)
    if ext_idx is None:  # atoms not sorted by type, or more neighbours of a type than its slots
        d = torch.where(d > rcut, torch.full_like(d, float("inf")), d)
        cand = torch.arange(d.shape[2], device=d.device)  # extended index: image * n + atom
        ext_idx = select_by_type(d, cand.expand(d.shape), types[cand % n].expand(d.shape), sel)
    nc = ext_idx.shape[2]
    has = ext_idx >= 0
    e = torch.where(has, ext_idx, torch.zeros_like(ext_idx))
    if cells is None:
        j = e % n
        sh = torch.zeros(nf, n, nc, 3, dtype=coords.dtype, device=coords.device)
    elif nimages == 1 and nimg.numel() == 0:  # minimum image: the shift is minus the rounded difference
        j = e
        sh = torch.gather(sh_info, 3, j.unsqueeze(1).expand(nf, 3, n, nc))
        sh = (sh * (-has.unsqueeze(1).to(sh.dtype))).permute(0, 2, 3, 1).contiguous()
    else:
        j = e % n
        sh = sh_info[e // n]
        fi = torch.arange(nf, device=coords.device).view(nf, 1, 1)
        sh = (sh - nimg[fi, j] + nimg.unsqueeze(2)) * has.unsqueeze(-1).to(sh.dtype)
    nlist = torch.where(has, j, torch.full_like(j, -1))
    return nlist, sh


def pair_vectors(
    coords: torch.Tensor, cells: torch.Tensor | None, nlist: torch.Tensor, shifts: torch.Tensor
) -> torch.Tensor:
    """``r_ij = x_j + S·cell − x_i`` (nf, N, Nc, 3); empty slots give ``−x_i`` (masked later)."""
    nf, n, nc = nlist.shape[0], nlist.shape[1], nlist.shape[2]
    # rows of the flattened frames (index_select of whole rows: faster than a gather along dim 1)
    j = (nlist.clamp(min=0) + (torch.arange(nf, device=nlist.device) * n).view(nf, 1, 1)).reshape(-1)
    xj = coords.reshape(nf * n, 3).index_select(0, j).view(nf, n, nc, 3)
    rij = xj - coords.unsqueeze(2)
    if cells is not None:
        rij = rij + torch.bmm(shifts.to(coords.dtype).reshape(nf, n * nc, 3), cells).view(nf, n, nc, 3)
    return rij


def neighbor_stat(
    coords: torch.Tensor, cells: torch.Tensor | None, types: torch.Tensor, ntypes: int, rcut: float
) -> tuple[torch.Tensor, float]:
    """Largest count of type-t neighbours with ``r < rcut`` over atoms and frames, and the
    smallest interatomic distance (notes §12, ``sel: auto``)."""
    d, _, _, nimages = _candidates(coords, cells, rcut)
    ext_t = types.repeat(nimages)
    within = d < rcut
    counts = torch.stack(
        [(within & (ext_t == t)).sum(dim=2).amax() if d.numel() else torch.tensor(0) for t in range(ntypes)]
    )
    return counts, float(d.amin()) if d.numel() else float("inf")


def pair_representatives(nlist: torch.Tensor, shifts: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
    """For each slot, the flat slot index ``i·Nc + k`` (within its frame) that stands for its pair.

    A same-type pair appears twice, as (i, j, S) in i's list and (j, i, −S) in j's; both have the
    same distance and centre type, hence the same embedding input. The slot with the smaller key
    represents both, so the embedding nets run once per pair. Cross-type pairs, empty slots and
    pairs whose partner was dropped by ``sel`` represent themselves.
    """
    nf, n, nc = nlist.shape[0], nlist.shape[1], nlist.shape[2]
    off, base = 64, 129
    b3 = base * base * base
    sh = shifts.to(torch.long)
    code = ((sh[..., 0] + off) * base + (sh[..., 1] + off)) * base + (sh[..., 2] + off)
    rcode = ((off - sh[..., 0]) * base + (off - sh[..., 1])) * base + (off - sh[..., 2])
    i = torch.arange(n, device=nlist.device).view(1, n, 1)
    j = nlist.clamp(min=0)
    own = torch.arange(n * nc, device=nlist.device).view(1, n, nc).expand(nf, n, nc)
    same = (nlist >= 0) & (types.view(1, n, 1) == types[j])
    frame = torch.arange(nf, device=nlist.device).view(nf, 1, 1) * (n * n * b3)
    key = frame + (i * n + j) * b3 + code
    rkey = frame + (j * n + i) * b3 + rcode
    key = torch.where(same, key, -1 - own - frame)  # unique, never matched
    kf = key.reshape(-1)
    order = torch.argsort(kf)
    sk = kf[order]
    pos = torch.searchsorted(sk, rkey.reshape(-1)).clamp(max=sk.shape[0] - 1)
    found = (sk[pos] == rkey.reshape(-1)) & same.reshape(-1)
    partner = order[pos] % (n * nc)
    use = found & (rkey.reshape(-1) < kf)
    rep = torch.where(use, partner, own.reshape(-1))
    return rep.view(nf, n, nc)
