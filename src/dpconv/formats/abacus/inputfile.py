"""ABACUS run folders: the ``INPUT`` file and where a run keeps its files.

An ABACUS run folder holds ``INPUT`` (``key value`` lines after an
``INPUT_PARAMETERS`` line), the structure file (``STRU``, or the name given by
``stru_file``) and the output folder ``OUT.<suffix>/`` (``suffix`` defaults to
``ABACUS``) with ``running_<calculation>.log`` and, for MD, ``MD_dump``.

Keys are case-insensitive (stored lower case); values keep their case. Lines
starting with ``#`` or ``/`` are comments, as is anything after ``#`` or ``//``
on a line. A key given twice takes its last value, as ABACUS does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from dpconv.errors import ParseError


def _strip_comment(line: str) -> str:
    for mark in ("#", "//"):
        cut = line.find(mark)
        if cut >= 0:
            line = line[:cut]
    return line.strip()


def parse_input(text: str, path: str = "INPUT") -> dict[str, str]:
    """The ``key -> value`` pairs of an INPUT file's text (keys lower case)."""
    params: dict[str, str] = {}
    lines = text.splitlines()
    start = 0
    for i, line in enumerate(lines):
        if line.strip().upper().startswith("INPUT_PARAMETERS"):
            start = i + 1
            break
    for line in lines[start:]:
        stripped = line.strip()
        if not stripped or stripped[0] in "#/":
            continue
        words = _strip_comment(stripped).split()
        if not words:
            continue
        params[words[0].lower()] = " ".join(words[1:])
    if "\x00" in text:
        raise ParseError(path, "a text INPUT file (found NUL bytes)")
    return params


@dataclass
class RunFolder:
    """The files of one ABACUS run, resolved from its ``INPUT``.

    Attributes
    ----------
    root:
        The run folder.
    params:
        The INPUT parameters (keys lower case).
    """

    root: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def suffix(self) -> str:
        return self.params.get("suffix", "").split()[0] if self.params.get("suffix") else "ABACUS"

    @property
    def calculation(self) -> str:
        value = self.params.get("calculation", "")
        return value.split()[0].lower() if value else "scf"

    @property
    def out_dir(self) -> str:
        return os.path.join(self.root, f"OUT.{self.suffix}")

    @property
    def stru_path(self) -> str:
        name = self.params.get("stru_file", "").split()
        return os.path.join(self.root, name[0] if name else "STRU")

    def get_int(self, key: str, default: int) -> int:
        value = self.params.get(key, "").split()
        if not value:
            return default
        try:
            return int(float(value[0]))
        except ValueError:
            raise ParseError(os.path.join(self.root, "INPUT"), f"an integer for {key!r}, got {value[0]!r}") from None

    def get_bool(self, key: str, default: bool) -> bool:
        value = self.params.get(key, "").split()
        if not value:
            return default
        return value[0].lower() in ("1", "true", "t", ".true.", "yes")

    def require(self, path: str, what: str) -> str:
        """``path`` if it is a file, else a ParseError naming what the run lacks."""
        if not os.path.isfile(path):
            raise ParseError(path, f"{what} of the ABACUS run in {self.root} (file not found)")
        return path


def open_run(path: str) -> RunFolder:
    """Resolve an ABACUS run from its folder (or from its INPUT file)."""
    if os.path.isdir(path):
        root, input_path = path, os.path.join(path, "INPUT")
    else:
        root, input_path = os.path.dirname(os.path.abspath(path)), path
    if not os.path.isfile(input_path):
        raise ParseError(input_path, "an ABACUS run folder with an INPUT file")
    with open(input_path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(input_path, "a text INPUT file (not valid UTF-8)") from None
    if not text.strip():
        raise ParseError(input_path, "INPUT parameters (the file is empty)")
    return RunFolder(root, parse_input(text, input_path))
