#!/usr/bin/env python3
"""Tests of `moe-ep compare --dump` and tools/check_dump.py (docs/dump.md).

usage: dump_case.py --mpiexec MPIEXEC --bin MOE_EP --workdir DIR CASE

CASE:
  layer   two 2-rank runs with --dump: SwiGLU with a hot scenario and the
          capacity policy dropping slots (ep, capacity, llep), and gpt-oss
          with the router's own top-K and uneven tokens per rank (ep,
          capacity). The files hold the documented layout; the checker
          passes on both (PyTorch float64, or NumPy where PyTorch is missing).
          Then each of these corruptions of a copy must make it FAIL: one
          expert weight, one token, one router weight, one keep flag of a
          dropped slot, one expert id, one output value. With PyTorch: the
          gradients of L = <Y, G> computed here with NumPy from the formulas
          of docs/backward.md (dropped slots included) are added to the
          capacity policy and the checker's autograd agrees; one perturbed
          gradient fails, and gradients without G are an invalid file.
  backward  --dump with --backward: every policy's G and gradients are written
          (totals on the native ranks, in expert order; no bias gradients for
          SwiGLU), and agree with the checker's PyTorch autograd and with the
          NumPy gradients of docs/backward.md's formulas computed here (so the
          case checks them even without PyTorch): SwiGLU on 2 ranks with
          capacity dropping slots, and gpt-oss on 4 ranks at 95:1 with the
          clamp binding (--swiglu-limit 0.3; the case counts the clamped
          pre-activations of kept slots) and llep returning spilled experts'
          gradients.
  files   output safety (docs/reliability.md): --dump equal to --json is
          refused before the run (exit 2, the earlier dump byte for byte
          unchanged); a dump that h5py holds open is not replaced (exit 1, one
          line naming --dump); on a full disk (root only: a small tmpfs) one
          line naming --dump and the path, exit 1, the earlier dump
          unchanged; a successful run replaces the file; no *.tmp is left.
"""
import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from casekit import check, failures, finish  # noqa: E402
import check_dump  # noqa: E402

SMALL = ["--experts", "8", "--hidden", "16", "--ffn", "24", "--top-k", "2", "--warmup", "0", "--quiet"]


def run(cmd, timeout=120):
    print("+", " ".join(cmd), flush=True)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        failures.append(f"timed out after {timeout}s (a hang?): {' '.join(cmd)}")
        raise SystemExit(finish())
    print(f"  exit {p.returncode} in {time.time() - t0:.1f}s")
    if p.stderr.strip():
        print("  stderr:", p.stderr.strip().replace("\n", "\n          "))
    return p


def mpi(a, n, args, **kw):
    return run([a.mpiexec, "-n", str(n), "--oversubscribe", a.bin] + args, **kw)


def moe_lines(p):
    return [l for l in p.stderr.splitlines() if l.startswith("moe-ep:")]


def checker(path, *extra):
    """check_dump's exit status, run in this process (one PyTorch import for the whole case)."""
    print(f"+ check_dump.py {path} {' '.join(extra)}", flush=True)
    rc = check_dump.main([path] + list(extra))
    print(f"  check_dump exit {rc}", flush=True)
    return rc


def have_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def corrupt(src, dst, fn):
    shutil.copyfile(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


def no_tmp(a, what):
    left = glob.glob(os.path.join(a.workdir, "**", ".*.tmp"), recursive=True)
    check(not left, f"{what}: temporary files left behind: {left}")


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ---- the gradients of L = <Y, G>, by the formulas of docs/backward.md -----------

def numpy_backward(f, policy, G):
    a = f.attrs
    H, K = int(a["ffn"]), int(a["top_k"])
    gpt = str(a["activation"]) == "gpt-oss"
    limit, alpha = float(a["swiglu_limit"]), float(a["swiglu_alpha"])
    x = f["inputs/tokens"][...].astype(np.float64)
    Wr = f["inputs/router_weights"][...].astype(np.float64)
    Wgu = f["inputs/experts/w_gu"][...].astype(np.float64)
    Wd = f["inputs/experts/w_d"][...].astype(np.float64)
    bgu = f["inputs/experts/b_gu"][...].astype(np.float64)
    bd = f["inputs/experts/b_d"][...].astype(np.float64)
    ids = f[f"policies/{policy}/expert_ids"][...]
    kept = f[f"policies/{policy}/kept"][...].astype(np.float64)
    T = x.shape[0]
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    d = {"dx": np.zeros_like(x), "router_weights": np.zeros_like(Wr), "w_gu": np.zeros_like(Wgu),
         "w_d": np.zeros_like(Wd), "b_gu": np.zeros_like(bgu), "b_d": np.zeros_like(bd)}
    for t in range(T):
        logits = x[t] @ Wr
        ch = logits[ids[t]]
        p = np.exp(ch - ch.max())
        p /= p.sum()
        dp = np.zeros(K)
        for k in range(K):
            e = ids[t, k]
            h = x[t] @ Wgu[e] + bgu[e]
            g, u = h[:H], h[H:]
            if gpt:
                gc, uc = np.minimum(g, limit), np.clip(u, -limit, limit)
                s = sig(alpha * gc)
                act = (uc + 1) * gc * s
            else:
                act = g * sig(g) * u
            z = act @ Wd[e] + bd[e]
            if not kept[t, k]:
                continue
            dp[k] = z @ G[t]
            dz = p[k] * G[t]
            d["w_d"][e] += np.outer(act, dz)
            d["b_d"][e] += dz
            da = Wd[e] @ dz
            if gpt:
                dg = da * (uc + 1) * (s + alpha * gc * s * (1 - s)) * (g <= limit)
                du = da * gc * s * (np.abs(u) <= limit)
            else:
                sg = sig(g)
                dg = da * u * sg * (1 + g * (1 - sg))
                du = da * g * sg
            dh = np.concatenate([dg, du])
            d["w_gu"][e] += np.outer(x[t], dh)
            d["b_gu"][e] += dh
            d["dx"][t] += Wgu[e] @ dh
        dl = np.zeros(Wr.shape[1])
        for k in range(K):
            dl[ids[t, k]] += p[k] * (dp[k] - p @ dp)
        d["router_weights"] += np.outer(x[t], dl)
        d["dx"][t] += Wr @ dl
    return d


def write_gradients(path, policy, G, grads, skip=()):
    with h5py.File(path, "r+") as f:
        g = f[f"policies/{policy}"]
        g.create_dataset("output_grad", data=G.astype(np.float32))
        gr = g.create_group("grads")
        for k, v in grads.items():
            if k not in skip:
                gr.create_dataset(k, data=v.astype(np.float32))
        g.attrs["has_gradients"] = np.int64(1)


# ---- cases ------------------------------------------------------------------------

def case_layer(a):
    torch = have_torch()
    if not torch:
        print("PyTorch is not installed: the forward is checked with NumPy, the gradients are not "
              "(scripts/setup installs python3-torch)")
    swi, gpt = os.path.join(a.workdir, "swiglu.h5"), os.path.join(a.workdir, "gptoss.h5")
    p = mpi(a, 2, ["compare", "--policies", "ep,capacity,llep", "--tokens", "48", "--scenario", "60:2",
                   "--capacity-factor", "1.0", "--dump", swi] + SMALL)
    check(p.returncode == 0, "the SwiGLU --dump run failed")
    p = mpi(a, 2, ["compare", "--policies", "ep,capacity", "--tokens-per-rank", "40,24", "--scenario", "router",
                   "--activation", "gpt-oss", "--capacity-factor", "0.8", "--seed", "7", "--dump", gpt] + SMALL)
    check(p.returncode == 0, "the gpt-oss --dump run failed")
    if failures:
        return

    with h5py.File(swi, "r") as f:
        at = f.attrs
        check(at["format"] == "moe-ep layer dump" and int(at["format_version"]) == 1, "format attributes")
        check((int(at["tokens"]), int(at["hidden"]), int(at["ffn"]), int(at["experts"]), int(at["top_k"]))
              == (96, 16, 24, 8, 2), "shape attributes")
        check(list(at["tokens_per_rank"]) == [48, 48] and int(at["num_ranks"]) == 2, "tokens per rank")
        check(at["activation"] == "swiglu" and int(at["has_biases"]) == 0, "activation attributes")
        check(at["routing"] == "scenario" and int(at["step"]) == 0 and int(at["layer"]) == 0, "routing/step/layer")
        check(list(at["policies"]) == ["ep", "capacity", "llep"], "policies attribute")
        check(f["inputs/tokens"].dtype == np.float32 and f["inputs/tokens"].shape == (96, 16), "tokens dataset")
        check(f["inputs/experts/w_gu"].shape == (8, 16, 48) and f["inputs/experts/w_d"].shape == (8, 24, 16),
              "expert weight shapes")
        check(not f["inputs/experts/b_gu"][...].any() and not f["inputs/experts/b_d"][...].any(),
              "SwiGLU biases are not zero")
        check(f["policies/ep/expert_ids"].dtype == np.int32 and f["policies/ep/kept"].dtype == np.uint8,
              "expert_ids/kept types")
        check(f["policies/ep/kept"][...].all() and f["policies/llep/kept"][...].all(), "ep/llep dropped slots")
        dropped = int((f["policies/capacity/kept"][...] == 0).sum())
        check(dropped > 0 and int(f["policies/capacity"].attrs["dropped_slots"]) == dropped,
              f"the capacity case dropped {dropped} slots (it needs some)")
        check(np.array_equal(f["policies/ep/expert_ids"][...], f["policies/capacity/expert_ids"][...]),
              "policies saw different expert ids")
        check("grads" not in f["policies/ep"] and "output_grad" not in f["policies/ep"],
              "gradient datasets written without --backward")
    with h5py.File(gpt, "r") as f:
        check(f.attrs["activation"] == "gpt-oss" and int(f.attrs["has_biases"]) == 1, "gpt-oss attributes")
        check(list(f.attrs["tokens_per_rank"]) == [40, 24] and f.attrs["routing"] == "router", "gpt-oss routing")
        check(f["inputs/experts/b_gu"][...].any(), "gpt-oss biases are zero")
        check(int((f["policies/capacity/kept"][...] == 0).sum()) > 0, "the gpt-oss capacity case dropped nothing")

    check(checker(swi) == 0, "the checker rejects the SwiGLU dump")
    check(checker(gpt) == 0, "the checker rejects the gpt-oss dump")
    check(checker(swi, "--backend", "numpy") == 0, "the NumPy checker rejects the SwiGLU dump")

    # Every corruption must fail (exit 1).
    with h5py.File(swi, "r") as f:
        ids = f["policies/ep/expert_ids"][...]
        kept = f["policies/capacity/kept"][...]
    e0 = int(ids[0, 0])
    t_drop, k_drop = [int(v) for v in np.argwhere(kept == 0)[0]]

    def bump(name, index, by):
        def fn(f):
            v = f[name][...]
            v[index] += by
            f[name][...] = v
        return fn

    def set_kept(f):
        v = f["policies/capacity/kept"][...]
        v[t_drop, k_drop] = 1
        f["policies/capacity/kept"][...] = v

    def swap_id(f):
        v = f["policies/ep/expert_ids"][...]
        v[0, 0] = (v[0, 0] + 1) % 8 if (v[0, 0] + 1) % 8 != v[0, 1] else (v[0, 0] + 2) % 8
        f["policies/ep/expert_ids"][...] = v

    bad = os.path.join(a.workdir, "bad.h5")
    cases = [
        ("one expert weight (w_d)", swi, bump("inputs/experts/w_d", (e0, 0, 0), 0.5)),
        ("one expert weight (w_gu)", swi, bump("inputs/experts/w_gu", (e0, 1, 2), 0.5)),
        ("one token", swi, bump("inputs/tokens", (0, 3), 0.25)),
        ("one router weight", swi, bump("inputs/router_weights", (2, e0), 0.5)),
        ("one keep flag of a dropped slot", swi, set_kept),
        ("one expert id", swi, swap_id),
        ("one output value", swi, bump("policies/llep/output", (5, 5), 1e-3)),
        ("one gpt-oss bias", gpt, bump("inputs/experts/b_d", (int(h5py.File(gpt, "r")["policies/ep/expert_ids"][0, 0]),
                                                             0), 0.5)),
    ]
    for what, src, fn in cases:
        rc = checker(corrupt(src, bad, fn))
        check(rc == 1, f"the checker accepted a dump with {what} changed (exit {rc}, expected 1)")

    # A file that is not a dump: exit 2.
    with h5py.File(bad, "w") as f:
        f.attrs["format"] = "something else"
    check(checker(bad) == 2, "a file that is not a dump did not exit 2")

    if not torch:
        return
    # Gradients: NumPy's, by hand, against the checker's autograd.
    with h5py.File(gpt, "r") as f:
        T, D = f["inputs/tokens"].shape
        G = np.random.default_rng(3).standard_normal((T, D)).astype(np.float32).astype(np.float64)
        grads = numpy_backward(f, "capacity", G)
    withg = os.path.join(a.workdir, "grads.h5")
    shutil.copyfile(gpt, withg)
    write_gradients(withg, "capacity", G, grads)
    check(checker(withg) == 0, "the checker's autograd disagrees with the NumPy gradients of docs/backward.md")
    for name, idx in (("router_weights", (1, 1)), ("dx", (2, 3)), ("w_gu", None), ("b_d", None)):
        def fn(f, name=name, idx=idx):
            v = f[f"policies/capacity/grads/{name}"][...]
            if idx is None:  # the largest entry, so that it is a gradient that exists
                idx = np.unravel_index(np.argmax(np.abs(v)), v.shape)
            v[idx] += 0.01 * np.max(np.abs(v))
            f[f"policies/capacity/grads/{name}"][...] = v
        rc = checker(corrupt(withg, bad, fn))
        check(rc == 1, f"the checker accepted a perturbed gradient {name} (exit {rc})")
    shutil.copyfile(gpt, bad)
    write_gradients(bad, "capacity", G, grads)
    with h5py.File(bad, "r+") as f:
        del f["policies/capacity/output_grad"]
    check(checker(bad) == 2, "gradients without output_grad did not exit 2")
    # Absent gradient datasets (e.g. SwiGLU bias gradients) are simply not checked.
    shutil.copyfile(gpt, bad)
    write_gradients(bad, "capacity", G, grads, skip=("b_gu", "b_d"))
    check(checker(bad) == 0, "absent bias gradients were not skipped")


def clamped(f, policy):
    """(gate, up) pre-activations of kept slots beyond the gpt-oss clamp limit."""
    H, limit = int(f.attrs["ffn"]), float(f.attrs["swiglu_limit"])
    x = f["inputs/tokens"][...].astype(np.float64)
    Wgu = f["inputs/experts/w_gu"][...].astype(np.float64)
    bgu = f["inputs/experts/b_gu"][...].astype(np.float64)
    ids, kept = f[f"policies/{policy}/expert_ids"][...], f[f"policies/{policy}/kept"][...]
    gate = up = 0
    for t, k in np.argwhere(kept != 0):
        h = x[t] @ Wgu[ids[t, k]] + bgu[ids[t, k]]
        gate += int((h[:H] > limit).sum())
        up += int((np.abs(h[H:]) > limit).sum())
    return gate, up


def dumped_gradients_agree(path, policies, what):
    """Each policy's dumped gradients against numpy_backward's (relative to the tensor's largest entry)."""
    with h5py.File(path, "r") as f:
        biases = int(f.attrs["has_biases"]) == 1
        for pol in policies:
            g = f[f"policies/{pol}"]
            check(int(g.attrs["has_gradients"]) == 1 and "output_grad" in g, f"{what}: {pol} has no gradients")
            if failures:
                return
            ref = numpy_backward(f, pol, g["output_grad"][...].astype(np.float64))
            for name, want in ref.items():
                if name in ("b_gu", "b_d") and not biases:
                    check(name not in g["grads"], f"{what}: {pol} wrote SwiGLU bias gradients {name}")
                    continue
                got = g[f"grads/{name}"][...].astype(np.float64)
                err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
                print(f"  {what} {pol} grads/{name}: max rel err {err:.2e} against NumPy")
                check(got.shape == want.shape and err <= 1e-5,
                      f"{what}: {pol} grads/{name} differs from NumPy's backward by {err:.2e}")


def case_backward(a):
    swi, gpt = os.path.join(a.workdir, "swiglu.h5"), os.path.join(a.workdir, "gptoss.h5")
    js = os.path.join(a.workdir, "gptoss.json")
    p = mpi(a, 2, ["compare", "--policies", "ep,capacity,llep", "--backward", "--tokens", "48", "--scenario", "60:2",
                   "--capacity-factor", "1.0", "--dump", swi] + SMALL)
    check(p.returncode == 0, "the SwiGLU --backward --dump run failed")
    p = mpi(a, 4, ["compare", "--policies", "ep,capacity,llep", "--backward", "--tokens", "64", "--scenario", "95:1",
                   "--activation", "gpt-oss", "--swiglu-limit", "0.3", "--capacity-factor", "1.0",
                   "--min-chunk", "4", "--dump", gpt, "--json", js] + SMALL)
    check(p.returncode == 0, "the gpt-oss --backward --dump run failed")
    if failures:
        return
    with open(js) as f:
        llep = next(q for q in json.load(f)["policies"] if q["name"] == "llep")
    check(llep["grad_weight_bytes"] > 0, "llep returned no spilled expert's gradient in the gpt-oss case")
    with h5py.File(swi, "r") as f:
        check(int((f["policies/capacity/kept"][...] == 0).sum()) > 0, "the SwiGLU capacity case dropped nothing")
    with h5py.File(gpt, "r") as f:
        check(abs(float(f.attrs["swiglu_limit"]) - 0.3) < 1e-6, "swiglu_limit attribute is not 0.3")
        gate, up = clamped(f, "ep")
        print(f"  gpt-oss: {gate} gate and {up} up pre-activations of kept slots are clamped")
        check(gate > 0 and up > 0, f"the clamp does not bind (gate {gate}, up {up})")
    dumped_gradients_agree(swi, ["ep", "capacity", "llep"], "SwiGLU")
    dumped_gradients_agree(gpt, ["ep", "capacity", "llep"], "gpt-oss")
    if not have_torch():
        print("PyTorch is not installed: the gradients were checked against NumPy only")
        return
    check(checker(swi) == 0, "the checker's autograd rejects the SwiGLU gradients")
    check(checker(gpt) == 0, "the checker's autograd rejects the gpt-oss gradients")


def case_files(a):
    dump, js = os.path.join(a.workdir, "d.h5"), os.path.join(a.workdir, "r.json")
    base = ["compare", "--policies", "ep", "--tokens", "16"] + SMALL
    p = mpi(a, 2, base + ["--dump", dump])
    check(p.returncode == 0 and os.path.exists(dump), "the first --dump run failed")
    before = sha(dump)

    p = mpi(a, 2, base + ["--dump", dump, "--json", dump])
    lines = moe_lines(p)
    check(p.returncode == 2 and len(lines) == 1 and "--dump" in lines[0] and "--json" in lines[0],
          "--dump equal to --json was not refused with exit 2 and one line naming both")
    check(sha(dump) == before, "a refused run changed the earlier dump")

    with h5py.File(dump, "r") as f:
        p = mpi(a, 2, base + ["--dump", dump, "--seed", "5"])
        lines = moe_lines(p)
        check(p.returncode == 1 and len(lines) == 1 and "--dump" in lines[0] and "locked" in lines[0],
              "a dump h5py holds open was replaced, or the refusal is not one line naming --dump")
        check(int(f.attrs["seed"]) == 1, "the reader's view changed")
    check(sha(dump) == before, "the dump h5py held changed")

    p = mpi(a, 2, base + ["--dump", dump, "--seed", "5", "--json", js])
    with h5py.File(dump, "r") as f:
        check(p.returncode == 0 and int(f.attrs["seed"]) == 5, "a second run did not replace the dump")
    no_tmp(a, "files")

    if os.geteuid() != 0:
        print(f"SKIP (part): the full-disk check needs root to mount a small tmpfs (uid {os.geteuid()})")
        return
    mnt = os.path.join(a.workdir, "full")
    os.makedirs(mnt)
    m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt], capture_output=True, text=True)
    if m.returncode != 0:
        print(f"SKIP (part): cannot mount a tmpfs here ({m.stderr.strip()})")
        return
    try:
        old = os.path.join(mnt, "d.h5")
        shutil.copyfile(dump, old)
        before = sha(old)
        st = os.statvfs(mnt)
        with open(os.path.join(mnt, "filler"), "wb") as f:  # leave 64 KiB: less than the dump needs
            f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 64 * 1024))
        p = mpi(a, 2, ["compare", "--policies", "ep,llep", "--tokens", "256"] + SMALL + ["--dump", old])
        lines = moe_lines(p)
        check(p.returncode == 1, f"a dump to a full disk exited {p.returncode}, expected 1")
        check(len(lines) == 1 and "--dump" in lines[0] and old in lines[0] and "No space left" in lines[0],
              "the line does not name --dump, the path and the full disk")
        check(sha(old) == before, "the earlier dump changed on a full disk")
        left = glob.glob(os.path.join(mnt, ".*.tmp"))
        check(not left, f"temporary files left on the full disk: {left}")
    finally:
        subprocess.run(["umount", mnt])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mpiexec", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("case", choices=["layer", "backward", "files"])
    a = ap.parse_args()
    if os.path.ismount(os.path.join(a.workdir, "full")):
        subprocess.run(["umount", os.path.join(a.workdir, "full")])
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    {"layer": case_layer, "backward": case_backward, "files": case_files}[a.case](a)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
