"""CLI commands of the trainer: ``train``, ``freeze``, ``test``, ``plot``.

Registered through ``dpconv_register_commands`` like any plugin. Command
bodies import torch lazily, so ``dpconv --help`` stays light.
"""

from __future__ import annotations

import json
import os

import click

from dpconv.errors import ConfigError
from dpconv.hookspecs import hookimpl


@click.command()
@click.argument("input_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--restart", "restart", metavar="CKPT", help="Resume from a checkpoint (same trajectory).")
@click.option("--init-model", "init_model", metavar="CKPT", help="Start from a checkpoint's weights (fine-tune).")
@click.option("--skip-neighbor-stat", is_flag=True, help="Skip the neighbour statistics (needs an explicit sel).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("-o", "--output-dir", default=".", show_default=True, help="Folder for lcurve.out and checkpoints.")
def train(
    input_file: str, restart: str | None, init_model: str | None, skip_neighbor_stat: bool, device: str, output_dir: str
) -> None:
    """Train an se_e2_a energy model from a DeePMD-kit INPUT_FILE (input.json).

    \b
    Examples:
      dpconv train input.json
      dpconv train input.json --restart model.ckpt-1000.pt
      torchrun --nproc_per_node 4 $(which dpconv) train input.json

    In float64 the embedding nets are interpolated at Chebyshev nodes each step (equal to the
    nets to ~1e-12; docs/trainer.md); DPCONV_NET_INTERPOLATION=0 runs them on every neighbour.
    """
    from dpconv.trainer.dist import finish_distributed
    from dpconv.trainer.loop import train as run

    if restart and init_model:
        raise click.UsageError("--restart and --init-model are exclusive")
    with open(input_file) as fh:
        try:
            config = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{input_file}: not valid JSON ({exc})") from None
    run(
        config,
        workdir=output_dir,
        restart=restart,
        init_model=init_model,
        skip_neighbor_stat=skip_neighbor_stat,
        device=device,
        log=lambda s: click.echo(s, err=True),
    )
    finish_distributed()


@click.command()
@click.option(
    "-c",
    "--checkpoint",
    "ckpt",
    default=".",
    show_default=True,
    help="A checkpoint file, or a folder whose 'checkpoint' file names the latest one.",
)
@click.option("-o", "--output", default="model.pth", show_default=True, help="Frozen model file (.pth).")
@click.option(
    "--no-tables",
    is_flag=True,
    help="Evaluate the embedding nets themselves instead of their Chebyshev tables "
    "(the tables equal them to ~1e-12 and are faster).",
)
def freeze(ckpt: str, output: str, no_tables: bool) -> None:
    """Write a self-contained TorchScript model (loads with torch alone)."""
    from dpconv.trainer.export import freeze as run

    out = run(ckpt, output, tables=not no_tables)
    click.echo(f"wrote {out}")


def _test_systems(path: str, fmt: str) -> list[tuple[str, object]]:
    import glob

    from dpconv import io

    if fmt in ("auto", "deepmd/npy") and os.path.isdir(path) and not os.path.isfile(os.path.join(path, "type.raw")):
        found = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(path, "**", "type.raw"), recursive=True))
        if found:
            return [(f, io.read(f, "deepmd/npy", labeled=True)) for f in found]
    if fmt == "auto" and os.path.isfile(os.path.join(path, "type.raw")):
        fmt = "deepmd/npy"
    return [(path, io.read(path, fmt, labeled=True))]


@click.command()
@click.option("-m", "--model", default="model.pth", show_default=True, help="Frozen model (.pth) or checkpoint.")
@click.option(
    "-s", "--system", "system", required=True, help="System folder (searched for deepmd/npy systems) or file."
)
@click.option("-i", "--input-format", "fmt", default="auto", show_default=True, help="Format of SYSTEM.")
@click.option(
    "-n", "--numb-test", default=0, show_default=True, type=click.IntRange(0), help="Frames per system (0: all)."
)
@click.option("-d", "--detail-file", default=None, help="Prefix of the .e.out/.f.out/.v.out parity files.")
@click.option("--shuffle-test", is_flag=True, help="Test on shuffled frames.")
@click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
def test(
    model: str, system: str, fmt: str, numb_test: int, detail_file: str | None, shuffle_test: bool, device: str
) -> None:
    """Errors of a model on labelled data, in DeePMD-kit's `dp test` format."""
    from dpconv.trainer.evaluate import Evaluator
    from dpconv.trainer.evaluate import test as run

    ev = Evaluator(model, device=device)
    run(
        ev,
        _test_systems(system, fmt),  # pyright: ignore[reportArgumentType]
        numb_test=numb_test,
        detail_file=detail_file,  # type: ignore[arg-type]
        shuffle=shuffle_test,
        log=click.echo,
    )


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", default=None, help="PNG file (only with one input).")
def plot(files: tuple[str, ...], output: str | None) -> None:
    """Plot lcurve.out (learning curve) or `dpconv test -d` files (.e.out, .f.out …) as PNG."""
    from dpconv.trainer.plot import plot_lcurve, plot_parity

    if output and len(files) > 1:
        raise click.UsageError("-o works with one input file")
    for f in files:
        with open(f) as fh:
            head = fh.readline()
        out = plot_lcurve(f, output) if head.startswith("# step") else plot_parity(f, output)
        click.echo(f"wrote {out}")


@hookimpl
def dpconv_register_commands(cli: click.Group) -> None:
    for cmd in (train, freeze, test, plot):
        cli.add_command(cmd)
