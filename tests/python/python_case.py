#!/usr/bin/env python3
"""Tests of the Python tools: tools/record_routing.py (with a real, trained
PyTorch MoE model) and tools/timeline_to_trace.py, and the commands shown in
docs/traces.md and docs/timeline-format.md.

usage: python_case.py --mpiexec MPIEXEC --bin MOE_EP --workdir DIR CASE

CASE:
  record        trains tests/python/tiny_moe.py a few dozen steps (its routing
                must change from the untrained one), records its routing on 4
                batches with RoutingRecorder, replays the trace with
                `mpiexec -n 2 moe-ep compare --scenario trace:...`, and checks
                that every (policy, step, layer) row of the timeline's
                /expert_load equals the per-expert counts of the ids the
                model's own MoE layers used; then changes ONE id in the file,
                replays again and checks that the same comparison fails, at
                that (step, layer) only, by -1 / +1 on the two experts
  recorder      record_routing.py without MPI: the presets' module-name
                patterns on skeletons named like Mixtral, Qwen3-MoE, gpt-oss
                and DeepSeek-V3 models; tuple router outputs; sigmoid scoring
                with a selection bias and group-limited top-K; the fixed-tokens
                error; the CLI's errors
  trace-real    a small real compare --timeline converted by
                tools/timeline_to_trace.py: Trace Event structure, exactly one
                slice per (policy, step, layer, rank, phase), no overlap per
                track, metadata
  trace-synthetic  timelines written here, with start_<phase> fields (and a
                backward phase, and clock noise that must be clamped) and
                without them (back-to-back layout)
  docs          runs every ```sh block of docs/traces.md and
                docs/timeline-format.md as written (moe-ep and python3 on PATH
                are the build's and this interpreter; transformers is the
                stand-in in tests/python/hf_stub)

Exit code 77 (ctest: skipped) when torch is missing for record / recorder / docs.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
from casekit import check, failures, finish  # noqa: E402,F401


HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOOLS = os.path.join(ROOT, "tools")
sys.path.insert(0, TOOLS)
sys.path.insert(0, HERE)




def need_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        print(f"SKIPPED: PyTorch is not installed for {sys.executable} (scripts/setup installs Debian's "
              "python3-torch: apt-get install python3-torch)")
        raise SystemExit(77)


def run(cmd, env=None, timeout=180, cwd=None, shell=False):
    print("+", cmd if shell else " ".join(cmd), flush=True)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env or {})),
                           cwd=cwd, shell=shell, executable="/bin/bash" if shell else None)
    except subprocess.TimeoutExpired:
        failures.append(f"timed out after {timeout}s: {cmd}")
        raise SystemExit(finish())
    if p.stdout.strip():
        print(p.stdout.rstrip())
    if p.stderr.strip():
        print("stderr:", p.stderr.rstrip())
    return p


def must(p, what):
    if not check(p.returncode == 0, f"{what}: exit code {p.returncode}"):
        raise SystemExit(finish())


# --- record: a trained model's routing through the runtime ----------------------
def load_table(timeline):
    """{(policy name, step, layer): per-expert slots} from /expert_load."""
    with h5py.File(timeline, "r") as f:
        loads = f["expert_load"][...]
        names = {v: k for k, v in h5py.check_enum_dtype(f["expert_load"].dtype["policy"]).items()}
    table = {}
    for row in loads:
        key = (names[int(row["policy"])], int(row["step"]), int(row["layer"]))
        table.setdefault(key, {})[int(row["expert"])] = int(row["slots"])
    return table


def compare_loads(table, counts):
    """Mismatches between the runtime's /expert_load and counts [steps, layers,
    N] from the model: a list of (policy, step, layer, expert, runtime, model)."""
    bad = []
    S, L, N = counts.shape
    keys = sorted(table)
    if not keys:
        return [("(no rows)", -1, -1, -1, None, None)]
    for policy in sorted({k[0] for k in keys}):
        for s in range(S):
            for l in range(L):
                got = table.get((policy, s, l))
                if got is None:
                    bad.append((policy, s, l, -1, None, "missing"))
                    continue
                for e in range(N):
                    if got.get(e, 0) != int(counts[s, l, e]):
                        bad.append((policy, s, l, e, got.get(e, 0), int(counts[s, l, e])))
    return bad


def replay(a, trace, timeline, S, L, tokens, N, K, ranks=2):
    cmd = [a.mpiexec, "-n", str(ranks), "--oversubscribe", a.bin, "compare", "--scenario", "trace:" + trace,
           "--experts", str(N), "--top-k", str(K), "--steps", str(S), "--layers", str(L),
           "--tokens", str(tokens // ranks), "--hidden", "32", "--ffn", "32", "--policies", "ep,llep",
           "--min-chunk", "8", "--quiet", "--timeline", timeline]
    must(run(cmd), "moe-ep compare --scenario trace:")


def case_record(a):
    need_torch()
    import torch
    import tiny_moe as tm
    from record_routing import RoutingRecorder

    torch.set_num_threads(1)
    model = tm.build()
    batches = tm.record_batches()
    model.eval()
    with torch.no_grad():
        init = []
        for b in batches:
            model(b)
            init.append(model.routing().numpy())
    first, last = tm.train(model)
    print(f"trained {tm.TRAIN_STEPS} steps: loss {first:.3f} -> {last:.3f}")
    check(last < 0.5 * first, f"training did not learn the toy task (loss {first:.3f} -> {last:.3f})")

    own = []  # the ids the model's MoE layers used, per step: [layers, tokens, K]
    with torch.no_grad(), RoutingRecorder(model, num_experts=tm.EXPERTS, top_k=tm.TOP_K, routers=tm.ROUTERS) as rec:
        for b in batches:
            model(b)
            own.append(model.routing().numpy())
    own = np.stack(own)
    init = np.stack(init)
    S, L, T, K = own.shape
    N = tm.EXPERTS
    check((S, L, T, K) == (tm.STEPS, tm.LAYERS, tm.BATCH * tm.SEQ, tm.TOP_K), f"routing shape {own.shape}")
    changed = float((np.sort(own, -1) != np.sort(init, -1)).any(-1).mean())
    print(f"tokens whose expert set changed by training: {changed:.0%}")
    check(changed > 0.3, f"training changed the routing of only {changed:.0%} of the tokens: not learned")
    counts = np.stack([[np.bincount(own[s, l].ravel(), minlength=N) for l in range(L)] for s in range(S)])
    print("per-expert slots of the trained model, step 0:", counts[0].tolist())
    imb = counts.max(-1) / counts.mean(-1)
    check(float(imb.max()) > 1.2, f"trained routing is near uniform (max/mean {float(imb.max()):.2f})")

    trace = os.path.join(a.workdir, "tiny-trace.h5")
    shape = rec.save(trace, source="tests/python/python_case.py record")
    check(tuple(shape) == own.shape, f"saved shape {shape}")
    with h5py.File(trace, "r") as f:
        ids = f["expert_ids"][...]
        check(ids.dtype == np.int32 and np.array_equal(ids, own), "/expert_ids differ from the model's own ids")
        check(f["gates"].shape == ids.shape and f["gates"].dtype == np.float32, "/gates shape or type")
        check(np.allclose(f["gates"][...].sum(-1), 1.0, atol=1e-5), "/gates are not renormalised over the K")
        check(int(f.attrs["num_experts"]) == N and int(f.attrs["top_k"]) == K, "num_experts / top_k attributes")
        check(bool(f.attrs["source"]) and "layers.0.moe.gate" in f.attrs["routers"], "source / routers attributes")

    timeline = os.path.join(a.workdir, "tiny-timeline.h5")
    replay(a, trace, timeline, S, L, T, N, K)
    table = load_table(timeline)
    check({k[0] for k in table} == {"ep", "llep"}, f"policies in /expert_load: {sorted({k[0] for k in table})}")
    bad = compare_loads(table, counts)
    check(not bad, f"/expert_load differs from the model's own routing counts: {bad[:5]}")
    if not bad:
        print(f"/expert_load == the model's counts for {len(table)} (policy, step, layer)")

    # Negative: one recorded id changed -> the comparison must fail there.
    s, l, t, k = 1, 2, 5, 0
    tampered = os.path.join(a.workdir, "tiny-trace-tampered.h5")
    shutil.copy(trace, tampered)
    with h5py.File(tampered, "r+") as f:
        old = int(f["expert_ids"][s, l, t, k])
        new = (old + 1) % N
        f["expert_ids"][s, l, t, k] = new
    timeline2 = os.path.join(a.workdir, "tiny-timeline-tampered.h5")
    replay(a, tampered, timeline2, S, L, T, N, K)
    bad = compare_loads(load_table(timeline2), counts)
    print(f"after changing /expert_ids[{s},{l},{t},{k}] {old} -> {new}: mismatches {bad}")
    want = sorted((p, s, l, e, int(counts[s, l, e]) + d, int(counts[s, l, e]))
                  for p in ("ep", "llep") for e, d in ((old, -1), (new, +1)))
    check(sorted(bad) == want, f"the tampered trace should fail the comparison exactly at expert {old} (-1) and "
                               f"{new} (+1) of step {s} layer {l}; got {bad}")


# --- recorder: patterns, outputs, scoring, errors --------------------------------
def skeleton(names):
    """An nn.Module tree with exactly these qualified leaf names (nn.Identity)."""
    import torch.nn as nn
    root = nn.Module()
    for name in names:
        node = root
        parts = name.split(".")
        for part in parts[:-1]:
            if not hasattr(node, part):
                node.add_module(part, nn.Module())
            node = getattr(node, part)
        node.add_module(parts[-1], nn.Identity())
    return root


MODEL_NAMES = {
    # Module names as in the Hugging Face implementations (two layers each;
    # DeepSeek-V3's layer 0 dense, as its first_k_dense_replace layers).
    "mixtral": ["model.embed_tokens"] + [n for i in range(2) for n in (
        f"model.layers.{i}.self_attn.q_proj", f"model.layers.{i}.block_sparse_moe.gate",
        f"model.layers.{i}.block_sparse_moe.experts.0.w1", f"model.layers.{i}.block_sparse_moe.experts.0.w3",
        f"model.layers.{i}.input_layernorm")] + ["lm_head"],
    "qwen3-moe": ["model.embed_tokens"] + [n for i in range(2) for n in (
        f"model.layers.{i}.self_attn.q_proj", f"model.layers.{i}.mlp.gate",
        f"model.layers.{i}.mlp.experts.0.gate_proj", f"model.layers.{i}.mlp.experts.0.up_proj")] + ["lm_head"],
    "gpt-oss": ["model.embed_tokens"] + [n for i in range(2) for n in (
        f"model.layers.{i}.self_attn.q_proj", f"model.layers.{i}.mlp.router", f"model.layers.{i}.mlp.experts")]
    + ["lm_head"],
    "deepseek-v3": ["model.embed_tokens", "model.layers.0.mlp.gate_proj", "model.layers.0.mlp.up_proj"]
    + [n for i in (1, 2) for n in (
        f"model.layers.{i}.self_attn.q_a_proj", f"model.layers.{i}.mlp.gate",
        f"model.layers.{i}.mlp.experts.0.gate_proj", f"model.layers.{i}.mlp.shared_experts.gate_proj")]
    + ["lm_head"],
}
EXPECTED_ROUTERS = {
    "mixtral": ["model.layers.0.block_sparse_moe.gate", "model.layers.1.block_sparse_moe.gate"],
    "qwen3-moe": ["model.layers.0.mlp.gate", "model.layers.1.mlp.gate"],
    "gpt-oss": ["model.layers.0.mlp.router", "model.layers.1.mlp.router"],
    "deepseek-v3": ["model.layers.1.mlp.gate", "model.layers.2.mlp.gate"],
}


def case_recorder(a):
    need_torch()
    import torch
    import record_routing as rr

    for preset, names in MODEL_NAMES.items():
        got, _ = rr.find_routers(skeleton(names), preset)
        check(got == EXPECTED_ROUTERS[preset], f"preset {preset}: routers {got}, expected {EXPECTED_ROUTERS[preset]}")
    docs = open(os.path.join(ROOT, "docs", "traces.md")).read().replace("\\|", "|")  # | escaped in tables
    for preset, spec in rr.PRESETS.items():
        check(f"`{spec['pattern']}`" in docs, f"docs/traces.md does not show the {preset} pattern {spec['pattern']}")

    N, K, T = 8, 2, 6
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(T, N, generator=g)

    class Router(torch.nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    class Net(torch.nn.Module):
        def __init__(self, fn, layers=2):
            super().__init__()
            self.layers = torch.nn.ModuleList(torch.nn.Module() for _ in range(layers))
            for layer in self.layers:
                layer.add_module("mlp", torch.nn.Module())
                layer.mlp.add_module("router", Router(fn))

        def forward(self, x):
            for layer in self.layers:
                layer.mlp.router(x)
            return x

    def record_with(fn, **kw):
        net = Net(fn)
        rec = rr.RoutingRecorder(net, num_experts=N, top_k=K, routers="gpt-oss", **kw)
        with torch.no_grad(), rec:
            net(torch.zeros(T, 4))
        ids, gates = rec.arrays()
        return ids[0, 0], gates[0, 0]

    probs = logits.softmax(-1)
    ref_g, ref_i = probs.topk(K, -1)
    ref_g = ref_g / ref_g.sum(-1, keepdim=True)
    # Logits [tokens, N] (Mixtral, Qwen3-MoE), also [batch, seq, N].
    ids, gates = record_with(lambda x: logits)
    check(np.array_equal(ids, ref_i.numpy()) and np.allclose(gates, ref_g.numpy()), "logits: ids or gates")
    ids, _ = record_with(lambda x: logits.reshape(2, 3, N))
    check(np.array_equal(ids, ref_i.numpy()), "logits [batch, seq, N]: ids")
    # gpt-oss: (router_scores [tokens, N] scattered top-K, router_indices [tokens, K]).
    scores = torch.zeros(T, N).scatter(1, ref_i, ref_g)
    ids, gates = record_with(lambda x: (scores, ref_i))
    check(np.array_equal(ids, ref_i.numpy()) and np.allclose(gates, ref_g.numpy()), "(scores, indices): ids/gates")
    # DeepSeek-style (indices, weights).
    ids, gates = record_with(lambda x: (ref_i, ref_g * 2.5))
    check(np.array_equal(ids, ref_i.numpy()) and np.allclose(gates, ref_g.numpy()), "(indices, weights): ids/gates")
    # Sigmoid scoring, selection bias, group-limited top-K (DeepSeek-V3's rule), against a direct computation.
    bias = torch.linspace(-0.3, 0.3, N)
    sig = logits.sigmoid()
    sel = (sig + bias).view(T, 4, 2)
    keep = sel.sum(-1).topk(2, -1).indices  # groups of 2: the two best of a group are the group
    mask = torch.zeros(T, 4, dtype=torch.bool).scatter(1, keep, True).repeat_interleave(2, 1)
    want_i = (sig + bias).masked_fill(~mask, float("-inf")).topk(K, -1).indices
    want_g = sig.gather(1, want_i)
    want_g = want_g / want_g.sum(-1, keepdim=True)
    ids, gates = record_with(lambda x: logits, scoring="sigmoid", selection_bias=bias, n_group=4, topk_group=2)
    check(np.array_equal(ids, want_i.numpy()) and np.allclose(gates, want_g.numpy()), "sigmoid + bias + groups")

    # Errors, each one clear line.
    def error_of(fn, batches, **kw):
        net = Net(fn)
        try:
            with torch.no_grad(), rr.RoutingRecorder(net, num_experts=N, top_k=K, routers="gpt-oss", **kw):
                for b in batches:
                    net(b)
        except rr.RoutingError as e:
            return str(e)
        return ""
    msg = error_of(lambda x: torch.randn(x.shape[0], N), [torch.zeros(6, 4), torch.zeros(5, 4)])
    check("step 1 has 5 tokens per layer but step 0 had 6" in msg and "same number of tokens" in msg,
          f"fixed-tokens error: '{msg}'")
    msg = error_of(lambda x: torch.randn(x.shape[0], N + 1), [torch.zeros(6, 4)])
    check("expected logits [..., N=8]" in msg, f"wrong-N error: '{msg}'")
    try:
        rr.find_routers(skeleton(MODEL_NAMES["mixtral"]), "gpt-oss")
        msg = ""
    except rr.RoutingError as e:
        msg = str(e)
    check("no module name matches the router pattern" in msg and "model.layers.0" in msg, f"no-match error: '{msg}'")

    # The CLI: a factory with varying tokens exits 2 with the message.
    bad = os.path.join(a.workdir, "bad_factory.py")
    with open(bad, "w") as f:
        f.write("import sys\nsys.path.insert(0, %r)\nimport tiny_moe as tm, torch\n"
                "def varying():\n    m = tm.build()\n"
                "    return m, [torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 7, dtype=torch.long)]\n" % HERE)
    p = run([sys.executable, os.path.join(TOOLS, "record_routing.py"), "--model", bad + ":varying", "--routers",
             tm_routers(), "--experts", "8", "--top-k", "2", "--out", os.path.join(a.workdir, "x.h5")])
    check(p.returncode == 2 and "record_routing: step 1 has 14 tokens per layer but step 0 had 16" in p.stderr,
          f"CLI fixed-tokens error: exit {p.returncode}")
    p = run([sys.executable, os.path.join(TOOLS, "record_routing.py"), "--model", "nope.py:f", "--out", "x.h5"])
    check(p.returncode == 2 and "--model: no file 'nope.py'" in p.stderr, "CLI missing-file error")


def tm_routers():
    import tiny_moe
    return tiny_moe.ROUTERS


# --- timeline_to_trace ----------------------------------------------------------
def convert(path, out):
    p = run([sys.executable, os.path.join(TOOLS, "timeline_to_trace.py"), path, out])
    must(p, "timeline_to_trace.py")
    with open(out) as f:
        return json.load(f)  # the acceptance: Python's json module loads it


def check_trace(trace, rows, names, label):
    """Trace Event structure, one slice per (policy, step, layer, rank, phase), no overlap per track."""
    check(isinstance(trace, dict) and isinstance(trace.get("traceEvents"), list), f"{label}: no traceEvents list")
    ev = trace["traceEvents"]
    phases = [n[2:] for n in rows.dtype.names if n.startswith("t_")]
    for e in ev:
        if not (isinstance(e.get("ph"), str) and isinstance(e.get("name"), str) and isinstance(e.get("pid"), int)
                and isinstance(e.get("tid"), int)):
            check(False, f"{label}: event without ph/name/pid/tid: {e}")
            break
    xs = [e for e in ev if e["ph"] == "X"]
    for e in xs:
        if not (isinstance(e.get("ts"), (int, float)) and isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0
                and e["ts"] >= 0):
            check(False, f"{label}: bad ts/dur {e}")
            break
    meta = [e for e in ev if e["ph"] == "M"]
    pname = {e["pid"]: e["args"]["name"] for e in meta if e["name"] == "process_name"}
    tname = {(e["pid"], e["tid"]): e["args"]["name"] for e in meta if e["name"] == "thread_name"}
    check(sorted(pname.values()) == sorted(set(names[int(p)] for p in rows["policy"])),
          f"{label}: process names {pname}")
    check(all(tname.get((e["pid"], e["tid"])) == f"rank {e['tid']}" for e in xs), f"{label}: thread names")
    # Exactly one slice per (policy, step, layer, rank, phase).
    got = [(pname[e["pid"]], e["args"]["step"], e["args"]["layer"], e["tid"], e["name"]) for e in xs]
    want = [(names[int(r["policy"])], int(r["step"]), int(r["layer"]), int(r["rank"]), ph) for r in rows
            for ph in phases]
    check(len(got) == len(set(got)), f"{label}: duplicate slices")
    check(sorted(got) == sorted(want), f"{label}: {len(got)} slices, want {len(want)} (one per row and phase)")
    check(all(e["args"]["rank"] == e["tid"] and e["args"]["policy"] == pname[e["pid"]] for e in xs),
          f"{label}: slice args disagree with pid/tid")
    # Durations are the timeline's.
    dur = {(names[int(r["policy"])], int(r["step"]), int(r["layer"]), int(r["rank"]), ph): float(r[f"t_{ph}"]) * 1e6
           for r in rows for ph in phases}
    check(all(abs(e["dur"] - dur[k]) <= 1e-6 * max(1.0, dur[k]) for e, k in zip(xs, got)), f"{label}: durations")
    # No overlap within a track.
    tracks = {}
    for e in xs:
        tracks.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["dur"], e["name"]))
    overlaps = 0
    for tr in tracks.values():
        tr.sort()
        overlaps += sum(1 for a_, b_ in zip(tr, tr[1:]) if a_[0] + a_[1] > b_[0])
    check(overlaps == 0, f"{label}: {overlaps} overlapping slices within a track")
    # Counters for slots and bytes, per policy and rank.
    cs = [e for e in ev if e["ph"] == "C"]
    cnames = {(e["pid"], e["name"]) for e in cs}
    for pid in pname:
        for r in sorted(set(int(x) for x in rows["rank"])):
            check((pid, f"slots rank {r}") in cnames and (pid, f"bytes rank {r}") in cnames,
                  f"{label}: counters of pid {pid} rank {r}")
    check(all(isinstance(e.get("ts"), (int, float)) and all(isinstance(v, (int, float)) for v in e["args"].values())
              for e in cs), f"{label}: counter events")
    check("time_axis" in trace.get("otherData", {}), f"{label}: otherData.time_axis")
    return xs, tracks


def case_trace_real(a):
    t5, out = os.path.join(a.workdir, "real.h5"), os.path.join(a.workdir, "real.json")
    must(run([a.mpiexec, "-n", "2", "--oversubscribe", a.bin, "compare", "--policies", "ep,capacity,llep",
              "--scenario", "80:1", "--steps", "2", "--layers", "2", "--tokens", "128", "--hidden", "32", "--ffn",
              "32", "--min-chunk", "16", "--quiet", "--timeline", t5]), "compare --timeline")
    with h5py.File(t5, "r") as f:
        rows = f["timeline"][...]
        names = {v: k for k, v in h5py.check_enum_dtype(f["timeline"].dtype["policy"]).items()}
    trace = convert(t5, out)
    xs, _ = check_trace(trace, rows, names, "real")
    check(len(xs) == 3 * 2 * 2 * 2 * len([n for n in rows.dtype.names if n.startswith("t_")]), "real: slice count")
    axis = trace["otherData"]["time_axis"]
    has_start = any(n.startswith("start_") for n in rows.dtype.names)
    check(axis.startswith("measured" if has_start else "synthesized"), f"real: time axis '{axis}'")
    print("real timeline time axis:", axis.split(":")[0])


def write_synthetic(path, with_start, noise):
    """A timeline like the runtime's: 2 policies x 2 steps x 2 layers x 2 ranks,
    forward phases and one backward phase; with_start adds start_<phase>."""
    policy_t = h5py.enum_dtype({"ep": 0, "llep": 1}, basetype="i1")
    phases = ["route", "plan", "dispatch", "weights", "compute", "combine", "bwd_dispatch"]
    fields = [("policy", policy_t), ("step", "<i4"), ("layer", "<i4"), ("rank", "<i4"), ("slots_native", "<i8"),
              ("slots_foreign", "<i8"), ("slots_dropped", "<i8"), ("bytes_tokens_sent", "<i8"),
              ("bytes_tokens_recv", "<i8"), ("bytes_weights_sent", "<i8"), ("bytes_weights_recv", "<i8")]
    fields += [(f"t_{p}", "<f8") for p in phases] + [("busy_s", "<f8")]
    if with_start:
        fields += [(f"start_{p}", "<f8") for p in phases]
    rows = []
    rng = np.random.default_rng(4)
    clock = {0: 0.5, 1: 0.5}  # per rank, seconds since the common epoch
    for s in range(2):
        for l in range(2):
            for p in range(2):
                for r in range(2):
                    durs = rng.uniform(1e-5, 3e-4, len(phases))
                    starts, t = [], clock[r]
                    for d in durs:
                        t += rng.uniform(0, 5e-5)  # waits between phases
                        starts.append(t)
                        t += d
                    clock[r] = t + 1e-4
                    if noise and s == 1 and l == 0:
                        starts[3] -= 0.5 * durs[2] + 1e-6  # weights starts before dispatch ends: clock noise
                    row = (p, s, l, r, 100 + r, 10 * p, 0, 1000, 2000, 0, 4096 * p) + tuple(durs) + (float(sum(durs)),)
                    rows.append(row + (tuple(starts) if with_start else ()))
    arr = np.array(rows, dtype=np.dtype(fields))
    with h5py.File(path, "w") as f:
        f.create_dataset("timeline", data=arr, maxshape=(None,), chunks=True)
        f.attrs["policies"] = ["ep", "llep"]
        f.attrs["format"] = "moe-ep timeline"
        f.attrs["complete"] = 1
    return arr


def case_trace_synthetic(a):
    names = {0: "ep", 1: "llep"}
    # With start_<phase> fields (and clock noise to clamp).
    path, out = os.path.join(a.workdir, "with_start.h5"), os.path.join(a.workdir, "with_start.json")
    rows = write_synthetic(path, True, noise=True)
    trace = convert(path, out)
    xs, tracks = check_trace(trace, rows, names, "with start_*")
    other = trace["otherData"]
    check(other["time_axis"].startswith("measured"), f"with start_*: time axis {other['time_axis']}")
    check("bwd_dispatch" in other["phases"] and any(e["name"] == "bwd_dispatch" for e in xs), "backward phase")
    check(other["clamped"] == 4, f"with start_*: {other['clamped']} clamped starts, expected 4 (2 policies x 2 ranks)")
    # Unclamped slices start at start_<phase> * 1e6 exactly.
    start = {(int(r["policy"]) + 1, int(r["step"]), int(r["layer"]), int(r["rank"]), ph): float(r[f"start_{ph}"]) * 1e6
             for r in rows for ph in other["phases"]}
    moved = [e for e in xs if e["ts"] != start[(e["pid"], e["args"]["step"], e["args"]["layer"], e["tid"], e["name"])]]
    check(len(moved) == 4 and all(e["name"] == "weights" and e["args"]["step"] == 1 for e in moved),
          f"with start_*: slices not at their start_<phase>: {[(e['name'], e['args']) for e in moved]}")
    # Without start_* fields: back to back from 0 per (policy, rank) track.
    path, out = os.path.join(a.workdir, "no_start.h5"), os.path.join(a.workdir, "no_start.json")
    rows = write_synthetic(path, False, noise=False)
    trace = convert(path, out)
    xs, tracks = check_trace(trace, rows, names, "without start_*")
    check(trace["otherData"]["time_axis"].startswith("synthesized"), "without start_*: time axis")
    for key, tr in tracks.items():
        check(tr[0][0] == 0 and all(abs(x[0] + x[1] - y[0]) < 1e-9 for x, y in zip(tr, tr[1:])),
              f"without start_*: track {key} is not back to back from 0")
    order = [(e["args"]["step"], e["args"]["layer"]) for e in xs if (e["pid"], e["tid"]) == (1, 0)]
    check(order == sorted(order), "without start_*: not in (step, layer) order")


# --- docs ---------------------------------------------------------------------------
def sh_blocks(path):
    """The ```sh blocks of a Markdown file, and the tags of all its fences."""
    text = open(path).read()
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)
    return [body for tag, body in blocks if tag == "sh"], [tag for tag, _ in blocks], text


def case_docs(a):
    need_torch()
    work = a.workdir
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir, exist_ok=True)
    for name, target in (("moe-ep", a.bin), ("python3", sys.executable),
                         ("test_unit", os.path.join(os.path.dirname(a.bin), "test_unit"))):
        link = os.path.join(bindir, name)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
    env = {"PATH": bindir + os.pathsep + os.path.dirname(a.mpiexec) + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": os.path.join(HERE, "hf_stub")}
    for doc in ("traces.md", "timeline-format.md"):
        cwd = os.path.join(work, doc[:-3])  # the commands run from here, with tools/ and tests/ linked in
        os.makedirs(cwd, exist_ok=True)
        for d in ("tools", "tests"):
            link = os.path.join(cwd, d)
            if not os.path.lexists(link):
                os.symlink(os.path.join(ROOT, d), link)
        blocks, tags, text = sh_blocks(os.path.join(ROOT, "docs", doc))
        check(all(t in ("sh", "text", "python", "cpp") for t in tags),
              f"docs/{doc}: a fenced block without a language tag (sh = run by this test, text, python, cpp): {tags}")
        check(blocks, f"docs/{doc}: no ```sh block")
        # Files the docs ask the reader to save (a ```python block after "<!-- save as NAME -->").
        for name, body in re.findall(r"<!-- save as (\S+) -->\n```python\n(.*?)^```", text, flags=re.S | re.M):
            with open(os.path.join(cwd, name), "w") as f:
                f.write(body)
        for body in blocks:
            for line in body.splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    must(run(line, env=env, cwd=cwd, shell=True, timeout=300), f"docs/{doc}: `{line}`")
    # What the documented commands made.
    for f in ("traces/t.h5", "traces/tiny-trace.h5", "traces/tiny-timeline.h5", "traces/mixtral-trace.h5",
              "traces/api-trace.h5", "timeline-format/t.h5", "timeline-format/t.json",
              "timeline-format/plots/rank_load.png"):
        check(os.path.isfile(os.path.join(work, f)), f"docs commands did not write {f}")
    with h5py.File(os.path.join(work, "traces", "mixtral-trace.h5"), "r") as f:
        check(f["expert_ids"].shape == (2, 32, 1024, 2), f"mixtral-trace.h5: shape {f['expert_ids'].shape}")
    with open(os.path.join(work, "timeline-format", "t.json")) as f:
        check(len(json.load(f)["traceEvents"]) > 0, "docs: t.json has no events")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpiexec", default="mpiexec")
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("what", choices=["record", "recorder", "trace-real", "trace-synthetic", "docs"])
    a = ap.parse_args()
    a.workdir = os.path.abspath(a.workdir)
    os.makedirs(a.workdir, exist_ok=True)
    {"record": case_record, "recorder": case_recorder, "trace-real": case_trace_real,
     "trace-synthetic": case_trace_synthetic, "docs": case_docs}[a.what](a)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
