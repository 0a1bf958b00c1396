"""Reading, writing and streaming conversion.

* :func:`read` returns a :class:`~dpconv.system.System` or
  :class:`~dpconv.system.LabeledSystem`; :func:`iread` yields systems of at most
  ``chunk_size`` frames while the reader streams, so memory stays bounded.
* :func:`write` writes a system or a :class:`~dpconv.system.MultiSystems`.
* :func:`convert` streams frame blocks from readers to a writer without
  holding whole trajectories.

Every write goes to a temporary sibling of the target and is renamed into place
only when the writer has finished, so an interrupted or failed write never leaves
a half-written dataset where a trainer would read it.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from dpconv import registry
from dpconv.errors import DpconvError, ParseError, SchemaError
from dpconv.system import LabeledSystem, MultiSystems, System, _map_types, _strip_labels, concatenate_data

PathLike = str | os.PathLike[str]


# -- reading -------------------------------------------------------------------------
def _check_exists(path: PathLike) -> str:
    p = os.fspath(path)
    if not os.path.exists(p) and not glob.glob(glob.escape(p) + ".*"):  # a file prefix (qe/cp/traj) is fine
        raise DpconvError(f"{p}: no such file or folder")
    return p


def iter_blocks(path: PathLike, fmt: str = "auto", **kwargs: Any) -> Iterator[dict[str, Any]]:
    """The raw frame blocks (data dicts) a reader yields for ``path``."""
    p = _check_exists(path) if "://" not in os.fspath(path) else os.fspath(path)
    yield from _read_blocks(p, registry.resolve(fmt, p, "read"), kwargs)


def _read_blocks(p: str, info: registry.FormatInfo, kwargs: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """:func:`iter_blocks` for a path already checked and its format already resolved."""
    reader = registry.function(info, "read")
    try:
        yield from reader(p, **kwargs)  # type: ignore[misc]
    except (DpconvError, OSError):
        raise
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise DpconvError(f"format {info.name!r}: {exc}") from None
        raise ParseError(p, f"reader {info.name} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # a reader's bug must still name the file
        raise ParseError(p, f"reader {info.name} failed: {type(exc).__name__}: {exc}") from exc


def _check_model(info: registry.FormatInfo, labeled: bool, path: str) -> None:
    if labeled and info.reads == "System":
        raise DpconvError(f"{path}: format {info.name!r} has no labels; read it as a System")


def _fit(data: Mapping[str, Any], labeled: bool | None) -> dict[str, Any]:
    """Drop labels for an unlabeled target; ``None`` keeps what the reader gave."""
    return _strip_labels(data) if labeled is False else dict(data)


def _has_labels(data: Mapping[str, Any]) -> bool:
    return "energies" in data and "forces" in data


def read_data(path: PathLike, fmt: str = "auto", *, labeled: bool | None = False, **kwargs: Any) -> dict[str, Any]:
    """All frames of ``path`` as one data dict (one concatenation of the reader's blocks).

    ``labeled=False`` drops labels, ``True`` requires a format with labels, ``None``
    keeps whatever the reader gives.
    """
    p = _check_exists(path)
    info = registry.resolve(fmt, p, "read")
    if labeled:
        _check_model(info, labeled, p)
    blocks = [_fit(b, labeled) for b in _read_blocks(p, info, kwargs)]
    if labeled and blocks:
        missing = [k for k in ("energies", "forces") if not all(k in b for b in blocks)]
        if missing:
            raise ParseError(
                p,
                f"{' and '.join(missing)} for a LabeledSystem, but {info.name} gave none "
                "(read it as a System, or see the format's options for labels)",
            )
    return concatenate_data(blocks, bool(labeled))


def read(
    path: PathLike,
    fmt: str = "auto",
    *,
    labeled: bool | None = None,
    type_map: Sequence[str] | None = None,
    begin: int = 0,
    step: int = 1,
    **kwargs: Any,
) -> System:
    """Read ``path`` into a LabeledSystem when it has energies and forces (or
    ``labeled=True``), else a System."""
    data = read_data(path, fmt, labeled=labeled, type_map=type_map, **kwargs)
    if labeled is None:
        labeled = _has_labels(data)
    cls = LabeledSystem if labeled else System
    return cls(data=data, type_map=type_map, begin=begin, step=step)


def _rechunk(blocks: Iterable[Mapping[str, Any]], size: int, labeled: bool) -> Iterator[dict[str, Any]]:
    pending: list[Mapping[str, Any]] = []
    count = 0
    for b in blocks:
        n = len(b["coords"])
        start = 0
        while start < n:
            take = min(size - count, n - start)
            part = b if (start == 0 and take == n) else _slice_block(b, slice(start, start + take))
            pending.append(part)
            count += take
            start += take
            if count == size:
                yield concatenate_data(pending, labeled)
                pending, count = [], 0
    if pending:
        yield concatenate_data(pending, labeled)


def _slice_block(block: Mapping[str, Any], idx: slice) -> dict[str, Any]:
    from dpconv import schema

    out = dict(block)
    for k in schema.frame_fields(block):
        out[k] = np.asarray(block[k])[idx]
    return out


def iread(
    path: PathLike,
    fmt: str = "auto",
    *,
    chunk_size: int = 1000,
    labeled: bool | None = None,
    type_map: Sequence[str] | None = None,
    **kwargs: Any,
) -> Iterator[System]:
    """Yield systems of at most ``chunk_size`` frames; memory is bounded by a chunk
    (plus whatever one block of the reader holds)."""
    p = _check_exists(path)
    info = registry.resolve(fmt, p, "read")
    if labeled:
        _check_model(info, labeled, p)
    blocks = (_fit(b, labeled) for b in _read_blocks(p, info, kwargs))
    for data in _rechunk(blocks, chunk_size, bool(labeled)):
        if labeled is None:
            labeled = _has_labels(data)
        cls = LabeledSystem if labeled else System
        s = cls.from_data(_fit(data, labeled))
        if type_map is not None:
            s.apply_type_map(type_map)
        yield s


def read_multi(
    path: PathLike, fmt: str = "auto", *, type_map: Sequence[str] | None = None, labeled: bool = True, **kwargs: Any
) -> MultiSystems:
    """Read a multi-system source into a :class:`MultiSystems`.

    ``fmt`` may be a multi-system format (``deepmd/hdf5``, ``deepmd/npy/mixed``)
    or a single-system format, in which case ``path`` is a folder whose
    subfolders/files (recursively) are read one by one.
    """
    p = _check_exists(path)
    info = registry.resolve(fmt, p, "read")
    cls = LabeledSystem if labeled and info.reads != "System" else System
    systems: list[System] = []
    if info.multi:
        reader = registry.function(info, "read_systems")
        for _name, blocks in reader(p, **kwargs):  # type: ignore[attr-defined]
            systems.append(cls.from_data(concatenate_data([_fit(b, cls.labeled) for b in blocks], cls.labeled)))
    else:
        for sub in _find_systems(p, info):
            systems.append(cls(sub, fmt=info.name, **kwargs))
    return MultiSystems(*systems, type_map=type_map)


def _find_systems(path: str, info: registry.FormatInfo) -> list[str]:
    if info.matches(path) or not os.path.isdir(path):
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        if info.matches(root):
            found.append(root)
            dirs.clear()
            continue
        found.extend(os.path.join(root, f) for f in sorted(files) if info.matches(os.path.join(root, f)))
    if not found:
        raise DpconvError(f"{path}: no {info.name} system found inside")
    return found


# -- writing -------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[str]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``.

    On any exception (including KeyboardInterrupt) the temporary output is removed
    and ``target`` is left as it was.
    """
    target = os.path.abspath(os.fspath(target))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmpdir = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".dpconv-tmp", dir=parent)
    tmp = os.path.join(tmpdir, os.path.basename(target))
    try:
        yield tmp
        if not os.path.exists(tmp):
            raise DpconvError(f"{target}: the writer produced nothing")
        _fsync_tree(tmp)
        old = None
        if os.path.lexists(target):
            old = os.path.join(tmpdir, ".old")
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            if os.path.isdir(old) and not os.path.islink(old):
                shutil.rmtree(old)
            else:
                os.remove(old)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _fsync_tree(path: str) -> None:
    paths = [path] if os.path.isfile(path) else [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs]
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _blocks_of(system: System) -> Iterator[dict[str, Any]]:
    yield system.data


def write(obj: System | MultiSystems, path: PathLike, fmt: str, **kwargs: Any) -> None:
    """Write a system, or every system of a MultiSystems, atomically.

    A MultiSystems goes to one file for multi-system formats (``deepmd/hdf5``),
    else to a folder with one ``<formula>`` entry per system.
    """
    info = registry.get_format(fmt, action="write")
    if isinstance(obj, MultiSystems):
        named = [(name, _blocks_of(s)) for name, s in obj.systems.items()]
        write_systems(named, path, info, **kwargs)
        return
    if not isinstance(obj, System):
        raise DpconvError(f"cannot write a {type(obj).__name__}")
    write_blocks(_blocks_of(obj), path, info, **kwargs)


def write_blocks(
    blocks: Iterable[Mapping[str, Any]], path: PathLike, info: registry.FormatInfo | str, **kwargs: Any
) -> None:
    """Stream blocks of one system to ``path`` (atomic)."""
    if isinstance(info, str):
        info = registry.get_format(info, action="write")
    writer = getattr(info.load(), "write", None)
    if writer is None:
        write_systems([("system", iter(blocks))], path, info, **kwargs)
        return
    with atomic_path(path) as tmp, _writer_errors(info):
        writer(tmp, blocks, **kwargs)


@contextlib.contextmanager
def _writer_errors(info: registry.FormatInfo) -> Iterator[None]:
    """Turn a bad writer option into a one-line DpconvError."""
    try:
        yield
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc):
            raise DpconvError(f"format {info.name!r} does not take that option: {exc}") from None
        raise


def write_systems(
    systems: Iterable[tuple[str, Iterable[Mapping[str, Any]]]],
    path: PathLike,
    info: registry.FormatInfo | str,
    **kwargs: Any,
) -> None:
    """Write named systems: one multi-system target, or a folder of ``<name>`` targets.
    A single system is written straight to ``path`` when ``single_as_root`` is true."""
    if isinstance(info, str):
        info = registry.get_format(info, action="write")
    single_as_root = kwargs.pop("single_as_root", False)
    mod = info.load()
    systems = list(systems)
    with atomic_path(path) as tmp, _writer_errors(info):
        if hasattr(mod, "write_systems"):
            mod.write_systems(tmp, systems, **kwargs)
        elif single_as_root and len(systems) == 1:
            mod.write(tmp, systems[0][1], **kwargs)
        else:
            os.makedirs(tmp)
            for name, blocks in systems:
                mod.write(os.path.join(tmp, name), blocks, **kwargs)


# -- streaming conversion ------------------------------------------------------------------
Progress = Callable[[int], None]


def convert(
    inputs: PathLike | Sequence[PathLike],
    output: PathLike,
    *,
    in_fmt: str = "auto",
    out_fmt: str = "deepmd/npy",
    type_map: Sequence[str] | None = None,
    labeled: bool | None = None,
    progress: Progress | None = None,
    single_as_root: bool | None = None,
    read_kwargs: Mapping[str, Any] | None = None,
    **write_kwargs: Any,
) -> dict[str, int]:
    """Convert one or many inputs to ``output`` while streaming.

    Inputs are grouped by formula (with one shared type map: ``type_map`` or the
    names in order of first appearance); each group is written as one system.
    With one input (or one resulting system and ``single_as_root``) the system
    goes straight to ``output``; otherwise ``output`` is a folder of
    ``<formula>`` systems (or one multi-system file such as deepmd/hdf5).
    Only the first block of each input is read ahead to learn its formula;
    the rest flows from reader to writer block by block. ``progress(n)`` is
    called with the number of frames of each block written.

    ``labeled``: True keeps labels (error for a format without), False drops
    them, None (default) keeps the labels every input of a group has.

    Returns the number of frames written per system name.
    """
    paths = [os.fspath(inputs)] if isinstance(inputs, (str, os.PathLike)) else [os.fspath(p) for p in inputs]
    if not paths:
        raise DpconvError("no input files given")
    out_info = registry.get_format(out_fmt, action="write")
    read_kwargs = dict(read_kwargs or {})
    infos = [registry.resolve(in_fmt, _check_exists(p), "read") for p in paths]
    if labeled:
        for info, p in zip(infos, paths):
            _check_model(info, labeled, p)

    names: list[str] = list(type_map) if type_map is not None else []
    fixed = type_map is not None
    # peek: the first block of each input (and whether more follow)
    peeked: list[tuple[dict[str, Any], Iterator[dict[str, Any]]]] = []
    for info, p in zip(infos, paths):
        if info.multi and not hasattr(info.load(), "read"):
            raise DpconvError(f"{p}: {info.name} holds several systems; read it with MultiSystems.from_file")
        it = (_fit(b, labeled) for b in _read_blocks(p, info, read_kwargs))
        first = next(it, None)
        if first is None or len(first["coords"]) == 0:
            first = None
            for first in it:
                if len(first["coords"]):
                    break
            else:
                continue  # an input with no frames adds nothing
        for n in first["atom_names"]:
            if n not in names:
                if fixed and np.isin(first["atom_types"], [list(first["atom_names"]).index(n)]).any():
                    raise SchemaError(f"{p}: atom name {n!r} is not in the type map {names}")
                if not fixed:
                    names.append(n)
        peeked.append((first, it))
    if not peeked:
        raise DpconvError("the inputs hold no frames")

    groups: dict[str, list[tuple[dict[str, Any], Iterator[dict[str, Any]]]]] = {}
    for first, it in peeked:
        mapped = _map_types(first, names)  # names is final now: the first block is mapped once, here
        formula = System.from_data(mapped, validate=False).formula
        groups.setdefault(formula, []).append((mapped, it))

    counts: dict[str, int] = {}

    def stream(formula: str) -> Iterator[dict[str, Any]]:
        counts[formula] = 0
        for mapped, it in groups[formula]:
            for b in _chain(mapped, (_map_types(b, names) for b in it)):
                counts[formula] += len(b["coords"])
                if progress is not None:
                    progress(len(b["coords"]))
                yield b

    if single_as_root is None:
        single_as_root = len(paths) == 1
    if len(groups) == 1 and single_as_root and hasattr(out_info.load(), "write"):
        (formula,) = groups
        write_blocks(stream(formula), output, out_info, **write_kwargs)
    else:
        write_systems([(f, stream(f)) for f in groups], output, out_info, single_as_root=single_as_root, **write_kwargs)
    return counts


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest
