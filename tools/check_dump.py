#!/usr/bin/env python3
"""Recomputes one MoE layer from a `moe-ep compare --dump FILE.h5` file in
float64, independently of moe-ep, and compares it with what the runtime wrote
(layout: docs/dump.md).

For every policy that ran it recomputes the router logits x W_r, the gate
weights (softmax over the K logits of the dumped expert ids; a slot the
capacity policy dropped keeps its logit in the denominator), every slot's
expert FFN with the dumped weights and biases (SwiGLU: silu(g) u; gpt-oss:
(clamp(u, -limit, limit) + 1) min(g, limit) sigmoid(alpha min(g, limit))), and
the output Y_t = sum over kept slots of gate * FFN. Where the expert ids came
from the router (root attribute routing = "router") it also checks that they
are the top-K of the recomputed logits (near-ties aside). Where a policy holds
gradients (written with --backward), it builds L = <Y, G> with the dumped
output gradient G and compares every dumped gradient with PyTorch autograd's.

Errors are max|got - ref| / max|ref| (the absolute max|got - ref| where ref is
all zero; NaN or inf when got holds one, which always fails).

usage: check_dump.py FILE.h5 [--bound 1e-5] [--grad-bound 1e-5]
                     [--backend auto|torch|numpy] [--policy NAME ...]

Exit status: 0 every check passed; 1 some check failed; 2 the file is not a
readable dump of this layout (or a usage error); 3 the file holds gradients
and PyTorch is not installed (the forward is still checked with NumPy).
Needs h5py and NumPy; PyTorch (float64 autograd) for the gradients. Without
PyTorch (or with --backend numpy) the forward is checked with NumPy alone.
"""
import argparse
import math
import sys

FORMAT = "moe-ep layer dump"
FORMAT_VERSION = 1
GRADIENTS = [  # (dataset under grads/, what it is the gradient of)
    ("dx", "tokens"),
    ("router_weights", "router_weights"),
    ("w_gu", "w_gu"),
    ("w_d", "w_d"),
    ("b_gu", "b_gu"),
    ("b_d", "b_d"),
]


class BadDump(Exception):
    """The file is not a dump of the documented layout."""


def rel_err(got, ref):
    """max|got - ref| / max|ref| over float64 NumPy arrays (absolute when ref is all zero)."""
    import numpy as np
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if got.size == 0:
        return 0.0
    if np.isnan(got).any():
        return math.nan
    if np.isinf(got).any():
        return math.inf
    diff = float(np.max(np.abs(got - ref)))
    scale = float(np.max(np.abs(ref)))
    return diff / scale if scale > 0 else diff


def read_dump(path):
    """The file's attributes, inputs and policies as NumPy arrays; raises BadDump."""
    import h5py
    import numpy as np
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise BadDump(f"cannot open '{path}' as HDF5: {e}")
    with f:
        a = dict(f.attrs)
        if a.get("format") != FORMAT:
            raise BadDump(f"'{path}' is not a moe-ep layer dump (root attribute format is {a.get('format')!r})")
        if int(a.get("format_version", -1)) != FORMAT_VERSION:
            raise BadDump(f"'{path}' has format_version {a.get('format_version')}; this checker reads "
                          f"{FORMAT_VERSION}")
        try:
            T, D, H = int(a["tokens"]), int(a["hidden"]), int(a["ffn"])
            N, K = int(a["experts"]), int(a["top_k"])
            act = str(a["activation"])
            limit, alpha = float(a["swiglu_limit"]), float(a["swiglu_alpha"])
            routing = str(a["routing"])
        except KeyError as e:
            raise BadDump(f"'{path}' lacks the root attribute {e}")
        if act not in ("swiglu", "gpt-oss"):
            raise BadDump(f"unknown activation {act!r}")
        want = {
            "inputs/tokens": (T, D), "inputs/router_weights": (D, N),
            "inputs/experts/w_gu": (N, D, 2 * H), "inputs/experts/w_d": (N, H, D),
            "inputs/experts/b_gu": (N, 2 * H), "inputs/experts/b_d": (N, D),
        }

        def get(name, shape):
            if name not in f:
                raise BadDump(f"'{path}' has no dataset /{name}")
            d = f[name]
            if tuple(d.shape) != tuple(shape):
                raise BadDump(f"/{name} has shape {tuple(d.shape)}, expected {tuple(shape)}")
            return np.asarray(d[...])

        inputs = {name.split("/")[-1]: get(name, shape).astype(np.float64) for name, shape in want.items()}
        policies = []
        if "policies" not in f:
            raise BadDump(f"'{path}' has no group /policies")
        for name in [str(p) for p in a.get("policies", list(f["policies"].keys()))]:
            if name not in f["policies"]:
                raise BadDump(f"policy {name!r} is listed in the attribute policies but has no group")
            g = f["policies"][name]
            p = {"name": name, "status": str(g.attrs.get("status", "?"))}
            if p["status"] == "ok":
                base = f"policies/{name}/"
                p["expert_ids"] = get(base + "expert_ids", (T, K)).astype(np.int64)
                p["gates"] = get(base + "gates", (T, K)).astype(np.float64)
                p["kept"] = get(base + "kept", (T, K)).astype(np.float64)
                p["output"] = get(base + "output", (T, D)).astype(np.float64)
                grads = {}
                if base + "output_grad" in f:
                    grads["output_grad"] = get(base + "output_grad", (T, D)).astype(np.float64)
                shapes = {"dx": (T, D), "router_weights": (D, N), "w_gu": (N, D, 2 * H), "w_d": (N, H, D),
                          "b_gu": (N, 2 * H), "b_d": (N, D)}
                for gname, _ in GRADIENTS:
                    if base + "grads/" + gname in f:
                        grads[gname] = get(base + "grads/" + gname, shapes[gname]).astype(np.float64)
                if len(grads) > 0 and "output_grad" not in grads:
                    raise BadDump(f"policy {name!r} has gradients but no output_grad (G)")
                p["grads"] = grads
            policies.append(p)
    meta = dict(T=T, D=D, H=H, N=N, K=K, act=act, limit=limit, alpha=alpha, routing=routing,
                attrs=a)
    return meta, inputs, policies


# ---- the layer, in NumPy (forward only) and in PyTorch (with autograd) ----------

def forward_numpy(m, inp, ids, kept):
    import numpy as np
    T, D, H, K = m["T"], m["D"], m["H"], m["K"]
    x = inp["tokens"]
    logits = x @ inp["router_weights"]
    chosen = np.take_along_axis(logits, ids, axis=1) if T > 0 else np.zeros((0, K))
    e = np.exp(chosen - chosen.max(axis=1, keepdims=True)) if T > 0 else chosen
    gates = e / e.sum(axis=1, keepdims=True) if T > 0 else chosen
    z = np.zeros((T, K, D))
    for ex in np.unique(ids):
        tt, kk = np.nonzero(ids == ex)
        h = x[tt] @ inp["w_gu"][ex] + inp["b_gu"][ex]
        g, u = h[:, :H], h[:, H:]
        if m["act"] == "swiglu":
            a = g / (1.0 + np.exp(-g)) * u
        else:
            g = np.minimum(g, m["limit"])
            u = np.clip(u, -m["limit"], m["limit"])
            a = (u + 1.0) * g / (1.0 + np.exp(-m["alpha"] * g))
        z[tt, kk] = a @ inp["w_d"][ex] + inp["b_d"][ex]
    y = ((gates * kept)[:, :, None] * z).sum(axis=1)
    return logits, gates, y


def forward_torch(torch, m, t, ids, kept):
    """t: dict of float64 tensors (tokens, router_weights, w_gu, w_d, b_gu, b_d), maybe requiring grad."""
    T, D, H, K = m["T"], m["D"], m["H"], m["K"]
    x = t["tokens"]
    logits = x @ t["router_weights"]
    gates = torch.softmax(logits.gather(1, ids), dim=1)
    z = torch.zeros((T, K, D), dtype=torch.float64)
    for ex in torch.unique(ids).tolist():
        tt, kk = torch.nonzero(ids == ex, as_tuple=True)
        h = x[tt] @ t["w_gu"][ex] + t["b_gu"][ex]
        g, u = h[:, :H], h[:, H:]
        if m["act"] == "swiglu":
            a = g * torch.sigmoid(g) * u
        else:
            g = torch.clamp(g, max=m["limit"])
            u = torch.clamp(u, min=-m["limit"], max=m["limit"])
            a = (u + 1.0) * g * torch.sigmoid(m["alpha"] * g)
        z = z.index_put((tt, kk), a @ t["w_d"][ex] + t["b_d"][ex])
    y = ((gates * kept).unsqueeze(-1) * z).sum(dim=1)
    return logits, gates, y


def topk_violations(logits, ids, K, tol):
    """Tokens whose dumped ids are not a top-K set of the logits by more than tol (ties aside)."""
    import numpy as np
    bad = 0
    for t in range(logits.shape[0]):
        chosen = set(ids[t].tolist())
        if len(chosen) != K:
            bad += 1
            continue
        lo = min(logits[t, list(chosen)])
        others = [logits[t, n] for n in range(logits.shape[1]) if n not in chosen]
        if others and max(others) > lo + tol:
            bad += 1
    return bad


def check_policy(p, m, inp, backend, bound, grad_bound, rows):
    """Appends (policy, quantity, error, bound, ok) rows for one policy."""
    import numpy as np
    name, K = p["name"], m["K"]
    ids, kept = p["expert_ids"], p["kept"]
    if ids.size and (ids.min() < 0 or ids.max() >= m["N"]):
        rows.append((name, "expert_ids in [0, N)", math.inf, 0.0, False))
        return
    if backend == "torch":
        import torch
        want_grad = len(p["grads"]) > 0
        t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=want_grad) for k, v in inp.items()}
        logits, gates, y = forward_torch(torch, m, t, torch.tensor(ids), torch.tensor(kept, dtype=torch.float64))
        logits_np, gates_np, y_np = (v.detach().numpy() for v in (logits, gates, y))
    else:
        logits_np, gates_np, y_np = forward_numpy(m, inp, ids, kept)
    if m["routing"] == "router":
        tol = bound * max(1.0, float(np.max(np.abs(logits_np))) if logits_np.size else 1.0)
        bad = topk_violations(logits_np, ids, K, tol)
        rows.append((name, "expert_ids = top-K(logits)", float(bad), 0.0, bad == 0))
    e = rel_err(p["gates"], gates_np)
    rows.append((name, "gates", e, bound, e <= bound))
    e = rel_err(p["output"], y_np)
    rows.append((name, f"output ({int((kept == 0).sum())} dropped)", e, bound, e <= bound))
    if backend == "torch" and p["grads"]:
        G = torch.tensor(p["grads"]["output_grad"], dtype=torch.float64)
        (y * G).sum().backward()
        for gname, of in GRADIENTS:
            if gname not in p["grads"]:
                continue
            e = rel_err(p["grads"][gname], t[of].grad.numpy())
            rows.append((name, "grad " + gname, e, grad_bound, e <= grad_bound))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("file", help="the HDF5 file of `moe-ep compare --dump`")
    ap.add_argument("--bound", type=float, default=1e-5,
                    help="largest relative error accepted for the gates and the output (default 1e-5)")
    ap.add_argument("--grad-bound", type=float, default=1e-5,
                    help="largest relative error accepted for each gradient (default 1e-5)")
    ap.add_argument("--backend", choices=["auto", "torch", "numpy"], default="auto",
                    help="auto: PyTorch when installed, else NumPy (forward only)")
    ap.add_argument("--policy", action="append", default=None, help="check only this policy (repeatable)")
    args = ap.parse_args(argv)
    try:
        import h5py  # noqa: F401
        import numpy  # noqa: F401
    except ImportError as e:
        print(f"check_dump: needs h5py and NumPy ({e}); Debian: apt-get install python3-h5py", file=sys.stderr)
        return 2
    backend = args.backend
    if backend in ("auto", "torch"):
        try:
            import torch  # noqa: F401
            backend = "torch"
        except ImportError:
            if args.backend == "torch":
                print("check_dump: --backend torch: PyTorch is not installed (Debian: apt-get install "
                      "python3-torch)", file=sys.stderr)
                return 3
            backend = "numpy"
    try:
        m, inp, policies = read_dump(args.file)
    except BadDump as e:
        print(f"check_dump: {e}", file=sys.stderr)
        return 2
    if args.policy:
        unknown = [n for n in args.policy if n not in [p["name"] for p in policies]]
        if unknown:
            print(f"check_dump: --policy {unknown[0]}: not in the file (it holds "
                  f"{', '.join(p['name'] for p in policies)})", file=sys.stderr)
            return 2
        policies = [p for p in policies if p["name"] in args.policy]

    a = m["attrs"]
    print(f"{args.file}: moe-ep {a.get('tool_version', '?')}, step {a.get('step')} layer {a.get('layer')}, "
          f"T={m['T']} D={m['D']} H={m['H']} N={m['N']} K={m['K']} {m['act']}, P={a.get('num_ranks')}, "
          f"scenario {a.get('scenario')} (ids from {m['routing']}); float64 {backend}")
    rows, notes = [], []
    grads_unchecked = False
    for p in policies:
        if p["status"] != "ok":
            notes.append(f"{p['name']}: status {p['status']} (did not run at this step): nothing to check")
            continue
        if p["grads"] and backend != "torch":
            grads_unchecked = True
            notes.append(f"{p['name']}: gradients present but NOT checked (needs PyTorch)")
        check_policy(p, m, inp, backend, args.bound, args.grad_bound, rows)

    width = max([len("policy")] + [len(r[0]) for r in rows])
    qwidth = max([len("check")] + [len(r[1]) for r in rows])
    print(f"{'policy':<{width}}  {'check':<{qwidth}}  {'error':>10}  {'bound':>8}  verdict")
    for name, what, err, bnd, ok in rows:
        err_s = f"{int(err)}" if what.startswith("expert_ids") and math.isfinite(err) else f"{err:.3e}"
        bnd_s = "0" if what.startswith("expert_ids") else f"{bnd:.0e}"
        print(f"{name:<{width}}  {what:<{qwidth}}  {err_s:>10}  {bnd_s:>8}  {'ok' if ok else 'FAIL'}")
    for n in notes:
        print("note:", n)
    failed = [r for r in rows if not r[4]]
    if failed:
        print(f"check_dump: {len(failed)} check(s) FAILED")
        return 1
    if grads_unchecked:
        print("check_dump: the forward matches; the gradients were not checked (PyTorch is not installed)")
        return 3
    print(f"check_dump: all {len(rows)} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
