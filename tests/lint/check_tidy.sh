#!/usr/bin/env bash
# clang-tidy (the curated .clang-tidy) over every project translation unit of
# the build's compile_commands.json, in parallel.
set -euo pipefail
src="$1" build="$2"
command -v clang-tidy >/dev/null || { echo "check_tidy: clang-tidy not installed (scripts/setup installs it)"; exit 77; }
jobs=$(env -u OMP_NUM_THREADS nproc 2>/dev/null || echo 2)
python3 - "$build/compile_commands.json" "$src" > "$build/tidy_files.txt" <<'PY'
import json, os, sys
src = os.path.realpath(sys.argv[2])
for e in json.load(open(sys.argv[1])):
    f = os.path.realpath(os.path.join(e["directory"], e["file"]))
    if f.startswith(src + "/") and f.endswith(".cpp") and "/build" not in f[len(src):]:
        print(f)
PY
echo "check_tidy: $(wc -l < "$build/tidy_files.txt") translation units"
xargs -a "$build/tidy_files.txt" -P "$jobs" -n 4 clang-tidy -p "$build" --quiet 2> "$build/tidy_stderr.txt"
echo "check_tidy: clean"
