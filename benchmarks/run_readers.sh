#!/usr/bin/env bash
# Every reader benchmark at one input size (default 100 MB; the issues ask for 1000):
#   bash benchmarks/run_readers.sh [MB]
# Each row runs dpconv and dpdata in separate fresh processes on the same file (see _harness.py).
set -euo pipefail
mb=${1:-100}
cd "$(dirname "$0")"
for b in bench_vasp.py bench_lammps.py bench_abacus.py bench_cp2k.py bench_qe.py bench_gaussian_siesta.py; do
    echo "== $b --mb $mb"
    python "$b" --mb "$mb"
done
