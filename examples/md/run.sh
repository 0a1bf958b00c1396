#!/usr/bin/env bash
# The DeePMD-kit tutorial end to end with dpconv, on our CP2K methane AIMD (examples/methane_cp2k):
# convert -> train -> freeze -> test -> LAMMPS NVT (50 K) -> dump read back.
# Usage: examples/md/run.sh [workdir] ; NSTEPS=500 TRAIN_STEPS=200 examples/md/run.sh for a quick look.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work=${1:-md_tutorial}
rm -rf "$work" && mkdir -p "$work/01.train" "$work/02.lmp"
cd "$work"

dpconv convert -i cp2k/aimd_output "$here/../methane_cp2k" -o deepmd/npy 00.data --split 0.2 --seed 1

python - "$here/input.json" 01.train/input.json "${TRAIN_STEPS:-2000}" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["training"]["numb_steps"] = int(sys.argv[3])
json.dump(cfg, open(sys.argv[2], "w"), indent=2)
PY
(cd 01.train && dpconv train input.json && dpconv freeze -o graph.pth \
    && dpconv test -m graph.pth -s ../00.data/validation_data -n 40)

# conf.lmp: the first AIMD frame through dpconv's lammps/lmp writer
dpconv convert -i cp2k/aimd_output "$here/../methane_cp2k" -o lammps/lmp 02.lmp/conf.lmp
cp "$here/in.lammps" 01.train/graph.pth 02.lmp/
cd 02.lmp
if dpconv lammps build >build.log 2>&1; then
    eval "$(dpconv lammps env)"
    lmp -in in.lammps -var NSTEPS "${NSTEPS:-5000}"          # the compiled pair style (alias deepmd)
else
    echo "no compiler/cmake: the fix-external path (see build.log)" >&2
    dpconv md lammps in.lammps -v NSTEPS "${NSTEPS:-5000}"
fi
dpconv info -i lammps/dump methane.dump
python -c "import dpconv; s = dpconv.read('methane.dump', 'lammps/dump', type_map=['C', 'H']); print(s)"
