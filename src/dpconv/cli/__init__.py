"""The ``dpconv`` command line: a click group whose commands come from plugins.

Built-in commands (``convert``, ``formats``, ``plugins``, ``info``) are registered
through the same ``dpconv_register_commands`` hook third-party plugins use.
User errors (:class:`~dpconv.errors.DpconvError`) print one line and exit 1.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from dpconv.errors import DpconvError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class _Group(click.Group):
    """Loads plugin commands on first use and turns dpconv errors into one line."""

    _loaded = False

    def _load(self) -> None:
        if not self._loaded:
            type(self)._loaded = True
            from dpconv.plugins import get_plugin_manager

            get_plugin_manager().hook.dpconv_register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DpconvError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("interrupted; no partial output was left behind", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings=CONTEXT)
@click.version_option(package_name="dpconv")
def cli() -> None:
    """Convert DFT/MD outputs to DeePMD-kit data, inspect it, and more.

    \b
    Examples:
      dpconv convert -i vasp/outcar OUTCAR -o deepmd/npy data
      dpconv convert -i cp2k/aimd_output run/ -o deepmd/npy data --split 0.2 --seed 1
      dpconv info data
      dpconv formats
    """


COMPUTE_COMMANDS = ("train", "test", "md")  # they re-execute once with huge pages for tensors


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in COMPUTE_COMMANDS:
        from dpconv.trainer.malloc import reexec_with_hugepages

        reexec_with_hugepages(sys.argv)
    try:
        cli(prog_name="dpconv")
    except DpconvError as exc:  # errors raised while loading plugins
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
