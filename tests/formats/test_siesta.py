"""SIESTA formats: corpus, dpdata differential, the virial sign, variants and bad input."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from dpconv import LabeledSystem, System, units
from dpconv.errors import ParseError
from dpconv.testing import BAD_INPUTS, assert_systems_equal, load_expected
from tests.conftest import fixture_path

SP = ("siesta_output_ch4", "siesta_output", "siesta/output")
MD = ("siesta_aimd_si64", "output", "siesta/aimd_output")
EV_A3_TO_KBAR = 1.0 / units.KBAR_TO_EV_PER_ANGSTROM3


def _read(path: str, fmt: str, **kw) -> LabeledSystem:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LabeledSystem(path, fmt=fmt, **kw)


def _text(case: tuple[str, str, str]) -> str:
    with open(fixture_path(case[0], case[1])) as fh:
        return fh.read()


# -- corpus and dpdata ------------------------------------------------------------------
@pytest.mark.parametrize("case", [SP, MD], ids=["sp", "md"])
def test_corpus_with_dpdata_sign(case: tuple[str, str, str]) -> None:
    s = _read(fixture_path(case[0], case[1]), case[2], dpdata_virial=True)
    assert_systems_equal(s.data, load_expected(fixture_path(case[0], "expected.npz")))


@pytest.mark.parametrize("case", [SP, MD], ids=["sp", "md"])
def test_corpus_default_flips_only_the_virial(case: tuple[str, str, str]) -> None:
    s = _read(fixture_path(case[0], case[1]), case[2])
    expected = load_expected(fixture_path(case[0], "expected.npz"))
    expected["virials"] = -expected["virials"]  # dpdata's sign is wrong, see test_virial_sign_matches_pressure
    assert_systems_equal(s.data, expected)


@pytest.mark.parametrize("case", [SP, MD], ids=["sp", "md"])
def test_same_as_dpdata(case: tuple[str, str, str]) -> None:
    dpdata = pytest.importorskip("dpdata")
    path = fixture_path(case[0], case[1])
    ref = dpdata.LabeledSystem(path, fmt=case[2])
    assert_systems_equal(_read(path, case[2], dpdata_virial=True).data, ref.data)
    ours = _read(path, case[2])
    np.testing.assert_allclose(ours["virials"], -np.asarray(ref["virials"]), atol=1e-6)
    unlabeled = System(path, fmt=case[2])
    assert_systems_equal(unlabeled.data, dpdata.System(path, fmt=case[2]).data, labels=False)


@pytest.mark.parametrize("case", [SP, MD], ids=["sp", "md"])
def test_virial_sign_matches_pressure(case: tuple[str, str, str]) -> None:
    """DeePMD's virial is +P V on the trace; SIESTA prints its 'Pressure (static)' in kBar.

    This documents the dpdata bug: its SIESTA virials have trace -3 P V.
    """
    path = fixture_path(case[0], case[1])
    text = _text(case)
    pressures = []
    for m in re.finditer(r"siesta: Pressure \(static\):\s*\n?(.*?kBar)", text, re.S):
        pressures.append(float(m.group(1).split("\n")[-1].split()[-3 if "Solid" in m.group(1) else -2]))
    s = _read(path, case[2])
    vol = np.abs(np.linalg.det(s["cells"]))
    p_kbar = np.trace(s["virials"], axis1=1, axis2=2) / 3 / vol * EV_A3_TO_KBAR
    np.testing.assert_allclose(p_kbar, pressures[: len(s)], atol=0.02)


def test_md_layout() -> None:
    s = _read(fixture_path(MD[0], MD[1]), MD[2])
    assert len(s) == 5
    assert s["atom_names"] == ["Si"]
    assert s.get_natoms() == 64
    assert s["virials"].shape == (5, 3, 3)


def test_aimd_name_case_insensitive() -> None:
    s = _read(fixture_path(MD[0], MD[1]), "siesta/aiMD_output")
    assert len(s) == 5


def test_output_on_md_reads_first_step_and_warns() -> None:
    with pytest.warns(UserWarning, match="siesta/aimd_output"):
        s = LabeledSystem(fixture_path(MD[0], MD[1]), fmt="siesta/output")
    md = _read(fixture_path(MD[0], MD[1]), MD[2])
    assert_systems_equal(s.data, md[0].data)


def test_streams_in_blocks(monkeypatch) -> None:
    from dpconv.formats.siesta import output

    monkeypatch.setattr(output, "CHUNK_VALUES", 2 * 64 * 3)
    blocks = list(output.Reader(fixture_path(MD[0], MD[1])).frames(first_only=False))
    assert [len(b["energies"]) for b in blocks] == [2, 2, 1]


# -- hand-made variants -------------------------------------------------------------------
def _table_rewrite(text: str, header_unit: str, factor_fn) -> str:
    """Rewrite the coordinates table of the single point in another unit."""
    head = "outcoor: Atomic coordinates (Ang):"
    i = text.index(head)
    start = text.index("\n", i) + 1
    stop = text.index("\n\n", start)
    rows = []
    for line in text[start:stop].splitlines():
        parts = line.split()
        xyz = factor_fn(np.array(parts[:3], float))
        rows.append("  ".join(f"{v:14.8f}" for v in xyz) + "   " + "   ".join(parts[3:]))
    return (
        text[:i]
        + f"outcoor: Atomic coordinates ({header_unit}):"
        + text[i + len(head) : start]
        + "\n".join(rows)
        + text[stop:]
    )


def test_bohr_and_fractional_coordinates(tmp_path) -> None:
    ref = _read(fixture_path(SP[0], SP[1]), SP[2])
    cell = ref["cells"][0]
    text = _text(SP)
    bohr = tmp_path / "bohr.out"
    bohr.write_text(_table_rewrite(text, "Bohr", lambda x: x / units.BOHR_TO_ANGSTROM))
    np.testing.assert_allclose(_read(str(bohr), "siesta/output")["coords"], ref["coords"], atol=1e-6)
    frac = tmp_path / "frac.out"
    frac.write_text(_table_rewrite(text, "fractional", lambda x: x @ np.linalg.inv(cell)))
    np.testing.assert_allclose(_read(str(frac), "siesta/output")["coords"], ref["coords"], atol=1e-6)
    scaled = tmp_path / "scaled.out"
    scaled.write_text(_table_rewrite(text, "scaled", lambda x: x))
    with pytest.raises(ParseError, match="Ang, Bohr or fractional") as err:
        LabeledSystem(str(scaled), fmt="siesta/output")
    assert err.value.frame == 0


def test_no_stress_gives_no_virials(tmp_path) -> None:
    p = tmp_path / "nostress.out"
    p.write_text(_text(SP).replace("siesta: Stress tensor (static)", "siesta: Stress tensor (hidden)"))
    s = _read(str(p), "siesta/output")
    assert "virials" not in s.data
    assert len(s) == 1


def test_unconverged_step_dropped(tmp_path) -> None:
    text = _text(MD)
    marks = [m.start() for m in re.finditer(r"siesta: E_KS\(eV\) =", text)]
    text = text[: marks[2]] + "SCF_NOT_CONV: SCF did not converge in maximum number of steps.\n" + text[marks[2] :]
    p = tmp_path / "unconv.out"
    p.write_text(text)
    with pytest.warns(UserWarning, match=r"SCF not converged in frames \[2\]; dropped"):
        s = LabeledSystem(str(p), fmt="siesta/aimd_output")
    ref = _read(fixture_path(MD[0], MD[1]), MD[2])
    np.testing.assert_allclose(s["energies"], np.delete(ref["energies"], 2))


def test_md_cut_mid_frame_keeps_complete_frames(tmp_path) -> None:
    text = _text(MD)
    cut = [m.start() for m in re.finditer(r"siesta: Atomic forces", text)][3] + 500
    p = tmp_path / "cut.out"
    p.write_text(text[:cut])
    with pytest.warns(UserWarning, match="frame 3 is truncated; dropped"):
        s = LabeledSystem(str(p), fmt="siesta/aimd_output")
    ref = _read(fixture_path(MD[0], MD[1]), MD[2])
    assert_systems_equal(s.data, ref[:3].data)


def test_md_cut_inside_coordinates(tmp_path) -> None:
    text = _text(MD)
    cut = [m.start() for m in re.finditer(r"outcoor: Atomic coordinates", text)][4] + 600
    p = tmp_path / "cut.out"
    p.write_text(text[:cut])
    with pytest.warns(UserWarning, match="frame 4 is truncated; dropped"):
        s = LabeledSystem(str(p), fmt="siesta/aimd_output")
    assert len(s) == 4


def test_single_point_cut_is_an_error(tmp_path) -> None:
    text = _text(SP)
    p = tmp_path / "cut.out"
    p.write_text(text[: text.index("siesta: Atomic forces") + 100])
    with pytest.raises(ParseError, match="ends inside frame 0") as err:
        LabeledSystem(str(p), fmt="siesta/output")
    assert err.value.path == str(p)
    assert err.value.frame == 0


# -- bad input --------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["siesta/output", "siesta/aimd_output"])
@pytest.mark.parametrize(
    ("name", "content"),
    [(f"{stem}.out", content) for stem, content in BAD_INPUTS],
)
def test_bad_input(tmp_path, fmt: str, name: str, content: bytes) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(ParseError) as err:
        LabeledSystem(str(p), fmt=fmt)
    assert err.value.path == str(p)
    assert err.value.line == 1


def test_gaussian_log_is_rejected() -> None:
    path = fixture_path("gaussian_log_methane", "methane.gaussianlog")
    with pytest.raises(ParseError, match="SIESTA") as err:
        LabeledSystem(path, fmt="siesta/output")
    assert err.value.path == path


def test_hand_made_bad_species(tmp_path) -> None:
    text = _text(SP).replace(
        "    5.01936000    4.68879000    4.44103000   2", "    5.01936000    4.68879000    4.44103000   3"
    )
    p = tmp_path / "species.out"
    p.write_text(text)
    with pytest.raises(ParseError, match="species indices") as err:
        LabeledSystem(str(p), fmt="siesta/output")
    assert err.value.line == 447


def test_fixed_width_parse_equals_split() -> None:
    from dpconv.formats.siesta import output

    text = _text(MD).encode()
    tables = []
    for m in re.finditer(rb"outcoor: Atomic coordinates \(Ang\):[^\n]*\n((?:[^\n]*\n){64})", text):
        tables.append(m.group(1))
    fast = output._fixed_coords(b"".join(tables), 64 * len(tables))
    assert fast is not None
    slow = [output._split_coords("x", t, 0, None) for t in tables]
    np.testing.assert_array_equal(fast[0], np.concatenate([s[0] for s in slow]))
    np.testing.assert_array_equal(fast[1], np.concatenate([s[1] for s in slow]))
    # another layout (numbers not on the 3f14.8 grid) is refused, not misread
    assert output._fixed_coords(b"  1.0 2.0 3.0   1   1  Si" + b" " * 30 + b"\n", 1) is None
