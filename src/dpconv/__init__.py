"""dpconv: first-principles and MD outputs to DeePMD-kit training data, and back.

>>> import dpconv
>>> s = dpconv.LabeledSystem("OUTCAR", fmt="vasp/outcar")
>>> s.to("deepmd/npy", "data")

Importing dpconv is light: no format module, h5py or torch is imported until used.
"""

from __future__ import annotations

from dpconv.errors import ConfigError, DpconvError, ParseError, SchemaError, UnknownFormatError
from dpconv.hookspecs import hookimpl
from dpconv.io import convert, iread, read, write
from dpconv.registry import FormatInfo
from dpconv.schema import Field, register_field
from dpconv.system import LabeledSystem, MultiSystems, System

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "DpconvError",
    "Field",
    "FormatInfo",
    "LabeledSystem",
    "MultiSystems",
    "ParseError",
    "SchemaError",
    "System",
    "UnknownFormatError",
    "__version__",
    "convert",
    "hookimpl",
    "iread",
    "read",
    "register_field",
    "write",
]
