#!/usr/bin/env bash
# Keeps scripts/gpu-acceptance from rotting between GPU sessions: it must
# parse (bash -n), and its --dry-run must print every command of docs/gpu.md's
# "GPU acceptance run" without running anything.
set -euo pipefail
root="$1"
script="$root/scripts/gpu-acceptance"
bash -n "$script"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
printed="$("$script" --dry-run --kokkos /nonexistent/kokkos --out "$out/results")"
echo "$printed"
[ -z "$(ls -A "$out")" ] || { echo "check_gpu_acceptance: --dry-run created files" >&2; exit 1; }
for want in "scripts/build --kokkos-cuda /nonexistent/kokkos --werror" \
  "ctest --test-dir" "-L gpu" \
  "mpiexec -n 1 " "--comm nccl --dtype bf16" \
  "mpiexec -n 2 " "mpiexec --oversubscribe -n 4 " "--comm mpi" \
  "emulate --preset gpt-oss-120b --tokens 32768 --ranks 8" "emulate --preset deepseek-v3" \
  "--check" "--build-info"; do
  grep -qF -- "$want" <<<"$printed" || { echo "check_gpu_acceptance: --dry-run does not print '$want'" >&2; exit 1; }
done
# The other entry points parse their arguments the same way.
from_src="$("$script" --dry-run --kokkos-src /nonexistent/src --out "$out/r2")"
grep -qF "Kokkos_ENABLE_IMPL_VIEW_LEGACY=ON" <<<"$from_src" || { echo "check_gpu_acceptance: --kokkos-src does not build Kokkos" >&2; exit 1; }
prebuilt="$("$script" --dry-run --skip-build --out "$out/r3")"
if grep -qF "scripts/build" <<<"$prebuilt"; then echo "check_gpu_acceptance: --skip-build still builds" >&2; exit 1; fi
if "$script" --bogus >/dev/null 2>&1; then echo "check_gpu_acceptance: an unknown argument was accepted" >&2; exit 1; fi
echo "check_gpu_acceptance: scripts/gpu-acceptance parses and its dry run prints every step"
