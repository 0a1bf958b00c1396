"""Side-by-side timing of dpconv and dpdata on the same input.

Each measurement runs in a fresh Python process (so peak memory is that tool's
alone, read from ``os.wait4``'s ``ru_maxrss``); wall time is measured inside
the child around the read/convert call only (imports excluded). Both tools run
on the same file in the same benchmark run, and the ratios are printed.

Usage from a benchmark script::

    from _harness import Case, run_cases
    run_cases([Case("vasp/outcar", path, dpconv_code, dpdata_code)])

``dpconv_code``/``dpdata_code`` are Python snippets that read ``PATH`` and
assign the number of frames to ``NFRAMES``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass

CHILD = """
import json, os, sys, time
PATH = {path!r}
OUT = {out!r}
{imports}
t0 = time.perf_counter()
{code}
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "frames": int(NFRAMES)}}))
"""


@dataclass
class Case:
    """One row: a format, an input, and the two snippets to compare."""

    name: str
    path: str
    dpconv_code: str
    dpdata_code: str
    dpconv_imports: str = "import dpconv"
    dpdata_imports: str = "import dpdata"


def measure(path: str, imports: str, code: str, out: str) -> dict[str, float]:
    """Run one snippet in a child; returns seconds, frames and peak RSS in MB."""
    src = CHILD.format(path=path, out=out, imports=imports, code=textwrap.dedent(code))
    proc = subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        return {"error": stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {proc.returncode}"}  # type: ignore[dict-item]
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_mb"] = usage.ru_maxrss / 1024.0
    return res


def run_cases(cases: list[Case], workdir: str | None = None) -> list[dict]:
    """Measure every case with both tools and print a table with ratios."""
    import tempfile

    rows = []
    header = (
        f"{'format':22} {'input MB':>9} {'frames':>7} {'dpconv s':>9} {'dpdata s':>9} {'speedup':>8} "
        f"{'dpconv MB':>10} {'dpdata MB':>10} {'mem ratio':>9}"
    )
    print(header)
    print("-" * len(header))
    for c in cases:
        with tempfile.TemporaryDirectory(dir=workdir) as tmp:
            a = measure(c.path, c.dpconv_imports, c.dpconv_code, os.path.join(tmp, "a"))
            b = measure(c.path, c.dpdata_imports, c.dpdata_code, os.path.join(tmp, "b"))
        size = (
            os.path.getsize(c.path) / 1e6
            if os.path.isfile(c.path)
            else sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(c.path) for f in fs) / 1e6
        )
        if "error" in a or "error" in b:
            print(f"{c.name:22} {size:9.1f}  dpconv: {a.get('error', 'ok')}  dpdata: {b.get('error', 'ok')}")
            rows.append({"name": c.name, "dpconv": a, "dpdata": b})
            continue
        speed = b["seconds"] / a["seconds"]
        mem = b["peak_mb"] / a["peak_mb"]
        print(
            f"{c.name:22} {size:9.1f} {a['frames']:7d} {a['seconds']:9.2f} {b['seconds']:9.2f} {speed:7.1f}x "
            f"{a['peak_mb']:10.0f} {b['peak_mb']:10.0f} {mem:8.1f}x"
        )
        if a["frames"] != b["frames"]:
            print(f"  WARNING: frame counts differ (dpconv {a['frames']}, dpdata {b['frames']})")
        rows.append({"name": c.name, "dpconv": a, "dpdata": b, "speedup": speed, "mem_ratio": mem})
    return rows


def repeat_file(src: str, dst: str, target_bytes: int, header_bytes: int = 0) -> None:
    """Write ``dst`` as ``src``'s header followed by its body repeated to about ``target_bytes``."""
    with open(src, "rb") as fh:
        blob = fh.read()
    head, body = blob[:header_bytes], blob[header_bytes:]
    with open(dst, "wb") as out:
        out.write(head)
        written = len(head)
        while written < target_bytes:
            out.write(body)
            written += len(body)
