#!/usr/bin/env python3
"""Scale study of issue 14 (docs/simulation.md, "Scale study").

Runs `moe-ep simulate` on a machine description for every (preset, scenario,
P) and prints a markdown table: per policy the step wall-time speedup over EP,
max/mean rank load (token-slots) and inter-node bytes (tokens + weights, MiB);
with --plot it draws speedup and inter-node bytes against P.

  tools/scale_study.py --moe-ep build/bin/moe-ep --plot docs/images/scale_study.png

--quick (used by a ctest) runs one small configuration and checks the output.
Needs matplotlib only for --plot (Debian: python3-matplotlib).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

POLICIES = ["ep", "capacity", "llep", "llep-topo", "eplb"]


def simulate(moe_ep, machine, preset, scenario, P, rpn, steps, work):
    out = os.path.join(work, f"{preset}_{scenario.replace(':', '')}_{P}.json")
    cmd = [moe_ep, "simulate", "--machine", machine, "--ranks", str(P), "--ranks-per-node", str(rpn),
           "--preset", preset, "--scenario", scenario, "--policies", ",".join(POLICIES),
           "--steps", str(steps), "--json", out]
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode == 2 and "must be divisible" in done.stderr:
        return None  # P does not divide the preset's experts (gpt-oss-120b: 128)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: exit {done.returncode}: {done.stderr}")
    j = json.load(open(out))
    pol = {p["name"]: p for p in j["policies"]}
    ep_wall = pol["ep"]["wall_s"]
    rows = {}
    for name in POLICIES:
        p = pol[name]
        rows[name] = {
            "speedup": ep_wall / p["wall_s"] if p["wall_s"] > 0 else float("nan"),
            "max_mean": p["slot_imbalance"],
            "inter_MiB": (p["token_bytes_inter_node"] + p["weight_bytes_inter_node"]) / 2**20,
            "dropped_percent": p["dropped_percent"],
        }
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--moe-ep", default="build/bin/moe-ep")
    ap.add_argument("--machine", default="h100-node")
    ap.add_argument("--ranks-per-node", type=int, default=8)
    ap.add_argument("--presets", default="gpt-oss-120b,deepseek-v3")
    ap.add_argument("--scenarios", default="95:1,zipf:1.2")
    ap.add_argument("--ranks", default="8,16,32,64,128,256")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--plot", help="write the plot here (PNG)")
    ap.add_argument("--quick", action="store_true", help="one small configuration, checked (for ctest)")
    a = ap.parse_args()
    if a.quick:
        a.presets, a.scenarios, a.ranks, a.steps = "deepseek-v3", "95:1", "16", 2
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for preset in a.presets.split(","):
            for scenario in a.scenarios.split(","):
                for P in [int(x) for x in a.ranks.split(",")]:
                    r = simulate(a.moe_ep, a.machine, preset, scenario, P, a.ranks_per_node, a.steps, work)
                    if r is not None:
                        results[(preset, scenario, P)] = r
    print("| preset | scenario | P | " + " | ".join(f"{n} speedup" for n in POLICIES[1:]) +
          " | capacity dropped % | max/mean ep / llep / llep-topo / eplb | inter-node MiB ep / llep / llep-topo / eplb |")
    print("|---" * (3 + len(POLICIES) - 1 + 3) + "|")
    for (preset, scenario, P), r in results.items():
        sp = " | ".join(f"{r[n]['speedup']:.2f}" for n in POLICIES[1:])
        mm = " / ".join(f"{r[n]['max_mean']:.2f}" for n in ["ep", "llep", "llep-topo", "eplb"])
        ib = " / ".join(f"{r[n]['inter_MiB']:,.0f}" for n in ["ep", "llep", "llep-topo", "eplb"])
        dr = f"{r['capacity']['dropped_percent']:.1f}"
        print(f"| {preset} | {scenario} | {P} | {sp} | {dr} | {mm} | {ib} |")
    if a.quick:
        (r,) = results.values()
        assert r["llep"]["speedup"] > 1.0, r
        assert r["llep-topo"]["inter_MiB"] < r["llep"]["inter_MiB"], r
        assert abs(r["llep-topo"]["max_mean"] - r["llep"]["max_mean"]) <= 0.1 * r["llep"]["max_mean"], r
    if a.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        presets, scenarios = a.presets.split(","), a.scenarios.split(",")
        fig, axes = plt.subplots(2, len(presets) * len(scenarios), figsize=(4.2 * len(presets) * len(scenarios), 7),
                                 squeeze=False)
        for c, (preset, scenario) in enumerate([(p, s) for p in presets for s in scenarios]):
            Ps = sorted(P for (pp, ss, P) in results if pp == preset and ss == scenario)
            for i, n in enumerate(POLICIES):
                if n != "capacity":  # capacity drops most slots under skew: its speedup is not comparable (table)
                    axes[0][c].plot(Ps, [results[(preset, scenario, P)][n]["speedup"] for P in Ps], marker="o",
                                    label=n, color=f"C{i}")
                multi = [P for P in Ps if P > a.ranks_per_node]  # one node moves no inter-node bytes
                axes[1][c].plot(multi, [results[(preset, scenario, P)][n]["inter_MiB"] for P in multi], marker="o",
                                label=n, color=f"C{i}")
            axes[0][c].set_title(f"{preset}, {scenario}")
            axes[0][c].set_ylabel("step wall-time speedup over EP (no capacity)")
            axes[1][c].set_ylabel("inter-node MiB (tokens + weights)")
            axes[1][c].set_yscale("log")
            for ax in (axes[0][c], axes[1][c]):
                ax.set_xscale("log", base=2)
                ax.set_xlabel("ranks P (8 per node)")
                ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=8)
        axes[1][0].legend(fontsize=8)
        fig.suptitle(f"moe-ep simulate on {a.machine}, {a.steps} steps")
        fig.tight_layout()
        os.makedirs(os.path.dirname(os.path.abspath(a.plot)), exist_ok=True)
        fig.savefig(a.plot, dpi=90)
        print(f"wrote {a.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
