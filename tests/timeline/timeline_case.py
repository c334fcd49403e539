#!/usr/bin/env python3
"""Checks of the HDF5 timeline (--timeline) and of routing traces
(--scenario trace:FILE, moe-ep trace). Needs h5py and numpy.

usage: timeline_case.py --mpiexec MPIEXEC --bin MOE_EP --h5dump H5DUMP --workdir DIR CASE [--case NAME]

CASE:
  rows       4 ranks, ep,capacity,llep, 3 steps x 2 layers: exactly one row per
             (policy, step, layer, rank), every field in h5dump -H, slot totals
             per (policy, step, layer) = routed (exact) or routed - dropped
             (capacity), /expert_load, the JSON's rank_slots, root attributes
  killed     --steps 5 with MOE_TEST_KILL_AFTER_STEP=1: rank 0 dies by SIGKILL
             right after step 1 is flushed; the file opens in h5dump and h5py
             and holds exactly the rows of steps 0 and 1, complete = 0
  roundtrip  moe-ep trace, then compare on the synthetic scenario and on the
             trace (4 ranks, and 2 ranks with the same tokens): equal loads,
             equal rank_slots, exact outputs
  bad-trace  a malformed trace (--case NAME) makes both ranks exit 2 together,
             rank 0 printing one line that names the dataset/index
  plot       tools/plot_timeline.py on the rows case's file writes two PNGs
"""
import argparse
import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from casekit import check, failures, finish  # noqa: E402,F401


SMALL = ["--tokens", "256", "--hidden", "64", "--ffn", "64", "--quiet"]
N, K = 32, 4  # the small preset's experts and top-k
FIELDS = ["policy", "step", "layer", "rank", "slots_routed", "slots_native", "slots_foreign", "experts_imported",
          "slots_dropped", "bytes_tokens_sent", "bytes_tokens_recv", "bytes_weights_sent", "bytes_weights_recv",
          "t_route", "t_plan", "t_dispatch", "t_weights", "t_compute", "t_combine", "busy_s", "peak_bytes"]
LOAD_FIELDS = ["policy", "step", "layer", "expert", "slots"]



def run(cmd, env=None, timeout=120, show=True):
    print("+", " ".join(cmd), flush=True)
    full_env = dict(os.environ, **(env or {}))
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        failures.append(f"timed out after {timeout}s (a hang?): {' '.join(cmd)}")
        raise SystemExit(finish())
    if p.stdout.strip() and (show or p.returncode != 0):
        print(p.stdout.rstrip())
    if p.stderr.strip():
        print("stderr:", p.stderr.rstrip())
    return p


def compare(a, ranks, args, env=None):
    return run([a.mpiexec, "-n", str(ranks), "--oversubscribe", a.bin, "compare"] + args, env=env)


def must_succeed(p, what):
    if not check(p.returncode == 0, f"{what}: exit code {p.returncode}"):
        raise SystemExit(finish())


def enum_names(ds):
    return {v: k for k, v in h5py.check_enum_dtype(ds.dtype["policy"]).items()}


def check_slot_totals(rows, names, exact, label):
    """Per (policy, step, layer): computed slots summed over ranks equal the
    routed slots minus the dropped ones (which are zero for exact policies)."""
    for key in sorted(set(zip(rows["policy"].tolist(), rows["step"].tolist(), rows["layer"].tolist()))):
        p, s, l = key
        sel = rows[(rows["policy"] == p) & (rows["step"] == s) & (rows["layer"] == l)]
        computed = int((sel["slots_native"] + sel["slots_foreign"]).sum())
        routed = int(sel["slots_routed"].sum())
        dropped = int(sel["slots_dropped"].sum())
        name = names[p]
        where = f"{label}: {name} step {s} layer {l}"
        if exact.get(name, True):
            check(dropped == 0, f"{where}: exact policy dropped {dropped} slots")
            check(computed == routed, f"{where}: computed {computed} slots != routed {routed}")
        else:
            check(computed == routed - dropped,
                  f"{where}: computed {computed} != routed {routed} - dropped {dropped}")


# ---------------------------------------------------------------------------
def case_rows(a):
    ranks, steps, layers, policies = 4, 3, 2, ["ep", "capacity", "llep"]
    t5, js = os.path.join(a.workdir, "t.h5"), os.path.join(a.workdir, "r.json")
    p = compare(a, ranks, ["--policies", ",".join(policies), "--steps", str(steps), "--layers", str(layers),
                           "--scenario", "80:1", "--min-chunk", "64", "--timeline", t5, "--json", js] + SMALL)
    must_succeed(p, "compare --timeline")

    d = run([a.h5dump, "-H", "-p", t5], show=False)
    check(d.returncode == 0, f"h5dump -H exit code {d.returncode}")
    for f in FIELDS:
        check(re.search(rf'"{f}";', d.stdout) is not None, f"h5dump -H does not show field {f}")
    check("H5T_ENUM" in d.stdout and "H5S_UNLIMITED" in d.stdout, "h5dump: no enum or not extendible")

    result = json.load(open(js))
    exact = {q["name"]: q["exact"] for q in result["policies"]}
    routed_total = 256 * K * ranks
    with h5py.File(t5, "r") as f:
        ds = f["timeline"]
        rows = ds[...]
        names = enum_names(ds)
        loads = f["expert_load"][...]
        attrs = {k: f.attrs[k] for k in f.attrs}
        if attrs.get("compression") != "none":
            check("DEFLATE" in d.stdout, "compression attribute says deflate but h5dump -p shows no DEFLATE filter")
        check(ds.chunks is not None and ds.maxshape == (None,), "/timeline is not chunked and extendible")

    check([names[i] for i in sorted(names)] == policies, f"policy enum {names} != {policies}")
    check(len(rows) == len(policies) * steps * layers * ranks,
          f"/timeline has {len(rows)} rows, expected {len(policies) * steps * layers * ranks}")
    keys = list(zip(rows["policy"].tolist(), rows["step"].tolist(), rows["layer"].tolist(), rows["rank"].tolist()))
    check(len(set(keys)) == len(keys), "duplicate (policy, step, layer, rank) rows")
    expected_order = [(pi, s, l, r) for s in range(steps) for l in range(layers) for pi in range(len(policies))
                      for r in range(ranks)]
    check(keys == expected_order, "rows are not in (step, layer, policy, rank) order")
    check_slot_totals(rows, names, exact, "/timeline")
    for pi, name in enumerate(policies):
        for s in range(steps):
            for l in range(layers):
                sel = rows[(rows["policy"] == pi) & (rows["step"] == s) & (rows["layer"] == l)]
                check(int(sel["slots_routed"].sum()) == routed_total,
                      f"{name} step {s} layer {l}: routed {int(sel['slots_routed'].sum())} != {routed_total}")
    cap = rows[rows["policy"] == policies.index("capacity")]
    check(int(cap["slots_dropped"].sum()) > 0, "capacity dropped nothing at 80:1 (the test needs drops)")
    ep = rows[rows["policy"] == 0]
    check(int(ep["slots_foreign"].sum()) == 0 and int(ep["bytes_weights_sent"].sum()) == 0,
          "ep computed foreign slots or moved weights")
    llep = rows[rows["policy"] == policies.index("llep")]
    check(int(llep["experts_imported"].sum()) > 0 and int(llep["bytes_weights_recv"].sum()) > 0,
          "llep imported no expert at 80:1 with --min-chunk 64")
    check(bool((rows["busy_s"] > 0).all()) and bool((rows["t_compute"] >= 0).all()), "non-positive busy times")
    check(bool((rows["peak_bytes"] > 0).all()), "peak_bytes not recorded")

    # The JSON's per-rank totals are the timeline's sums.
    for q in result["policies"]:
        sel = rows[rows["policy"] == policies.index(q["name"])]
        per_rank = [int((sel["slots_native"] + sel["slots_foreign"])[sel["rank"] == r].sum()) for r in range(ranks)]
        check(per_rank == q["rank_slots"], f"{q['name']}: timeline per-rank slots {per_rank} != JSON {q['rank_slots']}")
        check(int(sel["slots_dropped"].sum()) == q["dropped_slots"], f"{q['name']}: dropped differs from JSON")

    # /expert_load: N rows per (policy, step, layer), summing to the routed slots, equal over policies.
    check(len(loads) == len(policies) * steps * layers * N, f"/expert_load has {len(loads)} rows")
    for s in range(steps):
        for l in range(layers):
            per_policy = []
            for pi in range(len(policies)):
                sel = loads[(loads["policy"] == pi) & (loads["step"] == s) & (loads["layer"] == l)]
                check(sorted(sel["expert"].tolist()) == list(range(N)), f"/expert_load experts at {pi},{s},{l}")
                check(int(sel["slots"].sum()) == routed_total, f"/expert_load sum at {pi},{s},{l}")
                per_policy.append(sel["slots"].tolist())
            check(all(x == per_policy[0] for x in per_policy), f"/expert_load differs between policies at {s},{l}")

    # Root attributes.
    config = json.loads(attrs["config"])
    check(config["steps"] == steps and config["layers"] == layers and config["ranks"] == ranks,
          f"config attribute {config}")
    check(int(attrs["steps"]) == steps and attrs["scenario"] == "80:1" and int(attrs["experts"]) == N,
          "scalar config attributes")
    params = json.loads(attrs["policy_params"])
    check(params["min_chunk"] == 64 and "alpha" in params and "capacity_factor" in params, f"policy_params {params}")
    check(int(attrs["mpi_size"]) == ranks and len(attrs["hostnames"]) == ranks and all(attrs["hostnames"]),
          "mpi_size / hostnames")
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", attrs["start_time"]) is not None,
          f"start_time {attrs['start_time']} is not ISO 8601")
    check(bool(attrs["tool_version"]) and int(attrs["format_version"]) == 1, "tool_version / format_version")
    check(int(attrs["complete"]) == 1, "complete != 1 after a normal end")
    check(list(attrs["policies"]) == policies, "policies attribute")
    units = json.loads(attrs["units"])
    check(all(f in units for f in FIELDS + LOAD_FIELDS), f"units lacks fields: {set(FIELDS + LOAD_FIELDS) - set(units)}")


def case_killed(a):
    ranks, layers, policies, kill_after = 4, 2, ["ep", "llep"], 1
    k5 = os.path.join(a.workdir, "killed.h5")
    p = compare(a, ranks, ["--policies", ",".join(policies), "--steps", "5", "--layers", str(layers),
                           "--scenario", "80:1", "--min-chunk", "64", "--timeline", k5] + SMALL,
                env={"MOE_TEST_KILL_AFTER_STEP": str(kill_after)})
    check(p.returncode != 0, "the killed run exited 0 (did the test hook fire?)")
    out = p.stdout + p.stderr
    check("signal 9" in out or "Killed" in out or p.returncode in (137, -9),
          f"no sign of SIGKILL in the launcher's output (exit code {p.returncode})")
    d = run([a.h5dump, "-d", "/timeline", "-d", "/expert_load", k5], show=False)
    check(d.returncode == 0, f"h5dump of the killed run's file: exit code {d.returncode}")
    with h5py.File(k5, "r") as f:
        rows = f["timeline"][...]
        loads = f["expert_load"][...]
        names = enum_names(f["timeline"])
        complete = int(f.attrs["complete"])
    check(complete == 0, "complete = 1 in a killed run's file")
    steps_done = kill_after + 1
    want = {(pi, s, l, r) for s in range(steps_done) for l in range(layers) for pi in range(len(policies))
            for r in range(ranks)}
    got = list(zip(rows["policy"].tolist(), rows["step"].tolist(), rows["layer"].tolist(), rows["rank"].tolist()))
    check(len(got) == len(want) and set(got) == want,
          f"killed file holds {len(got)} rows of steps {sorted(set(rows['step'].tolist()))}; expected exactly the "
          f"{len(want)} rows of steps 0..{kill_after}")
    check(len(loads) == steps_done * layers * len(policies) * N, f"/expert_load has {len(loads)} rows")
    check_slot_totals(rows, names, {"ep": True, "llep": True}, "killed file")


def case_roundtrip(a):
    tr = os.path.join(a.workdir, "trace.h5")
    flow = ["--steps", "3", "--layers", "2", "--seed", "5", "--drift", "0.2"]
    p = run([a.bin, "trace", "--scenario", "80:2", "--ranks", "4", "--out", tr] + flow + SMALL[:6])
    must_succeed(p, "moe-ep trace")
    with h5py.File(tr, "r") as f:
        ids = f["expert_ids"]
        check(ids.shape == (3, 2, 1024, K) and ids.dtype == np.int32, f"trace /expert_ids {ids.shape} {ids.dtype}")
        check(int(f.attrs["num_experts"]) == N and int(f.attrs["top_k"]) == K, "trace attributes")
        v = ids[...]
        check(int(v.min()) >= 0 and int(v.max()) < N, "trace ids out of range")

    common = ["--policies", "ep,capacity,llep", "--min-chunk", "64"] + flow + SMALL
    outs = {}
    for tag, ranks, extra in (("synthetic", 4, ["--scenario", "80:2"]),
                              ("replay", 4, ["--scenario", "trace:" + tr, "--check"]),
                              ("replay_np2", 2, ["--scenario", "trace:" + tr, "--tokens", "512"])):
        t5, js = os.path.join(a.workdir, f"{tag}.h5"), os.path.join(a.workdir, f"{tag}.json")
        args = common + extra + ["--timeline", t5, "--json", js]
        if tag == "replay_np2":  # --tokens given twice is an error: drop the default one
            i = args.index("--tokens")
            del args[i:i + 2]
        must_succeed(compare(a, ranks, args), f"compare ({tag})")
        with h5py.File(t5, "r") as f:
            outs[tag] = (f["expert_load"][...], json.load(open(js)))

    syn_loads, syn_json = outs["synthetic"]
    rep_loads, rep_json = outs["replay"]
    np2_loads, _ = outs["replay_np2"]
    check(np.array_equal(syn_loads, rep_loads), "/expert_load of the replay differs from the synthetic run")
    check(np.array_equal(syn_loads["slots"], np2_loads["slots"]),
          "/expert_load of the 2-rank replay differs from the 4-rank synthetic run")
    for s, r in zip(syn_json["policies"], rep_json["policies"]):
        check(s["rank_slots"] == r["rank_slots"], f"{s['name']}: rank_slots {s['rank_slots']} != {r['rank_slots']}")
        check(s["dropped_slots"] == r["dropped_slots"], f"{s['name']}: dropped_slots differ")
        if r["exact"]:
            check(r["max_rel_err"] is not None and r["max_rel_err"] <= 1e-5,
                  f"{r['name']}: replay max_rel_err {r['max_rel_err']}")


# --- malformed traces -------------------------------------------------------
BAD_RUN = ["--policies", "ep", "--steps", "2", "--layers", "1", "--tokens", "64", "--hidden", "32", "--ffn", "32",
           "--quiet"]


def good_ids(steps=2, layers=1, tokens=128):
    rng = np.random.default_rng(7)
    return rng.integers(0, N, size=(steps, layers, tokens, K), dtype=np.int32)


def make_bad(a, name, path):
    """Writes the malformed trace `name`; returns (extra args, expected stderr regex)."""
    def write(**datasets):
        with h5py.File(path, "w") as f:
            for k, v in datasets.items():
                f.create_dataset(k, data=v)
            f.attrs["num_experts"] = N
            f.attrs["top_k"] = K
    if name == "id_out_of_range":  # in rank 1's tokens: caught up front on every rank
        ids = good_ids()
        ids[1, 0, 100, 2] = N
        write(expert_ids=ids)
        return [], rf"/expert_ids\[1,0,100,2\] = {N} is out of range"
    if name == "negative_id":
        ids = good_ids()
        ids[0, 0, 5, 1] = -1
        write(expert_ids=ids)
        return [], r"/expert_ids\[0,0,5,1\] = -1 is out of range"
    if name == "wrong_rank":
        write(expert_ids=good_ids()[:, 0])
        return [], r"dataset /expert_ids has 3 dimension\(s\) \(2 x 128 x 4\); expected 4"
    if name == "truncated":
        good = path + ".good"
        with h5py.File(good, "w") as f:
            f.create_dataset("expert_ids", data=good_ids(), chunks=(1, 1, 128, K))
        data = open(good, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        return [], r"truncated"
    if name == "not_hdf5":
        open(path, "w").write("step,layer,token,k,expert\n0,0,0,0,3\n")
        return [], r"not an HDF5 file"
    if name == "missing_dataset":
        write(gates=np.zeros((2, 1, 128, K), np.float32))
        return [], r"dataset /expert_ids is missing"
    if name == "float_ids":
        write(expert_ids=good_ids().astype(np.float32))
        return [], r"dataset /expert_ids does not hold integers"
    if name == "too_few_tokens":
        write(expert_ids=good_ids(tokens=100))
        return [], r"/expert_ids holds 100 tokens per \(step, layer\) \(dimension 2\) but the run needs 128"
    if name == "too_few_steps":
        write(expert_ids=good_ids(steps=1))
        return [], r"/expert_ids holds 1 step\(s\) \(dimension 0\) but the run needs --steps 2"
    if name == "wrong_k":
        write(expert_ids=good_ids()[..., :2])
        return [], r"/expert_ids holds K = 2 .* --top-k 4"
    if name == "gates_shape":
        write(expert_ids=good_ids(), gates=np.zeros((2, 1, 64, K), np.float32))
        return [], r"dataset /gates has dims 2 x 1 x 64 x 4 but /expert_ids has 2 x 1 x 128 x 4"
    raise SystemExit(f"unknown bad-trace case {name}")


def case_bad_trace(a):
    path = os.path.join(a.workdir, f"bad_{a.case}.h5")
    extra, pattern = make_bad(a, a.case, path)
    p = compare(a, 2, BAD_RUN + ["--scenario", "trace:" + path] + extra)
    check(p.returncode == 2, f"exit code {p.returncode}, expected 2")
    lines = [l for l in p.stderr.splitlines() if l.startswith("moe-ep:")]
    check(len(lines) == 1, f"expected one 'moe-ep:' line from rank 0, got {len(lines)}")
    check(re.search(pattern, p.stderr) is not None, f"stderr does not match /{pattern}/")
    check(("trace:" + path) in p.stderr, "stderr does not name the trace file")
    check("error on rank" not in p.stderr, "the error was not collective (a rank aborted the job)")


def case_plot(a):
    t5 = os.path.join(a.workdir, "t.h5")
    out = os.path.join(a.workdir, "plots")
    p = run([sys.executable, a.plot, t5, out])
    must_succeed(p, "plot_timeline.py")
    pngs = p.stdout.split()
    check(len(pngs) == 2, f"expected two PNG paths, got {pngs}")
    for png in pngs:
        ok = os.path.isfile(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 10000
        check(ok, f"{png} is not a plausible PNG")



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--h5dump", default="h5dump")
    ap.add_argument("--plot", default="")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--case", default="")
    ap.add_argument("what", choices=["rows", "killed", "roundtrip", "bad-trace", "plot"])
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    {"rows": case_rows, "killed": case_killed, "roundtrip": case_roundtrip, "bad-trace": case_bad_trace,
     "plot": case_plot}[a.what](a)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
