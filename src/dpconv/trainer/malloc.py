"""glibc malloc settings for the big, short-lived tensors of model evaluation and training.

One evaluation of a 192-atom water frame allocates and frees tens of MB of tensors (up to
~14 MB each). With glibc's defaults the freed blocks go back to the kernel (above the mmap
threshold) or are trimmed off the top of the heap, so the next call touches fresh pages again:
measured here 2,000–8,000 page faults per frame and 55 → 68–84 ms per frame. Raising the mmap
threshold to its maximum (32 MB) and the trim threshold to 1 GB keeps those pages in the process
(tens of faults per frame). The cost: up to 1 GB of freed memory stays with the process.

:func:`tune` runs once per process, from the model loader (:class:`~dpconv.trainer.evaluate.Evaluator`,
hence the ASE/OpenMM/LAMMPS-python paths) and the trainer; the LAMMPS pair style does the same in
C++. ``DPCONV_NO_MALLOPT=1`` leaves malloc alone (and stops the re-execution below). Elsewhere
than glibc it does nothing.
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


# -- transparent huge pages -----------------------------------------------------------------
# The same tensors, on 4 KB pages, also cost TLB misses: with glibc's malloc.hugetlb=1 tunable
# (malloc then asks for transparent huge pages with madvise) a water frame took 40–42 ms instead of
# 52–55, and a training step 11 % (water) to 20 % (methane) less. Tunables are read only at process
# start, so the CLI's compute commands re-execute themselves once with the tunable set.
HUGEPAGE_TUNABLE = "glibc.malloc.hugetlb=1"
_REEXEC_GUARD = "DPCONV_REEXEC"


def hugepage_env(env: dict[str, str]) -> dict[str, str] | None:
    """``env`` plus the tunable when it would take effect here and is not set yet, else None."""
    if not sys.platform.startswith("linux") or env.get("DPCONV_NO_MALLOPT", "") not in ("", "0"):
        return None
    if env.get(_REEXEC_GUARD) or "glibc.malloc.hugetlb" in env.get("GLIBC_TUNABLES", ""):
        return None
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
        major, minor = (int(v) for v in libc.split()[1].split(".")[:2])
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as fh:
            thp = fh.read()
    except (OSError, ValueError, IndexError):
        return None
    if not libc.startswith("glibc") or (major, minor) < (2, 35) or "[never]" in thp:
        return None
    tun = env.get("GLIBC_TUNABLES", "")
    return {**env, "GLIBC_TUNABLES": f"{tun}:{HUGEPAGE_TUNABLE}" if tun else HUGEPAGE_TUNABLE, _REEXEC_GUARD: "1"}


def reexec_with_hugepages(argv: list[str]) -> None:
    """Replace this process by ``python -m dpconv argv[1:]`` with the tunable set (same PID, so
    torchrun and job schedulers are unaffected); returns only when that is not useful or fails."""
    env = hugepage_env(dict(os.environ))
    if env is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "dpconv", *argv[1:]], env)
    except OSError:
        return
