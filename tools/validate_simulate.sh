#!/usr/bin/env bash
# Simulated vs measured step wall time (docs/simulation.md, "Validation").
# For each rank count P and scenario: calibrate on P ranks, run `compare`
# RUNS times and `simulate` once with that calibration; prints one
# markdown row per (P, scenario, policy): measured median wall_s, simulated,
# simulated / measured. Run it on an otherwise idle machine.
#
#   tools/validate_simulate.sh build/bin/moe-ep OUTDIR [RANKS="2 4"] [SCENARIOS="balanced 80:1 95:1"] [RUNS=3]
#
# The shape flags (calibrate, compare, simulate) come from $SHAPE (default:
# --preset small), the run's from $RUN (default: --steps 10 --layers 2; a
# --tokens there goes to calibrate too: its layer-steps, to which it fits
# compute_units, then have the run's size), calibrate's own from $CALIBRATE
# (default: --budget 20).
# EMULATE=8 adds the `emulate` rows: per scenario a calibration on 1 rank,
# then `emulate --ranks 8` (median of 5 repeats after 1 warm-up: its
# makespan_s is the slowest emulated rank's expert compute of one
# layer-step) against the slowest rank's simulated compute phase of the
# same layer-step (step 0, layer 0; busy_compute in the timeline; needs h5py).
set -euo pipefail
moe_ep=$1 out=$2
ranks=${3:-"2 4"} scenarios=${4:-"balanced 80:1 95:1"} runs=${5:-3}
shape=${SHAPE:-"--preset small"}
run_flags=${RUN:-"--steps 10 --layers 2"}
calibrate_flags=${CALIBRATE:-"--budget 20"}
if [[ " $run_flags " =~ \ --tokens\ ([0-9]+)\  ]]; then calibrate_flags+=" --tokens ${BASH_REMATCH[1]}"; fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1
mkdir -p "$out"
echo "| P | scenario | policy | measured median wall_s ($runs runs) | simulated | simulated/measured |"
echo "|---|---|---|---|---|---|"
for P in $ranks; do
  for s in $scenarios; do
    tag="P$P-${s//:/_}"
    # Calibrated right before the runs it predicts: this VM's speed drifts by
    # up to 30% within minutes (docs/simulation.md, Validation).
    # shellcheck disable=SC2086
    mpiexec -n "$P" --oversubscribe "$moe_ep" calibrate $shape $calibrate_flags --quiet --output "$out/cal$P.json" >/dev/null
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
if [ -n "${EMULATE:-}" ]; then
  E=$EMULATE
  echo
  echo "| P | scenario | policy | emulate makespan ms | simulated compute ms | simulated/measured |"
  echo "|---|---|---|---|---|---|"
  for s in $scenarios; do
    tag="E$E-${s//:/_}"
    # shellcheck disable=SC2086
    "$moe_ep" calibrate $shape $calibrate_flags --quiet --output "$out/cal1.json" >/dev/null
    # shellcheck disable=SC2086
    "$moe_ep" emulate --ranks "$E" $shape --scenario "$s" --policies ep,capacity,llep --repeats 5 --warmup 1 \
      --quiet --json "$out/$tag-e.json" >/dev/null
    # shellcheck disable=SC2086
    "$moe_ep" simulate --machine "$out/cal1.json" --ranks "$E" $shape --scenario "$s" --policies ep,capacity,llep \
      --steps 1 --layers 1 --json "$out/$tag-s.json" --timeline "$out/$tag-s.h5" >/dev/null
    "${PYTHON:-/usr/bin/python3}" - "$E" "$s" "$out/$tag-e.json" "$out/$tag-s.h5" <<'EOF'
import json, sys
import h5py
E, s, emu, sim = sys.argv[1:5]
names = {p["name"]: p["makespan_s"] for p in json.load(open(emu))["policies"]}
f = h5py.File(sim, "r")
enum = h5py.check_enum_dtype(f["timeline"].dtype["policy"])
t = f["timeline"][:]
for name, m in names.items():
    rows = t[t["policy"] == enum[name]]
    c = rows["busy_compute"].max()
    print(f"| {E} | {s} | {name} | {m * 1e3:.2f} | {c * 1e3:.2f} | {c / m:.2f} |")
EOF
  done
fi
