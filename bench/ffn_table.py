#!/usr/bin/env python3
"""Markdown table of bench_expert_ffn's BM_FfnVsSgemm / BM_TileSweep results.

  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 build/bin/bench_expert_ffn \\
      --benchmark_filter=BM_FfnVsSgemm --benchmark_out=ffn.json --benchmark_out_format=json
  python3 bench/ffn_table.py ffn.json
"""
import json
import re
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        data = json.load(f)
    print("| benchmark | rows | D | H | tile | iters | FFN GFLOP/s (cpu) | sgemm pair GFLOP/s (cpu) | ratio (cpu) "
          "| FFN GFLOP/s (wall) | sgemm pair GFLOP/s (wall) | ratio (wall) | workspace MiB |")
    print("|" + "---|" * 13)
    for b in data["benchmarks"]:
        m = re.match(r"(BM_\w+(?:/\w+)?)/rows:(\d+)/D:(\d+)/H:(\d+)/tile:(\d+)", b["name"])
        if not m or "cpu_ratio" not in b:
            continue
        print(f"| {m.group(1)} | {m.group(2)} | {m.group(3)} | {m.group(4)} | {int(b['tile'])} | {b['iterations']} "
              f"| {b['cpu_ffn_GFLOPs']:.1f} | {b['cpu_sgemm_GFLOPs']:.1f} | **{b['cpu_ratio']:.3f}** "
              f"| {b['ffn_GFLOPs']:.1f} | {b['sgemm_GFLOPs']:.1f} | {b['ratio']:.2f} | {b['ws_MiB']:.1f} |")
    ctx = data.get("context", {})
    print(f"\n(load average at start: {ctx.get('load_avg')}, {ctx.get('date')})")


if __name__ == "__main__":
    main()
