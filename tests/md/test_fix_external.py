"""The pure-Python LAMMPS path (fix external): same numbers as the evaluator, input rewriting."""

from __future__ import annotations

import numpy as np
import pytest

from dpconv.errors import ConfigError
from dpconv.md.fix_external import parse_pair_style, rewrite_input

from .conftest import triclinic_frame, water_frame
from .lmp_helpers import needs_lammps, write_data, write_input


def test_rewrite_input():
    text = (
        "units metal\nread_data conf.lmp\npair_style deepmd m0.pth m1.pth &\n  out_freq 10 out_file md.out\n"
        "pair_coeff * * O H\nvelocity all create 50 1\nrun 10\nrun 5\n"
    )
    head, tail, spec = rewrite_input(text, lambda m: 5.0)
    assert spec.models == ["m0.pth", "m1.pth"] and spec.out_freq == 10 and spec.out_file == "md.out"
    assert spec.type_names == ["O", "H"]
    assert "pair_style zero 5" in head and "pair_coeff * *" in head
    assert head[-2].startswith("fix dpconv_ext all external pf/callback")
    assert tail == ["run 10", "run 5", ""] or tail[:2] == ["run 10", "run 5"]
    with pytest.raises(ConfigError, match="at least one model"):
        parse_pair_style(["out_freq", "10"])
    with pytest.raises(ConfigError, match="not supported"):
        parse_pair_style(["m.pth", "fparam", "1"])
    with pytest.raises(ConfigError, match="no 'pair_style"):
        rewrite_input("units metal\nrun 1\n")


def _lammps_run(tmp_path, model, frame):
    from dpconv.md.fix_external import run_input

    cell, x, t = frame
    write_data(str(tmp_path / "conf.lmp"), cell, x, t)
    inp = write_input(str(tmp_path), f"pair_style deepmd {model}", extra="dump d all custom 1 f.dump id fx fy fz")
    lmp = run_input(inp, cmdargs=["-log", "none", "-screen", "none"])
    ids = lmp.numpy.extract_atom("id")[: lmp.extract_global("nlocal")]
    order = np.argsort(ids)
    f = np.array(lmp.numpy.extract_atom("f"))[order]
    pe = lmp.get_thermo("pe")
    press = [lmp.get_thermo(k) for k in ("pxx", "pyy", "pzz", "pxy", "pxz", "pyz")]
    pea = np.array(lmp.numpy.extract_compute("pea", 1, 1))[order]
    vol = lmp.get_thermo("vol")
    lmp.close()
    return pe, f, np.array(press), pea, vol


@pytest.mark.parametrize("frame", [water_frame, triclinic_frame])
def test_same_as_evaluator(tmp_path, model_path, frame):
    needs_lammps()
    from dpconv.trainer import load

    cell, x, t = frame()
    pe, f, press, pea, vol = _lammps_run(tmp_path, model_path, (cell, x, t))
    ref = load(model_path).evaluate_all(x[None], cell[None], t)
    assert abs(pe - ref["energy"][0]) < 1e-8
    np.testing.assert_allclose(f, ref["force"][0], atol=1e-8)
    np.testing.assert_allclose(pea, ref["atom_energy"][0], atol=1e-8)
    # LAMMPS pressure (bar) of the virial alone (no velocities): v / V * nktv2p
    v = ref["virial"][0]
    nktv2p = 1.6021765e6
    want = np.array([v[0, 0], v[1, 1], v[2, 2], v[0, 1], v[0, 2], v[1, 2]]) / vol * nktv2p
    np.testing.assert_allclose(press, want, rtol=1e-6, atol=1e-6)
