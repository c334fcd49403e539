#!/usr/bin/env python3
"""moe-ep simulate from the outside (tests/simulate/CMakeLists.txt).

outputs:   simulate writes compare's JSON marked simulated and an HDF5 timeline
           that h5py reads and tools/plot_timeline.py plots.
agreement: calibrate on 2 ranks (small preset), compare on 2 ranks, simulate
           with that calibration: the simulated step wall time (wall_s)
           summed over ep, capacity and llep is within a factor of 3 of the
           measured sum, and llep's speedup over ep within a factor of 2 of
           the measured speedup (the
           machine is shared and noisy; docs/simulation.md has the real
           validation table).
more:      cheap cases in one go: a trace written by `moe-ep trace` on 2 ranks
           re-sampled to 8 simulated ranks; calibrate on 4 ranks (tiny grid)
           and simulate with it; tools/scale_study.py --quick;
           tools/validate_simulate.sh on a tiny shape (compare and emulate rows).
"""
import argparse
import json
import os
import subprocess
import sys

import h5py


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout}\n{p.stderr}")
    return p.stdout


def outputs(a):
    os.makedirs(a.work, exist_ok=True)
    js, h5 = os.path.join(a.work, "sim.json"), os.path.join(a.work, "sim.h5")
    for f in (js, h5):
        if os.path.exists(f):
            os.remove(f)
    P, steps, layers = 16, 3, 2
    out = run([a.moe_ep, "simulate", "--ranks", str(P), "--ranks-per-node", "4", "--preset", "small",
               "--scenario", "95:1", "--steps", str(steps), "--layers", str(layers), "--policies", "ep,llep,eplb",
               "--json", js, "--timeline", h5])
    assert "# simulated:" in out and "moe-ep simulate:" in out, out
    j = json.load(open(js))
    assert j["simulated"] is True and j["simulation"]["machine"] == "h100-node", j.get("simulation")
    assert j["simulation"]["ranks_per_node"] == 4 and j["config"]["ranks"] == P
    assert [p["name"] for p in j["policies"]] == ["ep", "llep", "eplb"]
    ep, llep = j["policies"][0], j["policies"][1]
    assert ep["wall_s"] > llep["wall_s"] > 0, (ep["wall_s"], llep["wall_s"])
    assert ep["slot_imbalance"] > 3
    assert llep["weight_bytes_inter_node"] > 0 and llep["token_bytes_inter_node"] > 0
    assert j["node_of_rank"] == [r // 4 for r in range(P)]
    with h5py.File(h5, "r") as f:
        assert int(f.attrs["complete"]) == 1 and int(f.attrs["simulated"]) == 1
        rows = f["timeline"].shape[0]
        assert rows == 3 * steps * layers * P, rows
        t = f["timeline"][:]
        assert (t["t_compute"] >= 0).all() and t["t_compute"].max() > 0
    plots = os.path.join(a.work, "plots")
    run([sys.executable, os.path.join(a.repo, "tools", "plot_timeline.py"), h5, plots])
    assert os.path.exists(os.path.join(plots, "imbalance.png"))
    print("simulate: JSON, timeline and plots ok")


def agreement_once(a):
    cal, meas, sim = (os.path.join(a.work, n) for n in ("cal.json", "compare.json", "sim.json"))
    mpi = [a.mpiexec, "-n", "2", "--oversubscribe"]
    run(mpi + [a.moe_ep, "calibrate", "--preset", "small", "--output", cal, "--budget", "15", "--quiet"])
    common = ["--preset", "small", "--scenario", "95:1", "--policies", "ep,capacity,llep", "--steps", "3",
              "--layers", "2"]
    run(mpi + [a.moe_ep, "compare", *common, "--quiet", "--json", meas])
    run([a.moe_ep, "simulate", "--machine", cal, "--ranks", "2", *common, "--json", sim])
    m, s = json.load(open(meas)), json.load(open(sim))
    assert s["simulation"]["compute"].startswith("calibrated"), s["simulation"]
    for pm, ps in zip(m["policies"], s["policies"]):
        print(f"{pm['name']}: measured {pm['wall_s']:.4f} s, simulated {ps['wall_s']:.4f} s, "
              f"ratio {ps['wall_s'] / pm['wall_s']:.2f}")
    # The bound is on the sum over the three policies, not on each: capacity's
    # wall time is ~25 ms of a ~0.5 s sum, and under a CI-like load its ratio
    # alone fell to 0.29-0.43 while the sum stayed within 2x (the load slows
    # the measured run more than it slowed the calibration). The sum is
    # dominated by ep and llep, whose times are mostly expert blocks: a real
    # regression (a phase lost or counted twice, wrong units, blocks from the
    # wrong table) moves it by far more than 3x either way.
    wm = sum(p["wall_s"] for p in m["policies"])
    ws = sum(p["wall_s"] for p in s["policies"])
    bad = []
    print(f"sum: measured {wm:.4f} s, simulated {ws:.4f} s, ratio {ws / wm:.2f} (bound 1/3 .. 3)")
    if not 1.0 / 3.0 <= ws / wm <= 3.0:
        bad.append(f"sum ratio {ws / wm:.2f}")
    # A speedup is measured within one run, so the load mostly cancels in it:
    # llep's over ep (expert-block imbalance against spilled weights) must
    # agree within 2x (measured, it varied from 2.0 to 3.3 between runs on a
    # loaded machine).
    sm = {p["name"]: p["wall_s"] for p in s["policies"]}
    mm = {p["name"]: p["wall_s"] for p in m["policies"]}
    sp_m, sp_s = mm["ep"] / mm["llep"], sm["ep"] / sm["llep"]
    print(f"llep speedup over ep: measured {sp_m:.2f}, simulated {sp_s:.2f} (bound: within 2x)")
    if not 0.5 <= sp_s / sp_m <= 2.0:
        bad.append(f"llep speedup {sp_s:.2f} vs measured {sp_m:.2f}")
    return bad


def agreement(a):
    os.makedirs(a.work, exist_ok=True)
    # A shared machine's load can change between the calibration and the
    # measurement: one more try (both again) before failing.
    bad = agreement_once(a)
    if bad:
        print(f"disagreement: {bad}; calibrating and measuring once more")
        bad = agreement_once(a)
    if bad:
        sys.exit(f"simulated wall time disagrees with the measured one: {bad}")


def more(a):
    os.makedirs(a.work, exist_ok=True)
    # A trace of 2 ranks x 256 tokens, tiled over 8 simulated ranks of 256 tokens each.
    trace, js = os.path.join(a.work, "t.h5"), os.path.join(a.work, "trace_sim.json")
    shape = ["--preset", "small", "--tokens", "256", "--steps", "2", "--layers", "1"]
    run([a.moe_ep, "trace", "--scenario", "95:1", "--ranks", "2", *shape, "--out", trace])
    run([a.moe_ep, "simulate", "--ranks", "8", "--ranks-per-node", "4", "--scenario", "trace:" + trace,
         "--policies", "ep,llep", *shape, "--json", js])
    j = json.load(open(js))
    ep, llep = j["policies"]
    K = 4
    assert sum(ep["rank_slots"]) == 8 * 256 * K * 2, ep["rank_slots"]  # every simulated token, 2 steps
    # 95:1 tiled over 8 ranks: the hot expert's rank computes ~0.95 of all slots (max/mean ~7.6).
    assert ep["slot_imbalance"] > 6 and llep["slot_imbalance"] <= ep["slot_imbalance"], (
        ep["slot_imbalance"], llep["slot_imbalance"])
    # Too few steps in the trace: exit 2 naming --scenario.
    p = subprocess.run([a.moe_ep, "simulate", "--ranks", "8", "--scenario", "trace:" + trace, "--preset", "small",
                        "--tokens", "256", "--steps", "3", "--layers", "1"], capture_output=True, text=True)
    assert p.returncode == 2 and "--scenario" in p.stderr, (p.returncode, p.stderr)
    print("trace re-sampled to 8 ranks: ok")
    # calibrate on 4 ranks (more ranks than cores), then simulate 4 ranks with it.
    cal, sim = os.path.join(a.work, "cal4.json"), os.path.join(a.work, "cal4_sim.json")
    run([a.mpiexec, "-n", "4", "--oversubscribe", a.moe_ep, "calibrate", "--preset", "small", "--max-rows", "64",
         "--min-time", "0.01", "--comm-mib", "1", "--budget", "2", "--quiet", "--output", cal])
    c = json.load(open(cal))
    assert c["calibration"]["ranks"] == 4 and c["calibration"]["shapes"][0]["rows"][-1] <= 64, c["calibration"]
    run([a.moe_ep, "simulate", "--machine", cal, "--ranks", "4", "--preset", "small", "--steps", "2", "--layers", "1",
         "--json", sim])
    s = json.load(open(sim))
    assert "4 rank(s)" in s["simulation"]["compute"], s["simulation"]
    assert all(p["wall_s"] > 0 for p in s["policies"])
    # 4 ranks share the cores they are given: at least one unit, at most one
    # each, from the blocks and fitted to the balanced layer-steps.
    assert 1.0 <= c["calibration"]["compute_units"] <= 4.0, c["calibration"]
    assert 1.0 <= c["calibration"]["compute_units_blocks"] <= 4.0, c["calibration"]
    stages = c["calibration"]["shapes"][0]
    assert stages["permute_s_per_slot"] > 0 and stages["route_s_per_token"] > 0, stages
    assert stages["combine_s_per_slot"] + stages.get("combine_s_per_kept_slot", 0) > 0, stages
    print("calibrate on 4 ranks: ok")
    run([sys.executable, os.path.join(a.repo, "tools", "scale_study.py"), "--moe-ep", a.moe_ep, "--quick"])
    print("scale_study --quick: ok")
    # The validation recipe of docs/simulation.md on a tiny shape: one row per
    # policy for compare on 2 ranks and for emulate at 2, each with a ratio.
    env = dict(os.environ, SHAPE="--hidden 16 --ffn 32 --experts 8 --top-k 2",
               RUN="--steps 1 --layers 1 --tokens 64", EMULATE="2", PYTHON=sys.executable,
               CALIBRATE="--budget 2 --max-rows 64 --min-time 0.01 --comm-mib 1")
    p = subprocess.run(["bash", os.path.join(a.repo, "tools", "validate_simulate.sh"), a.moe_ep,
                        os.path.join(a.work, "validate"), "2", "95:1", "1"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    rows = [[c.strip() for c in r.split("|")[1:-1]] for r in p.stdout.splitlines() if r.startswith("| 2 | 95:1 |")]
    assert sorted(r[2] for r in rows) == sorted(["ep", "capacity", "llep"] * 2), p.stdout
    # Each compare row's ratio is simulated / measured from the JSONs the tool
    # wrote. Not "ratio > 0": at this size the simulated step is ~50 us, and on
    # a loaded machine the measured one is whole scheduler time slices (16 ms
    # seen in CI), so the printed ratio rounds to 0.00. Agreement is the
    # `agreement` check's job, on a configuration sized for it.
    val = os.path.join(a.work, "validate")
    sim = {q["name"]: q["wall_s"] for q in json.load(open(os.path.join(val, "P2-95_1-s.json")))["policies"]}
    meas = {q["name"]: q["wall_s"] for q in json.load(open(os.path.join(val, "P2-95_1-m1.json")))["policies"]}
    for r in rows[:3]:
        assert sim[r[2]] > 0 and meas[r[2]] > 0, (sim, meas)
        assert abs(float(r[5]) - sim[r[2]] / meas[r[2]]) <= 0.005 + 1e-9, (r, sim, meas)
    # The emulate rows compare busy (CPU) times, which the load does not inflate.
    assert all(float(r[5]) > 0 for r in rows[3:]), p.stdout
    print("validate_simulate.sh (tiny): ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["outputs", "agreement", "more"])
    ap.add_argument("--moe-ep", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--mpiexec", default="mpiexec")
    a = ap.parse_args()
    {"outputs": outputs, "agreement": agreement, "more": more}[a.what](a)


if __name__ == "__main__":
    main()
