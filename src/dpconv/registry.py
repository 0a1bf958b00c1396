"""Format descriptors, lazy import of format modules, detection and lookup.

A format is described by a light :class:`FormatInfo`; the module that does the
work is imported the first time the format is used. A format module provides
some of these functions:

``read(path, **kwargs) -> Iterator[dict]``
    Yield blocks of frames, each a ``System.data``-like dict (same atom names and
    types in every block). Readers receive ``type_map`` (None or a list of names)
    among the kwargs: formats that store type indices only (LAMMPS, deepmd
    without type_map.raw) name types with it; others may ignore it (the System
    reorders types to it afterwards). Readers that stream yield one block per frame or per
    bounded chunk; :func:`dpconv.io.iread` and :func:`dpconv.io.convert` rely on it.
``read_systems(path, **kwargs) -> Iterator[tuple[str, Iterator[dict]]]``
    For formats holding several systems (a deepmd/hdf5 file, a mixed-type
    folder): yield ``(name, blocks)`` pairs.
``write(path, blocks, **kwargs) -> None``
    Write the blocks (an iterable of data dicts of one system) to ``path``.
    ``path`` is a temporary sibling of the real target; :mod:`dpconv.io` renames it
    into place when the writer returns, so writers need not care about atomicity.
``write_systems(path, systems, **kwargs) -> None``
    Write several named systems (``Iterable[tuple[str, Iterable[dict]]]``) to one target.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Literal

from dpconv.errors import DpconvError, PluginError, UnknownFormatError

Model = Literal["System", "LabeledSystem", "both"]


@dataclass(frozen=True)
class FormatInfo:
    """What dpconv knows of a format before importing its module.

    Attributes
    ----------
    name:
        Canonical name, lower case, e.g. ``"vasp/outcar"``.
    module:
        Dotted path of the implementing module (imported on first use).
    aliases:
        Other accepted names (case-insensitive), e.g. ``("outcar",)``.
    reads:
        Data model the reader produces (``"System"``, ``"LabeledSystem"``,
        ``"both"``) or None when the format cannot be read.
    writes:
        Whether the module has ``write`` (or ``write_systems``).
    multi:
        Whether one file/folder holds several systems (``read_systems``/``write_systems``).
    globs:
        File-name patterns (``fnmatch`` on the base name) for ``fmt="auto"``.
    markers:
        For folder formats: file names whose presence inside a folder identifies it.
    description:
        One line for ``dpconv formats``.
    """

    name: str
    module: str
    aliases: tuple[str, ...] = ()
    reads: Model | None = None
    writes: bool = False
    multi: bool = False
    globs: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    description: str = ""
    plugin: str = field(default="", compare=False)

    def load(self) -> ModuleType:
        """Import and return the implementing module."""
        try:
            return importlib.import_module(self.module)
        except ImportError as exc:
            raise PluginError(f"format {self.name!r}: cannot import {self.module}: {exc}") from exc

    def matches(self, path: str) -> bool:
        """Whether ``path`` looks like this format by name (globs) or folder markers."""
        base = os.path.basename(os.path.normpath(path))
        if any(fnmatch.fnmatch(base, g) for g in self.globs):
            return True
        if self.markers and os.path.isdir(path):
            return all(os.path.exists(os.path.join(path, m)) for m in self.markers)
        return False


_formats: dict[str, FormatInfo] | None = None
_lookup: dict[str, FormatInfo] = {}


def reset() -> None:
    """Forget the registry; it is rebuilt from the plugins on next use."""
    global _formats
    _formats = None
    _lookup.clear()


def _load() -> dict[str, FormatInfo]:
    global _formats
    if _formats is not None:
        return _formats
    from dpconv.plugins import get_plugin_manager

    formats: dict[str, FormatInfo] = {}
    lookup: dict[str, FormatInfo] = {}
    pm = get_plugin_manager()
    for plugin_name, plugin in pm.list_name_plugin():
        impl = getattr(plugin, "dpconv_register_formats", None)
        if impl is None:
            continue

        def register(info: FormatInfo, _plugin: str = plugin_name) -> None:
            if not isinstance(info, FormatInfo):
                raise PluginError(f"plugin {_plugin!r} registered {info!r}, not a FormatInfo")
            info = FormatInfo(**{**info.__dict__, "name": info.name.lower(), "plugin": _plugin})
            for key in (info.name, *(a.lower() for a in info.aliases)):
                if key in lookup:
                    raise PluginError(
                        f"format name {key!r} from plugin {_plugin!r} is already registered "
                        f"by {lookup[key].plugin!r} ({lookup[key].name})"
                    )
                lookup[key] = info
            formats[info.name] = info

        impl(register=register)
    _formats = formats
    _lookup.update(lookup)
    return formats


def all_formats() -> list[FormatInfo]:
    """Every registered format, sorted by name."""
    return sorted(_load().values(), key=lambda f: f.name)


def get_format(name: str, *, action: Literal["read", "write"] | None = None) -> FormatInfo:
    """Find a format by name or alias (case-insensitive).

    Raises :class:`UnknownFormatError` (with the closest names) when no such
    format exists or it cannot do ``action``.
    """
    _load()
    info = _lookup.get(name.lower())
    if info is None:
        raise UnknownFormatError(name, _lookup)
    if action == "read" and info.reads is None:
        readable = [k for k, v in _lookup.items() if v.reads is not None]
        raise UnknownFormatError(name, readable, action="be read")
    if action == "write" and not info.writes:
        writable = [k for k, v in _lookup.items() if v.writes]
        raise UnknownFormatError(name, writable, action="be written")
    return info


def detect(path: str | os.PathLike[str]) -> FormatInfo:
    """Guess the readable format of ``path`` from its name or folder contents."""
    p = os.fspath(path)
    hits = [f for f in all_formats() if f.reads is not None and f.matches(p)]
    if not hits:
        raise DpconvError(f"{p}: cannot tell its format from the name; give one with fmt=/-i")
    # the most specific match wins: folder markers, then the longest glob
    hits.sort(key=lambda f: (-len(f.markers), -max((len(g) for g in f.globs), default=0)))
    return hits[0]


def resolve(fmt: str, path: str | os.PathLike[str], action: Literal["read", "write"]) -> FormatInfo:
    """``fmt`` by name, or detected from ``path`` when ``fmt`` is ``"auto"``."""
    if fmt.lower() == "auto":
        if action == "write":
            raise DpconvError("an output format must be given (fmt='auto' only reads)")
        return detect(path)
    return get_format(fmt, action=action)


def function(info: FormatInfo, name: str) -> Callable[..., object]:
    """The function ``name`` of the format module, or a clear error."""
    fn = getattr(info.load(), name, None)
    if fn is None:
        raise PluginError(f"format {info.name!r} ({info.module}) has no {name}()")
    return fn
