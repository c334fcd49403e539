#!/usr/bin/env bash
# clang-tidy (the curated .clang-tidy) over every project translation unit of
# the build's compile_commands.json, in parallel. In a unity build (what
# scripts/test builds) a translation unit is a generated unity_N_cxx.cxx that
# includes several project .cpp files: each is parsed once and its sources are
# checked as included files (.clang-tidy's HeaderFilterRegex names every project
# folder), which takes under a quarter of the time of checking them one by one.
# MOE_TIDY_BUILD_DIR: take the compile database of another configured build
# (scripts/test points it at the CUDA configuration, which compiles every
# source the CPU build does plus the CUDA ones; configuring it is enough).
set -euo pipefail
src="$1" build="${MOE_TIDY_BUILD_DIR:-$2}"
command -v clang-tidy >/dev/null || { echo "check_tidy: clang-tidy not installed (scripts/setup installs it)"; exit 77; }
jobs=$(env -u OMP_NUM_THREADS nproc 2>/dev/null || echo 2)
mkdir -p "$build/tidy"
python3 - "$build/compile_commands.json" "$src" "$build/tidy" <<'PY'
import json, os, re, sys
db, src, out = sys.argv[1], os.path.realpath(sys.argv[2]), sys.argv[3]
def ours(f):
    return f.startswith(src + "/") and f.endswith(".cpp") and "/build" not in f[len(src):]
unity, plain, sources = [], [], []
for e in json.load(open(db)):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if re.search(r"/Unity/unity_\d+_cxx\.cxx$", f):
        inc = [os.path.realpath(i) for i in re.findall(r'^#include "([^"]+)"', open(f).read(), re.M)]
        if any(ours(i) for i in inc):
            unity.append(f)
            sources += [i for i in inc if ours(i)]
    elif ours(f):
        plain.append(f)
        sources.append(f)
for name, files in (("unity", unity), ("plain", plain), ("sources", sorted(set(sources)))):
    with open(os.path.join(out, name + ".txt"), "w") as fl:
        fl.writelines(f + "\n" for f in files)
PY
echo "check_tidy: $(wc -l < "$build/tidy/sources.txt") source files in $(($(wc -l < "$build/tidy/unity.txt") + $(wc -l < "$build/tidy/plain.txt"))) translation units"
# GCC-only warning flags of the build (-Wno-subobject-linkage) are not clang's;
# a unity file #includes .cpp files by design (bugprone-suspicious-include).
tidy=(clang-tidy -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option)
xargs -r -a "$build/tidy/unity.txt" -P "$jobs" -n 1 "${tidy[@]}" --checks=-bugprone-suspicious-include 2> "$build/tidy/stderr.txt"
xargs -r -a "$build/tidy/plain.txt" -P "$jobs" -n 2 "${tidy[@]}" 2>> "$build/tidy/stderr.txt"
echo "check_tidy: clean"
