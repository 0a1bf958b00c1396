"""Built-in CLI commands: convert, formats, plugins, info (a plugin like any other)."""

from __future__ import annotations

import glob
import os
import sys
import time
from typing import Any

import click

from dpconv.hookspecs import hookimpl


def _expand(inputs: tuple[str, ...]) -> list[str]:
    paths: list[str] = []
    for item in inputs:
        if any(c in item for c in "*?[") and not os.path.exists(item):
            hits = sorted(glob.glob(item, recursive=True))
            if not hits:
                raise click.BadParameter(f"{item!r} matches no file", param_hint="INPUT")
            paths.extend(hits)
        else:
            paths.append(item)
    return paths


def _type_map(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [t for t in value.replace(",", " ").split() if t]


@click.command()
@click.option("-i", "--input-format", "in_fmt", default="auto", show_default=True, help="Format of the inputs.")
@click.argument("inputs", nargs=-1, required=True)
@click.option("-o", "--output-format", "out_fmt", default="deepmd/npy", show_default=True, help="Output format.")
@click.argument("output")
@click.option("-t", "--type-map", help="Atom names in type order, e.g. 'O,H' or 'O H'.")
@click.option(
    "--split",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    help="Fraction of frames for validation: writes OUTPUT/training_data and OUTPUT/validation_data.",
)
@click.option("--seed", type=int, default=None, help="Random seed of --split (reproducible).")
@click.option("--set-size", type=click.IntRange(1), default=None, help="Frames per set (deepmd formats).")
@click.option("--labeled/--unlabeled", default=None, help="Keep energies/forces (default: when all inputs have them).")
@click.option("--progress/--no-progress", default=None, help="Show a progress bar (default: on a terminal).")
def convert(
    in_fmt: str,
    inputs: tuple[str, ...],
    out_fmt: str,
    output: str,
    type_map: str | None,
    split: float | None,
    seed: int | None,
    set_size: int | None,
    labeled: bool | None,
    progress: bool | None,
) -> None:
    """Convert INPUT... (files, folders or globs) to OUTPUT.

    Several inputs become one set of systems grouped by formula. Input files are
    read and written block by block, so large trajectories stream.

    \b
    Examples:
      dpconv convert -i vasp/outcar OUTCAR -o deepmd/npy data
      dpconv convert -i deepmd/npy 'water/data_*' -o deepmd/npy out --split 0.2 --seed 1
    """
    from dpconv import io

    paths = _expand(inputs)
    tm = _type_map(type_map)
    wkw: dict[str, Any] = {}
    if set_size is not None:
        wkw["set_size"] = set_size
    if split is not None:
        _convert_split(paths, in_fmt, out_fmt, output, tm, split, seed, labeled, wkw)
        return
    show = progress if progress is not None else sys.stderr.isatty()
    ticker = _Ticker() if show else None
    counts = io.convert(
        paths, output, in_fmt=in_fmt, out_fmt=out_fmt, type_map=tm, labeled=labeled, progress=ticker, **wkw
    )
    if ticker is not None:
        ticker.close()
    total = sum(counts.values())
    click.echo(f"wrote {total} frames in {len(counts)} system(s) to {output} ({out_fmt})")


class _Ticker:
    """A progress line on stderr: frames converted so far and the rate."""

    def __init__(self) -> None:
        self.frames = 0
        self.start = time.perf_counter()
        self.last = 0.0

    def __call__(self, n: int) -> None:
        self.frames += n
        now = time.perf_counter()
        if now - self.last > 0.2:
            self.last = now
            rate = self.frames / max(now - self.start, 1e-9)
            click.echo(f"\rconverting: {self.frames} frames ({rate:.0f} frames/s)", nl=False, err=True)

    def close(self) -> None:
        click.echo(f"\rconverting: {self.frames} frames, done", err=True)


def _convert_split(
    paths: list[str],
    in_fmt: str,
    out_fmt: str,
    output: str,
    tm: list[str] | None,
    split: float,
    seed: int | None,
    labeled: bool | None,
    wkw: dict[str, Any],
) -> None:
    """Read everything, split each system by ``split``, write training_data/validation_data."""
    from dpconv import io
    from dpconv.system import MultiSystems

    systems = [io.read(p, in_fmt, labeled=labeled) for p in paths]
    ms = MultiSystems(*systems, type_map=tm)
    train = MultiSystems(type_map=ms.atom_names)
    valid = MultiSystems(type_map=ms.atom_names)
    for s in ms:
        t, v = s.split(split, seed)
        train.append(t)
        valid.append(v)
    with io.atomic_path(output) as tmp:
        os.makedirs(tmp)
        for name, part in (("training_data", train), ("validation_data", valid)):
            named = [(f, io._blocks_of(s)) for f, s in part.systems.items()]
            io.write_systems(named, os.path.join(tmp, name), out_fmt, single_as_root=True, **wkw)
    click.echo(
        f"wrote {train.get_nframes()} training and {valid.get_nframes()} validation frames "
        f"({len(ms)} system(s)) to {output}/training_data and {output}/validation_data"
    )


@click.command()
@click.option("--markdown", is_flag=True, help="Print a Markdown table (used by the README).")
def formats(markdown: bool) -> None:
    """List the formats dpconv can read and write."""
    click.echo(formats_table(markdown))


def formats_table(markdown: bool = False, builtin_only: bool = False) -> str:
    """The table of registered formats (plain text or Markdown)."""
    from dpconv.registry import all_formats

    rows = []
    for f in all_formats():
        if builtin_only and f.plugin != "dpconv.formats":
            continue
        rows.append(
            (
                f.name,
                ", ".join(f.aliases) or "-",
                f.reads or "-",
                "yes" if f.writes else "-",
                f.plugin if f.plugin != "dpconv.formats" else "built-in",
                f.description,
            )
        )
    head = ("format", "aliases", "read", "write", "from", "description")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(f"`{r[0]}`" if i == 0 else r[i] for i in range(len(r))) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head) - 1)]
    out = []
    for r in [head, *rows]:
        out.append("  ".join(str(r[i]).ljust(widths[i]) for i in range(len(head) - 1)) + "  " + r[-1])
    return "\n".join(out)


@click.command()
def plugins() -> None:
    """List installed plugins and the hooks they implement."""
    from dpconv.plugins import list_plugins

    for p in list_plugins():
        click.echo(f"{p['name']:32} {p['kind']:9} {p['hooks']}")


@click.command()
@click.argument("path")
@click.option("-i", "--input-format", "fmt", default="auto", show_default=True, help="Format of PATH.")
def info(path: str, fmt: str) -> None:
    """Frames, atoms, formula and labels of PATH."""
    from dpconv import io, registry

    finfo = registry.resolve(fmt, path, "read")
    if finfo.multi:
        ms = io.read_multi(path, finfo.name, labeled=finfo.reads != "System")
        systems = list(ms.systems.items())
    else:
        s = io.read(path, finfo.name)
        systems = [(s.formula, s)]
    click.echo(f"{path}: {finfo.name}, {len(systems)} system(s)")
    for name, s in systems:
        labels = [k for k in ("energies", "forces", "virials") if k in s.data]
        click.echo(
            f"  {name}: {len(s)} frames, {s.get_natoms()} atoms, formula {s.formula}, "
            f"types {s.get_atom_names()}, pbc {'no' if s.nopbc else 'yes'}, "
            f"labels: {', '.join(labels) or 'none'}"
        )


@hookimpl
def dpconv_register_commands(cli: click.Group) -> None:
    for cmd in (convert, formats, plugins, info):
        cli.add_command(cmd)
