#!/usr/bin/env bash
# clang-tidy (the curated .clang-tidy) over every project translation unit of
# the build's compile_commands.json, in parallel. In a unity build (what
# scripts/test builds) a translation unit is a generated unity_N_cxx.cxx that
# includes several project .cpp files: each is parsed once and its sources are
# checked as included files (.clang-tidy's HeaderFilterRegex names every project
# folder), which takes about a sixth of the time of checking them one by one.
set -euo pipefail
src="$1" build="$2"
command -v clang-tidy >/dev/null || { echo "check_tidy: clang-tidy not installed (scripts/setup installs it)"; exit 77; }
jobs=$(env -u OMP_NUM_THREADS nproc 2>/dev/null || echo 2)
mkdir -p "$build/tidy"
python3 - "$build/compile_commands.json" "$src" > "$build/tidy/files.txt" 2> "$build/tidy/sources.txt" <<'PY'
import json, os, re, sys
db, src = sys.argv[1], os.path.realpath(sys.argv[2])
def ours(f):
    return f.startswith(src + "/") and f.endswith(".cpp") and "/build" not in f[len(src):]
for e in json.load(open(db)):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if re.search(r"/Unity/unity_\d+_cxx\.cxx$", f):
        inc = [os.path.realpath(i) for i in re.findall(r'^#include "([^"]+)"', open(f).read(), re.M)]
        if any(ours(i) for i in inc):
            print(f)
            sys.stderr.writelines(i + "\n" for i in inc if ours(i))
    elif ours(f):
        print(f)
        sys.stderr.write(f + "\n")
PY
echo "check_tidy: $(sort -u "$build/tidy/sources.txt" | wc -l) source files in $(wc -l < "$build/tidy/files.txt") translation units"
# GCC-only warning flags of the build (-Wno-subobject-linkage) are not clang's.
xargs -a "$build/tidy/files.txt" -P "$jobs" -n 2 clang-tidy -p "$build" --quiet \
  --extra-arg=-Wno-unknown-warning-option 2> "$build/tidy/stderr.txt"
echo "check_tidy: clean"
