"""The README's format table is generated from the registry and must be current."""

from __future__ import annotations

import os
import re

from dpconv.cli import cli
from dpconv.cli.builtin_commands import formats_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md")) as fh:
        return fh.read()


def test_readme_formats_table_is_current() -> None:
    m = re.search(r"<!-- formats:start -->\n(.*?)<!-- formats:end -->", _readme(), re.S)
    assert m, "README lacks the formats markers"
    assert m.group(1).strip() == formats_table(markdown=True, builtin_only=True).strip(), (
        "README formats table is stale: run `python -m dpconv.cli.readme` to regenerate it"
    )


def test_every_command_is_documented() -> None:
    import click

    ctx = click.Context(cli)
    text = _readme()
    for root, _, files in os.walk(os.path.join(ROOT, "docs")):
        for f in files:
            if f.endswith(".md"):
                with open(os.path.join(root, f)) as fh:
                    text += fh.read()
    for name in cli.list_commands(ctx):
        assert f"dpconv {name}" in text, f"command {name!r} is not documented in README or docs/"


def test_every_hook_is_documented() -> None:
    from dpconv import hookspecs

    with open(os.path.join(ROOT, "docs", "plugins.md")) as fh:
        text = fh.read()
    for name in dir(hookspecs):
        if name.startswith("dpconv_"):
            assert name in text
