#!/usr/bin/env bash
# Simulated vs measured step wall time (docs/simulation.md, "Validation").
# For each rank count P: calibrate on P ranks, then for each scenario run
# `compare` RUNS times and `simulate` once with that calibration; prints one
# markdown row per (P, scenario, policy): measured median wall_s, simulated,
# simulated / measured. Run it on an otherwise idle machine.
#
#   tools/validate_simulate.sh build/bin/moe-ep OUTDIR [RANKS="2 4"] [SCENARIOS="balanced 80:1 95:1"] [RUNS=3]
#
# The shape flags (calibrate, compare, simulate) come from $SHAPE (default:
# --preset small), the run's from $RUN (default: --steps 3 --layers 2).
set -euo pipefail
moe_ep=$1 out=$2
ranks=${3:-"2 4"} scenarios=${4:-"balanced 80:1 95:1"} runs=${5:-3}
shape=${SHAPE:-"--preset small"}
run_flags=${RUN:-"--steps 3 --layers 2"}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
mkdir -p "$out"
echo "| P | scenario | policy | measured median wall_s ($runs runs) | simulated | simulated/measured |"
echo "|---|---|---|---|---|---|"
for P in $ranks; do
  # shellcheck disable=SC2086
  mpiexec -n "$P" --oversubscribe "$moe_ep" calibrate $shape --budget 20 --quiet --output "$out/cal$P.json" >/dev/null
  for s in $scenarios; do
    tag="P$P-${s//:/_}"
    for i in $(seq "$runs"); do
      # shellcheck disable=SC2086
      mpiexec -n "$P" --oversubscribe "$moe_ep" compare $shape $run_flags --scenario "$s" --policies ep,capacity,llep \
        --quiet --json "$out/$tag-m$i.json" >/dev/null
    done
    # shellcheck disable=SC2086
    "$moe_ep" simulate --machine "$out/cal$P.json" --ranks "$P" $shape $run_flags --scenario "$s" --policies ep,capacity,llep \
      --json "$out/$tag-s.json" >/dev/null
    python3 - "$P" "$s" "$out/$tag-s.json" "$out"/"$tag"-m*.json <<'EOF'
import json, statistics, sys
P, s, sim, meas = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
S = {p["name"]: p["wall_s"] for p in json.load(open(sim))["policies"]}
M = {}
for f in meas:
    for p in json.load(open(f))["policies"]:
        M.setdefault(p["name"], []).append(p["wall_s"])
for name, walls in M.items():
    m = statistics.median(walls)
    print(f"| {P} | {s} | {name} | {m:.4f} | {S[name]:.4f} | {S[name] / m:.2f} |")
EOF
  done
done
