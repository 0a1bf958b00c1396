#!/usr/bin/env bash
# The seed tutorial on our own real data: a CP2K 2023.1 methane AIMD (examples/methane_cp2k)
# -> DeePMD training/validation data. Later steps (train, freeze, test) run when the trainer is installed.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-tutorial_out}
rm -rf "$out"
mkdir -p "$out"
dpconv info -i cp2k/aimd_output methane_cp2k
dpconv convert -i cp2k/aimd_output methane_cp2k -o deepmd/npy "$out/00.data" --split 0.2 --seed 1
if dpconv train --help >/dev/null 2>&1; then
    mkdir -p "$out/01.train"
    cp methane_cp2k/train_input.json "$out/01.train/input.json"
    (cd "$out/01.train" && dpconv train input.json && dpconv freeze -o graph.pth \
        && dpconv test -m graph.pth -s ../00.data/validation_data -n 40)
fi
