"""Exception types of dpconv.

Everything dpconv raises on purpose derives from :class:`DpconvError`, so that a
caller (and the CLI) can catch user-facing errors in one place and let genuine
bugs through.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable


class DpconvError(Exception):
    """Base class of every error dpconv raises for bad input or bad usage."""


class SchemaError(DpconvError, ValueError):
    """Data that does not match the declared schema (shape, dtype, NaN, range)."""


class ConfigError(DpconvError, ValueError):
    """An invalid trainer configuration (input.json)."""


class UnknownFormatError(DpconvError, KeyError):
    """A format name that no plugin registered; carries the closest known names."""

    def __init__(self, name: str, known: Iterable[str], *, action: str = "") -> None:
        self.name = name
        self.suggestions = difflib.get_close_matches(name.lower(), sorted(known), n=3, cutoff=0.5)
        msg = f"unknown format {name!r}"
        if action:
            msg = f"format {name!r} cannot {action}"
        if self.suggestions:
            msg += "; did you mean " + " or ".join(self.suggestions) + "?"
        msg += " (`dpconv formats` lists them all)"
        self.message = msg
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class ParseError(DpconvError, ValueError):
    """A file that cannot be parsed as the requested format.

    Parameters
    ----------
    path:
        The file being read.
    expected:
        What the parser expected to find.
    line:
        1-based line number where the problem was seen, if known.
    frame:
        0-based frame index where the problem was seen, if known.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        expected: str,
        *,
        line: int | None = None,
        frame: int | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.expected = expected
        self.line = line
        self.frame = frame
        where = self.path
        if line is not None:
            where += f", line {line}"
        if frame is not None:
            where += f", frame {frame}"
        super().__init__(f"{where}: {expected}")


class PluginError(DpconvError):
    """A plugin that failed to load or registered something invalid."""
