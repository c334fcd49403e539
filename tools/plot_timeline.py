#!/usr/bin/env python3
"""Plots an HDF5 timeline of `moe-ep compare --timeline` (docs/timeline-format.md).

usage: plot_timeline.py TIMELINE.h5 OUTDIR

Writes, and prints the paths of:
  OUTDIR/rank_load.png  per-rank token-slots computed (native + imported) and
                        busy time per policy, summed over all steps and layers
                        (grouped bars: one group per rank, one bar per policy)
  OUTDIR/imbalance.png  max/mean over ranks of the slots and of the busy time in
                        every (step, layer), one line per policy

Needs h5py, numpy and matplotlib (Debian: apt-get install python3-h5py
python3-matplotlib). Uses the Agg backend: no display needed.
"""
import json
import os
import sys


def die(msg, code=2):
    print(f"plot_timeline: {msg}", file=sys.stderr)
    sys.exit(code)


try:
    import numpy as np
    import h5py
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError as e:  # pragma: no cover - depends on the machine
    die(f"{e.name or e} is missing: install it with `apt-get install python3-h5py python3-matplotlib` "
        f"(or `pip install h5py matplotlib`)", 3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timeline_io import load_timeline  # noqa: E402


def load(path):
    """The /timeline rows, the policy names by enum value, the root attributes."""
    return load_timeline(path, die)



def imbalance(values):
    mean = values.mean()
    return float(values.max() / mean) if mean > 0 else 1.0


def title_of(attrs, nrows):
    try:
        cfg = json.loads(attrs.get("config", "{}"))
    except (TypeError, ValueError):
        cfg = {}
    t = (f"{cfg.get('ranks', '?')} ranks, {cfg.get('preset', '?')} "
         f"(N={cfg.get('experts', '?')} K={cfg.get('top_k', '?')}), "
         f"{cfg.get('tokens', '?')} tokens/rank, scenario {cfg.get('scenario', '?')}")
    if int(attrs.get("complete", 1)) != 1:
        t += f"\n(incomplete run: {nrows} rows)"
    return t


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) == 2 and argv[1] in ("-h", "--help") else 2
    path, outdir = argv[1], argv[2]
    rows, names, attrs = load(path)
    if rows.size == 0:
        die(f"'{path}' has no rows yet (the run stopped before its first step completed)")
    os.makedirs(outdir, exist_ok=True)

    policies = sorted(set(int(p) for p in rows["policy"]))
    ranks = np.arange(int(rows["rank"].max()) + 1)
    slots = rows["slots_native"] + rows["slots_foreign"]
    title = title_of(attrs, rows.size)

    # --- per-rank totals, grouped bars
    fig, (ax_s, ax_b) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(policies)
    for i, p in enumerate(policies):
        mine = rows["policy"] == p
        native = np.array([rows["slots_native"][mine & (rows["rank"] == r)].sum() for r in ranks])
        foreign = np.array([rows["slots_foreign"][mine & (rows["rank"] == r)].sum() for r in ranks])
        busy = np.array([rows["busy_s"][mine & (rows["rank"] == r)].sum() for r in ranks])
        x = ranks + (i - (len(policies) - 1) / 2) * width
        bars = ax_s.bar(x, native, width, label=names.get(p, str(p)))
        if foreign.any():
            ax_s.bar(x, foreign, width, bottom=native, color=bars.patches[0].get_facecolor(), alpha=0.45,
                     hatch="//", edgecolor="white")
        ax_b.bar(x, busy * 1e3, width, label=names.get(p, str(p)))
    for ax, what in ((ax_s, "token-slots computed"), (ax_b, "busy time (ms, thread CPU)")):
        ax.set_xticks(ranks)
        ax.set_xlabel("rank")
        ax.set_ylabel(what)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(title="policy")
    ax_s.set_title("slots per rank (hatched: imported experts)")
    ax_b.set_title("busy time per rank")
    fig.suptitle(title + "\nsummed over all steps and layers", fontsize=10)
    fig.tight_layout()
    rank_png = os.path.join(outdir, "rank_load.png")
    fig.savefig(rank_png, dpi=110)
    plt.close(fig)

    # --- imbalance per (step, layer), lines
    layers = int(rows["layer"].max()) + 1
    fig, (ax_s, ax_b) = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    labels = []
    for p in policies:
        mine = rows[rows["policy"] == p]
        keys = sorted(set(zip(mine["step"].tolist(), mine["layer"].tolist())))
        xs, imb_s, imb_b = [], [], []
        for s, l in keys:
            sel = mine[(mine["step"] == s) & (mine["layer"] == l)]
            xs.append(s * layers + l)
            imb_s.append(imbalance((sel["slots_native"] + sel["slots_foreign"]).astype(float)))
            imb_b.append(imbalance(sel["busy_s"].astype(float)))
        ax_s.plot(xs, imb_s, marker="o", label=names.get(p, str(p)))
        ax_b.plot(xs, imb_b, marker="o", label=names.get(p, str(p)))
        if len(keys) > len(labels):
            labels = [f"s{s}" if layers == 1 else f"s{s}.l{l}" for s, l in keys]
    ticks = list(range(len(labels)))
    step = max(1, len(ticks) // 16)
    for ax, what in ((ax_s, "slots: max/mean over ranks"), (ax_b, "busy time: max/mean over ranks")):
        top = max((max(line.get_ydata()) for line in ax.get_lines()), default=1.0)
        ax.set_ylim(0, 1.35 * max(top, 1.0))  # headroom for the legend
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xticks(ticks[::step])
        ax.set_xticklabels(labels[::step], rotation=45 if len(labels) > 8 else 0)
        ax.set_xlabel("step" if layers == 1 else "step.layer")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(title="policy", loc="upper right", ncol=len(policies))
    ax_s.set_title("slot imbalance (1 = balanced)")
    ax_b.set_title("busy-time imbalance")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    imb_png = os.path.join(outdir, "imbalance.png")
    fig.savefig(imb_png, dpi=110)
    plt.close(fig)

    print(rank_png)
    print(imb_png)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
