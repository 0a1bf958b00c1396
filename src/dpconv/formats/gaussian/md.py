"""``gaussian/md``: every force evaluation of a Gaussian log (ADMP/BOMD trajectories, optimizations).

The scanner, units and conventions are those of :mod:`dpconv.formats.gaussian.log`;
frames are yielded in blocks as they are found, so a multi-gigabyte log streams.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from dpconv.formats.gaussian.log import read_frames


def read(path: str, type_map: Sequence[str] | None = None, **_: Any) -> Iterator[dict[str, Any]]:
    """Yield blocks of the frames of a Gaussian trajectory log (unconverged and cut frames dropped, warned)."""
    del type_map  # Gaussian names every atom
    yield from read_frames(os.fspath(path), last_only=False)
