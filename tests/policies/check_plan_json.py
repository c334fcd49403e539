#!/usr/bin/env python3
"""Runs `moe-ep plan ... --json` and checks the plan it prints on its own terms.

usage: check_plan_json.py [--expect-...] -- MOE_EP plan ARGS... --json

Independent of the C++ code: the expert loads are read from --loads when given
(else from the plan's own ranges plus its drops, which then must add up), and
every rule is re-derived here: keys exactly as documented, each expert's
ranges partition [0, load - dropped) in order, rank_loads are the range sums,
transfers are native -> helper, one per (expert, helper rank), and the two
imbalance figures are max/mean of the EP rank loads and of rank_loads.
"""
import argparse
import json
import subprocess
import sys

KEYS = ["policy", "rank_loads", "assignments", "transfers", "dropped", "imbalance_before", "imbalance_after"]


def imbalance(loads):
    total = sum(loads)
    return 1.0 if total == 0 else max(loads) * len(loads) / total


def arg_value(cmd, flag):
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expect-rank-loads")
    ap.add_argument("--expect-transfers", type=int)
    ap.add_argument("--expect-dropped", type=int)
    ap.add_argument("--expect-balanced-within", type=float)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"exit code {run.returncode}: {run.stderr.strip()}")
    plan = json.loads(run.stdout)
    errors = []

    def check(ok, msg):
        if not ok:
            errors.append(msg)

    check(list(plan.keys()) == KEYS, f"keys {list(plan.keys())} != {KEYS}")
    P = int(arg_value(cmd, "--ranks"))
    policy = arg_value(cmd, "--policy") or "llep"
    check(plan["policy"] == policy, f"policy {plan['policy']} != {policy}")
    assignments = plan["assignments"]
    N = len(assignments)
    check(list(assignments.keys()) == [str(e) for e in range(N)], "assignments must list experts 0..N-1 in order")
    check(N % P == 0, f"N = {N} not divisible by P = {P}")
    M = N // P

    loads_arg = arg_value(cmd, "--loads")
    rank_sum = [0] * P
    kept = []
    helpers = set()
    for e in range(N):
        cursor = 0
        for rank, start, end in assignments[str(e)]:
            check(0 <= rank < P, f"expert {e}: rank {rank} out of range")
            check(start == cursor and end > start, f"expert {e}: range [{start}, {end}) does not continue at {cursor}")
            if rank != e // M:
                helpers.add((e, rank))
            rank_sum[rank] += end - start
            cursor = end
        kept.append(cursor)
    total_kept = sum(kept)
    if loads_arg is not None:
        loads = [int(x) for x in loads_arg.split(",")]
        check(len(loads) == N, f"{N} experts in the plan, {len(loads)} in --loads")
        dropped = sum(loads) - total_kept
        check(plan["dropped"] == dropped, f"dropped {plan['dropped']} != sum(loads) - kept = {dropped}")
        check(all(k <= l for k, l in zip(kept, loads)), "an expert keeps more slots than it has")
    else:
        loads = None
    check(plan["rank_loads"] == rank_sum, f"rank_loads {plan['rank_loads']} != sums of ranges {rank_sum}")
    check(sum(plan["rank_loads"]) + plan["dropped"] == (sum(loads) if loads else total_kept + plan["dropped"]),
          "rank loads plus dropped must be the total")

    transfers = [tuple(t) for t in plan["transfers"]]
    check(len(set(transfers)) == len(transfers), "duplicate transfers")
    check(all(src == e // M for e, src, dst in transfers), "a transfer does not start at the native rank")
    check({(e, dst) for e, src, dst in transfers} == helpers, "transfers do not match the helper ranges")

    if loads is not None:
        before = [sum(loads[r * M:(r + 1) * M]) for r in range(P)]
        check(abs(plan["imbalance_before"] - imbalance(before)) < 1e-9,
              f"imbalance_before {plan['imbalance_before']} != {imbalance(before)}")
    check(abs(plan["imbalance_after"] - imbalance(plan["rank_loads"])) < 1e-9,
          f"imbalance_after {plan['imbalance_after']} != {imbalance(plan['rank_loads'])}")

    if a.expect_rank_loads is not None:
        want = [int(x) for x in a.expect_rank_loads.split(",")]
        check(plan["rank_loads"] == want, f"rank_loads {plan['rank_loads']} != expected {want}")
    if a.expect_transfers is not None:
        check(len(transfers) == a.expect_transfers, f"{len(transfers)} transfers, expected {a.expect_transfers}")
    if a.expect_dropped is not None:
        check(plan["dropped"] == a.expect_dropped, f"dropped {plan['dropped']}, expected {a.expect_dropped}")
    if a.expect_balanced_within is not None:
        check(plan["imbalance_before"] >= a.expect_balanced_within, "the scenario was meant to be imbalanced")
        check(plan["imbalance_after"] < a.expect_balanced_within,
              f"imbalance_after {plan['imbalance_after']} not below {a.expect_balanced_within}")

    if errors:
        print("\n".join(errors))
        sys.exit(1)
    print(f"ok: {N} experts on {P} ranks, {len(transfers)} transfers, dropped {plan['dropped']}, "
          f"imbalance {plan['imbalance_before']:.3f} -> {plan['imbalance_after']:.3f}")


if __name__ == "__main__":
    main()
