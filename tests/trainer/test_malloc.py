"""glibc malloc settings (dpconv.trainer.malloc): applied once, and DPCONV_NO_MALLOPT=1 opts out."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "from dpconv.trainer import malloc; print(malloc.tune(), malloc.tune())"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize("opt_out,expected", [("", "True True"), ("1", "False False")])
def test_tune_and_opt_out(opt_out, expected):
    env = dict(os.environ, DPCONV_NO_MALLOPT=opt_out)
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == expected.split()


def test_hugepage_env():
    from dpconv.trainer.malloc import HUGEPAGE_TUNABLE, hugepage_env

    got = hugepage_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    if got is None:  # not glibc ≥ 2.35 with THP here
        pytest.skip("transparent huge pages through glibc are not available here")
    assert got["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{HUGEPAGE_TUNABLE}"
    assert hugepage_env({}) is not None
    assert hugepage_env({"DPCONV_NO_MALLOPT": "1"}) is None
    assert hugepage_env(got) is None  # once only
    assert hugepage_env({"GLIBC_TUNABLES": HUGEPAGE_TUNABLE}) is None


def test_compute_commands_run_after_reexec():
    """`dpconv test --help` goes through the re-execution and still works; the child has the tunable."""
    code = "import os, sys; sys.argv = ['dpconv', 'test', '--help']; from dpconv.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Usage: " in out.stdout and "test" in out.stdout
