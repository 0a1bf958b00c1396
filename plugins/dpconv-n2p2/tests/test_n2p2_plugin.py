"""The example plugin works through the installed entry point and `dpconv convert`."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import numpy as np
import pytest

SAMPLE = """begin
comment water dimer fragment
lattice 10.0 0.0 0.0
lattice 0.0 10.0 0.0
lattice 0.0 0.0 10.0
atom 1.0 1.0 1.0 O 0.0 0.0 0.1 0.2 0.3
atom 1.9 1.0 1.0 H 0.0 0.0 -0.1 0.0 0.0
atom 0.7 1.8 1.0 H 0.0 0.0 0.0 -0.2 -0.3
energy -14.5
charge 0.0
end
begin
comment second frame
lattice 10.0 0.0 0.0
lattice 0.0 10.0 0.0
lattice 0.0 0.0 10.0
atom 1.1 1.0 1.0 O 0.0 0.0 0.2 0.2 0.3
atom 2.0 1.0 1.0 H 0.0 0.0 -0.2 0.0 0.0
atom 0.8 1.8 1.0 H 0.0 0.0 0.0 -0.2 -0.3
energy -14.4
charge 0.0
end
"""

pytestmark = pytest.mark.skipif(
    not any(ep.name == "n2p2" for ep in importlib.metadata.entry_points(group="dpconv")),
    reason="example plugin not installed (pip install ./plugins/dpconv-n2p2)",
)


def test_registered_through_entry_point() -> None:
    from dpconv.registry import get_format

    info = get_format("runner")
    assert info.name == "n2p2" and info.plugin == "n2p2"


def test_convert_cli_and_round_trip(tmp_path) -> None:
    import dpconv

    src = tmp_path / "input.data"
    src.write_text(SAMPLE)
    out = tmp_path / "npy"
    proc = subprocess.run(
        [sys.executable, "-m", "dpconv", "convert", "-i", "n2p2", str(src), "-o", "deepmd/npy", str(out)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    s = dpconv.LabeledSystem(out, fmt="deepmd/npy")
    assert len(s) == 2 and s.get_atom_names() == ["O", "H"]
    np.testing.assert_allclose(s.data["energies"], [-14.5, -14.4])
    np.testing.assert_allclose(s.data["forces"][1, 0], [0.2, 0.2, 0.3])
    s.to("n2p2", tmp_path / "back.data")
    again = dpconv.LabeledSystem(tmp_path / "back.data", fmt="n2p2")
    assert again == s


def test_atomic_units(tmp_path) -> None:
    import dpconv

    src = tmp_path / "input.data"
    src.write_text(SAMPLE)
    s = dpconv.LabeledSystem(src, fmt="n2p2", units="atomic")
    np.testing.assert_allclose(s.data["energies"][0], -14.5 * dpconv.units.HARTREE_TO_EV)


def test_truncated_file_names_line(tmp_path) -> None:
    import dpconv

    src = tmp_path / "input.data"
    src.write_text(SAMPLE[: SAMPLE.rindex("energy")])
    with pytest.raises(dpconv.ParseError) as err:
        dpconv.LabeledSystem(src, fmt="n2p2")
    assert err.value.line == 12 and "truncated" in str(err.value)
