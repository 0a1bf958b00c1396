"""read / iread / write / convert: streaming, atomic output, errors."""

from __future__ import annotations

import os
import sys
import tracemalloc
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import dpconv
import dpconv.registry
from dpconv import FormatInfo, LabeledSystem, System, hookimpl
from dpconv.errors import DpconvError
from dpconv.io import atomic_path
from dpconv.plugins import register_plugin, unregister_plugin
from tests.helpers import methane, water_like

NATOMS = 1000


def _big_frames(nframes: int) -> Iterator[dict[str, Any]]:
    rng = np.random.default_rng(0)
    types_ = np.zeros(NATOMS, dtype=np.int64)
    for _ in range(nframes):
        yield {
            "atom_names": ["Ar"],
            "atom_numbs": np.array([NATOMS]),
            "atom_types": types_,
            "cells": np.eye(3)[None] * 30,
            "coords": rng.uniform(0, 30, (1, NATOMS, 3)),
            "energies": rng.normal(size=1),
            "forces": rng.normal(size=(1, NATOMS, 3)),
            "nopbc": False,
        }


@pytest.fixture
def synthetic_format() -> Iterator[str]:
    """A format 'test/big' whose reader makes N frames of 1000 atoms lazily (N = file's text)."""
    mod = types.ModuleType("fake_big_reader")

    def read(path: str, type_map: Any = None) -> Iterator[dict[str, Any]]:
        with open(path) as fh:
            yield from _big_frames(int(fh.read()))

    mod.read = read  # type: ignore[attr-defined]
    sys.modules["fake_big_reader"] = mod

    class Big:
        @hookimpl
        def dpconv_register_formats(self, register: Callable[[FormatInfo], None]) -> None:
            register(FormatInfo("test/big", "fake_big_reader", reads="LabeledSystem", globs=("*.big",)))

    register_plugin(Big(), name="big")
    yield "test/big"
    unregister_plugin("big")


def test_read_detects_labels(tmp_path) -> None:
    water_like(3).to_deepmd_npy(tmp_path / "l")
    water_like(3, labeled=False).to_deepmd_npy(tmp_path / "u")
    assert type(dpconv.read(tmp_path / "l")) is LabeledSystem
    assert type(dpconv.read(tmp_path / "u")) is System
    assert type(dpconv.read(tmp_path / "l", labeled=False)) is System
    assert len(dpconv.read(tmp_path / "l", begin=1, step=1)) == 2


def test_missing_file() -> None:
    with pytest.raises(DpconvError, match="no such file"):
        dpconv.read("/no/such/file", fmt="deepmd/npy")


def test_unlabeled_format_as_labeled_rejected(tmp_path, synthetic_format) -> None:
    class Plain:
        @hookimpl
        def dpconv_register_formats(self, register: Callable[[FormatInfo], None]) -> None:
            register(FormatInfo("test/plain", "fake_big_reader", reads="System"))

    register_plugin(Plain(), name="plain")
    try:
        (tmp_path / "f").write_text("1")
        with pytest.raises(DpconvError, match="has no labels"):
            LabeledSystem(tmp_path / "f", fmt="test/plain")
    finally:
        unregister_plugin("plain")


def test_iread_chunks(tmp_path, synthetic_format) -> None:
    (tmp_path / "x.big").write_text("25")
    sizes = [len(s) for s in dpconv.iread(tmp_path / "x.big", chunk_size=10)]
    assert sizes == [10, 10, 5]


def test_convert_streams_with_bounded_memory(tmp_path, synthetic_format) -> None:
    """400 frames x 1000 atoms = 19 MB of coords+forces; convert must hold only a few sets."""
    (tmp_path / "x.big").write_text("400")
    tracemalloc.start()
    counts = dpconv.convert(tmp_path / "x.big", tmp_path / "out", out_fmt="deepmd/npy", set_size=20)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert counts == {"Ar1000": 400}
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB"
    s = LabeledSystem(tmp_path / "out", fmt="deepmd/npy")
    assert len(s) == 400 and len(os.listdir(tmp_path / "out")) == 22


def test_convert_many_inputs_grouped(tmp_path) -> None:
    water_like(3, 0).to_deepmd_npy(tmp_path / "in" / "a")
    water_like(2, 1).to_deepmd_npy(tmp_path / "in" / "b")
    methane(4).to_deepmd_npy(tmp_path / "in" / "c")
    ticks: list[int] = []
    counts = dpconv.convert(
        [tmp_path / "in" / n for n in "abc"],
        tmp_path / "out",
        in_fmt="deepmd/npy",
        out_fmt="deepmd/npy",
        progress=ticks.append,
    )
    assert counts == {"O2H4C0": 5, "O0H4C1": 4}
    assert sum(ticks) == 9
    w = LabeledSystem(tmp_path / "out" / "O2H4C0", fmt="deepmd/npy")
    assert w.get_atom_names() == ["O", "H", "C"] and len(w) == 5
    counts = dpconv.convert([tmp_path / "in" / "a"], tmp_path / "single", in_fmt="deepmd/npy", type_map=["H", "O"])
    assert LabeledSystem(tmp_path / "single", fmt="deepmd/npy").get_atom_names() == ["H", "O"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path) -> None:
    target = tmp_path / "data"
    water_like(2).to_deepmd_npy(target)
    before = sorted(os.listdir(target))
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        os.makedirs(tmp)
        (open(os.path.join(tmp, "half"), "w")).close()
        raise RuntimeError("disk full")
    assert sorted(os.listdir(target)) == before
    assert os.listdir(tmp_path) == ["data"]


def test_interrupted_conversion_leaves_no_output(tmp_path, synthetic_format) -> None:
    (tmp_path / "x.big").write_text("50")
    seen = []

    def interrupt(n: int) -> None:
        seen.append(n)
        if len(seen) == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dpconv.convert(tmp_path / "x.big", tmp_path / "out", set_size=10, progress=interrupt)
    assert sorted(os.listdir(tmp_path)) == ["x.big"]


def test_write_replaces_existing_target(tmp_path) -> None:
    water_like(5).to_deepmd_npy(tmp_path / "d", set_size=1)
    water_like(2).to_deepmd_npy(tmp_path / "d")
    assert sorted(os.listdir(tmp_path / "d")) == ["set.000", "type.raw", "type_map.raw"]
    assert len(LabeledSystem(tmp_path / "d", fmt="deepmd/npy")) == 2


def test_write_option_errors(tmp_path) -> None:
    with pytest.raises(DpconvError, match="does not take that option"):
        water_like(2).to("deepmd/raw", tmp_path / "r", set_size=3)
    assert not (tmp_path / "r").exists()
    with pytest.raises(dpconv.UnknownFormatError, match="unknown format 'deepmd/npz'"):
        dpconv.write(water_like(1), tmp_path / "x", "deepmd/npz")


def test_convert_no_inputs_and_empty() -> None:
    with pytest.raises(DpconvError, match="no input"):
        dpconv.convert([], "out")
