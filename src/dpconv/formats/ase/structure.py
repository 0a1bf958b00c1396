"""``ase/structure``: any file ASE reads or writes, through ``ase.Atoms`` objects.

ASE (https://wiki.fysik.dtu.dk/ase/) is an optional dependency: it is imported
only when this format or the two helpers are used.

* :func:`from_ase_atoms` turns one ``Atoms`` or a list of them into a
  :class:`~dpconv.system.System`, or a :class:`~dpconv.system.LabeledSystem`
  when every frame carries an energy and forces (a ``SinglePointCalculator``, as
  ASE's readers attach, or any calculator).
* :func:`to_ase_atoms` turns a System into one ``Atoms`` per frame; a
  LabeledSystem's labels go into a ``SinglePointCalculator``.

Conventions: ASE positions and cells are Å and its energies eV, like dpconv.
ASE's stress is the physical stress (positive under tension, ``(1/V) dE/dε``) in
eV/Å³; DeePMD's virial is ``-dE/dε``, so ``virial = -stress * volume`` and back
``stress = -virial / volume``. A virial stored by a tool in ``atoms.info["virial"]``
(eV) is taken as it is. ``pbc`` all False gives ``nopbc=True`` (and back); a
partly periodic ``Atoms`` (a slab) counts as periodic, as in dpdata.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dpconv.errors import DpconvError, ParseError

if TYPE_CHECKING:
    from ase import Atoms

    from dpconv.system import System

#: ASE's Voigt order of the stress: xx yy zz yz xz xy
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def _require_ase() -> None:
    try:
        import ase  # noqa: F401
    except ImportError:
        raise DpconvError("the ase/structure format needs ASE: pip install ase (or dpconv[ase])") from None


# -- Atoms -> data ------------------------------------------------------------------------------
def _labels(atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray | None] | None:
    """(energy, forces, virial or None) of a frame, or None when it lacks energy or forces."""
    from ase.calculators.calculator import PropertyNotImplementedError

    if atoms.calc is None:
        return None
    try:
        results = getattr(atoms.calc, "results", {})
        # free_energy (VASP's TOTEN) is what DeePMD data sets hold, as in dpdata
        free = results.get("free_energy")
        energy = float(free) if free is not None else float(atoms.get_potential_energy())
        forces = np.asarray(atoms.get_forces(), np.float64)
    except (PropertyNotImplementedError, RuntimeError, KeyError):
        return None
    virial = None
    info_virial = atoms.info.get("virial")
    if info_virial is not None:
        virial = np.asarray(info_virial, np.float64).reshape(3, 3)
    else:
        try:
            stress = np.asarray(atoms.get_stress(voigt=False), np.float64)
        except (PropertyNotImplementedError, RuntimeError, KeyError, ValueError):
            stress = None
        if stress is not None:
            virial = -stress * atoms.get_volume()
    return energy, forces, virial


def _frame(atoms: Atoms) -> tuple[list[str], np.ndarray, np.ndarray, bool]:
    symbols = list(atoms.get_chemical_symbols())
    cell = np.asarray(atoms.cell.array, np.float64)
    coords = np.asarray(atoms.get_positions(), np.float64)
    nopbc = not bool(np.any(atoms.get_pbc()))
    return symbols, cell, coords, nopbc


class _Builder:
    """Collects frames of the same atoms into data dicts."""

    def __init__(self, path: str, labeled: bool | None = None) -> None:
        self.path = path
        self.labeled = labeled  # None: decided by the first frame
        self.symbols: list[str] | None = None
        self.base: dict[str, Any] = {}
        self.has_virial = False
        self.dropped: list[int] = []
        self._clear()

    def _clear(self) -> None:
        self.cells: list[np.ndarray] = []
        self.coords: list[np.ndarray] = []
        self.energies: list[float] = []
        self.forces: list[np.ndarray] = []
        self.virials: list[np.ndarray] = []

    def __len__(self) -> int:
        return len(self.coords)

    def add(self, atoms: Atoms, index: int) -> None:
        symbols, cell, coords, nopbc = _frame(atoms)
        labels = _labels(atoms) if self.labeled is not False else None
        if self.symbols is None:
            self.symbols = symbols
            names = list(dict.fromkeys(symbols))
            types = np.array([names.index(s) for s in symbols], np.int64)
            self.base = {
                "atom_names": names,
                "atom_numbs": np.bincount(types, minlength=len(names)).astype(np.int64),
                "atom_types": types,
                "nopbc": nopbc,
            }
            if self.labeled is None:
                self.labeled = labels is not None
            self.has_virial = bool(self.labeled and labels is not None and labels[2] is not None and not nopbc)
        elif symbols != self.symbols:
            raise ParseError(
                self.path,
                "the same atoms in every frame (as frame 0); read frames of other atoms separately",
                frame=index,
            )
        if self.labeled:
            if labels is None:
                self.dropped.append(index)
                return
            energy, forces, virial = labels
            if self.has_virial and virial is None:
                raise ParseError(self.path, "a stress or virial in every frame (as in frame 0)", frame=index)
            self.energies.append(energy)
            self.forces.append(forces)
            if self.has_virial:
                self.virials.append(virial)  # type: ignore[arg-type]
        self.cells.append(cell)
        self.coords.append(coords)

    def block(self) -> dict[str, Any]:
        out = dict(self.base)
        out["atom_names"] = list(self.base["atom_names"])
        out["cells"] = np.array(self.cells, np.float64).reshape(-1, 3, 3)
        out["coords"] = np.array(self.coords, np.float64).reshape(len(self.coords), -1, 3)
        if self.labeled:
            out["energies"] = np.array(self.energies, np.float64)
            out["forces"] = np.array(self.forces, np.float64).reshape(out["coords"].shape)
            if self.has_virial:
                out["virials"] = np.array(self.virials, np.float64).reshape(-1, 3, 3)
        self._clear()
        return out

    def warn_dropped(self) -> None:
        if self.dropped:
            shown = ", ".join(map(str, self.dropped[:20])) + (" ..." if len(self.dropped) > 20 else "")
            warnings.warn(f"{self.path}: frames without energy or forces dropped: {shown}", stacklevel=4)


def from_ase_atoms(
    atoms_or_list: Atoms | Iterable[Atoms],
    type_map: Sequence[str] | None = None,
    labeled: bool | None = None,
) -> System:
    """A System (or LabeledSystem when every frame has energy and forces) from ``Atoms``.

    ``labeled`` forces the choice: True requires labels (frames without them are
    dropped with a warning), False ignores them.
    """
    from ase import Atoms

    from dpconv.system import LabeledSystem, System

    frames = [atoms_or_list] if isinstance(atoms_or_list, Atoms) else list(atoms_or_list)
    if not frames:
        raise DpconvError("no Atoms given")
    b = _Builder("<Atoms>", labeled)
    for i, a in enumerate(frames):
        b.add(a, i)
    b.warn_dropped()
    data = b.block()
    cls = LabeledSystem if b.labeled else System
    return cls(data=data, type_map=type_map)


# -- data -> Atoms ------------------------------------------------------------------------------
def _atoms_of(data: Mapping[str, Any]) -> Iterator[Atoms]:
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    names = list(data["atom_names"])
    symbols = [names[t] for t in np.asarray(data["atom_types"]).tolist()]
    pbc = not bool(data.get("nopbc", False))
    labeled = "energies" in data and "forces" in data
    virials = data.get("virials") if labeled else None
    for i in range(len(data["coords"])):
        atoms = Atoms(symbols=symbols, positions=data["coords"][i], cell=data["cells"][i], pbc=pbc)
        if labeled:
            results: dict[str, Any] = {
                "energy": float(data["energies"][i]),
                "forces": np.array(data["forces"][i], np.float64),
            }
            if virials is not None and pbc:
                volume = abs(float(np.linalg.det(data["cells"][i])))
                if volume > 0:
                    stress = -np.asarray(virials[i], np.float64) / volume
                    results["stress"] = np.array([stress[r, c] for r, c in VOIGT])
            atoms.calc = SinglePointCalculator(atoms, **results)
        yield atoms


def to_ase_atoms(system: System | Mapping[str, Any]) -> list[Atoms]:
    """One ``ase.Atoms`` per frame; labels (energy, forces, stress from the virial) in a
    ``SinglePointCalculator``."""
    _require_ase()
    data = system if isinstance(system, Mapping) else system.data
    return list(_atoms_of(data))


# -- the format ---------------------------------------------------------------------------------
def read(
    path: str,
    type_map: Sequence[str] | None = None,
    ase_fmt: str | None = None,
    index: Any = ":",
    chunk: int = 256,
    **ase_kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Yield blocks of frames of any file ASE can read (``ase.io.iread``).

    Parameters
    ----------
    type_map:
        Not used for naming (ASE gives elements); the System reorders types to it.
    ase_fmt:
        ASE's format name (``"extxyz"``, ``"vasp-out"``, ``"espresso-out"``, ...); None lets
        ASE guess from the name and contents.
    index:
        ASE's frame selection (``":"``, ``"-1"``, ``"::10"``, a slice); all frames by default.
    chunk:
        Frames per yielded block.
    **ase_kwargs:
        Passed to ASE's reader.
    """
    _require_ase()
    import ase.io

    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise ParseError(path, "a structure file ASE can read; the file is empty", line=1)
    b = _Builder(path)
    frame = 0
    try:
        frames = ase.io.iread(path, index=index, format=ase_fmt, **ase_kwargs)
        for atoms in frames:
            b.add(atoms, frame)
            frame += 1
            if len(b) >= chunk:
                yield b.block()
    except (DpconvError, TypeError):
        raise
    except Exception as exc:
        raise ParseError(path, f"a file ASE can read: {type(exc).__name__}: {exc}", frame=frame) from exc
    if frame == 0:
        raise ParseError(path, "at least one structure; ASE found none")
    b.warn_dropped()
    if len(b):
        yield b.block()


def write(
    path: str,
    blocks: Iterable[Mapping[str, Any]],
    ase_fmt: str | None = None,
    format: str | None = None,  # ASE's own name for it
    **ase_kwargs: Any,
) -> None:
    """Write every frame with ``ase.io.write`` (``ase_fmt``/``format``, or guessed from the file name).

    Formats ASE can append to are written block by block; others get all frames
    in one call (a single-frame format then needs a single frame).
    """
    _require_ase()
    import ase.io
    from ase.io.formats import filetype, ioformats

    fmt = ase_fmt or format
    if fmt is None:
        try:
            fmt = filetype(path, read=False)
        except Exception as exc:
            raise DpconvError(f"{path}: ASE cannot tell the format from the name; give ase_fmt=...: {exc}") from None
    io_format = ioformats.get(fmt)
    if io_format is None or not io_format.can_write:
        raise DpconvError(f"ASE cannot write format {fmt!r}")
    if io_format.can_append:
        first = True
        for block in blocks:
            atoms = list(_atoms_of(block))
            if atoms:
                ase.io.write(path, atoms, format=fmt, append=not first, **ase_kwargs)
                first = False
        if first:
            raise DpconvError(f"{path}: no frames to write")
        return
    images = [a for block in blocks for a in _atoms_of(block)]
    if not images:
        raise DpconvError(f"{path}: no frames to write")
    if io_format.single and len(images) > 1:
        raise DpconvError(f"ASE's {fmt!r} holds one structure; got {len(images)} frames (write one with sub_system)")
    ase.io.write(path, images if len(images) > 1 else images[0], format=fmt, **ase_kwargs)
