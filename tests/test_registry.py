"""Plugin registry: hooks, lazy loading, name lookup with suggestions, errors from plugins."""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import dpconv
from dpconv import FormatInfo, hookimpl, registry
from dpconv.errors import DpconvError, ParseError, PluginError, UnknownFormatError
from dpconv.plugins import list_plugins, register_plugin, unregister_plugin
from tests.helpers import water_like


def test_lookup_case_insensitive_and_aliases() -> None:
    assert registry.get_format("DeePMD/NPY").name == "deepmd/npy"
    assert registry.get_format("raw").name == "deepmd/raw"


def test_unknown_format_suggests_close_names() -> None:
    with pytest.raises(UnknownFormatError) as err:
        registry.get_format("deepmd/npz")
    assert "did you mean deepmd/npy" in str(err.value)
    assert "deepmd/npy" in err.value.suggestions
    with pytest.raises(UnknownFormatError) as err:
        registry.get_format("qwertyuiop")
    assert "did you mean" not in str(err.value)


def test_capability_errors() -> None:
    fake = types.ModuleType("fake_writeonly")
    fake.write = lambda path, blocks, **kw: open(path, "w").close()  # type: ignore[attr-defined]
    sys.modules["fake_writeonly"] = fake

    class Plugin:
        @hookimpl
        def dpconv_register_formats(self, register: Callable[[FormatInfo], None]) -> None:
            register(FormatInfo("test/writeonly", "fake_writeonly", writes=True))
            register(FormatInfo("test/readonly", "fake_writeonly", reads="System"))

    register_plugin(Plugin(), name="writeonly")
    try:
        with pytest.raises(UnknownFormatError, match="cannot be read"):
            registry.get_format("test/writeonly", action="read")
        with pytest.raises(UnknownFormatError, match="cannot be written"):
            registry.get_format("test/readonly", action="write")
    finally:
        unregister_plugin("writeonly")


def test_duplicate_names_rejected() -> None:
    class Dup:
        @hookimpl
        def dpconv_register_formats(self, register: Callable[[FormatInfo], None]) -> None:
            register(FormatInfo("my/format", "x", aliases=("npy",), reads="System"))

    register_plugin(Dup(), name="dup")
    try:
        with pytest.raises(PluginError, match="'npy' .* already registered"):
            registry.all_formats()
    finally:
        unregister_plugin("dup")
    assert registry.get_format("npy").name == "deepmd/npy"


def test_misspelt_hook_fails_loudly() -> None:
    class Typo:
        @hookimpl
        def dpconv_register_format(self, register: Any) -> None:  # missing 's'
            pass

    with pytest.raises(Exception, match="unknown hook|dpconv_register_format"):
        register_plugin(Typo(), name="typo")
    unregister_plugin("typo")


def test_reader_plugin_that_raises_names_the_file(tmp_path) -> None:
    mod = types.ModuleType("fake_broken_reader")

    def read(path: str, **_: Any) -> Iterator[dict[str, Any]]:
        yield water_like(1).data
        raise ZeroDivisionError("bug in plugin")

    mod.read = read  # type: ignore[attr-defined]
    sys.modules["fake_broken_reader"] = mod

    class Broken:
        @hookimpl
        def dpconv_register_formats(self, register: Callable[[FormatInfo], None]) -> None:
            register(FormatInfo("test/broken", "fake_broken_reader", reads="LabeledSystem", globs=("*.broken",)))

    register_plugin(Broken(), name="broken")
    try:
        f = tmp_path / "x.broken"
        f.write_text("x")
        with pytest.raises(ParseError) as err:
            dpconv.read(f)
        assert err.value.path == str(f)
        assert "ZeroDivisionError" in str(err.value)
        with pytest.raises(DpconvError, match="unexpected keyword"):
            dpconv.read(f, fmt="deepmd/npy", bogus_option=1)
    finally:
        unregister_plugin("broken")


def test_missing_module_is_a_plugin_error(tmp_path) -> None:
    class Missing:
        @hookimpl
        def dpconv_register_formats(self, register: Callable[[FormatInfo], None]) -> None:
            register(FormatInfo("test/missing", "no_such_module_anywhere", reads="System"))

    register_plugin(Missing(), name="missing")
    try:
        f = tmp_path / "f"
        f.write_text("")
        with pytest.raises(PluginError, match="cannot import no_such_module_anywhere"):
            dpconv.read(f, fmt="test/missing")
    finally:
        unregister_plugin("missing")


def test_detect() -> None:
    with pytest.raises(DpconvError, match="cannot tell its format"):
        registry.detect("/nonexistent/thing.unknown")
    assert registry.detect("data.hdf5").name == "deepmd/hdf5"


def test_list_plugins_includes_builtins() -> None:
    names = [p["name"] for p in list_plugins()]
    assert "dpconv.formats" in names and "dpconv.cli.builtin_commands" in names


def test_disable_plugins_env() -> None:
    code = "from dpconv.plugins import list_plugins; print(sorted(p['name'] for p in list_plugins()))"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "DPCONV_DISABLE_PLUGINS": "n2p2"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "'n2p2'" not in proc.stdout


def test_import_is_light() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import dpconv; dt = time.perf_counter() - t; "
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('torch', 'h5py', 'scipy', 'monty') "
        "or m.startswith('dpconv.formats') or m.startswith('dpconv.trainer') or m == 'pluggy._manager' and False]; "
        "print(dt); print(heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    dt, heavy = proc.stdout.splitlines()
    assert heavy == "[]", heavy
    assert float(dt) < 0.5


def test_extra_field_flows_through(tmp_path) -> None:
    from dpconv.schema import Field, fields, register_field

    if "spins" not in fields():
        register_field(Field("spins", ("frame", "atom", 3), "float64", "μB", False, "spin", "magnetic moments"))
    s = water_like(4)
    data = dict(s.data)
    data["spins"] = np.arange(4 * 6 * 3, dtype=float).reshape(4, 6, 3)
    s = dpconv.LabeledSystem(data=data)
    assert s[1:3].data["spins"].shape == (2, 6, 3)
    s.append(s)
    assert s.data["spins"].shape == (8, 6, 3)
    assert s.pick_atom_idx([0, 1]).data["spins"].shape == (8, 2, 3)
    s.to_deepmd_npy(tmp_path / "d")
    assert (tmp_path / "d" / "set.000" / "spin.npy").is_file()
    back = dpconv.LabeledSystem(tmp_path / "d", fmt="deepmd/npy")
    np.testing.assert_array_equal(back.data["spins"], s.data["spins"])
    bad = dict(data)
    bad["spins"] = np.zeros((4, 5, 3))
    with pytest.raises(dpconv.SchemaError, match="spins"):
        dpconv.LabeledSystem(data=bad)
    with pytest.raises(dpconv.SchemaError, match="already registered"):
        register_field(Field("spins", ("frame",), "float64"))
