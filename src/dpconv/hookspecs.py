"""pluggy hook specifications of dpconv.

A plugin is a module (or object) with functions decorated by
:data:`dpconv.hookimpl` whose names match the specs below, made known to dpconv
through the ``dpconv`` entry-point group of its package metadata::

    [project.entry-points.dpconv]
    n2p2 = "dpconv_n2p2.plugin"

dpconv's own formats and commands are registered through these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from dpconv.registry import FormatInfo
    from dpconv.schema import Field

PROJECT = "dpconv"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def dpconv_register_formats(register: Callable[[FormatInfo], None]) -> None:
    """Register file formats by calling ``register(FormatInfo(...))`` once per format.

    Only the light descriptor is given here; the module that reads/writes is
    imported the first time the format is used.
    """


@hookspec
def dpconv_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``dpconv`` command group (``cli.add_command(...)``)."""


@hookspec
def dpconv_register_fields(register: Callable[[Field], None]) -> None:
    """Declare extra per-frame or per-atom data fields (e.g. spins, charges).

    Call ``register(Field(...))``; see :mod:`dpconv.schema`.
    """
