"""``xyz``: plain XYZ files (atom count, comment line, ``symbol x y z`` lines), any number of frames.

Atom names are the symbols, in order of first appearance. Frames are
non-periodic (``nopbc``, with dpdata's dummy 100 Å cubic cell) unless the comment
line carries an extended-XYZ ``Lattice="..."`` or a ``cell`` is given. Columns
after ``x y z`` are ignored. The writer puts ``Lattice``/``pbc`` in the comment
line of periodic systems (any XYZ reader ignores it; ASE and dpconv read it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dpconv.formats.xyz import extxyz


def read(
    path: str,
    type_map: Sequence[str] | None = None,
    begin: int = 0,
    step: int = 1,
    cell: Any = None,
    chunk: int | None = None,
    **_: Any,
) -> Iterator[dict[str, Any]]:
    """Yield blocks of frames; ``cell`` (3 lengths or 3x3, Å) makes frames without a Lattice periodic."""
    yield from extxyz.read(path, begin=begin, step=step, chunk=chunk, _plain=True, cell=cell)


def write(path: str, blocks: Iterable[Mapping[str, Any]], **_: Any) -> None:
    """Write every frame's symbols and positions (labels are not written)."""
    with open(path, "w") as fh:
        for data in blocks:
            extxyz.write_frames(fh, data, labels=False)
