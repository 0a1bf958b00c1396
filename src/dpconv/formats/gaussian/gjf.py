"""``gaussian/gjf`` (write only): Gaussian inputs that label frames with energies and forces.

One frame is written as one input file at the target path. Several frames go
to a folder at the target path holding ``000000.gjf``, ``000001.gjf``, … (one
job per frame, so they can run in parallel), or, with ``link1=True``, to one
file whose jobs are chained with ``--Link1--`` (``gaussian/md`` reads the
resulting log back frame by frame).

Each job is::

    %nproc=4            (only when nproc is given)
    %mem=8GB            (only when mem is given)
    #force b3lyp/6-31g*

    C1H4                (title: the formula unless given)

    0 1                 (charge, multiplicity)
    C   0.0000000000   0.0000000000   0.0000000000
    ...
    TV  ...             (three rows, only for periodic systems)

Multiplicity ``"auto"`` is 1 for an even number of electrons (sum of atomic
numbers minus the charge) and 2 for an odd one; dpdata also guesses fragments
and O2 triplets with Open Babel, which dpconv does not do: give
``multiplicity=`` for anything else.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv.errors import DpconvError
from dpconv.formats.gaussian.log import ELEMENTS

DEFAULT_KEYWORDS = "force b3lyp/6-31g*"
_Z = {s: z for z, s in enumerate(ELEMENTS)}


def _route(keywords: str) -> str:
    kw = " ".join(keywords.split())
    return kw if kw.startswith("#") else f"#{kw}"


def _frames(blocks: Iterable[Mapping[str, Any]]) -> Iterator[tuple[list[str], np.ndarray, np.ndarray | None, bool]]:
    """(symbols, coords, cell, nopbc) per frame."""
    for block in blocks:
        names = list(block["atom_names"])
        bad = [n for n in names if n not in _Z or n == "X"]
        if bad:
            raise DpconvError(
                f"gaussian/gjf needs element symbols as atom names, got {bad}; rename them (type_map) before writing"
            )
        symbols = [names[t] for t in np.asarray(block["atom_types"])]
        nopbc = bool(block.get("nopbc", False))
        cells = np.asarray(block["cells"], dtype=np.float64)
        for i, coords in enumerate(np.asarray(block["coords"], dtype=np.float64)):
            yield symbols, coords, None if nopbc else cells[i], nopbc


def multiplicity_of(symbols: Sequence[str], charge: int) -> int:
    """Lowest spin multiplicity of the electron count: 1 when even, 2 when odd."""
    electrons = sum(_Z[s] for s in symbols) - charge
    if electrons < 0:
        raise DpconvError(f"charge {charge} leaves {electrons} electrons")
    return 1 + electrons % 2


def formula(symbols: Sequence[str]) -> str:
    """Formula title in first-appearance order, e.g. ``C1H4`` (as dpdata writes it)."""
    names = list(dict.fromkeys(symbols))
    return "".join(f"{n}{symbols.count(n)}" for n in names)


def make_input(
    symbols: Sequence[str],
    coords: np.ndarray,
    cell: np.ndarray | None = None,
    *,
    keywords: str | Sequence[str] = DEFAULT_KEYWORDS,
    nproc: int | None = None,
    mem: str | int | None = None,
    title: str | None = None,
    charge: int = 0,
    multiplicity: int | str = "auto",
    basis_set: str | None = None,
    chk: str | None = None,
) -> str:
    """The text of one Gaussian job (several jobs chained with ``--Link1--`` when ``keywords`` is a list)."""
    routes = [keywords] if isinstance(keywords, str) else list(keywords)
    if not routes:
        raise DpconvError("gaussian/gjf: keywords must not be empty")
    if multiplicity == "auto":
        mult = multiplicity_of(symbols, charge)
    elif isinstance(multiplicity, (int, np.integer)) and int(multiplicity) >= 1:
        mult = int(multiplicity)
    else:
        raise DpconvError(f"gaussian/gjf: multiplicity must be 'auto' or a positive int, got {multiplicity!r}")
    title = " ".join((title or formula(list(symbols))).split())
    if not title:
        raise DpconvError("gaussian/gjf: the title must not be blank")
    if len(routes) > 1 and chk is None:
        chk = "job.chk"  # later steps read the first one's geometry and guess
    link0 = []
    if chk:
        link0.append(f"%chk={chk}")
    if nproc is not None:
        link0.append(f"%nproc={int(nproc)}")
    if mem is not None:
        link0.append(f"%mem={mem}MB" if isinstance(mem, (int, np.integer)) else f"%mem={mem}")
    lines = [*link0, _route(routes[0]), "", title, "", f"{int(charge)} {mult}"]
    lines += [f"{s:<2} {x:16.10f} {y:16.10f} {z:16.10f}" for s, (x, y, z) in zip(symbols, coords, strict=True)]
    if cell is not None:
        lines += [f"TV {x:16.10f} {y:16.10f} {z:16.10f}" for x, y, z in np.asarray(cell)]
    lines.append("")
    if basis_set is not None:
        lines += [basis_set.strip("\n"), ""]
    for route in routes[1:]:
        lines += ["--Link1--", *link0, f"{_route(route)} geom=allcheck guess=read", ""]
    return "\n".join(lines) + "\n"


def write(path: str, blocks: Iterable[Mapping[str, Any]], *, link1: bool = False, **kwargs: Any) -> None:
    """Write one input file (one frame, or all frames chained with ``link1=True``) or a folder of them.

    kwargs: ``keywords`` (route, default ``force b3lyp/6-31g*``; a list makes
    a multi-step job), ``nproc``, ``mem`` (``"8GB"``, or an int in MB),
    ``title``, ``charge`` (default 0), ``multiplicity`` (``"auto"`` or an int),
    ``basis_set`` (text of a custom basis section), ``chk``.
    """
    kwargs.pop("type_map", None)
    frames = _frames(blocks)
    first = next(frames, None)
    if first is None:
        raise DpconvError("gaussian/gjf: no frames to write")
    second = next(frames, None)
    if link1 or second is None:
        with open(path, "w") as fh:
            for i, (symbols, coords, cell, _) in enumerate(
                itertools.chain([first], [] if second is None else [second], frames)
            ):
                if i:
                    fh.write("--Link1--\n")
                fh.write(make_input(symbols, coords, cell, **kwargs))
        return
    os.makedirs(path, exist_ok=True)
    for i, (symbols, coords, cell, _) in enumerate(itertools.chain([first, second], frames)):
        with open(os.path.join(path, f"{i:06d}.gjf"), "w") as fh:
            fh.write(make_input(symbols, coords, cell, **kwargs))
