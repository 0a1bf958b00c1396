"""``qe/pw/scf``: the text output of Quantum ESPRESSO's ``pw.x`` (scf, relax, vc-relax, md, vc-md).

Every ``!    total energy`` line starts a frame: frame ``i`` owns the text from
its energy line to the next one, which holds, in order, its ``Forces acting on
atoms`` block, its optional ``total   stress`` block, and then the geometry the
ionic step prints for the *next* frame (``CELL_PARAMETERS``/``ATOMIC_POSITIONS``).
The geometry of frame 0 comes from the pw.x input (or the output header).

The output is read in buffers of whole frames (cut before an energy line). In
each buffer one regular-expression scan per kind of block finds every block,
``numpy.searchsorted`` assigns blocks to frames, and the blocks of all frames
are parsed together with one ``split`` and one array conversion per kind: the
Python work per frame is a handful of operations. Blocks of ``chunk_frames``
frames are yielded.

Units: energies Ry -> eV, forces Ry/bohr -> eV/Å, stress kbar (or
Ry/bohr^3 with ``precise_stress=True``) x cell volume -> virial in eV, with
no sign change (QE prints the pressure-like tensor, as VASP does).
"""

from __future__ import annotations

import functools
import os
import re
import warnings
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from dpconv.errors import DpconvError, ParseError
from dpconv.formats.qe import pwinput
from dpconv.units import (
    BOHR_TO_ANGSTROM,
    KBAR_TO_EV_PER_ANGSTROM3,
    RY_PER_BOHR3_TO_EV_PER_ANGSTROM3,
    RYDBERG_PER_BOHR_TO_EV_PER_ANGSTROM,
    RYDBERG_TO_EV,
)

READ_CHUNK = 1 << 22  # bytes read at a time (a buffer holds whole frames, so it may grow)
_ENERGY_RE = re.compile(
    rb"\n!!?[ \t]+total energy[ \t]+=[ \t]*(\S+)[^\n]*\n"
    rb"(?:(?:[^\n]*\n){0,3}?[ \t]*estimated scf accuracy[ \t]*<[ \t]*(\S+))?"
)
_ALAT_RE = re.compile(rb"lattice parameter \(alat\)\s*=\s*(\S+)")
_NAT_RE = re.compile(rb"number of atoms/cell\s*=\s*(\d+)")
_AXES_RE = re.compile(rb"a\(([123])\) = \(\s*(\S+)\s+(\S+)\s+(\S+)\s*\)")
_TAU_RE = re.compile(rb"^\s*\d+\s+(\S+)\s+tau\(\s*\d+\)\s*=\s*\(\s*(\S+)\s+(\S+)\s+(\S+)\s*\)", re.M)
_OPTION_RE = re.compile(rb"[ \t]*(?:[({]\s*([A-Za-z]+)\s*(?:=\s*([-+.\dEeDd]+))?\s*[)}]|([A-Za-z]+))")
_THRESHOLD_RE = re.compile(rb"convergence threshold\s*=\s*(\S+)")
_STRESS_RE = re.compile(rb"total   stress[^\n]*\n((?:[ \t]*\S[^\n]*\n){3})")
_CELL_RE = re.compile(rb"\nCELL_PARAMETERS([^\n]*)\n((?:[ \t]*\S[^\n]*\n){3})")
_FORCES = b"Forces acting on atoms"
_STRESS = b"total   stress"
_NOT_CONVERGED = b"convergence NOT achieved"


@functools.lru_cache(maxsize=8)
def _forces_re(nat: int) -> re.Pattern[bytes]:
    return re.compile(rb"Forces acting on atoms[^\n]*\n(?:[ \t]*\n)*((?:[ \t]*\S[^\n]*\n){%d})" % nat)


@functools.lru_cache(maxsize=8)
def _positions_re(nat: int) -> re.Pattern[bytes]:
    return re.compile(rb"\nATOMIC_POSITIONS([^\n]*)\n((?:[ \t]*\S[^\n]*\n){%d})" % nat)


def _find(buf: bytes, literal: bytes, start: int = 0) -> int:
    """``buf.find(literal, start)``. A literal that starts with a newline is found by the rest
    of it, then its newline checked: ``bytes.find`` is many times slower on a needle that
    starts with a byte as common as a newline (``\\n!``: ~10 us on a 13 kB output, ``!``: 0.2)."""
    if literal[:1] != b"\n":
        return buf.find(literal, start)
    rest = literal[1:]
    j = buf.find(rest, start + 1)
    while j > 0 and buf[j - 1] != 10:
        j = buf.find(rest, j + 1)
    return j - 1 if j > 0 else -1


def _offsets(literal: bytes, buf: bytes) -> list[int]:
    """Start offsets of every occurrence of ``literal`` (``bytes.find`` runs at memchr speed)."""
    out = []
    i = _find(buf, literal)
    while i >= 0:
        out.append(i)
        i = _find(buf, literal, i + len(literal))
    return out


def _iscan(pattern: re.Pattern[bytes], literal: bytes, buf: bytes) -> Iterator[re.Match[bytes]]:
    """What ``pattern.finditer(buf)`` finds, for a pattern that starts with ``literal``, lazily.

    ``bytes.find`` jumps to each candidate and the pattern is only tried there: several
    times faster than the regex engine's own scan, which matters for the many small
    single-point outputs of a dataset (a handful of scans per file)."""
    i = _find(buf, literal)
    while i >= 0:
        m = pattern.match(buf, i)
        if m is None:
            i = _find(buf, literal, i + 1)
        else:
            yield m
            i = _find(buf, literal, max(m.end(), i + 1))


def _scan(pattern: re.Pattern[bytes], literal: bytes, buf: bytes) -> list[re.Match[bytes]]:
    """All of :func:`_iscan`."""
    return list(_iscan(pattern, literal, buf))


def input_path_for(path: str) -> str:
    """dpdata's rule: the input is the output's name with ``out`` replaced by ``in``."""
    d, base = os.path.split(path)
    return os.path.join(d, base.replace("out", "in"))


def read(
    path: str,
    type_map: Sequence[str] | None = None,
    *,
    input_file: str | None = None,
    lower_triangular: bool = True,
    precise_stress: bool = False,
    convergence_check: bool = True,
    chunk_frames: int = 256,
    **_: Any,
) -> Iterator[dict[str, Any]]:
    """Read the labelled frames of a pw.x output.

    Parameters
    ----------
    input_file:
        The pw.x input that made the output. By default the output's name with
        ``out`` replaced by ``in`` (dpdata's rule); when that file does not exist
        species, cell and first geometry come from the output header alone (6-7
        significant digits) and a warning says so.
    lower_triangular:
        Rotate every frame so that its cell is lower triangular (``a`` along x,
        ``b`` in the xy plane), rotating coordinates, forces and virials with it.
        True by default, as dpdata does for this format.
    precise_stress:
        Take the stress from the ``Ry/bohr**3`` columns (8 decimals) instead of the
        ``kbar`` columns (2 decimals, dpdata's choice, the default).
    convergence_check:
        Drop frames whose SCF did not converge (with a warning naming them): a
        ``convergence NOT achieved`` line before the forces, or an ``estimated scf
        accuracy`` after the energy above the header's convergence threshold (QE 6.7
        with ``scf_must_converge=.false.`` claims convergence when it stops at
        ``electron_maxstep``). True by default.
    chunk_frames:
        Frames per yielded block.
    """
    if input_file is None:
        cand = input_path_for(path)
        inp = pwinput.read_input(cand) if cand != path and os.path.isfile(cand) else None
    else:
        if not os.path.isfile(input_file):
            raise DpconvError(f"{input_file}: no such pw.x input file (input_file=)")
        inp = pwinput.read_input(input_file)
    reader = _Reader(path, inp, lower_triangular, precise_stress, convergence_check)
    yield from reader.blocks(max(1, int(chunk_frames)))


class _Reader:
    def __init__(
        self,
        path: str,
        inp: pwinput.PwInput | None,
        lower_triangular: bool,
        precise_stress: bool,
        convergence_check: bool = True,
    ):
        self.path = path
        self.convergence_check = convergence_check
        self.threshold = 0.0  # Ry; 0 when the header does not say
        self.inp = inp
        self.lower_triangular = lower_triangular
        self.precise_stress = precise_stress
        self.nat = 0
        self.alat = 0.0  # bohr
        self.cell = np.zeros((3, 3))  # current cell, Å
        self.coords = np.zeros((0, 3))  # current coordinates, Å
        self.names: list[str] = []
        self.types = np.zeros(0, np.int64)
        self.numbs = np.zeros(0, np.int64)
        self.unconverged: list[int] = []
        self.skipped_steps = 0
        self.stress_missing = False

    # -- buffers of whole frames -----------------------------------------------------
    def buffers(self) -> Generator[tuple[bytes, int, bool], None, None]:
        """``(text, base, eof)``: the file cut just before energy lines; ``base`` is the file offset of ``text[0]``.

        Every buffer but the first starts with the newline before an energy line.
        """
        try:
            fh = open(self.path, "rb", buffering=0)  # noqa: SIM115 (the with-block below closes it)
        except OSError as exc:
            raise ParseError(self.path, f"a readable pw.x output ({exc.strerror})") from None
        with fh:
            if os.fstat(fh.fileno()).st_size < READ_CHUNK:
                # the whole file (the common single-point output) in one read of its size: a read of
                # READ_CHUNK would allocate 4 MB first (~50 us per small file)
                buf = fh.readall()
                self._check_start(buf)
                if len(buf) < READ_CHUNK:
                    yield buf, 0, True
                    return
            else:
                buf = fh.read(READ_CHUNK) or b""
                self._check_start(buf)
            base = 0
            while True:
                cut = len(buf)
                while True:  # the last energy line whose line is complete
                    cut = buf.rfind(b"\n!", 0, cut)
                    if cut <= 0 or (buf.find(b"\n", cut + 1) > 0 and _ENERGY_RE.match(buf, cut)):
                        break
                if cut > 0:
                    yield buf[:cut], base, False
                    base += cut
                    buf = buf[cut:]
                data = fh.read(READ_CHUNK)  # a raw read: any size up to READ_CHUNK, b"" at the end
                if not data:
                    yield buf, base, True
                    return
                buf += data

    def _check_start(self, data: bytes) -> None:
        if not data:
            raise ParseError(self.path, "a pw.x output, found an empty file", line=1)
        if data.find(b"\x00", 0, 65536) >= 0:
            raise ParseError(self.path, "a text pw.x output, found binary data", line=1)
        if data.find(b"Program PWSCF", 0, 200000) < 0:
            raise ParseError(self.path, "a pw.x output (no 'Program PWSCF' header line)", line=1)

    # -- header ---------------------------------------------------------------------------
    def parse_header(self, head: bytes) -> None:
        m = _NAT_RE.search(head)
        if not m:
            raise ParseError(self.path, "'number of atoms/cell' in the pw.x header")
        self.nat = int(m.group(1))
        m = _ALAT_RE.search(head)
        self.alat = float(m.group(1)) if m else 0.0
        m = _THRESHOLD_RE.search(head)
        try:
            self.threshold = float(m.group(1).replace(b"D", b"E")) if m else 0.0
        except ValueError:
            self.threshold = 0.0
        if self.inp is not None:
            labels, cell, coords = pwinput.input_structure(self.inp)
            if len(labels) != self.nat:
                raise ParseError(self.inp.path, f"{self.nat} atoms as in the output {self.path}, found {len(labels)}")
        else:
            warnings.warn(
                f"{self.path}: no pw.x input found (expected {input_path_for(self.path)}); "
                "species, cell and first geometry are read from the output header "
                "(6-7 significant digits); pass input_file= for full precision",
                stacklevel=4,
            )
            labels, cell, coords = self._header_structure(head)
        self.names, self.types, self.numbs = pwinput.types_of(labels)
        self.cell, self.coords = cell, coords

    def _header_structure(self, head: bytes) -> tuple[list[str], np.ndarray, np.ndarray]:
        if not self.alat:
            raise ParseError(self.path, "'lattice parameter (alat)' in the pw.x header")
        axes = {int(m.group(1)): [float(x) for x in m.groups()[1:]] for m in _AXES_RE.finditer(head)}
        if sorted(axes) != [1, 2, 3]:
            raise ParseError(self.path, "the 'crystal axes' a(1) a(2) a(3) in the pw.x header")
        cell = np.array([axes[1], axes[2], axes[3]]) * self.alat * BOHR_TO_ANGSTROM
        i = head.find(b"positions (alat units)")
        taus = list(_TAU_RE.finditer(head, i if i >= 0 else 0))[: self.nat]
        if i < 0 or len(taus) != self.nat:
            raise ParseError(self.path, f"{self.nat} 'tau(...)' positions in the pw.x header")
        labels = [m.group(1).decode() for m in taus]
        coords = np.array([[float(x) for x in m.groups()[1:]] for m in taus]) * self.alat * BOHR_TO_ANGSTROM
        return labels, cell, coords

    # -- one buffer ---------------------------------------------------------------------------
    @staticmethod
    def _option(opt: bytes) -> tuple[str, float | None]:
        m = _OPTION_RE.match(opt)
        if not m or not (m.group(1) or m.group(3)):
            return "alat", None
        unit = (m.group(1) or m.group(3)).decode().lower()
        val = float(m.group(2).replace(b"D", b"E").replace(b"d", b"e")) if m.group(2) else None
        return unit, val

    def _error(self, what: str, buf: bytes, base: int, pos: int, frame: int | None = None) -> ParseError:
        """A ParseError at ``buf[pos]`` (``buf`` starts at file offset ``base``); the line is counted only now."""
        line = 1 + buf.count(b"\n", 0, max(pos, 0))
        with open(self.path, "rb") as fh:
            left = base
            while left > 0:
                data = fh.read(min(left, READ_CHUNK))
                if not data:
                    break
                line += data.count(b"\n")
                left -= len(data)
        return ParseError(self.path, what, line=line, frame=frame)

    def _cells(self, buf: bytes, base: int) -> tuple[np.ndarray, np.ndarray]:
        """Offsets and cells (Å) of the CELL_PARAMETERS blocks of ``buf``."""
        ms = _scan(_CELL_RE, b"\nCELL_PARAMETERS", buf)
        if not ms:
            return np.zeros(0, np.int64), np.zeros((0, 3, 3))
        try:
            cells = np.array(b"".join(m.group(2) for m in ms).split(), dtype=np.float64).reshape(len(ms), 3, 3)
        except ValueError:
            for m in ms:
                try:
                    np.array(m.group(2).split(), dtype=np.float64).reshape(3, 3)
                except ValueError:
                    raise self._error("3 rows of 3 numbers after CELL_PARAMETERS", buf, base, m.start() + 1) from None
            raise
        for k, m in enumerate(ms):
            unit, alat = self._option(m.group(1))
            scale = {"angstrom": 1.0, "bohr": BOHR_TO_ANGSTROM}.get(unit, (alat or self.alat) * BOHR_TO_ANGSTROM)
            cells[k] *= scale
        return np.array([m.start() for m in ms], dtype=np.int64), cells

    def _positions(self, buf: bytes, base: int, c_off: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Offsets and Cartesian coordinates (Å) of the ATOMIC_POSITIONS blocks of ``buf``."""
        nat = self.nat
        ms = _scan(_positions_re(nat), b"\nATOMIC_POSITIONS", buf)
        if not ms:
            return np.zeros(0, np.int64), np.zeros((0, nat, 3))
        offs = np.array([m.start() for m in ms], dtype=np.int64)
        toks = b"".join(m.group(2) for m in ms).split()
        ncol = len(toks) // (len(ms) * nat) if nat else 0
        vals = None
        if ncol in (4, 7) and len(toks) == ncol * len(ms) * nat:
            try:
                vals = np.array(toks).reshape(len(ms), nat, ncol)[..., 1:4].astype(np.float64)
            except ValueError:
                vals = None
        if vals is None:
            vals = np.empty((len(ms), nat, 3))
            for k, m in enumerate(ms):
                try:
                    vals[k] = np.array([ln.split()[1:4] for ln in m.group(2).splitlines()], dtype=np.float64)
                except ValueError:
                    raise self._error("label x y z on every ATOMIC_POSITIONS base", buf, base, m.start() + 1) from None
        ci = np.searchsorted(c_off, offs) - 1  # the cell printed before each block (crystal units)
        options = [m.group(1) for m in ms]
        for opt in set(options):
            unit, _ = self._option(opt)
            sel = np.array([o == opt for o in options])
            if unit == "crystal":
                pos_cells = np.where(
                    (ci[sel] >= 0)[:, None, None], cells[np.maximum(ci[sel], 0)] if len(cells) else 0, self.cell[None]
                )
                vals[sel] = vals[sel] @ pos_cells
            elif unit in ("angstrom", "bohr", "alat"):
                vals[sel] = pwinput.positions_to_angstrom(vals[sel], unit, self.cell, self.alat, self.path)
            else:
                k = int(np.flatnonzero(sel)[0])
                raise self._error(
                    f"ATOMIC_POSITIONS in alat, bohr, angstrom or crystal, got {unit!r}", buf, base, ms[k].start() + 1
                )
        return offs, vals

    def parse_buffer(
        self, buf: bytes, base: int, eof: bool, first_index: int, ems: list[re.Match[bytes]] | None = None
    ) -> tuple[dict[str, np.ndarray], int]:
        """The frames of one buffer as arrays (before unit conversion of labels), and the number of energy lines.

        ``ems``: the energy lines of ``buf`` when the caller has scanned for them already."""
        nat = self.nat
        if ems is None:
            ems = _scan(_ENERGY_RE, b"\n!", buf)
        ne = len(ems)
        c_off, cells = self._cells(buf, base)
        p_off, coords = self._positions(buf, base, c_off, cells)
        nc_list = _offsets(_NOT_CONVERGED, buf)
        if ne == 1 and not len(c_off) and not len(p_off):
            # the scans for forces and stress go as far as the first block after the energy only
            fits = _iscan(_forces_re(nat), _FORCES, buf)
            sits = _iscan(_STRESS_RE, _STRESS, buf)
            return self._parse_one(buf, base, eof, first_index, ems[0], fits, sits, nc_list), 1
        fms = _scan(_forces_re(nat), _FORCES, buf)
        sms = _scan(_STRESS_RE, _STRESS, buf)
        e_off = np.array([m.start() for m in ems], dtype=np.int64)
        ends = np.append(e_off[1:], len(buf)) if ne else np.zeros(0, np.int64)
        f_off = np.array([m.start() for m in fms], dtype=np.int64)
        s_off = np.array([m.start() for m in sms], dtype=np.int64)
        nc_off = np.array(nc_list, dtype=np.int64)

        # forces: the first complete block after each energy base, before the next one
        fi = np.searchsorted(f_off, e_off)
        has_f = fi < len(f_off)
        has_f[has_f] = f_off[fi[has_f]] < ends[has_f]
        f_pos = np.where(has_f, f_off[np.minimum(fi, max(len(f_off) - 1, 0))] if len(f_off) else 0, ends)
        # stress: the first complete block after the forces, before the next energy base
        si = np.searchsorted(s_off, f_pos)
        has_s = si < len(s_off)
        has_s[has_s] = s_off[si[has_s]] < ends[has_s]
        drop = np.zeros(ne, dtype=bool)
        incomplete = ~has_f
        if not has_s.all():
            incomplete |= ~has_s & self._stress_marked(buf, f_pos, ends)
        for i in np.flatnonzero(incomplete):
            self._incomplete(
                buf, base, int(e_off[i]), int(ends[i]), not has_f[i], eof and i == ne - 1, int(first_index + i)
            )
            drop[i] = True
        # convergence
        nseg = np.searchsorted(e_off, nc_off, side="right") - 1
        before_f = (nseg >= 0) & (nc_off < f_pos[np.maximum(nseg, 0)]) if ne else np.zeros(len(nc_off), bool)
        self.skipped_steps += int(np.count_nonzero(~before_f))
        if self.convergence_check and ne:
            bad = np.zeros(ne, dtype=bool)
            bad[nseg[before_f]] = True
            if self.threshold:
                acc = np.array([float(m.group(2)) if m.group(2) else 0.0 for m in ems])
                bad |= acc > self.threshold * (1 + 1e-6)
            bad &= ~drop
            self.unconverged.extend((first_index + np.flatnonzero(bad)).tolist())
            drop |= bad
        keep = np.flatnonzero(~drop)
        # geometry: the last cell/positions printed before each energy base (else the carried state)
        pi = np.searchsorted(p_off, e_off) - 1
        ci = np.searchsorted(c_off, e_off) - 1
        frame_coords = (
            np.where((pi >= 0)[:, None, None], coords[np.maximum(pi, 0)] if len(p_off) else 0, self.coords[None])
            if ne
            else np.zeros((0, nat, 3))
        )
        frame_cells = (
            np.where((ci >= 0)[:, None, None], cells[np.maximum(ci, 0)] if len(c_off) else 0, self.cell[None])
            if ne
            else np.zeros((0, 3, 3))
        )
        if len(p_off):
            self.coords = coords[-1]
        if len(c_off):
            self.cell = cells[-1]
        out: dict[str, np.ndarray] = {"cells": frame_cells[keep], "coords": frame_coords[keep]}
        try:
            out["energies"] = np.array([ems[i].group(1) for i in keep], dtype=np.float64)
        except ValueError:
            i = next(i for i in keep if not _is_float(ems[i].group(1)))
            raise self._error(
                "a number after 'total energy ='", buf, base, e_off[i] + 1, first_index + int(i)
            ) from None
        out["forces"] = self._bulk(
            [fms[fi[i]] for i in keep],
            nat,
            9,
            "atom N type T force = fx fy fz on every base",
            buf,
            base,
            first_index,
            keep,
        ).reshape(len(keep), nat, 3)
        if len(keep) and has_s[keep].all():
            out["stress"] = self._bulk(
                [sms[si[i]] for i in keep],
                3,
                6,
                "3 rows of 6 numbers after 'total   stress'",
                buf,
                base,
                first_index,
                keep,
            ).reshape(len(keep), 3, 6)
        elif has_s[keep].any():
            self.stress_missing = True
        return out, ne

    def _incomplete(
        self, buf: bytes, base: int, start: int, end: int, missing_forces: bool, last: bool, index: int
    ) -> None:
        """A frame without its forces or with a cut stress block: an error, or a warning for the last frame."""
        seg = buf[start:end]
        if missing_forces and _FORCES not in seg and b"JOB DONE" in seg:
            raise self._error(
                "a 'Forces acting on atoms' block after the energy (run pw.x with tprnfor=.true.)",
                buf,
                base,
                start + 1,
                index,
            )
        what = (
            "a complete 'Forces acting on atoms' block"
            if missing_forces
            else "3 rows of 6 numbers after 'total   stress'"
        )
        if not last:
            raise self._error(what, buf, base, start + 1, index)
        warnings.warn(f"{self.path}: frame {index} is truncated ({what}); dropped", stacklevel=6)

    def _parse_one(
        self,
        buf: bytes,
        base: int,
        eof: bool,
        index: int,
        em: re.Match[bytes],
        fms: Iterable[re.Match[bytes]],
        sms: Iterable[re.Match[bytes]],
        nc_off: list[int],
    ) -> dict[str, np.ndarray]:
        """:meth:`parse_buffer` for a buffer of one energy line and no geometry blocks (a single-point
        output, the common case of a dataset): the same rules with scalars, without the
        per-call cost of some fifty small array operations."""
        e, end = em.start(), len(buf)
        fm = next((m for m in fms if m.start() >= e), None)
        f_pos = fm.start() if fm is not None else end
        sm = next((m for m in sms if m.start() >= f_pos), None)
        drop = False
        if fm is None or (sm is None and buf.find(_STRESS, f_pos) >= 0):
            self._incomplete(buf, base, e, end, fm is None, eof, index)
            drop = True
        before_f = [e <= c < f_pos for c in nc_off]
        self.skipped_steps += before_f.count(False)
        if self.convergence_check and not drop:
            acc = float(em.group(2)) if em.group(2) else 0.0
            if any(before_f) or (self.threshold and acc > self.threshold * (1 + 1e-6)):
                self.unconverged.append(index)
                drop = True
        nat = self.nat
        if drop:
            return {
                "cells": np.zeros((0, 3, 3)),
                "coords": np.zeros((0, nat, 3)),
                "energies": np.zeros(0),
                "forces": np.zeros((0, nat, 3)),
            }
        try:
            energy = float(em.group(1))
        except ValueError:
            raise self._error("a number after 'total energy ='", buf, base, e + 1, index) from None
        keep = np.zeros(1, np.int64)
        assert fm is not None
        out = {
            "cells": self.cell[None].copy(),
            "coords": self.coords[None].copy(),
            "energies": np.array([energy]),
            "forces": self._bulk(
                [fm], nat, 9, "atom N type T force = fx fy fz on every base", buf, base, index, keep
            ).reshape(1, nat, 3),
        }
        if sm is not None:
            out["stress"] = self._bulk(
                [sm], 3, 6, "3 rows of 6 numbers after 'total   stress'", buf, base, index, keep
            ).reshape(1, 3, 6)
        return out

    @staticmethod
    def _stress_marked(buf: bytes, f_pos: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Whether a (maybe incomplete) stress block starts between each frame's forces and its end."""
        marks = np.array(_offsets(_STRESS, buf), dtype=np.int64)
        k = np.searchsorted(marks, f_pos)
        ok = k < len(marks)
        ok[ok] = marks[k[ok]] < ends[ok]
        return ok

    def _bulk(
        self,
        ms: list[re.Match[bytes]],
        nrows: int,
        ncol: int,
        what: str,
        buf: bytes,
        base: int,
        first_index: int,
        keep: np.ndarray,
    ) -> np.ndarray:
        """The numbers of the captured blocks, ``ncol`` tokens per row, as ``(rows, ncol)``; for the
        9 tokens of a force line (``atom N type T force = fx fy fz``) its last 3 columns only.
        A bad frame raises ParseError.

        The tokens go to numpy as a list of ``bytes`` with a float dtype: several times faster
        than an array of strings cast to float (which also cost a fixed ~10 us per call)."""
        toks = b"".join(m.group(1) for m in ms).split()
        nrow = len(ms) * nrows
        if len(toks) == nrow * ncol:
            try:
                if ncol != 9:
                    return np.array(toks, dtype=np.float64).reshape(nrow, ncol)
                if toks[5::9].count(b"=") == nrow:
                    xyz = np.array(toks[6::9] + toks[7::9] + toks[8::9], dtype=np.float64)
                    return xyz.reshape(3, nrow).T.copy()
            except ValueError:
                pass
        for i, m in zip(keep, ms, strict=True):
            rows = m.group(1).split(b"\n")[:-1]
            ok = len(rows) == nrows and all(len(r.split()) == ncol for r in rows)
            if ok:
                arr = np.array(b" ".join(rows).split()).reshape(-1, ncol)
                ok = ncol != 9 or bool(np.all(arr[:, 5] == b"="))
                if ok:
                    ok = all(_is_float(x) for x in arr[:, -3:].ravel())
            if not ok:
                raise self._error(what, buf, base, m.start(), first_index + int(i))
        raise self._error(what, buf, base, 0)  # pragma: no cover

    def _warn_convergence(self) -> None:
        if self.unconverged:
            warnings.warn(f"{self.path}: SCF not converged in frames {self.unconverged}; dropped", stacklevel=4)
        if self.skipped_steps:
            warnings.warn(
                f"{self.path}: {self.skipped_steps} ionic step(s) whose SCF did not converge printed "
                "no total energy; skipped",
                stacklevel=4,
            )
        if self.stress_missing:
            warnings.warn(f"{self.path}: some frames have no stress block; virials dropped", stacklevel=4)

    # -- frames -------------------------------------------------------------------------------
    def blocks(self, chunk: int) -> Iterator[dict[str, Any]]:
        index = 0
        yielded = False
        bufs = self.buffers()
        for buf, base, eof in bufs:
            ems = None
            if not self.nat:  # the first buffer: its energy lines are scanned once, for the header too
                ems = _scan(_ENERGY_RE, b"\n!", buf)
                self.parse_header(buf[: ems[0].start() if ems else len(buf)])
            arrays, ne = self.parse_buffer(buf, base, eof, index, ems)
            if eof:  # close the file and drop the text now: io.convert keeps many readers suspended
                bufs.close()
            del buf, ems  # a match holds on to the whole text
            index += ne
            n = len(arrays["energies"])
            if 0 < n <= chunk:  # one block (a single point): no slicing
                yield self._block(arrays)
                yielded = True
                continue
            for start in range(0, n, chunk):
                part = {k: v[start : start + chunk] for k, v in arrays.items()}
                yield self._block(part)
                yielded = True
        self._warn_convergence()
        if not yielded:
            empty = {
                "cells": np.zeros((0, 3, 3)),
                "coords": np.zeros((0, self.nat, 3)),
                "energies": np.zeros(0),
                "forces": np.zeros((0, self.nat, 3)),
            }
            yield self._block(empty)

    def _block(self, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        """A data dict from the raw arrays of some frames (units converted here)."""
        cells = np.ascontiguousarray(arrays["cells"], dtype=np.float64)
        data: dict[str, Any] = {
            "atom_names": list(self.names),
            "atom_numbs": self.numbs.copy(),
            "atom_types": self.types.copy(),
            "cells": cells,
            "coords": np.ascontiguousarray(arrays["coords"], dtype=np.float64),
            "energies": arrays["energies"] * RYDBERG_TO_EV,
            "forces": arrays["forces"] * RYDBERG_PER_BOHR_TO_EV_PER_ANGSTROM,
            "nopbc": False,
        }
        if "stress" in arrays:
            stress = arrays["stress"]
            if self.precise_stress:
                stress = stress[:, :, 0:3] * RY_PER_BOHR3_TO_EV_PER_ANGSTROM3
            else:
                stress = stress[:, :, 3:6] * KBAR_TO_EV_PER_ANGSTROM3
            data["virials"] = stress * np.abs(_det3(cells))[:, None, None]
        if self.lower_triangular and len(cells):
            rotate_lower_triangular(data)
        return data


def _is_float(tok: bytes) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _det3(m: np.ndarray) -> np.ndarray:
    """Determinants of a stack of 3x3 matrices (the rule of Sarrus; far less call overhead than
    ``np.linalg.det`` for the one or few frames of a single-point output). One frame is done with
    Python floats, in the same order of operations (so with the same result, to the bit)."""
    if len(m) == 1:
        (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = m[0].tolist()
        return np.array([a0 * (b1 * c2 - b2 * c1) - a1 * (b0 * c2 - b2 * c0) + a2 * (b0 * c1 - b1 * c0)])
    a, b, c = m[:, 0], m[:, 1], m[:, 2]
    return (
        a[:, 0] * (b[:, 1] * c[:, 2] - b[:, 2] * c[:, 1])
        - a[:, 1] * (b[:, 0] * c[:, 2] - b[:, 2] * c[:, 0])
        + a[:, 2] * (b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0])
    )


def rotate_lower_triangular(data: dict[str, Any]) -> None:
    """Rotate every frame in place so that its cell is lower triangular (vectorised over frames).

    Same rotation as :meth:`dpconv.system.System.rot_lower_triangular`: QR of the
    transposed cell, signs chosen so that the diagonal is positive. Cells that are
    already lower triangular with a positive diagonal (cubic and orthorhombic boxes,
    most single-point inputs) need the identity rotation, and are left as they are.
    """
    cells = data["cells"]
    if len(cells) == 1:  # the test with Python floats (a dozen numpy calls cost more than a single point's parse)
        (a0, a1, a2), (_, b1, b2), (_, _, c2) = cells[0].tolist()
        if not (a1 or a2 or b2) and a0 > 0 and b1 > 0 and c2 > 0:
            return
    elif not cells[:, 0, 1:].any() and not cells[:, 1, 2].any() and (np.diagonal(cells, axis1=1, axis2=2) > 0).all():
        return
    q, r = np.linalg.qr(cells.transpose(0, 2, 1))
    sign = np.sign(np.diagonal(r, axis1=1, axis2=2))
    sign[sign == 0] = 1.0
    rot = q * sign[:, None, :]
    data["cells"] = cells @ rot
    for k in ("coords", "forces"):
        if k in data:
            data[k] = data[k] @ rot
    if "virials" in data:
        data["virials"] = rot.transpose(0, 2, 1) @ data["virials"] @ rot
