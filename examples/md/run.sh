#!/usr/bin/env bash
# The DeePMD-kit tutorial end to end with dpconv, on our CP2K methane AIMD (examples/methane_cp2k):
# convert -> train -> freeze -> test -> LAMMPS NVT (50 K) -> dump read back.
# Usage: examples/md/run.sh [workdir]  (the tutorial's 10000 training and 5000 MD steps);
#        TRAIN_STEPS=1000 NSTEPS=1000 examples/md/run.sh for a quick look.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work=${1:-md_tutorial}
rm -rf "$work" && mkdir -p "$work/01.train" "$work/02.lmp"
cd "$work"

dpconv convert -i cp2k/aimd_output "$here/../methane_cp2k" -o deepmd/npy 00.data --split 0.2 --seed 1

python - "$here/input.json" 01.train/input.json "${TRAIN_STEPS:-10000}" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["training"]["numb_steps"] = int(sys.argv[3])
cfg["training"]["save_freq"] = min(cfg["training"]["save_freq"], int(sys.argv[3]))
json.dump(cfg, open(sys.argv[2], "w"), indent=2)
PY
(cd 01.train && dpconv train input.json && dpconv freeze -o graph.pth \
    && dpconv test -m graph.pth -s ../00.data/validation_data -n 40)

# conf.lmp: the first AIMD frame through dpconv's lammps/lmp writer, types in the model's order (H C)
python - "$here/../methane_cp2k" <<'PY'
import sys
import dpconv
first = dpconv.read(sys.argv[1], "cp2k/aimd_output", type_map=["H", "C"])[0]
first.to("lammps/lmp", "02.lmp/conf.lmp")
print("wrote frame 0 to 02.lmp/conf.lmp (types 1=H, 2=C)")
PY
cp "$here/in.lammps" 01.train/graph.pth 02.lmp/
cd 02.lmp
if python -c "import sys; from importlib.metadata import entry_points as e; sys.exit(any(p.name == 'deepmd' for p in e(group='lammps.plugins')))"; then
    has_dp_plugin=0
else
    has_dp_plugin=1
fi
if [ "$has_dp_plugin" = 1 ]; then
    # DeePMD-kit's own LAMMPS plugin (pip install deepmd-kit) then owns 'pair_style deepmd'
    echo "DeePMD-kit's LAMMPS plugin is installed and owns 'pair_style deepmd': using dpconv's fix-external path" >&2
    dpconv md lammps in.lammps -v NSTEPS "${NSTEPS:-5000}"
elif dpconv lammps build >build.log 2>&1; then
    eval "$(dpconv lammps env)"
    lmp -in in.lammps -var NSTEPS "${NSTEPS:-5000}"          # the compiled pair style (alias deepmd)
else
    echo "no compiler/cmake: the fix-external path (see build.log)" >&2
    dpconv md lammps in.lammps -v NSTEPS "${NSTEPS:-5000}"
fi
dpconv info -i lammps/dump methane.dump
python -c "import dpconv; s = dpconv.read('methane.dump', 'lammps/dump', type_map=['H', 'C']); print(s)"
