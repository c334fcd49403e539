#!/usr/bin/env python3
"""Records the routing of a PyTorch Mixture-of-Experts model as a moe-ep routing
trace (docs/traces.md), for `moe-ep compare --scenario trace:FILE.h5`.

Forward hooks on the model's router modules collect the top-K expert ids (and
gate weights) of every token, per layer, per forward; one forward of the model
is one step. The trace is /expert_ids [steps, layers, tokens, K] (int32),
/gates (float32, same shape) and the root attributes num_experts, top_k,
source, routers, ...

Python:

    from record_routing import RoutingRecorder
    with RoutingRecorder(model, num_experts=N, top_k=K, routers="mixtral") as rec:
        for batch in batches:
            model(batch)                 # each forward of `model` is one step
    rec.save("trace.h5", source="Mixtral-8x7B on 4 x 512 tokens of ...")

Command line (the model comes from a Python file of yours):

    record_routing.py --model FILE.py:FUNC --routers PRESET|REGEX --out TRACE.h5
                      [--experts N] [--top-k K] [--scoring softmax|sigmoid] ...

FUNC() returns (model, batches) or a dict with keys model, batches and
optionally num_experts, top_k, source; each batch is passed as model(batch)
(model(**batch) for a dict). N and K default to model.config's
(num_local_experts / num_experts / n_routed_experts, num_experts_per_tok).

Router outputs understood:
  * a tensor [..., N] of logits: scored with softmax (default) or sigmoid, the
    top K taken (optionally with a per-expert selection bias and group-limited
    selection, as DeepSeek-V3), gates renormalised over the K;
  * a tuple/list holding an integer tensor [..., K] of expert ids (gpt-oss's
    (scores, indices), DeepSeek's (indices, weights), ...): the ids are taken
    as they are; gates from a float tensor [..., K] next to them, or gathered
    from a float tensor [..., N].

Every step must have the same number of tokens at every router (a fixed batch
size x sequence length); anything else stops with a RoutingError that says so.
Needs torch, numpy and h5py (Debian: python3-torch python3-h5py).
"""
import argparse
import datetime
import importlib.util
import json
import os
import re
import sys

TOOL = "record_routing.py"
TOOL_VERSION = "1"

# Module-name patterns (re.search on the names of model.named_modules()) of
# the router of each MoE layer, with the scoring the model uses.
PRESETS = {
    # Hugging Face MixtralForCausalLM: model.layers.<i>.block_sparse_moe.gate, nn.Linear(D, N) -> logits
    # (newer transformers name the block `mlp`).
    "mixtral": {"pattern": r"(^|\.)layers\.\d+\.(block_sparse_moe|mlp)\.gate$", "scoring": "softmax"},
    # Qwen3MoeForCausalLM: model.layers.<i>.mlp.gate, nn.Linear(D, N) -> logits (dense layers have no gate).
    "qwen3-moe": {"pattern": r"(^|\.)layers\.\d+\.mlp\.gate$", "scoring": "softmax"},
    # GptOssForCausalLM: model.layers.<i>.mlp.router -> (router_scores, router_indices).
    "gpt-oss": {"pattern": r"(^|\.)layers\.\d+\.mlp\.router$", "scoring": "softmax"},
    # DeepseekV3ForCausalLM: model.layers.<i>.mlp.gate (the first_k_dense_replace dense layers have none);
    # sigmoid scores, e_score_correction_bias for selection, n_group / topk_group group-limited top-K.
    "deepseek-v3": {"pattern": r"(^|\.)layers\.\d+\.mlp\.gate$", "scoring": "sigmoid"},
}


class RoutingError(Exception):
    """A problem with the model's routing or the recording (one-line message)."""


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise RoutingError("PyTorch is missing: apt-get install python3-torch (or pip install torch)") from e
    return torch


def find_routers(model, routers):
    """(names, modules) of the routers: `routers` is a preset name, a regular
    expression searched in the qualified module names, or a list of module
    names or modules. Order: the order of model.named_modules()."""
    named = list(model.named_modules())
    if isinstance(routers, str):
        pattern = PRESETS[routers]["pattern"] if routers in PRESETS else routers
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise RoutingError(f"router pattern '{pattern}' is not a regular expression: {e}") from None
        found = [(n, m) for n, m in named if n and rx.search(n)]
        if not found:
            sample = ", ".join(n for n, _ in named[1:8])
            raise RoutingError(f"no module name matches the router pattern '{pattern}' (module names look like: "
                               f"{sample}, ...)")
    else:
        by_name = dict(named)
        by_id = {id(m): n for n, m in named}
        found = []
        for r in routers:
            if isinstance(r, str):
                if r not in by_name:
                    raise RoutingError(f"the model has no module named '{r}'")
                found.append((r, by_name[r]))
            elif id(r) in by_id:
                found.append((by_id[id(r)], r))
            else:
                raise RoutingError(f"router {type(r).__name__} is not a submodule of the model")
        if not found:
            raise RoutingError("no router modules given")
    return [n for n, _ in found], [m for _, m in found]


def _config_value(model, *keys):
    cfg = getattr(model, "config", None)
    for k in keys:
        v = getattr(cfg, k, None) if cfg is not None else None
        if isinstance(v, int) and v > 0:
            return v
    return None


class RoutingRecorder:
    """Forward hooks on the routers of `model`; one forward of `model` (the
    module given, not the routers) is one step. Use as a context manager or
    call attach() / detach(); then save(path)."""

    def __init__(self, model, num_experts=None, top_k=None, routers="mixtral", scoring=None, norm_topk=True,
                 selection_bias="e_score_correction_bias", n_group=1, topk_group=1):
        torch = _torch()
        self.torch = torch
        self.model = model
        self.num_experts = num_experts or _config_value(model, "num_local_experts", "num_experts",
                                                        "n_routed_experts")
        self.top_k = top_k or _config_value(model, "num_experts_per_tok", "top_k", "moe_top_k")
        if not self.num_experts or not self.top_k:
            raise RoutingError("the number of experts N and top-K are needed: pass num_experts= and top_k= "
                               "(--experts, --top-k); model.config has neither")
        if not 1 <= self.top_k <= self.num_experts:
            raise RoutingError(f"top_k {self.top_k} must be in 1..num_experts ({self.num_experts})")
        preset = PRESETS.get(routers) if isinstance(routers, str) else None
        self.scoring = scoring or (preset["scoring"] if preset else "softmax")
        if self.scoring not in ("softmax", "sigmoid"):
            raise RoutingError(f"scoring '{self.scoring}' is not softmax or sigmoid")
        self.norm_topk = norm_topk
        self.selection_bias = selection_bias
        self.n_group, self.topk_group = int(n_group), int(topk_group)
        if self.n_group < 1 or self.num_experts % self.n_group or not 1 <= self.topk_group <= self.n_group:
            raise RoutingError(f"n_group {self.n_group} must divide num_experts {self.num_experts} and topk_group "
                               f"{self.topk_group} be in 1..n_group")
        self.router_names, self.routers = find_routers(model, routers)
        self.routers_spec = routers if isinstance(routers, str) else None
        self.steps_ids, self.steps_gates = [], []  # per step: [layers, tokens, K]
        self.tokens = None
        self._current = {}
        self._handles = []

    # --- hooks ----------------------------------------------------------------
    def attach(self):
        if self._handles:
            return self
        for layer, module in enumerate(self.routers):
            self._handles.append(module.register_forward_hook(self._router_hook(layer)))
        self._handles.append(self.model.register_forward_hook(self._model_hook))
        return self

    def detach(self):
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self.attach()

    def __exit__(self, *exc):
        self.detach()
        return False

    def _router_hook(self, layer):
        def hook(module, inputs, output):
            name = self.router_names[layer]
            if layer in self._current:
                raise RoutingError(f"router '{name}' ran twice in one forward of the model: one forward of the "
                                   "hooked model must be one step (hook the model whose forward runs every "
                                   "MoE layer once)")
            self._current[layer] = self.route(output, name)
        return hook

    def _model_hook(self, module, inputs, output):
        self.end_step()

    # --- routing ----------------------------------------------------------------
    def route(self, output, name="router"):
        """(ids [tokens, K] int32, gates [tokens, K] float32) numpy arrays from
        one router output."""
        torch = self.torch
        N, K = self.num_experts, self.top_k
        with torch.no_grad():
            if isinstance(output, (tuple, list)):
                tensors = [t for t in output if isinstance(t, torch.Tensor)]
                ids = [t for t in tensors if not t.is_floating_point() and t.dim() >= 1 and t.shape[-1] == K]
                if len(ids) != 1:
                    shapes = ", ".join(f"{tuple(t.shape)} {t.dtype}" for t in tensors)
                    raise RoutingError(f"router '{name}' returned a tuple ({shapes}) without exactly one integer "
                                       f"tensor [..., K={K}] of expert ids")
                idx = ids[0].reshape(-1, K).long()
                floats = [t for t in tensors if t.is_floating_point() and t.dim() >= 1]
                same = [t for t in floats if t.shape == ids[0].shape]
                full = [t for t in floats if t.shape[-1] == N and t.numel() // N == idx.shape[0]]
                if same:
                    gates = same[0].reshape(-1, K).float()
                elif full:
                    gates = full[0].reshape(-1, N).float().gather(1, idx)
                else:
                    gates = torch.full(idx.shape, 1.0 / K)
            elif isinstance(output, torch.Tensor):
                if output.shape[-1] != N:
                    raise RoutingError(f"router '{name}' returned a tensor of shape {tuple(output.shape)}; expected "
                                       f"logits [..., N={N}] (is --experts right, or is this not the router?)")
                logits = output.reshape(-1, N).float()
                idx, gates = self._topk(logits, self._bias_of(name))
            else:
                raise RoutingError(f"router '{name}' returned {type(output).__name__}; expected a tensor of logits "
                                   "or a tuple holding the expert ids")
            if self.norm_topk:
                s = gates.sum(-1, keepdim=True)
                gates = torch.where(s > 0, gates / s.clamp_min(1e-30), gates)
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= N):
                raise RoutingError(f"router '{name}' chose expert {int(idx.max()) if int(idx.max()) >= N else int(idx.min())}"
                                   f", outside 0..{N - 1} (is --experts right?)")
            return idx.to(torch.int32).cpu().numpy(), gates.to(torch.float32).cpu().numpy()

    def _bias_of(self, name):
        if self.selection_bias is None or isinstance(self.selection_bias, str) and not self.selection_bias:
            return None
        module = self.routers[self.router_names.index(name)]
        b = getattr(module, self.selection_bias, None) if isinstance(self.selection_bias, str) else self.selection_bias
        return b if isinstance(b, self.torch.Tensor) and b.numel() == self.num_experts else None

    def _topk(self, logits, bias):
        """Top-K of the scores (softmax or sigmoid of the logits): the choice uses
        scores + bias restricted to the best topk_group of n_group groups (a
        group scored by the sum of its two best), the gates are the scores."""
        torch = self.torch
        K = self.top_k
        scores = logits.softmax(-1) if self.scoring == "softmax" else logits.sigmoid()
        choice = scores if bias is None else scores + bias.detach().float().reshape(1, -1).to(scores.device)
        if self.n_group > 1:
            T = choice.shape[0]
            grouped = choice.view(T, self.n_group, -1)
            best = grouped.topk(min(2, grouped.shape[-1]), dim=-1).values.sum(-1)
            keep = best.topk(self.topk_group, dim=-1).indices
            mask = torch.zeros_like(best, dtype=torch.bool).scatter_(1, keep, True)
            choice = choice.masked_fill(~mask.unsqueeze(-1).expand_as(grouped).reshape(T, -1), float("-inf"))
        idx = choice.topk(K, dim=-1).indices
        return idx, scores.gather(1, idx)

    # --- steps ------------------------------------------------------------------
    def end_step(self):
        """Closes the step of the forward that just ran (called by the hook on
        the model; call it yourself only when you run the layers without it)."""
        if not self._current:
            raise RoutingError("the model ran a forward in which no router fired: are the routers the model's "
                               f"({', '.join(self.router_names[:3])}, ...)?")
        missing = [self.router_names[l] for l in range(len(self.routers)) if l not in self._current]
        if missing:
            self._current = {}
            raise RoutingError(f"router(s) {', '.join(missing)} did not run in this forward: every matched router "
                               "must run once per forward (narrow the pattern to the MoE routers)")
        step = len(self.steps_ids)
        counts = {self.router_names[l]: self._current[l][0].shape[0] for l in range(len(self.routers))}
        if len(set(counts.values())) != 1:
            self._current = {}
            raise RoutingError(f"step {step}: the routers saw different token counts {counts}: every MoE layer of "
                               "a step must route the same tokens")
        tokens = next(iter(counts.values()))
        if self.tokens is None:
            self.tokens = tokens
        elif tokens != self.tokens:
            self._current = {}
            raise RoutingError(f"step {step} has {tokens} tokens per layer but step 0 had {self.tokens}: a trace needs "
                               "the same number of tokens in every step (a fixed batch size x sequence length; pad "
                               "or cut every batch to it)")
        import numpy as np
        L = len(self.routers)
        self.steps_ids.append(np.stack([self._current[l][0] for l in range(L)]))
        self.steps_gates.append(np.stack([self._current[l][1] for l in range(L)]))
        self._current = {}

    def arrays(self):
        """(expert_ids [steps, layers, tokens, K] int32, gates float32)."""
        import numpy as np
        if not self.steps_ids:
            raise RoutingError("no step was recorded (no forward of the model ran while the recorder was attached)")
        return np.stack(self.steps_ids), np.stack(self.steps_gates)

    def save(self, path, source="", gates=True):
        """Writes the trace (docs/traces.md) and returns the shape of /expert_ids."""
        ids, g = self.arrays()
        attrs = {"source": source or f"PyTorch model {type(self.model).__name__}",
                 "routers": json.dumps(self.router_names), "scoring": self.scoring}
        if self.routers_spec:
            attrs["router_pattern"] = PRESETS.get(self.routers_spec, {}).get("pattern", self.routers_spec)
        write_trace(path, ids, g if gates else None, self.num_experts, attrs)
        return ids.shape


def write_trace(path, expert_ids, gates, num_experts, attrs=None):
    """Writes /expert_ids (int32) and optional /gates (float32), [steps, layers,
    tokens, K], chunked by (step, layer) and up to 16384 tokens, shuffle + gzip,
    with the root attributes of docs/traces.md."""
    import h5py
    import numpy as np
    ids = np.asarray(expert_ids)
    if ids.ndim != 4:
        raise RoutingError(f"expert_ids must be [steps, layers, tokens, K], got shape {ids.shape}")
    S, L, T, K = ids.shape
    if T < 1:
        raise RoutingError("the trace has no tokens")
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= num_experts):
        raise RoutingError(f"expert ids must be in 0..{num_experts - 1}")
    chunk = (1, 1, min(T, 16384), K)
    with h5py.File(path, "w") as f:
        f.create_dataset("expert_ids", data=ids.astype(np.int32), chunks=chunk, compression="gzip", shuffle=True)
        if gates is not None:
            f.create_dataset("gates", data=np.asarray(gates, np.float32), chunks=chunk, compression="gzip",
                             shuffle=True)
        f.attrs["format"] = "moe-ep routing trace"
        f.attrs["format_version"] = 1
        f.attrs["num_experts"] = int(num_experts)
        f.attrs["top_k"] = int(K)
        f.attrs["tool"] = TOOL
        f.attrs["tool_version"] = TOOL_VERSION
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for k, v in (attrs or {}).items():
            f.attrs[k] = v


# --- command line ---------------------------------------------------------------
def load_factory(spec):
    """FILE.py:FUNC or module.name:FUNC -> the function."""
    path, sep, func = spec.rpartition(":")
    if not sep or not path or not func:
        raise RoutingError(f"--model '{spec}' is not FILE.py:FUNC")
    if path.endswith(".py") or os.sep in path:
        if not os.path.isfile(path):
            raise RoutingError(f"--model: no file '{path}'")
        name = "_routing_model_" + re.sub(r"\W", "_", os.path.basename(path)[:-3])
        mod_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(mod_spec)
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(path)
    if not callable(getattr(module, func, None)):
        raise RoutingError(f"--model: '{path}' has no function '{func}'")
    return getattr(module, func)


def record(model, batches, out, num_experts=None, top_k=None, routers="mixtral", source="", gates=True, **options):
    """Runs every batch through `model` (eval mode, no grad) with the recorder
    attached and writes the trace; returns (shape, recorder)."""
    torch = _torch()
    rec = RoutingRecorder(model, num_experts=num_experts, top_k=top_k, routers=routers, **options)
    model.eval()
    with torch.no_grad(), rec:
        for batch in batches:
            model(**batch) if isinstance(batch, dict) else model(batch)
    return rec.save(out, source=source, gates=gates), rec


def main(argv=None):
    ap = argparse.ArgumentParser(prog="record_routing.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, metavar="FILE.py:FUNC",
                    help="function returning (model, batches) or {model, batches[, num_experts, top_k, source]}")
    ap.add_argument("--routers", default=None, metavar="PRESET|REGEX",
                    help=f"router modules: a preset ({', '.join(PRESETS)}) or a regular expression searched in the "
                         "module names (default: the factory's 'routers', else mixtral)")
    ap.add_argument("--out", required=True, metavar="TRACE.h5")
    ap.add_argument("--experts", type=int, default=None, help="N (default: the factory's, else model.config's)")
    ap.add_argument("--top-k", type=int, default=None, help="K (default: the factory's, else model.config's)")
    ap.add_argument("--scoring", choices=["softmax", "sigmoid"], default=None,
                    help="scores of router logits (default: the preset's, else softmax)")
    ap.add_argument("--n-group", type=int, default=1, help="group-limited top-K: groups of experts (DeepSeek-V3: 8)")
    ap.add_argument("--topk-group", type=int, default=1, help="group-limited top-K: groups kept (DeepSeek-V3: 4)")
    ap.add_argument("--no-norm-topk", action="store_true", help="store the top-K scores without renormalising")
    ap.add_argument("--no-gates", action="store_true", help="do not write /gates")
    ap.add_argument("--source", default="", help="the source attribute (default: the factory's, or --model)")
    a = ap.parse_args(argv)
    try:
        made = load_factory(a.model)()
        if isinstance(made, dict):
            info = dict(made)
        else:
            model, batches = made
            info = {"model": model, "batches": batches}
        routers = a.routers or info.get("routers") or "mixtral"
        source = a.source or info.get("source") or f"{a.model} ({type(info['model']).__name__})"
        shape, rec = record(info["model"], info["batches"], a.out, num_experts=a.experts or info.get("num_experts"),
                            top_k=a.top_k or info.get("top_k"), routers=routers, source=source, scoring=a.scoring,
                            gates=not a.no_gates, norm_topk=not a.no_norm_topk, n_group=a.n_group,
                            topk_group=a.topk_group)
    except RoutingError as e:
        print(f"record_routing: {e}", file=sys.stderr)
        return 2
    S, L, T, K = shape
    print(f"record_routing: {a.out}: {S} steps x {L} layers x {T} tokens x K={K}, N={rec.num_experts} "
          f"(routers {rec.router_names[0]} .. {rec.router_names[-1]})")
    print(f"record_routing: replay with: mpiexec -n P moe-ep compare --scenario trace:{a.out} --experts "
          f"{rec.num_experts} --top-k {K} --steps {S} --layers {L} --tokens {T}/P")
    return 0


if __name__ == "__main__":
    sys.exit(main())
