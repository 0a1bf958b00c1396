"""``siesta/aimd_output``: every MD (or relaxation) step of a SIESTA standard output.

Frames, units and the virial sign are those of :mod:`dpconv.formats.siesta.output`
(one frame per ``outcoor: Atomic coordinates`` table, per-frame cell and
stress); frames are yielded in blocks as they are found, so a long run streams.
A step cut by the end of the file is dropped with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from dpconv.formats.siesta.output import Reader


def read(
    path: str, type_map: Sequence[str] | None = None, dpdata_virial: bool = False, **_: Any
) -> Iterator[dict[str, Any]]:
    """Yield blocks of the steps of a SIESTA MD output."""
    del type_map  # SIESTA names every species
    yield from Reader(os.fspath(path), dpdata_virial).frames(first_only=False)
