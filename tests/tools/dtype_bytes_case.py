#!/usr/bin/env python3
"""--dtype bf16 halves what is stored and sent: runs one `moe-ep compare`
config with --dtype fp32 and with --dtype bf16 and checks, per policy, that
the token bytes (dispatch + combine rows) and the LLEP weight bytes are
exactly half, that LLEP really moved weights, and that each rank's peak bytes
are within 5% of half (meant for a shape where weights and buffers dominate:
large --hidden/--ffn, few tokens; the bf16 FFN's fp32 tile and weight panel
are the rest).

usage: dtype_bytes_case.py --mpiexec MPIEXEC --ranks P --bin MOE_EP -- COMPARE_ARGS...
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from casekit import check, finish


def run(a, args, dtype, tmp):
    out = os.path.join(tmp, f"{dtype}.json")
    cmd = [a.mpiexec, "-n", str(a.ranks), "--oversubscribe", a.bin, "compare", "--quiet", "--dtype", dtype,
           "--json", out] + args
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    sys.stdout.write(p.stdout)
    if p.returncode != 0:
        sys.stdout.write(p.stderr)
        raise SystemExit(f"{dtype} run exited {p.returncode}")
    with open(out) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--ranks", type=int, required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("args", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    args = [x for x in a.args if x != "--"]
    with tempfile.TemporaryDirectory() as tmp:
        f32, b16 = run(a, args, "fp32", tmp), run(a, args, "bf16", tmp)
    check(f32["config"]["dtype"] == "fp32" and b16["config"]["dtype"] == "bf16", "config.dtype records the dtype")
    for p32, p16 in zip(f32["policies"], b16["policies"]):
        name = p32["name"]
        check(p32["status"] == "ok" and p16["status"] == "ok", f"{name}: both runs ok")
        check(p32["token_bytes"] > 0, f"{name}: tokens crossed ranks ({p32['token_bytes']} bytes)")
        check(2 * p16["token_bytes"] == p32["token_bytes"],
              f"{name}: bf16 token bytes {p16['token_bytes']} are half of fp32's {p32['token_bytes']}")
        check(2 * p16["weight_bytes"] == p32["weight_bytes"],
              f"{name}: bf16 weight bytes {p16['weight_bytes']} are half of fp32's {p32['weight_bytes']}")
        if name == "llep":
            check(p32["weight_bytes"] > 0, "llep spilled: weights moved")
        for r, (b32, b_16) in enumerate(zip(p32["rank_peak_bytes"], p16["rank_peak_bytes"])):
            ratio = b_16 / b32
            print(f"{name} rank {r}: peak {b32} -> {b_16} bytes, ratio {ratio:.4f}")
            check(abs(ratio - 0.5) <= 0.025, f"{name} rank {r}: peak ratio {ratio:.4f} within 5% of 0.5")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
