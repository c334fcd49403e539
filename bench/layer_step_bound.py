#!/usr/bin/env python3
"""Layer step against the GEMM bound (issue 16; docs/performance.md, "Layer step").

In one run:
  1. the plain sgemm rate on the step's shape: bench_expert_ffn --shape=R,D,H
     (BM_Shape/FfnVsSgemm: the sgemm pair x*W_gu, act*W_d, median of its
     iterations), once alone, and as RANKS copies at the same time (what the
     ranks' GEMMs see when they share the node) both before and after step 2
     (the bound takes the median of both: the machine's rate drifts);
  2. mpiexec -n RANKS moe-ep compare --policies ep,llep ... --json;
  3. per policy: the busiest rank's slots per layer-step, the step's FLOPs
     6*D*H*slots, the GEMM bound (FLOPs at the sgemm rate), and the measured
     step wall time (and busiest rank's busy CPU time) against it.
     bound/wall >= 0.9 is the acceptance (EP: its hot rank against its own
     bound, i.e. its slots; EP's step wall is its hot rank's).

Wall times use the sgemm rate from wall time, busy (thread CPU) times the rate
from the thread's CPU time, so that other jobs on a shared machine move both
sides alike.

Usage (from the repository root, after scripts/build):
  python3 bench/layer_step_bound.py [--steps 3] [--markdown] [--json OUT.json]
Every moe-ep flag can be changed (see --help); --drift defaults to 0 so that the
hot expert stays on one rank and the per-rank sums are per-step figures.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def sh_env():
    env = dict(os.environ)
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("OMPI_MCA_btl", "self,vader,tcp")
    if os.geteuid() == 0:
        env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
        env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    return env


def sgemm_rates(bench, rows, D, H, copies, env):
    """Runs `copies` bench_expert_ffn processes at once on one shape; returns
    their BM_Shape/FfnVsSgemm counters (one dict per copy)."""
    procs, outs = [], []
    for i in range(copies):
        out = tempfile.NamedTemporaryFile(prefix=f"sgemm{i}-", suffix=".json", delete=False)
        out.close()
        outs.append(out.name)
        cmd = [bench, f"--shape={rows},{D},{H}", "--benchmark_filter=^BM_Shape/",
               f"--benchmark_out={out.name}", "--benchmark_out_format=json", "--benchmark_format=json"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL))
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"layer_step_bound: {bench} failed (exit {p.returncode})")
    rows_out = []
    for name in outs:
        with open(name) as f:
            data = json.load(f)
        os.unlink(name)
        b = [x for x in data["benchmarks"] if x["name"].startswith("BM_Shape/FfnVsSgemm")]
        if not b:
            sys.exit("layer_step_bound: no BM_Shape/FfnVsSgemm result (bench_expert_ffn too old? rebuild)")
        rows_out.append(b[0])
    return rows_out


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", default=os.environ.get("MOE_BUILD_DIR", "build"))
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--experts", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=2048)
    ap.add_argument("--ffn", type=int, default=2048)
    ap.add_argument("--top-k", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per rank")
    ap.add_argument("--scenario", default="95:1")
    ap.add_argument("--drift", default="0")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--policies", default="ep,llep")
    ap.add_argument("--sgemm-rows", type=int, default=8192,
                    help="rows of the sgemm pair that gives the rate (default 8192)")
    ap.add_argument("--extra", default="", help="more moe-ep compare flags, split on spaces")
    ap.add_argument("--json", help="write the figures as JSON here")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    a = ap.parse_args()

    env = sh_env()
    bench = os.path.join(a.build_dir, "bin", "bench_expert_ffn")
    moe = os.path.join(a.build_dir, "bin", "moe-ep")
    for f in (bench, moe):
        if not os.access(f, os.X_OK):
            sys.exit(f"layer_step_bound: {f} missing: build first (scripts/build)")
    D, H = a.hidden, a.ffn

    print(f"# sgemm pair, {a.sgemm_rows} x D={D} x H={H}: 1 process, then {a.ranks} at once ...", file=sys.stderr)
    alone = sgemm_rates(bench, a.sgemm_rows, D, H, 1, env)
    shared_before = sgemm_rates(bench, a.sgemm_rows, D, H, a.ranks, env) if a.ranks > 1 else alone

    with tempfile.NamedTemporaryFile(prefix="compare-", suffix=".json", delete=False) as t:
        out = t.name
    cmd = ["mpiexec", "-n", str(a.ranks), moe, "compare", "--policies", a.policies,
           "--experts", str(a.experts), "--hidden", str(D), "--ffn", str(H), "--top-k", str(a.top_k),
           "--tokens", str(a.tokens), "--scenario", a.scenario, "--drift", a.drift,
           "--steps", str(a.steps), "--warmup", str(a.warmup), "--quiet", "--json", out] + a.extra.split()
    print("# " + " ".join(cmd), file=sys.stderr)
    r = subprocess.run(cmd, env=env, stdout=sys.stderr)  # its table: stderr, ours: stdout
    if r.returncode != 0:
        sys.exit(f"layer_step_bound: moe-ep exited with {r.returncode}")
    with open(out) as f:
        res = json.load(f)
    os.unlink(out)
    # The shared machine's rate drifts by several percent from minute to
    # minute: the bound uses the rate measured right before and right after
    # the layer run (both pooled, median), so it brackets the run.
    print(f"# sgemm pair, {a.ranks} at once, after the layer run ...", file=sys.stderr)
    shared_after = sgemm_rates(bench, a.sgemm_rows, D, H, a.ranks, env) if a.ranks > 1 else alone
    shared = shared_before + shared_after
    rate = {
        "alone_wall": alone[0]["sgemm_GFLOPs"], "alone_cpu": alone[0]["cpu_sgemm_GFLOPs"],
        "shared_wall": median([r["sgemm_GFLOPs"] for r in shared]),
        "shared_cpu": median([r["cpu_sgemm_GFLOPs"] for r in shared]),
        "shared_wall_before": median([r["sgemm_GFLOPs"] for r in shared_before]),
        "shared_wall_after": median([r["sgemm_GFLOPs"] for r in shared_after]),
        "ffn_shared_wall": median([r["ffn_GFLOPs"] for r in shared]),
        "ffn_shared_cpu": median([r["cpu_ffn_GFLOPs"] for r in shared]),
    }
    layer_steps = res["config"]["steps"] * res["config"]["layers"]

    rows = []
    for p in res["policies"]:
        if p["status"] != "ok":
            rows.append({"policy": p["name"], "status": p["status"]})
            continue
        hot = max(range(len(p["rank_slots"])), key=lambda i: p["rank_slots"][i])
        slots = p["rank_slots"][hot] / layer_steps
        gflop = 6.0 * D * H * slots * 1e-9
        wall = p["wall_s"] / layer_steps
        busy = p["rank_busy_s"][hot] / layer_steps
        bound_wall = gflop / rate["shared_wall"]
        bound_cpu = gflop / rate["shared_cpu"]
        rows.append({
            "policy": p["name"], "status": "ok", "hot_rank": hot, "hot_slots_per_step": slots,
            "step_gflop": gflop, "step_wall_s": wall, "hot_busy_s": busy,
            "bound_wall_s": bound_wall, "bound_cpu_s": bound_cpu,
            "wall_vs_bound": bound_wall / wall, "busy_vs_bound": bound_cpu / busy,
            "wall_vs_bound_alone_rate": (gflop / rate["alone_wall"]) / wall,
            "effective_wall_GFLOPs": gflop / wall, "effective_busy_GFLOPs": gflop / busy,
            "slot_imbalance": p["slot_imbalance"], "peak_MiB": max(p["rank_peak_bytes"]) / 2**20,
        })

    report = {"config": res["config"], "sgemm_rows": a.sgemm_rows, "sgemm_rate_GFLOPs": rate, "policies": rows,
              "command": " ".join(cmd)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)

    print(f"sgemm pair rate (GFLOP/s, {a.sgemm_rows}x{D}x{H}): alone {rate['alone_wall']:.1f} wall / "
          f"{rate['alone_cpu']:.1f} cpu; {a.ranks} at once {rate['shared_wall']:.1f} wall "
          f"(before the layer run {rate['shared_wall_before']:.1f}, after {rate['shared_wall_after']:.1f}) / "
          f"{rate['shared_cpu']:.1f} cpu (tiled FFN at once: {rate['ffn_shared_wall']:.1f} / "
          f"{rate['ffn_shared_cpu']:.1f})")
    hdr = ["policy", "hot rank slots/step", "GFLOP/step", "step wall s", "bound s (wall rate)", "bound/wall",
           "hot busy s", "bound s (cpu rate)", "bound/busy", "eff. GFLOP/s (wall)", "peak MiB"]
    lines = []
    for x in rows:
        if x["status"] != "ok":
            lines.append([x["policy"], x["status"]] + [""] * (len(hdr) - 2))
            continue
        lines.append([x["policy"], f"{x['hot_slots_per_step']:.0f}", f"{x['step_gflop']:.0f}",
                      f"{x['step_wall_s']:.2f}", f"{x['bound_wall_s']:.2f}", f"{x['wall_vs_bound']:.3f}",
                      f"{x['hot_busy_s']:.2f}", f"{x['bound_cpu_s']:.2f}", f"{x['busy_vs_bound']:.3f}",
                      f"{x['effective_wall_GFLOPs']:.1f}", f"{x['peak_MiB']:.0f}"])
    if a.markdown:
        print("| " + " | ".join(hdr) + " |")
        print("|" + "---|" * len(hdr))
        for l in lines:
            print("| " + " | ".join(l) + " |")
    else:
        w = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(hdr)]
        print("  ".join(h.rjust(w[i]) for i, h in enumerate(hdr)))
        for l in lines:
            print("  ".join(c.rjust(w[i]) for i, c in enumerate(l)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
