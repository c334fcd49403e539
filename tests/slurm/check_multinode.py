#!/usr/bin/env python3
"""Checks one multi-node `moe-ep compare` result directory (scripts/test-slurm-multinode).

    check_multinode.py [--require-topology] DIR RANKS NODES HOST[,HOST...]

DIR holds compare.json and (when moe-ep wrote one) timeline.h5. RANKS ranks on
NODES nodes, RANKS/NODES per node, on exactly the hosts named (the cluster's
node names, which are the hosts' own hostnames).

Required today: 4 ranks in config.ranks and every per-rank list, every policy
status ok, --check on and every exact policy's max_rel_err tiny, and the
timeline's `hostnames` attribute naming NODES distinct hosts (the given ones)
with RANKS/NODES ranks each.

Checked when present, reported as "not yet present" otherwise (the runtime is
gaining them): JSON `hostnames`, `node_of_rank`, `ranks_per_node`, per-policy
`token_bytes_inter_node` (> 0 for every policy that moves tokens) and
`weight_bytes_inter_node`; timeline attributes `node_of_rank`,
`ranks_per_node`. With --require-topology (once the runtime writes them)
each of them that is missing is a failure.

Prints one line per fact (`ok ...`, `missing ...`), and `FAIL ...` lines for
what is wrong; exit 0 when nothing failed, 1 otherwise. Reads HDF5 through
`h5dump -a` (hdf5-tools), so no h5py is needed.
"""
import json
import os
import re
import subprocess
import sys

EXACT_TOL = 1e-5  # float32 runtime vs the double reference: ~1e-6 is typical

failures = []
notes = []
require_topology = False


def fail(msg):
    failures.append(msg)


def note(msg):
    notes.append(msg)


def missing(what):
    """A topology key the runtime does not write yet."""
    if require_topology:
        fail(f"{what}: missing (--require-topology)")
    else:
        note(f"missing {what}: not yet present (runtime)")


def h5_attr(path, name):
    """The root attribute NAME of PATH as a list of strings or numbers, or None if absent."""
    r = subprocess.run(["h5dump", "-a", "/" + name, path], capture_output=True, text=True)
    if r.returncode != 0 or "DATA {" not in r.stdout:
        return None
    data = r.stdout.split("DATA {", 1)[1].rsplit("}", 2)[0]
    if "H5T_STRING" in r.stdout:
        strs = [bytes(s, "utf-8").decode("unicode_escape")
                for s in re.findall(r'"((?:[^"\\]|\\.)*)"', data)]
        if len(strs) == 1 and strs[0][:1] in "[{":   # a list written as JSON text
            try:
                v = json.loads(strs[0])
                return v if isinstance(v, list) else strs
            except ValueError:
                pass
        return strs
    data = re.sub(r"\(\d+(?:,\d+)*\):", " ", data)   # drop h5dump's "(i):" index markers
    vals = []
    for tok in re.findall(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?", data):
        vals.append(float(tok) if re.search(r"[.eE]", tok) else int(tok))
    return vals


def check_placement(where, hostnames, node_of_rank, ranks_per_node, ranks, nodes, hosts,
                    hostnames_required):
    """hostnames, node_of_rank, ranks_per_node: lists / int, or None when not present."""
    per = ranks // nodes
    if hostnames is None and hostnames_required:
        fail(f"{where}: no hostnames")
    elif hostnames is None:
        missing(f"{where} hostnames")
    elif len(hostnames) != ranks:
        fail(f"{where}: hostnames has {len(hostnames)} entries, expected {ranks}: {hostnames}")
    else:
        distinct = sorted(set(hostnames))
        counts = {h: hostnames.count(h) for h in distinct}
        if len(distinct) != nodes or any(c != per for c in counts.values()):
            fail(f"{where}: hostnames {hostnames}: expected {nodes} distinct hosts with {per} ranks each")
        elif set(distinct) != set(hosts):
            fail(f"{where}: hostnames {distinct} are not the cluster's nodes {sorted(hosts)}")
        else:
            note(f"ok {where} hostnames {hostnames} ({nodes} hosts x {per} ranks)")
    if node_of_rank is None:
        missing(f"{where} node_of_rank")
    elif len(node_of_rank) != ranks or sorted(set(node_of_rank)) != list(range(nodes)) or \
            any(node_of_rank.count(n) != per for n in range(nodes)):
        fail(f"{where}: node_of_rank {node_of_rank}: expected {ranks} entries, nodes 0..{nodes - 1}, {per} ranks each")
    elif hostnames is not None and len(hostnames) == ranks and any(
            (hostnames[a] == hostnames[b]) != (node_of_rank[a] == node_of_rank[b])
            for a in range(ranks) for b in range(ranks)):
        fail(f"{where}: node_of_rank {node_of_rank} does not group ranks as hostnames {hostnames} do")
    else:
        note(f"ok {where} node_of_rank {node_of_rank}")
    if ranks_per_node is None:
        missing(f"{where} ranks_per_node")
    elif ranks_per_node != per:
        fail(f"{where}: ranks_per_node {ranks_per_node}, expected {per}")
    else:
        note(f"ok {where} ranks_per_node {ranks_per_node}")


def one(v):
    """A scalar attribute read by h5_attr, or None."""
    if v is None:
        return None
    return v[0] if len(v) == 1 else v


def main():
    global require_topology
    argv = sys.argv[1:]
    if argv[:1] == ["--require-topology"]:
        require_topology, argv = True, argv[1:]
    if len(argv) != 4:
        sys.exit(__doc__)
    out, ranks, nodes, hosts = argv[0], int(argv[1]), int(argv[2]), argv[3].split(",")
    jpath = os.path.join(out, "compare.json")
    try:
        d = json.load(open(jpath))
    except (OSError, ValueError) as e:
        print(f"FAIL {jpath}: not readable JSON: {e}")
        return 1

    cfg = d.get("config", {})
    if cfg.get("ranks") != ranks:
        fail(f"json: config.ranks is {cfg.get('ranks')}, expected {ranks}")
    if cfg.get("check") is not True:
        fail("json: config.check is not true (the job must run with --check)")
    pols = d.get("policies", [])
    if [p.get("name") for p in pols] != ["ep", "capacity", "llep"]:
        fail(f"json: policies are {[p.get('name') for p in pols]}, expected ep, capacity, llep")
    inter = []
    for p in pols:
        name = p.get("name")
        if p.get("status") != "ok":
            fail(f"json: policy {name} status {p.get('status')} {p.get('status_detail', '')}")
        for k in ("rank_slots", "rank_busy_s", "rank_peak_bytes"):
            if len(p.get(k, [])) != ranks:
                fail(f"json: policy {name} {k} has {len(p.get(k, []))} entries, expected {ranks}")
        if p.get("exact"):
            err = p.get("max_rel_err")
            if err is None or not err <= EXACT_TOL:
                fail(f"json: exact policy {name} max_rel_err {err} (limit {EXACT_TOL})")
            else:
                note(f"ok json {name} exact, max_rel_err {err:.3g}")
        tb, wb = p.get("token_bytes", 0), p.get("weight_bytes", 0)
        ti, wi = p.get("token_bytes_inter_node"), p.get("weight_bytes_inter_node")
        if ti is None:
            missing(f"json {name} token_bytes_inter_node")
        elif not 0 <= ti <= tb:
            fail(f"json: policy {name} token_bytes_inter_node {ti} outside [0, token_bytes {tb}]")
        elif tb > 0 and ti <= 0:
            fail(f"json: policy {name} moves {tb} token bytes but none between nodes")
        else:
            inter.append(f"{name} tokens {ti}/{tb}")
        if wi is None:
            missing(f"json {name} weight_bytes_inter_node")
        elif not 0 <= wi <= wb:
            fail(f"json: policy {name} weight_bytes_inter_node {wi} outside [0, weight_bytes {wb}]")
        else:
            inter.append(f"{name} weights {wi}/{wb}")
    # ep and llep move tokens in every run of this test: they must say so.
    for p in pols:
        if p.get("name") in ("ep", "llep") and not p.get("token_bytes", 0) > 0:
            fail(f"json: policy {p.get('name')} moved no token bytes at all")
    if inter:
        note("ok json inter-node bytes (inter/all): " + "; ".join(inter))
    check_placement("json", d.get("hostnames"), d.get("node_of_rank"), d.get("ranks_per_node"),
                    ranks, nodes, hosts, hostnames_required=False)

    tpath = os.path.join(out, "timeline.h5")
    if os.path.exists(tpath):
        size = one(h5_attr(tpath, "mpi_size"))
        if size != ranks:
            fail(f"timeline: mpi_size {size}, expected {ranks}")
        check_placement("timeline", h5_attr(tpath, "hostnames"), h5_attr(tpath, "node_of_rank"),
                        one(h5_attr(tpath, "ranks_per_node")), ranks, nodes, hosts,
                        hostnames_required=True)
    else:
        note("missing timeline.h5 (moe-ep without --timeline?): hostnames not checked there")

    for n in notes:
        print(n)
    for f in failures:
        print("FAIL " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
