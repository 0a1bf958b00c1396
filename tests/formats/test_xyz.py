"""Plain and extended XYZ: round trips, dpdata and ASE differentials, mixed files, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from dpconv import LabeledSystem, MultiSystems, System
from dpconv.errors import ParseError
from dpconv.formats.xyz.extxyz import parse_comment
from dpconv.io import iter_blocks
from dpconv.testing import assert_systems_equal
from tests.conftest import fixture_path

dpdata = pytest.importorskip("dpdata")

EXT = """3
Lattice="5 0 0 0 6 0 1 0 7" Properties=species:S:1:pos:R:3:tags:I:1:forces:R:3 energy=-10.5 stress="{s}" pbc="T T T"
O 0.0 0.0 0.0 7 0.1 0.2 0.3
H 1.0 0.0 0.0 7 -0.1 0.0 0.0
H 0.0 1.0 0.0 7 0.0 -0.2 -0.3
"""


def _h2o() -> LabeledSystem:
    return LabeledSystem(fixture_path("deepmd_raw_h2o_md", "deepmd.h2o.md"), fmt="deepmd/raw", type_map=["O", "H"])


def test_comment_parsing() -> None:
    info = parse_comment("Lattice=\"1 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3 energy=-1.5e2 is_ok pbc='T T F'")
    assert info == {
        "Lattice": "1 0 0 0 1 0 0 0 1",
        "Properties": "species:S:1:pos:R:3",
        "energy": "-1.5e2",
        "is_ok": "T",
        "pbc": "T T F",
    }


def test_extxyz_reads_labels_and_stress_sign(tmp_path) -> None:
    stress = np.arange(1.0, 10.0).reshape(3, 3)
    p = tmp_path / "a.extxyz"
    p.write_text(EXT.format(s=" ".join(map(str, stress.ravel()))))
    s = LabeledSystem(str(p), fmt="extxyz")
    assert s.get_atom_names() == ["O", "H"]
    np.testing.assert_allclose(s["energies"], [-10.5])
    np.testing.assert_allclose(s["forces"][0, 2], [0.0, -0.2, -0.3])
    np.testing.assert_allclose(s["cells"][0], [[5, 0, 0], [0, 6, 0], [1, 0, 7]])
    np.testing.assert_allclose(s["virials"][0], -stress * 210.0)  # ASE: virial = -stress * volume
    # Voigt stress (xx yy zz yz xz xy)
    p.write_text(EXT.format(s="1 2 3 4 5 6"))
    v = LabeledSystem(str(p), fmt="extxyz")["virials"][0]
    np.testing.assert_allclose(v, -210.0 * np.array([[1, 6, 5], [6, 2, 4], [5, 4, 3]]))


def test_extxyz_round_trip_and_dpdata(tmp_path) -> None:
    ref = _h2o()
    ref.to("extxyz", str(tmp_path / "m.extxyz"))
    back = LabeledSystem(str(tmp_path / "m.extxyz"), fmt="extxyz")
    assert_systems_equal(back.data, ref.data, atol=1e-8)
    # dpdata reads our file (one system per formula) ...
    ms = dpdata.MultiSystems.from_file(str(tmp_path / "m.extxyz"), fmt="extxyz")
    assert_systems_equal(ms[0].data, ref.copy().sort_atom_names().data, atol=1e-8)  # dpdata sorts names
    # ... and we read dpdata's
    d = dpdata.LabeledSystem(fixture_path("deepmd_raw_h2o_md", "deepmd.h2o.md"), fmt="deepmd/raw", type_map=["O", "H"])
    d.to("extxyz", str(tmp_path / "d.extxyz"))
    assert_systems_equal(LabeledSystem(str(tmp_path / "d.extxyz"), fmt="extxyz").data, d.data)
    # dpdata's LabeledSystem(fmt='extxyz') keeps only the first frame; dpconv reads them all
    assert len(dpdata.LabeledSystem(str(tmp_path / "d.extxyz"), fmt="extxyz")) == 1
    assert len(LabeledSystem(str(tmp_path / "d.extxyz"), fmt="extxyz")) == 3


def test_extxyz_against_ase(tmp_path) -> None:
    ase_io = pytest.importorskip("ase.io")
    ref = _h2o()
    ref.to("extxyz", str(tmp_path / "m.extxyz"))
    frames = ase_io.read(str(tmp_path / "m.extxyz"), index=":")
    assert len(frames) == 3
    for i, at in enumerate(frames):
        np.testing.assert_allclose(at.get_positions(), ref["coords"][i], atol=1e-8)
        np.testing.assert_allclose(np.asarray(at.get_cell()), ref["cells"][i], atol=1e-8)
        np.testing.assert_allclose(at.get_potential_energy(), ref["energies"][i], atol=1e-8)
        np.testing.assert_allclose(at.get_forces(), ref["forces"][i], atol=1e-8)
        vol = at.get_volume()
        np.testing.assert_allclose(-at.get_stress(voigt=False) * vol, ref["virials"][i], atol=1e-7)
        assert at.get_chemical_symbols() == [ref.get_atom_names()[t] for t in ref["atom_types"]]
    # and ASE's own writer is read back
    ase_io.write(str(tmp_path / "ase.extxyz"), frames, format="extxyz")
    assert_systems_equal(LabeledSystem(str(tmp_path / "ase.extxyz"), fmt="extxyz").data, ref.data, atol=1e-7)


def test_extxyz_mixed_file(tmp_path) -> None:
    ref = _h2o()
    other = ref.pick_atom_idx([0, 2, 3])
    p = str(tmp_path / "mix.extxyz")
    with open(p, "w") as fh:
        from dpconv.formats.xyz.extxyz import write_frames

        write_frames(fh, ref.sub_system([0, 1]).data)
        write_frames(fh, other.data)
        write_frames(fh, ref.sub_system([2]).data)
    with pytest.raises(ParseError, match="MultiSystems") as exc:
        LabeledSystem(p, fmt="extxyz")
    assert exc.value.frame == 2
    ms = MultiSystems.from_file(p, fmt="extxyz")
    assert sorted(s.get_nframes() for s in ms) == [3, 3]
    ref_ms = dpdata.MultiSystems.from_file(p, fmt="extxyz")
    assert ref_ms.get_nframes() == ms.get_nframes() == 6


def test_extxyz_streams(tmp_path) -> None:
    ref = _h2o()
    ref.to("extxyz", str(tmp_path / "m.extxyz"))
    blocks = list(iter_blocks(str(tmp_path / "m.extxyz"), "extxyz", chunk=2))
    assert [len(b["coords"]) for b in blocks] == [2, 1]
    assert sum(len(b["coords"]) for b in iter_blocks(str(tmp_path / "m.extxyz"), "extxyz", begin=1, step=2)) == 1


def test_plain_xyz(tmp_path) -> None:
    ref = _h2o()
    ref.to("xyz", str(tmp_path / "p.xyz"))
    s = System(str(tmp_path / "p.xyz"), fmt="xyz")
    assert_systems_equal(s.data, System(data=ref.data).data, atol=1e-8, labels=False)  # cell kept via Lattice=
    # a bare XYZ: nopbc with dpdata's dummy cell; dpdata reads the first frame, names sorted
    bare = "3\nwater\nO 0 0 0\nH 1 0 0 extra\nH 0 1 0\n\n3\n\nO 0 0 0.1\nH 1 0 0.1 x\nH 0 1 0.1\n"
    (tmp_path / "b.xyz").write_text(bare)
    b = System(str(tmp_path / "b.xyz"), fmt="xyz")
    assert b.nopbc and len(b) == 2 and b.get_atom_names() == ["O", "H"]
    np.testing.assert_allclose(b["cells"][0], 100 * np.eye(3))
    # dpdata's xyz reader fails on extra columns ("too many values to unpack"); compare on a clean frame
    (tmp_path / "b1.xyz").write_text("3\nwater\nO 0 0 0\nH 1 0 0\nH 0 1 0\n")
    d = dpdata.System(str(tmp_path / "b1.xyz"), fmt="xyz")
    assert_systems_equal(System(str(tmp_path / "b1.xyz"), fmt="xyz").sort_atom_names().data, d.data)
    c = System(str(tmp_path / "b.xyz"), fmt="xyz", cell=[10, 10, 10])
    assert not c.nopbc
    np.testing.assert_allclose(c["cells"][1], 10 * np.eye(3))


@pytest.mark.parametrize("fmt", ["xyz", "extxyz"])
def test_bad_inputs(tmp_path, fmt: str) -> None:
    for name, content in [
        ("empty", b""),
        ("garbage", bytes(range(256)) * 4),
        ("poscar", b"O H\n1.0\n5 0 0\n0 5 0\n0 0 5\nO H\n1 1\nDirect\n0 0 0\n0.5 0.5 0.5\n"),
        ("ragged", b"2\n\nO 0 0 0\nH 1 0\n"),
        ("words", b"2\n\nO 0 0 0\nH 1 0 zz\n"),
    ]:
        p = tmp_path / f"{name}.{fmt}"
        p.write_bytes(content)
        with pytest.raises(ParseError) as exc:
            System(str(p), fmt=fmt)
        assert exc.value.path == str(p)
        assert exc.value.line is not None


def test_truncated(tmp_path) -> None:
    ref = _h2o()
    ref.to("extxyz", str(tmp_path / "m.extxyz"))
    text = (tmp_path / "m.extxyz").read_text()
    (tmp_path / "cut.extxyz").write_text(text[: text.rindex("H ")])
    with pytest.warns(UserWarning, match="frame 2 is truncated; dropped"):
        s = LabeledSystem(str(tmp_path / "cut.extxyz"), fmt="extxyz")
    assert len(s) == 2
    first = text[: text.index("\n6\n")]
    (tmp_path / "one.extxyz").write_text(first[: first.rindex("H ")])
    with pytest.raises(ParseError) as exc:
        LabeledSystem(str(tmp_path / "one.extxyz"), fmt="extxyz")
    assert exc.value.frame == 0
