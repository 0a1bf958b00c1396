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
