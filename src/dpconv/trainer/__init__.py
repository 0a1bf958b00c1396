"""The bundled trainer for DeePMD-kit se_e2_a energy models (PyTorch).

This is the only dpconv package that imports torch, and it does so lazily:
``import dpconv.trainer`` is cheap; :func:`train`, :func:`freeze` and
:func:`load` import torch when called.

>>> from dpconv.trainer import train, load
>>> model = train(config, training=[labeled_system], validation=[other])
>>> pot = load("model.pth"); e, f, v = pot.evaluate(coords, cells, types)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dpconv.trainer.evaluate import Evaluator
    from dpconv.trainer.model import EnergyModel

__all__ = ["freeze", "load", "test", "train"]


def train(config: dict[str, Any], training: Any = None, validation: Any = None, **kwargs: Any) -> EnergyModel:
    """Train from a DeePMD-kit input dict; see :func:`dpconv.trainer.loop.train`."""
    from dpconv.trainer.loop import train as _train

    return _train(config, training, validation, **kwargs)


def freeze(checkpoint: str = ".", output: str = "model.pth", tables: bool = True) -> str:
    """Write a self-contained TorchScript model; see :func:`dpconv.trainer.export.freeze`."""
    from dpconv.trainer.export import freeze as _freeze

    return _freeze(checkpoint, output, tables)


def load(path: str, device: str = "cpu") -> Evaluator:
    """An evaluator for a frozen ``model.pth`` (or a checkpoint); ``.evaluate(coords, cells, types)``."""
    from dpconv.trainer.evaluate import Evaluator

    return Evaluator(path, device=device)


def test(model: str, systems: Any, **kwargs: Any) -> dict[str, Any]:
    """``dpconv test`` as a function; see :func:`dpconv.trainer.evaluate.test`."""
    from dpconv.trainer.evaluate import test as _test

    return _test(model, systems, **kwargs)
