"""Benchmark: MD engines with a dpconv model vs the model's own evaluation time.

A frozen se_e2_a model of the DeePMD-kit water tutorial's sizes (descriptor [25, 50, 100],
axis_neuron 16, fitting [240, 240, 240], rcut 6 Å, sel [46, 92], float64) is trained for
``--train-steps`` steps on the water corpus (``/work/shared/fixtures/water_deepmd``, or
``DPCONV_FIXTURES``) and frozen; the speed does not depend on how well it is trained. On a
192-atom periodic water frame of the corpus and its 2x2x2 replica (1536 atoms) it measures:

* ``model``: the evaluator's time per frame (``dpconv.trainer.load(path).evaluate``: energy,
  forces, virial; TorchScript forward plus numpy conversion), mean over ``--steps`` calls;
* ``lammps plugin``: ``lmp`` with ``pair_style dpconv`` (the compiled plugin, ``dpconv lammps
  build``; built here if missing), NVE, LAMMPS' loop time of a second ``run``;
* ``lammps fix external``: the same input through ``dpconv md lammps`` (``run_input``);
* ``ase``: ASE's VelocityVerlet with ``DPConvCalculator``.

All on one thread (torch intra-op threads = 1, ``DPCONV_NUM_THREADS=1``, ``OMP_NUM_THREADS=1``),
one MPI rank, after a warm-up (TorchScript's profiling executor optimises on the first calls).
Prints ms/step and each engine's ratio to ``model`` (the issue's target: plugin <= 1.5x).

    python benchmarks/bench_md.py [--train-steps 10] [--steps 20] [--steps-large 5]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

INPUT = """units metal
boundary p p p
atom_style atomic
atom_modify map yes
read_data conf.lmp
pair_style dpconv {model}
pair_coeff * * O H
neighbor 1.0 bin
neigh_modify every 10 delay 0 check yes
velocity all create 300 4928 mom yes rot no
fix nve all nve
timestep 0.0005
thermo {steps}
run {warm}
run {steps}
"""


def tutorial_config(systems: list[str], steps: int) -> dict:
    return {
        "model": {
            "type_map": ["O", "H"],
            "descriptor": {
                "type": "se_e2_a",
                "sel": [46, 92],
                "rcut_smth": 0.5,
                "rcut": 6.0,
                "neuron": [25, 50, 100],
                "resnet_dt": False,
                "axis_neuron": 16,
                "seed": 1,
            },
            "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": 1},
        },
        "learning_rate": {"type": "exp", "decay_steps": 50, "start_lr": 0.001, "stop_lr": 3.51e-8},
        "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1},
        "training": {
            "training_data": {"systems": systems, "batch_size": 1},
            "numb_steps": steps,
            "seed": 10,
            "disp_freq": max(1, steps),
            "save_freq": max(1, steps),
        },
    }


def make_model(workdir: str, data: list[str], steps: int) -> str:
    import dpconv
    from dpconv.trainer import freeze, train

    systems = [dpconv.read(d, "deepmd/npy", labeled=True) for d in data]
    run = os.path.join(workdir, "train")
    train(tutorial_config(data, steps), training=systems, workdir=run, device="cpu", log=lambda s: None)
    return freeze(run, os.path.join(workdir, "model.pth"))


def water(frame_dir: str, reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell, coords, types) of frame 0, replicated reps x reps x reps."""
    import dpconv

    s = dpconv.read(frame_dir, "deepmd/npy")
    cell, x, t = s.data["cells"][0], s.data["coords"][0], np.asarray(s.data["atom_types"])
    shifts = np.array([(i, j, k) for i in range(reps) for j in range(reps) for k in range(reps)], float) @ cell
    coords = (x[None] + shifts[:, None]).reshape(-1, 3)
    return cell * reps, coords, np.tile(t, len(shifts))


def time_model(model: str, cell, x, t, steps: int) -> float:
    from dpconv.trainer import load

    ev = load(model)
    for _ in range(3):
        ev.evaluate(x[None], cell[None], t)
    t0 = time.perf_counter()
    for _ in range(steps):
        ev.evaluate(x[None], cell[None], t)
    return (time.perf_counter() - t0) / steps


def loop_time(log: str) -> float:
    """Seconds per step of the last ``run`` from LAMMPS' 'Loop time of X on P procs for N steps'."""
    m = re.findall(r"Loop time of ([\d.eE+-]+) on \d+ procs? for (\d+) steps", log)
    if not m:
        raise RuntimeError("no 'Loop time' line in the LAMMPS log:\n" + log[-2000:])
    sec, n = m[-1]
    return float(sec) / int(n)


def time_plugin(folder: str, plugin: str, steps: int) -> float:
    from dpconv.md.lammps.build import environment, lammps_paths

    env = dict(os.environ)
    env.update(environment(os.path.dirname(plugin)))
    env.pop("LAMMPS_PLUGIN_PATH")
    env.update({"OMP_NUM_THREADS": "1", "DPCONV_NUM_THREADS": "1"})
    lmp = os.path.join(lammps_paths()["root"], "lmp")
    cmd = [lmp, "-in", "in.plugin", "-log", "log.plugin", "-screen", "none", "-nocite"]
    res = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    with open(os.path.join(folder, "log.plugin")) as fh:
        log = fh.read()
    if res.returncode != 0:
        raise RuntimeError((res.stdout + res.stderr)[-2000:] + log[-2000:])
    return loop_time(log)


def time_fix_external(folder: str) -> float:
    from dpconv.md.fix_external import run_input

    lmp = run_input(os.path.join(folder, "in.external"), cmdargs=["-log", "log.external", "-screen", "none"])
    lmp.close()
    with open(os.path.join(folder, "log.external")) as fh:
        return loop_time(fh.read())


def time_ase(model: str, cell, x, t, steps: int) -> float:
    from ase import Atoms, units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from dpconv.ase import DPConvCalculator

    atoms = Atoms(symbols=[("O", "H")[i] for i in t], positions=x, cell=cell, pbc=True)
    atoms.calc = DPConvCalculator(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ASE >= 3.25 prefers thermalize_momenta
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dyn = VelocityVerlet(atoms, timestep=0.5 * units.fs)
    dyn.run(2)
    t0 = time.perf_counter()
    dyn.run(steps)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-steps", type=int, default=10, help="training steps before freezing (default 10)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps, 192 atoms (default 20)")
    ap.add_argument("--steps-large", type=int, default=5, help="timed steps, 1536 atoms (default 5)")
    ap.add_argument("--model", help="use this frozen model instead of training one")
    ap.add_argument("--plugin-dir", help="where the plugin is built/cached (default: dpconv lammps build's)")
    ap.add_argument("--skip", nargs="*", default=[], choices=["plugin", "external", "ase"])
    args = ap.parse_args()

    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["DPCONV_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from tests.md.lmp_helpers import write_data

    from dpconv.testing import fixtures_dir

    data = [os.path.join(fixtures_dir(), "water_deepmd", f"data_{i}") for i in range(4)]
    if not os.path.isdir(data[0]):
        sys.exit(f"water corpus not found at {data[0]} (set DPCONV_FIXTURES)")
    work = tempfile.mkdtemp(prefix="bench_md_")
    t0 = time.perf_counter()
    model = os.path.abspath(args.model) if args.model else make_model(work, data, args.train_steps)
    how = f"given ({args.model})" if args.model else f"{args.train_steps} training steps on the water corpus"
    print(f"model: {how}, {time.perf_counter() - t0:.0f} s; torch {torch.__version__}, 1 thread, 1 MPI rank")

    plugin = None
    if "plugin" not in args.skip:
        from dpconv.md.lammps.build import BuildError, build

        try:
            plugin = build(args.plugin_dir, jobs=2, log=lambda s: print("plugin:", s))
        except BuildError as exc:
            print(f"plugin: skipped ({exc})")

    rows = []
    for reps, steps in ((1, args.steps), (2, args.steps_large)):
        cell, x, t = water(data[0], reps)
        folder = os.path.join(work, f"r{reps}")
        os.makedirs(folder)
        write_data(os.path.join(folder, "conf.lmp"), cell, x, t)
        res = {"model": time_model(model, cell, x, t, steps)}
        for name, pair in (("plugin", f"plugin load {plugin}\n"), ("external", "")):
            with open(os.path.join(folder, f"in.{name}"), "w") as fh:
                fh.write(pair + INPUT.format(model=model, steps=steps, warm=2))
        if plugin is not None:
            res["lammps plugin"] = time_plugin(folder, plugin, steps)
        if "external" not in args.skip:
            res["lammps fix external"] = time_fix_external(folder)
        if "ase" not in args.skip:
            res["ase VelocityVerlet"] = time_ase(model, cell, x, t, steps)
        rows.append((len(t), steps, res))
        print(f"{len(t)} atoms done", flush=True)

    print()
    print("| atoms | steps | engine | ms/step | vs model |")
    print("|---|---|---|---|---|")
    for n, steps, res in rows:
        base = res["model"]
        for name, sec in res.items():
            label = "model evaluate (1 frame)" if name == "model" else name
            print(f"| {n} | {steps} | {label} | {sec * 1e3:.1f} | {sec / base:.2f}x |")
    load = os.getloadavg()
    print(f"\nload average (1/5/15 min) at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; files in {work}")


if __name__ == "__main__":
    main()
