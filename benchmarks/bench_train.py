"""Training benchmark: DeePMD-kit 3.2 (PyTorch backend) and dpconv side by side.

Same data, same input.json (the tutorial's network sizes), same number of
steps; the two tools run alternately (``--rounds``) because the machine may be
shared. Prints s/step for each, the ratio, the validation RMSE after the same
number of steps (from each tool's lcurve.out), and the time to evaluate one
frame with each frozen model: dpconv's file through bare ``torch.jit.load`` and
through ``dpconv.trainer.load`` (which also sets glibc malloc up, see
``dpconv.trainer.malloc``), DeePMD-kit's ``DeepPot`` as is and with the same
malloc settings (environment variables), so the allocator's share is visible.
``dpconv train`` gives itself those settings (``dpconv.trainer.malloc``); ``--dp-same-malloc``
runs DeePMD-kit's training with them too.

DeePMD-kit runs from a separate venv (``--dp-python``, default
/work/dpref-venv/bin/python, made with ``pip install torch==2.13.0
deepmd-kit==3.2.0 e3nn``) through ``../shared/tools/dp_reference.py``.

Usage::

    python benchmarks/bench_train.py --steps 200 --rounds 1 [--threads 2] [--case water]
    python benchmarks/bench_train.py --seeds 1 2 3 --no-infer   # accuracy over seeds

With ``--seeds``, round r uses seed ``seeds[r]`` for both tools (nets and batches), and the
validation RMSE is printed per seed and as a mean, to tell a real accuracy gap from seed noise.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared"))
WATER = os.path.join(SHARED, "fixtures", "water_deepmd")
DP_REF = os.path.join(SHARED, "tools", "dp_reference.py")


def tutorial_input(
    train: list[str], valid: list[str], type_map: list[str], steps: int, disp: int, seed: int | None = None
) -> dict:
    """The tutorial's input; ``seed`` (default: the tutorial's 1/1/10) re-seeds nets and batches."""
    d_seed, t_seed = (1, 10) if seed is None else (seed, seed + 9)
    return {
        "model": {
            "type_map": type_map,
            "descriptor": {
                "type": "se_e2_a",
                "sel": "auto",
                "rcut_smth": 0.5,
                "rcut": 6.0,
                "neuron": [25, 50, 100],
                "resnet_dt": False,
                "axis_neuron": 16,
                "seed": d_seed,
            },
            "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": d_seed},
        },
        "learning_rate": {"type": "exp", "decay_steps": 50, "start_lr": 0.001, "stop_lr": 3.51e-8},
        "loss": {
            "type": "ener",
            "start_pref_e": 0.02,
            "limit_pref_e": 1,
            "start_pref_f": 1000,
            "limit_pref_f": 1,
            "start_pref_v": 0,
            "limit_pref_v": 0,
        },
        "training": {
            "training_data": {"systems": train, "batch_size": "auto"},
            "validation_data": {"systems": valid, "batch_size": "auto", "numb_btch": 10},
            "numb_steps": steps,
            "seed": t_seed,
            "disp_freq": disp,
            "save_freq": steps,
        },
    }


def cases(which: str) -> dict[str, tuple[list[str], list[str], list[str]]]:
    out = {}
    if which in ("water", "all") and os.path.isdir(WATER):
        out["water"] = (
            [os.path.join(WATER, f"data_{i}") for i in range(3)],
            [os.path.join(WATER, "data_3")],
            ["O", "H"],
        )
    if which in ("methane", "all"):
        meth = methane_data()
        if meth:
            out["methane"] = meth
    return out


def methane_data() -> tuple[list[str], list[str], list[str]] | None:
    """The CP2K methane example converted to deepmd/npy (needs dpconv's cp2k/aimd_output reader)."""
    src = os.path.join(ROOT, "examples", "methane_cp2k")
    dst = os.path.join(tempfile.gettempdir(), "dpconv_bench_methane")
    if os.path.isdir(os.path.join(dst, "training_data")):
        return [os.path.join(dst, "training_data")], [os.path.join(dst, "validation_data")], ["H", "C"]
    res = subprocess.run(
        ["dpconv", "convert", "-i", "cp2k/aimd_output", src, "-o", "deepmd/npy", dst, "--split", "0.2", "--seed", "1"],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        why = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "convert failed"
        print(f"methane case skipped: {why}")
        return None
    return [os.path.join(dst, "training_data")], [os.path.join(dst, "validation_data")], ["H", "C"]


def run(cmd: list[str], cwd: str, env: dict[str, str], log: str) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        res = subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
    return time.perf_counter() - t0


def step_time(log: str, disp: int) -> float:
    """Mean wall time per step over display intervals after the first ``disp`` steps."""
    with open(log) as fh:
        text = fh.read()
    pairs = [(int(a), float(b)) for a, b in re.findall(r"[Bb]atch\s+(\d+): total wall time = ([0-9.]+) s", text)]
    later = [(s, t) for s, t in pairs if s > disp]
    if not later:
        later = pairs[1:] or pairs
    steps = sum(disp for _ in later)
    return sum(t for _, t in later) / steps


def last_val(lcurve: str) -> dict[str, float]:
    with open(lcurve) as fh:
        names = fh.readline()[1:].split()
        rows = [line.split() for line in fh if not line.startswith("#")]
    return {n: float(v) for n, v in zip(names, rows[-1])}


INFER_DP = """
import sys, time, numpy as np
sys.argv = ["x"]
exec(open({ref!r}).read().split("def main")[0])  # the shim's op fallback
_install_fallback()
from deepmd.infer import DeepPot
dp = DeepPot({model!r})
c = np.load({coord!r})[:1]; b = np.load({box!r})[:1]; t = np.loadtxt({types!r}, dtype=int)
dp.eval(c, b, t)
ts = []
for _ in range(30):
    t0 = time.perf_counter(); dp.eval(c, b, t); ts.append(time.perf_counter() - t0)
print(np.median(ts))
"""

INFER_OURS = """
import sys, time, numpy as np, torch
m = torch.jit.load({model!r})
c = torch.tensor(np.load({coord!r})[:1], dtype=torch.float64).reshape(1, -1, 3)
b = torch.tensor(np.load({box!r})[:1], dtype=torch.float64)
t = torch.tensor(np.loadtxt({types!r}, dtype=int))
m(c, t, b)
ts = []
for _ in range(30):
    t0 = time.perf_counter(); m(c, t, b); ts.append(time.perf_counter() - t0)
print(np.median(ts))
"""

# through dpconv's loader (what dpconv's ASE/OpenMM/LAMMPS paths use): it also sets malloc up
INFER_LOADER = """
import sys, time, numpy as np
from dpconv.trainer import load
ev = load({model!r})
t = np.loadtxt({types!r}, dtype=int)
c = np.load({coord!r})[:1].reshape(1, len(t), 3); b = np.load({box!r})[:1].reshape(1, 3, 3)
ev.evaluate(c, b, t)
ts = []
for _ in range(30):
    t0 = time.perf_counter(); ev.evaluate(c, b, t); ts.append(time.perf_counter() - t0)
print(np.median(ts))
"""

# glibc settings equal to those dpconv's CLI gives itself (dpconv.trainer.malloc: mallopt and the
# huge-page tunable), as environment variables for any process
HUGEPAGES = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}
SAME_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30), **HUGEPAGES}


def _median(cmd: list[str], env: dict[str, str]) -> float | str:
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
    return float(out.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=1, help="alternating runs of each tool")
    ap.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for both tools")
    ap.add_argument("--case", default="all", choices=["water", "methane", "all"])
    ap.add_argument("--dp-python", default="/work/dpref-venv/bin/python")
    ap.add_argument("--no-deepmd", action="store_true", help="time dpconv only")
    ap.add_argument("--no-infer", action="store_true")
    ap.add_argument(
        "--infer-only",
        action="store_true",
        help="no training: time inference --rounds times (tools alternated) with the models that an "
        "earlier run left in --workdir",
    )
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--seeds", type=int, nargs="*", default=None, help="one round per seed (both tools)")
    ap.add_argument(
        "--dp-same-malloc",
        action="store_true",
        help="run DeePMD-kit with the glibc settings dpconv's CLI gives itself (mallopt values, huge pages)",
    )
    args = ap.parse_args()
    if args.seeds:
        args.rounds = len(args.seeds)
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    have_dp = not args.no_deepmd and os.path.exists(args.dp_python)
    work = args.workdir or tempfile.mkdtemp(prefix="bench_train_")
    print(
        f"workdir {work}; loadavg {os.getloadavg()}; threads {args.threads or 'default'}; steps {args.steps}"
        + ("; DeePMD-kit with dpconv's malloc settings" if args.dp_same_malloc else "")
    )
    for name, (train, valid, tmap) in cases(args.case).items():
        if args.infer_only:  # the models an earlier run left in --workdir (its first round)
            dirs = {t: os.path.join(work, f"{name}_{t}_0") for t in ("dpconv", "deepmd")}
            dirs = {t: d for t, d in dirs.items() if os.path.isdir(d)}
            if "dpconv" not in dirs:
                print(f"{name}: no {name}_dpconv_0 in {work}; run the benchmark with training there first")
                continue
        else:
            dirs = train_rounds(name, (train, valid, tmap), args, env, have_dp, work)
        if args.no_infer:
            continue
        rounds = args.rounds if args.infer_only else 1
        times: dict[str, list[float]] = {}
        for r in range(rounds):
            for k, v in time_inference(valid[0], dirs, args, env, have_dp, ours_first=r % 2 == 0).items():
                if isinstance(v, float):
                    times.setdefault(k, []).append(v)
                else:
                    print(f"  inference, {k}: failed: {v}")
        print_inference(times)


def dpconv_bin() -> str:
    """The ``dpconv`` command of this environment."""
    return shutil.which("dpconv") or os.path.join(os.path.dirname(sys.executable), "dpconv")


def train_rounds(
    name: str,
    data: tuple[list[str], list[str], list[str]],
    args: argparse.Namespace,
    env: dict[str, str],
    have_dp: bool,
    work: str,
) -> dict[str, str]:
    """Train with both tools, alternated, ``args.rounds`` times; prints s/step and validation RMSE and
    returns the last round's run folder per tool."""
    train, valid, tmap = data
    disp = max(1, args.steps // 4)
    res: dict[str, list[float]] = {"dpconv": [], "deepmd": []}
    val: dict[str, list[dict[str, float]]] = {"dpconv": [], "deepmd": []}
    dirs: dict[str, str] = {}
    for r in range(args.rounds):
        tools = ["dpconv", "deepmd"] if r % 2 == 0 else ["deepmd", "dpconv"]
        for tool in tools:
            if tool == "deepmd" and not have_dp:
                continue
            d = os.path.join(work, f"{name}_{tool}_{r}")
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "input.json"), "w") as fh:
                seed = args.seeds[r] if args.seeds else None
                json.dump(tutorial_input(train, valid, tmap, args.steps, disp, seed), fh, indent=1)
            cmd = (
                [dpconv_bin(), "train", "input.json"]
                if tool == "dpconv"
                else [args.dp_python, DP_REF, "--pt", "train", "input.json"]
            )
            tenv = {**env, **SAME_MALLOC} if tool == "deepmd" and args.dp_same_malloc else env
            wall = run(cmd, d, tenv, os.path.join(d, "log.txt"))
            sps = step_time(os.path.join(d, "log.txt"), disp)
            res[tool].append(sps)
            val[tool].append(last_val(os.path.join(d, "lcurve.out")))
            dirs[tool] = d
            print(
                f"  {name} round {r} {tool:7s}: {sps:.4f} s/step (run {wall:.0f} s incl. setup), "
                f"loadavg {os.getloadavg()[0]:.1f}"
            )
    a = min(res["dpconv"])
    line = f"{name}: dpconv {a:.4f} s/step"
    if res["deepmd"]:
        b = min(res["deepmd"])
        line += f", DeePMD-kit {b:.4f} s/step, speed-up {b / a:.2f}x (best of {args.rounds})"
    print(line)
    for tool, vs in val.items():
        for r, v in enumerate(vs):
            tag = f"seed {args.seeds[r]}" if args.seeds else f"round {r}"
            print(
                f"  {tool:7s} {tag} after {args.steps} steps: rmse_e_val {v.get('rmse_e_val', float('nan')):.3e} "
                f"eV/atom, rmse_f_val {v.get('rmse_f_val', float('nan')):.3e} eV/Å (lcurve, 10 val batches)"
            )
        if len(vs) > 1 and args.seeds:  # rounds without --seeds repeat the same seed
            e = [v.get("rmse_e_val", float("nan")) for v in vs]
            f = [v.get("rmse_f_val", float("nan")) for v in vs]
            print(
                f"  {tool:7s} mean of {len(vs)}: rmse_e_val {sum(e) / len(e):.3e} ({min(e):.2e}..{max(e):.2e}), "
                f"rmse_f_val {sum(f) / len(f):.3e} ({min(f):.2e}..{max(f):.2e})"
            )
    return dirs


def time_inference(
    sysdir: str, dirs: dict[str, str], args: argparse.Namespace, env: dict[str, str], have_dp: bool, ours_first: bool
) -> dict[str, float | str]:
    """One frame's time (median of 30 calls) with each frozen model and loader, each in a fresh process."""
    setdir = sorted(p for p in os.listdir(sysdir) if p.startswith("set."))[0]
    files = dict(
        coord=os.path.join(sysdir, setdir, "coord.npy"),
        box=os.path.join(sysdir, setdir, "box.npy"),
        types=os.path.join(sysdir, "type.raw"),
    )
    d = dirs["dpconv"]
    model = os.path.join(d, "model.pth")
    # a training run freezes afresh (a reused --workdir may hold an older model); --infer-only reuses
    if not args.infer_only or not os.path.exists(model):
        subprocess.run([dpconv_bin(), "freeze", "-o", "model.pth"], cwd=d, check=True, capture_output=True)

    def ours() -> dict[str, float | str]:
        return {
            "torch.jit.load": _median([sys.executable, "-c", INFER_OURS.format(model=model, **files)], env),
            "dpconv.trainer.load": _median([sys.executable, "-c", INFER_LOADER.format(model=model, **files)], env),
            "dpconv.trainer.load, huge pages": _median(
                [sys.executable, "-c", INFER_LOADER.format(model=model, **files)], {**env, **HUGEPAGES}
            ),
        }

    def theirs() -> dict[str, float | str]:
        if not have_dp or "deepmd" not in dirs:
            return {}
        dd = dirs["deepmd"]
        if not args.infer_only or not os.path.exists(os.path.join(dd, "dp.pth")):
            cmd = [args.dp_python, DP_REF, "--pt", "freeze", "-o", "dp.pth"]
            subprocess.run(cmd, cwd=dd, env=env, capture_output=True, check=True)
        code = INFER_DP.format(ref=DP_REF, model=os.path.join(dd, "dp.pth"), **files)
        return {
            "DeepPot": _median([args.dp_python, "-c", code], env),
            "DeepPot, dpconv's malloc settings": _median([args.dp_python, "-c", code], {**env, **SAME_MALLOC}),
        }

    if ours_first:
        a = ours()
        return {**a, **theirs()}
    b = theirs()
    return {**ours(), **b}


def print_inference(times: dict[str, list[float]]) -> None:
    """Per variant: the median over rounds (and each round), then every ratio DeePMD-kit / dpconv."""
    n = max((len(v) for v in times.values()), default=0)
    msg = f"  inference, 1 frame (median of 30 calls; {n} round(s), median over rounds):"
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    for k, v in times.items():
        each = " (" + " / ".join(f"{x * 1e3:.1f}" for x in v) + ")" if n > 1 else ""
        msg += f"\n    {k}: {med[k] * 1e3:.1f} ms{each}"
    ours = [k for k in med if not k.startswith("DeepPot")]
    for rname in (k for k in med if k.startswith("DeepPot")):
        for name in ours:
            msg += f"\n    speed-up, {rname} / {name}: {med[rname] / med[name]:.2f}x"
    print(msg)


if __name__ == "__main__":
    main()
