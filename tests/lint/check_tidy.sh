#!/usr/bin/env bash
# clang-tidy (the curated .clang-tidy) over every project translation unit of
# the build's compile_commands.json, in parallel. In a unity build (what
# scripts/test builds) a translation unit is a generated unity_N_cxx.cxx that
# includes several project .cpp files: each is parsed once and its sources are
# checked as included files (.clang-tidy's HeaderFilterRegex names every project
# folder), which takes under a quarter of the time of checking them one by one.
# Translation units of tests/ only get tests/.clang-tidy's narrower set (why:
# there).
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
def is_test(f):
    return f.startswith(src + "/tests/")
unity, unity_tests, plain, sources = [], [], [], []
for e in json.load(open(db)):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if re.search(r"/Unity/unity_\d+_cxx\.cxx$", f):
        inc = [os.path.realpath(i) for i in re.findall(r'^#include "([^"]+)"', open(f).read(), re.M)]
        mine = [i for i in inc if ours(i)]
        if mine:
            (unity_tests if all(is_test(i) for i in mine) else unity).append(f)
            sources += mine
    elif ours(f):
        plain.append(f)
        sources.append(f)
for name, files in (("unity", unity), ("unity_tests", unity_tests), ("plain", plain), ("sources", sorted(set(sources)))):
    with open(os.path.join(out, name + ".txt"), "w") as fl:
        fl.writelines(f + "\n" for f in files)
PY
count() { wc -l < "$build/tidy/$1.txt"; }
echo "check_tidy: $(count sources) source files in $(($(count unity) + $(count unity_tests) + $(count plain))) translation units ($(count unity_tests) of tests, with tests/.clang-tidy)"
# GCC-only warning flags of the build (-Wno-subobject-linkage) are not clang's;
# a unity file #includes .cpp files by design (bugprone-suspicious-include).
tidy=(clang-tidy -p "$build" --quiet --extra-arg=-Wno-unknown-warning-option)
xargs -r -a "$build/tidy/unity.txt" -P "$jobs" -n 1 "${tidy[@]}" --checks=-bugprone-suspicious-include 2> "$build/tidy/stderr.txt"
xargs -r -a "$build/tidy/unity_tests.txt" -P "$jobs" -n 1 "${tidy[@]}" --config-file="$src/tests/.clang-tidy" \
  --checks=-bugprone-suspicious-include 2>> "$build/tidy/stderr.txt"
xargs -r -a "$build/tidy/plain.txt" -P "$jobs" -n 2 "${tidy[@]}" 2>> "$build/tidy/stderr.txt"
echo "check_tidy: clean"
