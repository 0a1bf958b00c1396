"""Run LAMMPS with a dpconv model through its Python module and ``fix external`` (no compiler).

``dpconv md lammps in.lammps`` reads a LAMMPS input written for DeePMD-kit, replaces

    pair_style deepmd|dpconv m0.pth [m1.pth ...] [out_freq N] [out_file model_devi.out]
    pair_coeff * * [O H ...]

with ``pair_style zero <rcut>`` / ``pair_coeff * *`` and, before the first ``run`` or
``minimize``, ``fix dpconv_ext all external pf/callback 1 1`` whose callback sets energy,
per-atom energy, forces and virial from the first model (``fix_modify ... energy yes virial
yes``, so ``pe``, ``press`` and ``thermo`` include them). Several models add DeePMD-kit's
model-deviation file. Metal units, one MPI rank, fully periodic or fully open boxes. The
compiled plugin (``dpconv lammps build``) is the fast, parallel path; this one is its reference.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dpconv.errors import ConfigError

FIX_ID = "dpconv_ext"
STYLES = ("deepmd", "dpconv")


@dataclass
class PairSpec:
    """The arguments of ``pair_style dpconv`` (shared with the C++ plugin's syntax)."""

    models: list[str]
    out_freq: int = 100
    out_file: str = "model_devi.out"
    type_names: list[str] = field(default_factory=list)  # from pair_coeff * * O H


def parse_pair_style(args: Sequence[str]) -> PairSpec:
    """``m0.pth [m1.pth ...] [out_freq N] [out_file F]`` → :class:`PairSpec`."""
    models: list[str] = []
    spec = PairSpec(models)
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("out_freq", "out_file"):
            if i + 1 >= len(args):
                raise ConfigError(f"pair_style dpconv: {a} needs a value")
            if a == "out_freq":
                spec.out_freq = int(args[i + 1])
            else:
                spec.out_file = args[i + 1]
            i += 2
        elif a in ("fparam", "aparam", "atomic", "relative", "relative_v", "ttm", "fparam_from_compute"):
            raise ConfigError(f"pair_style dpconv: keyword {a!r} is not supported (se_e2_a energy models)")
        else:
            models.append(a)
            i += 1
    if not models:
        raise ConfigError("pair_style dpconv needs at least one model file")
    return spec


def _logical_lines(text: str) -> list[str]:
    """Input lines with ``&`` continuations joined (comments kept)."""
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.endswith("&"):
            buf += line[:-1] + " "
            continue
        out.append(buf + line)
        buf = ""
    if buf:
        out.append(buf)
    return out


def _words(line: str) -> list[str]:
    body = line.split("#", 1)[0]
    try:
        return shlex.split(body)
    except ValueError:
        return body.split()


def rewrite_input(text: str, rcut: Callable[[str], float] | None = None) -> tuple[list[str], list[str], PairSpec]:
    """Split a LAMMPS input into the lines before the fix and after it, with the pair lines rewritten.

    Returns ``(head, tail, spec)``: run ``head``, install the callback, then run ``tail``.
    ``rcut(model)`` gives the zero pair style's cutoff (neighbour skin for ghost atoms).
    """
    lines = _logical_lines(text)
    spec: PairSpec | None = None
    head: list[str] = []
    tail: list[str] = []
    inserted = False
    for line in lines:
        w = _words(line)
        cmd = w[0] if w else ""
        if cmd == "pair_style" and len(w) > 1 and w[1] in STYLES:
            spec = parse_pair_style(w[2:])
            cut = rcut(spec.models[0]) if rcut else 6.0
            line = f"pair_style zero {cut:.10g}"
        elif cmd == "pair_style" and spec is not None:
            raise ConfigError(f"a second pair_style after pair_style {STYLES}: {line.strip()!r} (not supported)")
        elif cmd == "pair_coeff" and spec is not None:
            if w[1:3] != ["*", "*"]:
                raise ConfigError(f"pair_style dpconv takes 'pair_coeff * * [names]', not {line.strip()!r}")
            spec.type_names = w[3:]
            line = "pair_coeff * *"
        elif cmd in ("run", "minimize", "rerun") and spec is not None and not inserted:
            head += [f"fix {FIX_ID} all external pf/callback 1 1", f"fix_modify {FIX_ID} energy yes virial yes"]
            inserted = True
        (tail if inserted else head).append(line)
    if spec is None:
        raise ConfigError(f"no 'pair_style {' or '.join(STYLES)} MODEL' line in the input")
    return head, tail, spec


class FixExternalDriver:
    """The ``fix external`` callback: model energies/forces/virial for LAMMPS' atoms."""

    def __init__(self, lmp: Any, spec: PairSpec, device: str = "cpu") -> None:
        from dpconv.trainer import load

        self.lmp = lmp
        self.spec = spec
        self.models = [load(m, device=device) for m in spec.models]
        self.type_map = self.models[0].type_map
        for m in self.models[1:]:
            if m.type_map != self.type_map:
                raise ConfigError(f"models have different type maps: {self.type_map} vs {m.type_map}")
        self.lut: np.ndarray | None = None
        self.devi_rows: list[str] = []
        self.calls = 0

    def _lookup(self) -> np.ndarray:
        """LAMMPS type (1-based) → model type index."""
        ntypes = int(self.lmp.extract_global("ntypes"))
        names = self.spec.type_names
        if names:
            if len(names) != ntypes:
                raise ConfigError(f"pair_coeff * * names {len(names)} types, the data file has {ntypes}")
            bad = [n for n in names if n not in self.type_map]
            if bad:
                raise ConfigError(f"pair_coeff names {bad} not in the model's type map {self.type_map}")
            idx = [self.type_map.index(n) for n in names]
        else:
            if ntypes > len(self.type_map):
                raise ConfigError(
                    f"{ntypes} LAMMPS atom types but the model has {len(self.type_map)} "
                    f"({self.type_map}); name them: pair_coeff * * {' '.join(self.type_map)}"
                )
            idx = list(range(ntypes))
        return np.array([-1, *idx], dtype=np.int64)

    def cell(self) -> np.ndarray | None:
        boxlo, boxhi, xy, yz, xz, periodicity, _ = self.lmp.extract_box()
        if all(periodicity):
            lx, ly, lz = (boxhi[k] - boxlo[k] for k in range(3))
            return np.array([[lx, 0.0, 0.0], [xy, ly, 0.0], [xz, yz, lz]])
        if any(periodicity):
            raise ConfigError(f"boundary {periodicity}: use p p p or f f f with the fix-external path")
        return None

    def install(self) -> None:
        units = self.lmp.extract_global("units")
        if units != "metal":
            raise ConfigError(f"dpconv models need 'units metal', the input has 'units {units}'")
        if int(self.lmp.extract_setting("world_size")) > 1:
            raise ConfigError("the fix-external path runs on one MPI rank; build the plugin for MPI runs")
        self.lut = self._lookup()
        self.lmp.set_fix_external_callback(FIX_ID, self.callback, self)

    def callback(self, caller: Any, step: int, nlocal: int, tag: np.ndarray, x: np.ndarray, fext: np.ndarray) -> None:
        assert self.lut is not None
        self.calls += 1
        ltypes = np.asarray(self.lmp.numpy.extract_atom("type"))[:nlocal]
        types = self.lut[ltypes]
        cell = self.cell()
        pos = np.array(x[:nlocal], dtype=np.float64)
        todo = self.models if (len(self.models) > 1 and step % self.spec.out_freq == 0) else self.models[:1]
        c = None if cell is None else cell[None]
        outs = [m.evaluate_all(pos[None], c, types) for m in todo]
        out = outs[0]
        fext[:nlocal] = out["force"][0]
        self.lmp.fix_external_set_energy_global(FIX_ID, float(out["energy"][0]))
        v = out["virial"][0]
        self.lmp.fix_external_set_virial_global(FIX_ID, [v[0, 0], v[1, 1], v[2, 2], v[0, 1], v[0, 2], v[1, 2]])
        self.lmp.fix_external_set_energy_peratom(FIX_ID, out["atom_energy"][0])
        if len(outs) > 1:
            self._write_devi(step, outs)

    def _write_devi(self, step: int, outs: list[dict[str, np.ndarray]]) -> None:
        from dpconv.md.devi import HEADER, format_row, model_devi

        d = model_devi(np.stack([o["force"][0] for o in outs]), np.stack([o["virial"][0].ravel() for o in outs]))
        first = not self.devi_rows
        self.devi_rows.append(format_row(step, d))
        with open(self.spec.out_file, "w" if first else "a") as fh:
            if first:
                fh.write(HEADER + "\n")
            fh.write(self.devi_rows[-1] + "\n")


def _model_rcut(path: str) -> float:
    from dpconv.trainer import load

    return load(path).rcut


def run_input(
    path: str,
    cmdargs: Sequence[str] = (),
    variables: dict[str, str] | None = None,
    device: str = "cpu",
    lmp: Any = None,
) -> Any:
    """Run the LAMMPS input ``path`` with the fix-external path; returns the ``lammps`` instance.

    The input's relative paths are resolved from its folder (as ``lmp -i`` run there would).
    """
    lammps_mod = import_lammps()
    with open(path) as fh:
        text = fh.read()
    args = ["-nocite", *cmdargs]
    for k, v in (variables or {}).items():
        args += ["-var", k, v]
    cwd = os.getcwd()
    os.chdir(os.path.dirname(os.path.abspath(path)))
    try:
        head, tail, spec = rewrite_input(text, _model_rcut)
        if lmp is None:
            lmp = lammps_mod.lammps(cmdargs=args)
        driver = FixExternalDriver(lmp, spec, device=device)
        lmp._dpconv_driver = driver  # keeps the callback alive with the instance
        lmp.commands_string("\n".join(head))
        if any(_words(line)[:1] == ["fix"] and FIX_ID in line for line in head):
            driver.install()
        lmp.commands_string("\n".join(tail))
    finally:
        os.chdir(cwd)
    return lmp


def _preload_mpi() -> None:
    """Load the environment's MPI library (PyPI's MPICH wheel) globally, so that LAMMPS finds
    it without LD_LIBRARY_PATH; a no-op where there is none (a system MPI is found as usual)."""
    import ctypes
    import glob
    import sys

    for lib in sorted(glob.glob(os.path.join(sys.prefix, "lib", "libmpi.so.*"))):
        try:
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
            return
        except OSError:
            continue


def import_lammps() -> Any:
    """The ``lammps`` Python module, with a clear error when it is missing or cannot load MPI.

    torch is imported first: liblammps.so exports a reference BLAS (``dgemm_``), and a libtorch
    loaded after it would bind its matrix products to that (docs/md.md, "Why the plugin is two
    libraries").
    """
    import torch  # noqa: F401  (load order, see above)

    _preload_mpi()
    try:
        import lammps
    except ImportError as exc:
        raise ConfigError(
            f"the LAMMPS Python module is not installed: pip install 'lammps[mpi]' (or dpconv[lammps]); {exc}"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"the LAMMPS Python module failed to load ({exc}); with the PyPI MPICH build put "
            "the environment's lib/ on LD_LIBRARY_PATH"
        ) from None
    return lammps
