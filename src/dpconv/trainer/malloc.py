"""glibc malloc settings for the big, short-lived tensors of model evaluation and training.

One evaluation of a 192-atom water frame allocates and frees tens of MB of tensors (up to
~14 MB each). With glibc's defaults the freed blocks go back to the kernel (above the mmap
threshold) or are trimmed off the top of the heap, so the next call touches fresh pages again:
measured here 2,000–8,000 page faults per frame and 55 → 68–84 ms per frame. Raising the mmap
threshold to its maximum (32 MB) and the trim threshold to 1 GB keeps those pages in the process
(tens of faults per frame). The cost: up to 1 GB of freed memory stays with the process.

:func:`tune` runs once per process, from the model loader (:class:`~dpconv.trainer.evaluate.Evaluator`,
hence the ASE/OpenMM/LAMMPS-python paths) and the trainer; the LAMMPS pair style does the same in
C++. ``DPCONV_NO_MALLOPT=1`` leaves malloc alone. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's maximum on 64-bit
TRIM_THRESHOLD = 1 << 30

_state: dict[str, bool] = {}


def tune() -> bool:
    """Apply the settings (once); True when they are in force."""
    if "applied" in _state:
        return _state["applied"]
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("DPCONV_NO_MALLOPT", "") in ("", "0"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            ok = bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
            )
        except (OSError, AttributeError):  # not glibc
            ok = False
    _state["applied"] = ok
    return ok
