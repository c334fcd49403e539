#!/usr/bin/env bash
# clang-format --dry-run -Werror over every C++/CUDA source git tracks.
set -euo pipefail
cd "$1"
command -v clang-format >/dev/null || { echo "check_format: clang-format not installed (scripts/setup installs it)"; exit 77; }
git ls-files '*.cpp' '*.hpp' '*.cu' | xargs clang-format --dry-run -Werror
echo "check_format: $(git ls-files '*.cpp' '*.hpp' '*.cu' | wc -l) files formatted"
