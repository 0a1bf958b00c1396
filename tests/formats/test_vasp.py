"""VASP formats: OUTCAR, POSCAR/CONTCAR, vasprun.xml.

The corpus cases are checked by test_fixture_cases.py; here: differential tests
against dpdata, streaming, bad input, kwargs, and the POSCAR writer.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np
import pytest

import dpconv
from dpconv import LabeledSystem, System
from dpconv.errors import DpconvError, ParseError
from dpconv.formats.vasp import outcar, xml
from dpconv.io import concatenate_data
from dpconv.registry import detect
from dpconv.testing import assert_systems_equal
from tests.conftest import fixture_path

dpdata = pytest.importorskip("dpdata")

H2O_OUTCAR = ("vasp_outcar_h2o_md", "OUTCAR.h2o.md")
ML_OUTCAR = ("vasp_outcar_ch4_ml", "OUTCAR.ch4.ml")
UNCONV_OUTCAR = ("vasp_outcar_ch4_unconverged", "OUTCAR.ch4.unconverged")
H2O_XML = ("vasp_xml_h2o_md", "vasprun.h2o.md.xml")
CONV_XML = ("vasp_xml_h2o_md_conv", "vasprun.h2o.md.conv.xml")
POSCARS = [("vasp_poscar_oh_cartesian", "POSCAR.oh.c"), ("vasp_poscar_h2o_direct", "POSCAR.h2o.md")]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _bytes(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def _blocks(mod, path, **kwargs) -> dict:
    return concatenate_data(list(_quiet(lambda: list(mod.read(path, **kwargs)))), labeled=True)


# -- differential against dpdata -------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "fmt", "kwargs"),
    [
        (H2O_OUTCAR, "vasp/outcar", {}),
        (ML_OUTCAR, "vasp/outcar", {}),
        (ML_OUTCAR, "vasp/outcar", {"ml": True}),
        (UNCONV_OUTCAR, "vasp/outcar", {}),
        (UNCONV_OUTCAR, "vasp/outcar", {"convergence_check": False}),
        (H2O_OUTCAR, "vasp/outcar", {"begin": 1, "step": 2}),
        (H2O_XML, "vasp/xml", {}),
        (CONV_XML, "vasp/xml", {}),
        (CONV_XML, "vasp/xml", {"convergence_check": False}),
    ],
    ids=lambda v: v[1] if isinstance(v, tuple) else str(v),
)
def test_labeled_matches_dpdata(case, fmt, kwargs):
    path = fixture_path(*case)
    ref = _quiet(dpdata.LabeledSystem, path, fmt=fmt, **kwargs)
    ours = _quiet(LabeledSystem, path, fmt=fmt, **{k: v for k, v in kwargs.items() if k not in ("begin", "step")})
    if "begin" in kwargs:  # System applies begin/step itself; the reader takes them too
        assert_systems_equal(_blocks(outcar, path, **kwargs), ref.data)
        ours = ours.sub_system(slice(kwargs["begin"], None, kwargs["step"]))
    assert_systems_equal(ours.data, ref.data)


@pytest.mark.parametrize("case", POSCARS, ids=lambda c: c[0])
def test_poscar_matches_dpdata(case):
    path = fixture_path(*case)
    ref = dpdata.System(path, fmt="vasp/poscar")
    assert_systems_equal(System(path, fmt="vasp/poscar").data, ref.data, labels=False)
    assert_systems_equal(System(path, fmt="vasp/contcar").data, ref.data, labels=False)


# -- OUTCAR ------------------------------------------------------------------------------------
def test_outcar_warns_naming_unconverged_steps():
    path = fixture_path(*UNCONV_OUTCAR)
    with pytest.warns(UserWarning, match=r"ionic steps 0, 1 .*NELM=15.*dropped"):
        s = LabeledSystem(path, fmt="vasp/outcar")
    assert len(s) == 1
    assert s.data["energies"][0] == pytest.approx(-23.94708651)
    with pytest.warns(UserWarning, match=r"ionic steps 0, 1 .*kept"):
        assert len(LabeledSystem(path, fmt="vasp/outcar", convergence_check=False)) == 3


def test_outcar_ml_modes():
    path = fixture_path(*ML_OUTCAR)
    fp = LabeledSystem(path, fmt="vasp/outcar")
    ml = LabeledSystem(path, fmt="vasp/outcar", ml=True)
    assert (len(fp), len(ml)) == (4, 10)
    assert "virials" in fp.data and "virials" not in ml.data
    np.testing.assert_allclose(fp.data["energies"], [-24.12709802, -24.12724275, -24.12737148, -24.12697674])
    assert ml.data["energies"][2] == pytest.approx(-24.12738815)


def test_outcar_ml_virials_read_when_asked():
    """dpdata never reads the ML stress (its cell token shadows the stress token); ml_virials=True does."""
    path = fixture_path(*ML_OUTCAR)
    s = LabeledSystem(path, fmt="vasp/outcar", ml=True, ml_virials=True, lower_triangular=False)
    assert s.data["virials"].shape == (10, 3, 3)
    # frame 2: 'in kB  -0.03635 -0.00145 -0.03601 0.01682 0.00687 -0.00513', volume from its own cell
    vol = abs(np.linalg.det(s.data["cells"][2]))
    xx, xy, zx = -0.03635, 0.01682, -0.00513
    v = s.data["virials"][2] / (vol * dpconv.units.KBAR_TO_EV_PER_ANGSTROM3)
    np.testing.assert_allclose([v[0, 0], v[0, 1], v[1, 0], v[0, 2], v[2, 0]], [xx, xy, xy, zx, zx], atol=1e-12)
    np.testing.assert_allclose(s.data["energies"], LabeledSystem(path, fmt="vasp/outcar", ml=True).data["energies"])


def test_outcar_lower_triangular_off_keeps_vasp_axes():
    path = fixture_path(*H2O_OUTCAR)
    raw = LabeledSystem(path, fmt="vasp/outcar", lower_triangular=False)
    np.testing.assert_allclose(raw.data["cells"][0][1], [-0.011409, 10.0, 0.0])
    np.testing.assert_allclose(raw.data["coords"][0][0], [4.34854, 4.20903, 5.20000])
    rotated = raw.copy()
    rotated.rot_lower_triangular()
    assert_systems_equal(rotated.data, LabeledSystem(path, fmt="vasp/outcar").data, atol=1e-10)


def _repeated_outcar(tmp_path, n_repeat: int) -> str:
    """The h2o OUTCAR with its ionic steps 2..3 repeated: 1 + 2 * n_repeat frames."""
    text = _bytes(fixture_path(*H2O_OUTCAR))
    first = text.index(b"free  energy   TOTEN")
    first = text.index(b"\n", first) + 1
    last = text.rindex(b"free  energy   TOTEN")
    last = text.index(b"\n", last) + 1
    dst = tmp_path / "OUTCAR"
    dst.write_bytes(text[:first] + text[first:last] * n_repeat + text[last:])
    return str(dst)


def test_outcar_streams_in_blocks_across_chunk_edges(tmp_path):
    path = _repeated_outcar(tmp_path, 10)
    ref = _quiet(dpdata.LabeledSystem, path, fmt="vasp/outcar")
    blocks = list(outcar.read(path, chunk_bytes=1 << 16, block_frames=4))
    assert len(blocks) > 5 and all(len(b["coords"]) <= 4 for b in blocks)
    assert_systems_equal(concatenate_data(blocks, labeled=True), ref.data)
    assert len(ref) == 21


def test_outcar_convert_to_deepmd_npy_streams(tmp_path):
    path = _repeated_outcar(tmp_path, 5)
    out = tmp_path / "npy"
    counts = dpconv.convert(
        path, out, in_fmt="vasp/outcar", out_fmt="deepmd/npy", set_size=4, read_kwargs={"block_frames": 3}
    )
    assert sum(counts.values()) == 11
    back = LabeledSystem(str(out), fmt="deepmd/npy")
    assert_systems_equal(back.data, LabeledSystem(path, fmt="vasp/outcar").data)


def test_outcar_merges_repeated_species(tmp_path):
    """POTCAR order O H O (counts 1 4 1) -> names O,H; the last atom gets O's type."""
    text = _bytes(fixture_path(*H2O_OUTCAR)).decode()
    text = text.replace("ions per type =               2   4", "ions per type =               1   4   1")
    titel = "   TITEL  = PAW_PBE O 08Apr2002"
    i = text.index("   TITEL  = PAW_PBE H 15Jun2001")
    j = text.index("\n", i) + 1
    text = text[:j] + titel + "\n" + text[j:]
    p = tmp_path / "OUTCAR"
    p.write_text(text)
    s = LabeledSystem(str(p), fmt="vasp/outcar")
    assert s.get_atom_names() == ["O", "H"]
    np.testing.assert_array_equal(s.data["atom_types"], [0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(s.data["atom_numbs"], [2, 4])
    assert_systems_equal(
        {**s.data, "atom_types": np.array([0, 0, 1, 1, 1, 1])},
        {**LabeledSystem(fixture_path(*H2O_OUTCAR), fmt="vasp/outcar").data},
    )


def test_outcar_names_from_vrhfin_without_titel(tmp_path):
    text = _bytes(fixture_path(*H2O_OUTCAR)).decode().replace("TITEL", "TITLE")
    p = tmp_path / "OUTCAR"
    p.write_text(text)
    assert LabeledSystem(str(p), fmt="vasp/outcar").get_atom_names() == ["O", "H"]


def test_outcar_truncated_last_frame_dropped_with_warning(tmp_path):
    text = _bytes(fixture_path(*H2O_OUTCAR))
    cut = text.rindex(b"POSITION") + 300  # inside the force table of the third step
    p = tmp_path / "OUTCAR"
    p.write_bytes(text[:cut])
    with pytest.warns(UserWarning, match="frame 2 is truncated; dropped"):
        s = LabeledSystem(str(p), fmt="vasp/outcar")
    assert len(s) == 2


def test_outcar_cut_inside_energy_line(tmp_path):
    text = _bytes(fixture_path(*H2O_OUTCAR))
    cut = text.rindex(b"free  energy   TOTEN") + 35
    p = tmp_path / "OUTCAR"
    p.write_bytes(text[:cut])
    with pytest.warns(UserWarning, match="frame 2 is truncated"):
        assert len(LabeledSystem(str(p), fmt="vasp/outcar")) == 2


def test_outcar_cut_inside_first_frame_is_an_error(tmp_path):
    text = _bytes(fixture_path(*H2O_OUTCAR))
    p = tmp_path / "OUTCAR"
    p.write_bytes(text[: text.index(b"Iteration    1(  10)")])
    with pytest.raises(ParseError) as exc:
        LabeledSystem(str(p), fmt="vasp/outcar")
    assert exc.value.path == str(p) and exc.value.frame == 0 and exc.value.line is not None


def test_outcar_broken_force_table_names_frame_and_line(tmp_path):
    text = _bytes(fixture_path(*H2O_OUTCAR)).decode()
    i = text.index("POSITION", text.index("Iteration    2(   1)"))
    row = text.index("\n", text.index("\n", i) + 1) + 1
    text = text[:row] + "      2.30878  garbage here\n" + text[text.index("\n", row) + 1 :]
    p = tmp_path / "OUTCAR"
    p.write_text(text)
    with pytest.raises(ParseError) as exc:
        LabeledSystem(str(p), fmt="vasp/outcar")
    assert exc.value.frame == 1
    assert exc.value.line == text[:row].count("\n") + 1


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (b"", "vasp/outcar"),
        (bytes(range(256)) * 40, "vasp/outcar"),
        (b"Cubic BN\n3.57\n0 .5 .5\n.5 0 .5\n.5 .5 0\nO H\n1 1\nC\n0 0 0\n.25 .25 .25\n", "vasp/outcar"),
        (b"", "vasp/xml"),
        (bytes(range(256)) * 40, "vasp/xml"),
        (b"<?xml version='1.0'?>\n<other><a>1</a></other>\n", "vasp/xml"),
        (b"", "vasp/poscar"),
        (bytes(range(1, 256)) * 40, "vasp/poscar"),
        (b"title\n1.0\n1 0 0\n0 1 0\n", "vasp/poscar"),
    ],
    ids=[
        "outcar-empty",
        "outcar-garbage",
        "outcar-poscar",
        "xml-empty",
        "xml-garbage",
        "xml-other",
        "poscar-empty",
        "poscar-garbage",
        "poscar-cut",
    ],
)
def test_bad_input_raises_parse_error_naming_the_file(tmp_path, content, fmt):
    p = tmp_path / "input"
    p.write_bytes(content)
    cls = System if fmt == "vasp/poscar" else LabeledSystem
    with pytest.raises(ParseError) as exc:
        cls(str(p), fmt=fmt)
    assert exc.value.path == str(p)
    assert exc.value.line is not None


def test_outcar_read_as_xml_and_back(tmp_path):
    with pytest.raises(ParseError):
        LabeledSystem(fixture_path(*H2O_OUTCAR), fmt="vasp/xml")
    with pytest.raises(ParseError):
        LabeledSystem(fixture_path(*H2O_XML), fmt="vasp/outcar")


def test_outcar_ml_true_on_plain_run_is_an_error():
    with pytest.raises(ParseError, match="ML"):
        LabeledSystem(fixture_path(*H2O_OUTCAR), fmt="vasp/outcar", ml=True)


def test_unknown_kwarg_is_refused():
    with pytest.raises(DpconvError, match="unexpected keyword"):
        LabeledSystem(fixture_path(*H2O_OUTCAR), fmt="vasp/outcar", convergence_chek=False)


# -- vasprun.xml -------------------------------------------------------------------------------
def test_xml_energies_equal_outcar():
    x = LabeledSystem(fixture_path(*H2O_XML), fmt="vasp/xml")
    o = LabeledSystem(fixture_path(*H2O_OUTCAR), fmt="vasp/outcar")
    np.testing.assert_allclose(x.data["energies"], o.data["energies"], atol=1e-8)
    np.testing.assert_allclose(x.data["forces"], o.data["forces"], atol=1e-5)
    np.testing.assert_allclose(x.data["virials"], o.data["virials"], atol=1e-4)


def test_xml_streams_and_truncated_last_frame(tmp_path):
    text = _bytes(fixture_path(*H2O_XML))
    a = text.index(b"<calculation>")
    b = text.rindex(b"</calculation>") + len(b"</calculation>")
    big = tmp_path / "vasprun.xml"
    big.write_bytes(text[:a] + text[a:b] * 7 + text[b:])
    ref = _quiet(dpdata.LabeledSystem, str(big), fmt="vasp/xml")
    blocks = list(xml.read(str(big), chunk_bytes=1 << 16, block_frames=2))
    assert len(ref) == 21 and len(blocks) >= 10
    assert_systems_equal(concatenate_data(blocks, labeled=True), ref.data)
    cut = tmp_path / "vasprun_cut.xml"
    cut.write_bytes(text[: text.rindex(b'name="forces"')])
    with pytest.warns(UserWarning, match="frame 2 is truncated; dropped"):
        assert len(LabeledSystem(str(cut), fmt="vasp/xml")) == 2
    first = tmp_path / "vasprun_first.xml"
    first.write_bytes(text[: text.index(b"<scstep>", a + 2000)])
    with pytest.raises(ParseError) as exc:
        LabeledSystem(str(first), fmt="vasp/xml")
    assert exc.value.frame == 0


def test_xml_convergence_warning():
    with pytest.warns(UserWarning, match=r"ionic steps 0 .*dropped"):
        assert len(LabeledSystem(fixture_path(*CONV_XML), fmt="vasp/xml")) == 2


# -- POSCAR ------------------------------------------------------------------------------------
@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("case", POSCARS, ids=lambda c: c[0])
def test_poscar_round_trip(tmp_path, case, direct):
    s = System(fixture_path(*case), fmt="vasp/poscar")
    out = tmp_path / "POSCAR"
    s.to("vasp/poscar", str(out), direct=direct)
    text = out.read_text().splitlines()
    assert text[7] == ("Direct" if direct else "Cartesian")
    assert text[5].split() == s.get_atom_names()
    assert_systems_equal(System(str(out), fmt="vasp/poscar").data, s.data, labels=False, atol=1e-10)
    # the written file is valid for another reader too
    assert_systems_equal(dpdata.System(str(out), fmt="vasp/poscar").data, s.data, labels=False, atol=1e-10)


def test_poscar_writer_groups_atoms_by_type(tmp_path):
    s = System(fixture_path("vasp_poscar_h2o_direct", "POSCAR.h2o.md"), fmt="vasp/poscar")
    order = [2, 0, 3, 1, 4, 5]
    mixed = s.pick_atom_idx(order)
    out = tmp_path / "POSCAR"
    mixed.to("vasp/poscar", str(out))
    back = System(str(out), fmt="vasp/poscar")
    np.testing.assert_array_equal(back.data["atom_types"], [0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(np.sort(back.data["coords"][0], axis=0), np.sort(s.data["coords"][0], axis=0))


def test_poscar_multi_frame_write(tmp_path):
    s = LabeledSystem(fixture_path(*H2O_OUTCAR), fmt="vasp/outcar")
    with pytest.raises(DpconvError, match="frame_idx"):
        s.to("vasp/poscar", str(tmp_path / "POSCAR"))
    assert not (tmp_path / "POSCAR").exists()
    s.to("vasp/poscar", str(tmp_path / "POSCAR"), frame_idx=2)
    back = System(str(tmp_path / "POSCAR"), fmt="vasp/poscar")
    assert_systems_equal(back.data, s.sub_system(2).data, labels=False, atol=1e-10)
    with pytest.raises(DpconvError, match="out of range"):
        s.to("vasp/poscar", str(tmp_path / "P2"), frame_idx=3)


VASP4 = """water, VASP 4 layout
 1.0
 10.0 0.0 0.0
 0.0 10.0 0.0
 0.0 0.0 10.0
 2 1
Direct
 0.1 0.1 0.1
 0.2 0.2 0.2
 0.3 0.3 0.3
"""


def test_poscar_vasp4_names_from_type_map(tmp_path):
    p = tmp_path / "POSCAR"
    p.write_text(VASP4)
    s = System(str(p), fmt="vasp/poscar", type_map=["H", "O"])
    assert s.get_atom_names() == ["H", "O"]
    np.testing.assert_array_equal(s.data["atom_types"], [0, 0, 1])
    np.testing.assert_allclose(s.data["coords"][0][2], [3.0, 3.0, 3.0])
    with pytest.warns(UserWarning, match="Type_0"):
        assert System(str(p), fmt="vasp/poscar").get_atom_names() == ["Type_0", "Type_1"]
    with pytest.raises(ParseError, match="type_map"):
        System(str(p), fmt="vasp/poscar", type_map=["H"])


def test_poscar_negative_scale_is_a_volume_and_three_scales(tmp_path):
    base = "t\n{scale}\n 2 0 0\n 0 2 0\n 0 0 2\n Si\n 1\nselective dynamics\nCartesian\n 1 1 1 T T F\n"
    p = tmp_path / "POSCAR"
    p.write_text(base.format(scale="-64"))
    s = System(str(p), fmt="vasp/poscar", lower_triangular=False)
    np.testing.assert_allclose(s.data["cells"][0], np.eye(3) * 4)
    np.testing.assert_allclose(s.data["coords"][0][0], [2, 2, 2])
    p.write_text(base.format(scale="1 2 3"))
    s = System(str(p), fmt="vasp/poscar", lower_triangular=False)
    np.testing.assert_allclose(np.diag(s.data["cells"][0]), [2, 4, 6])
    np.testing.assert_allclose(s.data["coords"][0][0], [1, 2, 3])


def test_poscar_cut_in_positions(tmp_path):
    p = tmp_path / "POSCAR"
    p.write_text("\n".join(VASP4.splitlines()[:8]).replace(" 2 1", "H O\n 2 1"))
    with pytest.raises(ParseError) as exc:
        System(str(p), fmt="vasp/poscar")
    assert exc.value.line == 10


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("OUTCAR", "vasp/outcar"),
        ("OUTCAR.relax", "vasp/outcar"),
        ("vasprun.xml", "vasp/xml"),
        ("POSCAR", "vasp/poscar"),
        ("CONTCAR", "vasp/poscar"),
        ("si.vasp", "vasp/poscar"),
    ],
)
def test_detect_by_name(name, fmt):
    assert detect(os.path.join("some", "dir", name)).name == fmt


def test_element_from_potcar_labels():
    from dpconv.formats.vasp._common import element_of

    assert [element_of(x) for x in ("Sn_d", "H.75", "Ga_d_GW", "O", "Fe_pv")] == ["Sn", "H", "Ga", "O", "Fe"]
    assert re.fullmatch(r"[A-Z][a-z]?", element_of("Ca_sv"))


def test_outcar_left_handed_cell_uses_positive_volume(tmp_path):
    """dpdata multiplies by det(cell), flipping the virials of a left-handed cell; dpconv uses |det|."""
    text = _bytes(fixture_path(*H2O_OUTCAR)).decode()
    row = "     0.141108300 -0.059556900 10.000000000"
    assert text.count(row) == 4
    p = tmp_path / "OUTCAR"
    p.write_text(text.replace(row, "    -0.141108300  0.059556900-10.000000000"))  # c -> -c, glued minus
    flipped = LabeledSystem(str(p), fmt="vasp/outcar", lower_triangular=False)
    plain = LabeledSystem(fixture_path(*H2O_OUTCAR), fmt="vasp/outcar", lower_triangular=False)
    assert np.linalg.det(flipped.data["cells"][0]) < 0
    np.testing.assert_allclose(flipped.data["cells"][:, 2], -plain.data["cells"][:, 2])
    np.testing.assert_allclose(flipped.data["virials"], plain.data["virials"], rtol=1e-12)
