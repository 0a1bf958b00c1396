"""CLI commands of the MD engines: ``dpconv md lammps`` and ``dpconv lammps build|env``.

Registered through ``dpconv_register_commands``; bodies import lammps/torch lazily.
"""

from __future__ import annotations

import click

from dpconv.hookspecs import hookimpl


@click.group()
def md() -> None:
    """Run molecular dynamics with a frozen model (LAMMPS through its Python module)."""


@md.command("lammps")
@click.argument("input_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "-v",
    "--var",
    "variables",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="A LAMMPS index variable (as lmp -var).",
)
@click.option("--log", default="log.lammps", show_default=True, help="LAMMPS log file ('none' for no log).")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
def md_lammps(input_file: str, variables: tuple[tuple[str, str], ...], log: str, device: str) -> None:
    """Run a LAMMPS INPUT_FILE whose 'pair_style deepmd|dpconv MODEL' is served by fix external.

    No compiler needed: the pair lines become 'pair_style zero' plus a 'fix external' whose
    callback evaluates the model (one MPI rank). For speed and MPI build the plugin
    ('dpconv lammps build') and run 'lmp -i INPUT_FILE' unchanged.

    \b
    Examples:
      dpconv md lammps in.lammps
      dpconv md lammps in.lammps -v TEMP 300 --log run.log
    """
    from dpconv.md.fix_external import run_input

    lmp = run_input(input_file, cmdargs=["-log", log], variables=dict(variables), device=device)
    lmp.close()


@click.group()
def lammps() -> None:
    """Build and locate the compiled LAMMPS pair style 'dpconv' (alias 'deepmd')."""


@lammps.command("build")
@click.option(
    "-o", "--output-dir", default=None, help="Folder for dpconvplugin.so and dpconv_pair.so (default: user data)."
)
@click.option("--jobs", "-j", default=2, show_default=True, help="Parallel compile jobs.")
@click.option("--force", is_flag=True, help="Rebuild even when an up-to-date build exists.")
def lammps_build(output_dir: str | None, jobs: int, force: bool) -> None:
    """Compile the pair style plugin against the installed torch and lammps (g++, cmake).

    Then export the printed lines (or 'plugin load PATH' in the input). The plugin registers
    'dpconv' and, unless a 'deepmd' style is already loaded or DPCONV_NO_DEEPMD_ALIAS=1, 'deepmd'.
    """
    from dpconv.md.lammps.build import build, environment

    path = build(output_dir, jobs=jobs, force=force, log=lambda s: click.echo(s, err=True))
    click.echo(f"built {path}")
    for k, v in environment(output_dir).items():
        click.echo(f"export {k}={v}")


@lammps.command("env")
@click.option("-o", "--output-dir", default=None, help="The folder given to 'build'.")
def lammps_env(output_dir: str | None) -> None:
    """Print the environment lines that let 'lmp' find the plugin and its libraries."""
    from dpconv.md.lammps.build import environment

    for k, v in environment(output_dir).items():
        click.echo(f"export {k}={v}")


@hookimpl
def dpconv_register_commands(cli: click.Group) -> None:
    cli.add_command(md)
    cli.add_command(lammps)
