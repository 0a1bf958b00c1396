#!/usr/bin/env bash
# The README's main job: DeePMD-kit's methane tutorial end to end on our own CP2K 2023.1 AIMD
# (examples/methane_cp2k): convert + split -> train (tutorial input.json) -> freeze -> test
# -> LAMMPS NVT with the model -> trajectory read back. Shortened for a demo; run
# `examples/md/run.sh` without the variables for the tutorial's full 10000 + 5000 steps.
set -euo pipefail
cd "$(dirname "$0")"
TRAIN_STEPS=${TRAIN_STEPS:-1000} NSTEPS=${NSTEPS:-1000} bash md/run.sh "${1:-tutorial_out}"
