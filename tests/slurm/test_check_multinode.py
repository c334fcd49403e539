#!/usr/bin/env python3
"""Self-test of check_multinode.py on made-up compare.json files: today's keys
(topology keys reported "not yet present"), the runtime's coming topology keys
(checked), and wrong values of each (must fail). No MPI, no Slurm, no HDF5."""
import copy
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check_multinode.py")
HOSTS = ["hostA", "hostB"]


def policy(name, exact, tb, wb):
    return {"name": name, "status": "ok", "status_detail": "", "exact": exact,
            "rank_slots": [1, 2, 3, 4], "rank_busy_s": [0.1] * 4, "rank_peak_bytes": [1] * 4,
            "token_bytes": tb, "weight_bytes": wb, "max_rel_err": 7e-7 if exact else 1.0}


TODAY = {"config": {"ranks": 4, "check": True},
         "policies": [policy("ep", True, 1000, 0), policy("capacity", False, 100, 0),
                      policy("llep", True, 1000, 500)],
         "fastest_exact": "llep"}
FULL = copy.deepcopy(TODAY)
FULL.update({"hostnames": ["hostA", "hostA", "hostB", "hostB"], "node_of_rank": [0, 0, 1, 1],
             "ranks_per_node": 2})
for p, ti, wi in zip(FULL["policies"], (600, 50, 550), (0, 0, 250)):
    p["token_bytes_inter_node"], p["weight_bytes_inter_node"] = ti, wi


def run(d, *flags):
    with tempfile.TemporaryDirectory() as tmp:
        json.dump(d, open(os.path.join(tmp, "compare.json"), "w"))
        r = subprocess.run([sys.executable, CHECK, *flags, tmp, "4", "2", ",".join(HOSTS)],
                           capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr


def mutate(f):
    d = copy.deepcopy(FULL)
    f(d)
    return d


CASES = [
    # name, json, expected exit, text that must appear[, checker flags]
    ("today's keys", TODAY, 0, "missing json ep token_bytes_inter_node: not yet present"),
    ("today's keys, --require-topology", TODAY, 1, "json ep token_bytes_inter_node: missing",
     "--require-topology"),
    ("all topology keys", FULL, 0, "ok json node_of_rank [0, 0, 1, 1]"),
    ("all topology keys, --require-topology", FULL, 0, "ok json inter-node bytes", "--require-topology"),
    ("ep moves no inter-node tokens", mutate(lambda d: d["policies"][0].update(token_bytes_inter_node=0)),
     1, "none between nodes"),
    ("inter-node above total", mutate(lambda d: d["policies"][2].update(weight_bytes_inter_node=501)),
     1, "weight_bytes_inter_node 501 outside"),
    ("one host", mutate(lambda d: d.update(hostnames=["hostA"] * 4)), 1, "expected 2 distinct hosts"),
    ("3+1 split", mutate(lambda d: d.update(node_of_rank=[0, 0, 0, 1])), 1, "node_of_rank [0, 0, 0, 1]"),
    ("node_of_rank disagrees with hostnames",
     mutate(lambda d: d.update(node_of_rank=[0, 1, 0, 1])), 1, "does not group ranks"),
    ("ranks_per_node", mutate(lambda d: d.update(ranks_per_node=4)), 1, "ranks_per_node 4, expected 2"),
    ("inexact", mutate(lambda d: d["policies"][2].update(max_rel_err=0.01)), 1, "exact policy llep"),
    ("no --check", mutate(lambda d: d["config"].update(check=False)), 1, "config.check"),
    ("3 ranks", mutate(lambda d: d["config"].update(ranks=3)), 1, "config.ranks is 3"),
]

bad = 0
for name, d, want_rc, want_text, *flags in CASES:
    rc, out = run(d, *flags)
    ok = rc == want_rc and want_text in out
    bad += not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name}: exit {rc} (want {want_rc})")
    if not ok:
        print("     expected text: " + want_text)
        print("     " + out.replace("\n", "\n     "))
print(f"check_multinode self-test: {len(CASES) - bad} passed, {bad} failed")
sys.exit(1 if bad else 0)
