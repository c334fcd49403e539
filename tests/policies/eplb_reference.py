#!/usr/bin/env python3
"""An independent oracle for policies/EplbPlacement.cpp: DeepSeek's EPLB
(`rebalance_experts`: replicate_experts, balanced_packing, the hierarchical
policy and the global one as its one-node, one-group case), restated in NumPy
with the structure of the published PyTorch code (tensors of [layers, experts],
index maps inverted with scatter and composed with gather) and the tie-breaking
of shared/docs/eplb-notes.md. Then random cases, run through eplb_dump, must
give exactly the same placements: replica counts and every rank's slots in
physical-slot order.

The published code sorts and divides in float32 and its sort is not stable, so
its ties are unspecified; here everything is float64 with ties to the lower
index, as the notes (and the C++) specify.

  eplb_reference.py --dump build/tests/policies/eplb_dump [--cases 3000] [--seed 1]
  eplb_reference.py --plan build/bin/moe-ep [--cases 200] [--seed 1]

With --plan, the cases (integer loads, as `moe-ep plan --loads` takes them)
go through the CLI instead: `moe-ep plan --policy eplb --json` must report,
per rank, the sorted experts the oracle puts there (`replicas`) and the
oracle's replica counts (`replica_count`).
"""
import argparse
import random
import subprocess
import sys

try:
    import numpy as np
except ImportError:
    sys.exit("eplb_reference.py: needs numpy (apt-get install python3-numpy; scripts/setup lists it)")


def balanced_packing(weight, num_packs):
    """Packs the items of each row of `weight` [layers, items] into num_packs
    packs of equal item count: heaviest first (ties: lower index), each into
    the lightest pack that is not full (ties: lower pack). Returns pack_index
    and rank_in_pack (the order in which the item entered its pack)."""
    num_layers, num_groups = weight.shape
    assert num_groups % num_packs == 0
    groups_per_pack = num_groups // num_packs

    if groups_per_pack == 1:
        pack_index = np.broadcast_to(np.arange(num_groups, dtype=np.int64), weight.shape).copy()
        rank_in_pack = np.zeros_like(pack_index)
        return pack_index, rank_in_pack

    indices = np.argsort(-weight, axis=-1, kind="stable")
    pack_index = np.full(weight.shape, -1, dtype=np.int64)
    rank_in_pack = np.full_like(pack_index, -1)
    for i in range(num_layers):
        pack_weights = [0.0] * num_packs
        pack_items = [0] * num_packs
        for group in indices[i]:
            # min() returns the first of equal keys: ties go to the lower pack.
            pack = min((p for p in range(num_packs) if pack_items[p] < groups_per_pack),
                       key=pack_weights.__getitem__)
            assert pack_items[pack] < groups_per_pack
            pack_index[i, group] = pack
            rank_in_pack[i, group] = pack_items[pack]
            pack_weights[pack] += float(weight[i, group])
            pack_items[pack] += 1
    return pack_index, rank_in_pack


def replicate_experts(weight, num_phy):
    """Replicates num_log logical experts to num_phy physical ones, giving each
    new replica to the expert with the largest weight / count (argmax: the
    first of equal maxima). Returns phy2log, the replica rank of each physical
    expert, and logcnt."""
    n, num_log = weight.shape
    num_redundant = num_phy - num_log
    assert num_redundant >= 0
    phy2log = np.tile(np.arange(num_phy, dtype=np.int64), (n, 1))
    rank = np.zeros((n, num_phy), dtype=np.int64)
    logcnt = np.ones((n, num_log), dtype=np.int64)
    arangen = np.arange(n, dtype=np.int64)
    for i in range(num_log, num_phy):
        redundant_indices = np.argmax(weight / logcnt, axis=-1)
        phy2log[:, i] = redundant_indices
        rank[:, i] = logcnt[arangen, redundant_indices]
        logcnt[arangen, redundant_indices] += 1
    return phy2log, rank, logcnt


def inverse(perm):
    inv = np.empty_like(perm)
    np.put_along_axis(inv, perm, np.broadcast_to(np.arange(perm.shape[1], dtype=np.int64), perm.shape), axis=1)
    return inv


def group_sums(weight, num_groups, group_size):
    # Summed in expert order, as the C++ does: numpy's pairwise sum can differ
    # in the last bit, which would only matter at a near-tie of two groups.
    out = np.zeros((weight.shape[0], num_groups))
    for layer in range(weight.shape[0]):
        for g in range(num_groups):
            acc = 0.0
            for x in weight[layer, g * group_size:(g + 1) * group_size]:
                acc += float(x)
            out[layer, g] = acc
    return out


def rebalance_experts_hierarchical(weight, num_physical_experts, num_groups, num_nodes, num_gpus):
    num_layers, num_logical_experts = weight.shape
    assert num_logical_experts % num_groups == 0
    group_size = num_logical_experts // num_groups
    assert num_groups % num_nodes == 0
    groups_per_node = num_groups // num_nodes
    assert num_gpus % num_nodes == 0
    assert num_physical_experts % num_gpus == 0
    phy_experts_per_gpu = num_physical_experts // num_gpus

    # Step 1: pack groups to nodes
    tokens_per_group = group_sums(weight, num_groups, group_size)
    group_pack_index, group_rank_in_pack = balanced_packing(tokens_per_group, num_nodes)
    log2mlog = (((group_pack_index * groups_per_node + group_rank_in_pack) * group_size)[..., None] +
                np.arange(group_size, dtype=np.int64)).reshape(num_layers, -1)
    mlog2log = inverse(log2mlog)

    # Step 2: construct redundant experts within nodes
    tokens_per_mlog = np.take_along_axis(weight, mlog2log, -1).reshape(-1, num_logical_experts // num_nodes)
    phy2mlog, phyrank, mlogcnt = replicate_experts(tokens_per_mlog, num_physical_experts // num_nodes)

    # Step 3: pack physical experts to GPUs
    tokens_per_phy = np.take_along_axis(tokens_per_mlog / mlogcnt, phy2mlog, -1)
    pack_index, rank_in_pack = balanced_packing(tokens_per_phy, num_gpus // num_nodes)
    phy2pphy = pack_index * phy_experts_per_gpu + rank_in_pack
    pphy2phy = inverse(phy2pphy)

    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, -1)
    pphy2mlog = (pphy2mlog.reshape(num_layers, num_nodes, -1) +
                 np.arange(0, num_logical_experts, num_logical_experts // num_nodes).reshape(1, -1, 1)
                 ).reshape(num_layers, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, -1)
    pphyrank = np.take_along_axis(phyrank, pphy2phy, -1).reshape(num_layers, -1)
    logcnt = np.take_along_axis(mlogcnt.reshape(num_layers, -1), log2mlog, -1)
    return pphy2log, pphyrank, logcnt


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_gpus):
    """Returns phy2log [layers, num_replicas] and logcnt [layers, experts]."""
    weight = np.asarray(weight, dtype=np.float64)
    if num_groups % num_nodes == 0:
        phy2log, _, logcnt = rebalance_experts_hierarchical(weight, num_replicas, num_groups, num_nodes, num_gpus)
    else:
        phy2log, _, logcnt = rebalance_experts_hierarchical(weight, num_replicas, 1, 1, num_gpus)
    return phy2log, logcnt


# --- random cases --------------------------------------------------------------

def random_loads(rng, n, distinct):
    shape = rng.randrange(5)
    if not distinct:  # ties: few values, zeros, all equal
        if shape == 0:
            return [float(rng.randrange(4)) for _ in range(n)]
        if shape == 1:
            return [7.0] * n
        return [float(rng.choice([0, 0, 1, 5, 100])) for _ in range(n)]
    if shape == 0:  # uniform integers
        return [float(x) for x in rng.sample(range(0, 10 ** 6), n)]
    if shape == 1:  # a moving average over W steps: k / W
        w = rng.choice([3, 7, 10])
        return [x / w for x in rng.sample(range(0, 10 ** 5), n)]
    if shape == 2:  # one hot expert
        loads = [float(x) for x in rng.sample(range(0, 1000), n)]
        loads[rng.randrange(n)] = 10.0 ** 6
        return loads
    if shape == 3:  # zipf-like, made distinct by a small integer offset
        s = 0.5 + rng.random() * 1.5
        perm = list(range(n))
        rng.shuffle(perm)
        loads = [0.0] * n
        for i, e in enumerate(perm):
            loads[e] = float(int(10 ** 6 / (i + 1) ** s)) * n + i
        return loads
    return [rng.random() * 100 for _ in range(n)]  # uniform reals


def random_case(rng, distinct):
    P = rng.choice(list(range(1, 17)) + [24, 32, 64])
    divisors = [g for g in range(1, P + 1) if P % g == 0]
    G = rng.choice(divisors)
    if rng.random() < 0.6:  # hierarchical: NG a multiple of G
        NG = G * rng.randint(1, 4)
    else:  # global: no groups, or NG not a multiple of G
        NG = rng.choice([0, 1, 3, 5]) if G > 1 else 0
        if NG and NG % G == 0:
            NG = 0
    group_size = rng.randint(1, 8)
    N = (NG if NG else rng.randint(1, 8)) * group_size
    while N > 512:
        N //= 2
    if NG and N % NG:
        N = NG * group_size
    R = (-N) % P + P * rng.randint(0, 3)
    return P, R, G, NG, random_loads(rng, N, distinct)


def reference(case):
    P, R, G, NG, loads = case
    phy2log, logcnt = rebalance_experts([loads], len(loads) + R, NG if NG else 1, G, P)
    return " ".join(str(c) for c in logcnt[0]) + " | " + " ".join(str(e) for e in phy2log[0])


def normalise(line):
    return " ".join(line.split())


def check_plan_cli(moe_ep, count, seed):
    """Random integer cases through `moe-ep plan --policy eplb --json`. The
    runtime gives every rank N/P native experts, so only cases with N a
    multiple of P are drawn."""
    import json
    rng = random.Random(seed)
    failures = hierarchical = 0
    for i in range(count):
        while True:
            P, R, G, NG, w = random_case(rng, distinct=(i % 5 != 4))
            if len(w) % P == 0:
                break
        loads = [int(x) for x in w]
        phy2log, logcnt = rebalance_experts([loads], len(loads) + R, NG if NG else 1, G, P)
        per_rank = (len(loads) + R) // P
        want_replicas = [sorted(int(e) for e in phy2log[0][r * per_rank:(r + 1) * per_rank]) for r in range(P)]
        want_count = [int(c) for c in logcnt[0]]
        cmd = [moe_ep, "plan", "--policy", "eplb", "--json", "--ranks", str(P), "--redundant-experts", str(R),
               "--nodes", str(G), "--expert-groups", str(NG), "--loads", ",".join(map(str, loads))]
        p = subprocess.run(cmd, capture_output=True, text=True)
        got = json.loads(p.stdout) if p.returncode == 0 else {}
        hierarchical += NG > 0 and NG % G == 0 and G > 1
        if got.get("replicas") != want_replicas or got.get("replica_count") != want_count:
            failures += 1
            if failures <= 5:
                print(f"MISMATCH {' '.join(cmd)}\n  rc {p.returncode} {p.stderr.strip()}\n"
                      f"  moe-ep: {got.get('replicas')} {got.get('replica_count')}\n"
                      f"  oracle: {want_replicas} {want_count}")
    print(f"{count - failures} of {count} `moe-ep plan --policy eplb` placements equal the reference "
          f"({hierarchical} hierarchical over several nodes)")
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dump", help="the eplb_dump binary")
    ap.add_argument("--plan", help="the moe-ep binary: check `moe-ep plan --policy eplb --json` instead")
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    if bool(args.dump) == bool(args.plan):
        sys.exit("eplb_reference.py: give exactly one of --dump or --plan")
    if args.plan:
        sys.exit(check_plan_cli(args.plan, args.cases, args.seed))

    rng = random.Random(args.seed)
    cases = [random_case(rng, distinct=(i % 5 != 4)) for i in range(args.cases)]  # one in five has ties
    text = "".join(f"{P} {R} {G} {NG} " + " ".join(repr(x) for x in w) + "\n" for P, R, G, NG, w in cases)
    got = subprocess.run([args.dump], input=text, capture_output=True, text=True, check=True).stdout.splitlines()
    if len(got) != len(cases):
        sys.exit(f"eplb_dump printed {len(got)} lines for {len(cases)} cases")

    failures = 0
    hierarchical = 0
    for case, line in zip(cases, got):
        P, R, G, NG, w = case
        hierarchical += NG > 0 and NG % G == 0 and G > 1
        want = reference(case)
        if normalise(line) != normalise(want):
            failures += 1
            if failures <= 5:
                print(f"MISMATCH P={P} R={R} G={G} NG={NG} N={len(w)} loads={w}\n  C++:    {line}\n  oracle: {want}")
    print(f"{len(cases) - failures} of {len(cases)} placements equal the reference "
          f"({hierarchical} hierarchical over several nodes)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
