#!/usr/bin/env python3
"""Runs `moe-ep compare` under mpiexec for one or more seeds and checks the
JSON result against expectations such as `ep.max_rel_err<=1e-5`.

usage: compare_case.py --mpiexec MPIEXEC --ranks P --bin MOE_EP [--seeds 1,2]
                       [--expect EXPR ...] [--expect-exit CODE --expect-stderr TEXT]
                       -- COMPARE_ARGS...

EXPR is POLICY.FIELD OP NUMBER or POLICY.status==TEXT, with FIELD one of the
policy fields of the JSON (max_rel_err, max_rel_err_full, dropped_slots,
slot_imbalance, speedup_vs_ep, ...) or the derived `busy_imbalance` (max/mean
of rank_busy_s) and `rank_slots_total`; or config.FIELD OP VALUE for a field
of the JSON's config (e.g. config.ranks_per_node==2); OP is one of <=, >=, <,
>, ==.
"""
import argparse
import json
import operator
import os
import re
import subprocess
import sys
import tempfile

OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "==": operator.eq}


def field(policy, name):
    if name == "busy_imbalance":
        busy = policy["rank_busy_s"]
        mean = sum(busy) / len(busy)
        return max(busy) / mean if mean > 0 else 1.0
    if name == "rank_slots_total":
        return sum(policy["rank_slots"])
    return policy[name]


def check(result, expr):
    m = re.fullmatch(r"([\w-]+)\.(\w+)\s*(<=|>=|==|<|>)\s*(\S+)", expr)
    if not m:
        raise SystemExit(f"bad expectation '{expr}'")
    name, fname, op, want = m.groups()
    if name == "config":
        got = result["config"].get(fname)
    else:
        pol = next((p for p in result["policies"] if p["name"] == name), None)
        if pol is None:
            return f"{expr}: policy {name} not in the result"
        got = field(pol, fname)
    if got is None:
        return f"{expr}: {fname} is null"
    want_v = want if isinstance(got, str) else float(want)
    if not OPS[op](got, want_v):
        return f"{expr}: got {got}"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--expect-exit", type=int, default=0)
    ap.add_argument("--expect-stderr", default="")
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.args if x != "--"]
    seeds = a.seeds.split(",")
    if os.environ.get("MOE_TEST_SANITIZED") and len(seeds) > 1:
        # Under the sanitizers (CMakePresets.json's asan test preset) the code
        # path is what is checked, and a run is 5-10x slower: the first seed only.
        print(f"MOE_TEST_SANITIZED: seed {seeds[0]} only of {a.seeds}", flush=True)
        seeds = seeds[:1]
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            out = os.path.join(tmp, f"r{seed}.json")
            cmd = [a.mpiexec, "-n", str(a.ranks), "--oversubscribe", a.bin, "compare", "--quiet", "--seed", seed,
                   "--json", out] + args
            print("+", " ".join(cmd), flush=True)
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            sys.stdout.write(p.stdout)
            if p.returncode != a.expect_exit:
                failures.append(f"seed {seed}: exit code {p.returncode}, expected {a.expect_exit}\n{p.stderr}")
                continue
            if a.expect_exit != 0:
                if a.expect_stderr not in p.stderr:
                    failures.append(f"seed {seed}: stderr lacks '{a.expect_stderr}':\n{p.stderr}")
                continue
            with open(out) as f:
                result = json.load(f)
            for e in a.expect:
                why = check(result, e)
                if why:
                    failures.append(f"seed {seed}: {why}")
    for f in failures:
        print("FAIL:", f)
    print(f"{len(a.expect) * len(seeds) - len(failures)} passed, {len(failures)} failed"
          if a.expect else ("ok" if not failures else "failed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
