#!/usr/bin/env python3
"""No include cycle between the project's files, and every project include
names its module ("runtime/layer/MoeLayer.hpp", "policies/Plan.hpp")."""
import os
import re
import subprocess
import sys

root = sys.argv[1]
files = subprocess.run(["git", "-C", root, "ls-files", "*.cpp", "*.hpp", "*.cu"], capture_output=True,
                       text=True, check=True).stdout.split()
inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
graph, errors = {}, []
for f in files:
    deps = []
    for name in inc.findall(open(os.path.join(root, f)).read()):
        if name == "version.hpp":
            continue  # generated into the build directory
        if os.path.exists(os.path.join(root, name)):
            deps.append(name)
        elif not f.startswith(("tests/", "bench/")) or not os.path.exists(os.path.join(root, os.path.dirname(f), name)):
            errors.append(f"{f}: #include \"{name}\" does not name a file from the repository root")
    graph[f] = deps

state = {}


def visit(f, path):
    state[f] = 1
    for d in graph.get(f, []):
        if state.get(d) == 1:
            errors.append("include cycle: " + " -> ".join(path[path.index(d):] + [d]) if d in path else d)
        elif d not in state:
            visit(d, path + [d])
    state[f] = 2


for f in graph:
    if f not in state:
        visit(f, [f])
if errors:
    sys.exit("\n".join(errors))
print(f"check_include_cycles: {len(graph)} files, module-qualified includes, no cycle")
