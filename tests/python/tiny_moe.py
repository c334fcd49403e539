"""A tiny Mixture-of-Experts language model in PyTorch, trained for a few dozen
steps on a toy task so that its routing is learned: the model the routing
recorder's test (and the example of docs/traces.md) records.

`trained()` is a factory for `tools/record_routing.py --model FILE.py:FUNC`:
it returns the trained model, the batches to record (STEPS forwards of BATCH x
SEQ tokens) and N, K, the router pattern and a source description.

Model: embedding -> LAYERS x (x + MoE(norm(x))) -> linear head. Each MoE layer
has a router `layers.<i>.moe.gate` = nn.Linear(D, N) returning logits
[tokens, N] (as Mixtral's), softmax, top-K, gates renormalised over the K, and
N two-layer MLP experts. Toy task: predict (7 * token + 3) mod VOCAB of every
token, tokens drawn from a skewed distribution.
"""
import torch
from torch import nn

VOCAB, D, FFN = 32, 32, 64
EXPERTS, TOP_K, LAYERS = 8, 2, 3
BATCH, SEQ, STEPS = 8, 16, 4  # recorded: STEPS forwards of BATCH x SEQ = 128 tokens
TRAIN_STEPS = 40
ROUTERS = r"layers\.\d+\.moe\.gate$"


class MoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(D, EXPERTS, bias=False)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(D, FFN), nn.GELU(), nn.Linear(FFN, D))
                                     for _ in range(EXPERTS))
        self.last_ids = None  # the expert ids of the last forward [tokens, K]: the model's own routing

    def forward(self, x):
        shape = x.shape
        x = x.reshape(-1, D)
        logits = self.gate(x)                              # [tokens, N]
        gates, ids = logits.softmax(-1).topk(TOP_K, dim=-1)
        gates = gates / gates.sum(-1, keepdim=True)
        self.last_ids = ids.detach().clone()
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            tok, slot = (ids == e).nonzero(as_tuple=True)
            if tok.numel():
                out.index_add_(0, tok, gates[tok, slot].unsqueeze(-1) * expert(x[tok]))
        return out.reshape(shape)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(D)
        self.moe = MoE()

    def forward(self, x):
        return x + self.moe(self.norm(x))


class TinyMoE(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.layers = nn.ModuleList(Block() for _ in range(LAYERS))
        self.head = nn.Linear(D, VOCAB)

    def forward(self, tokens):
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)

    def routing(self):
        """The ids the MoE layers used in the last forward: [layers, tokens, K]."""
        return torch.stack([layer.moe.last_ids for layer in self.layers])


def toy_batch(gen, batch, seq):
    # Skewed token distribution: low token ids are more frequent.
    p = 1.0 / torch.arange(1, VOCAB + 1, dtype=torch.float32) ** 0.8
    x = torch.multinomial(p, batch * seq, replacement=True, generator=gen).reshape(batch, seq)
    return x, (7 * x + 3) % VOCAB


def train(model, steps=TRAIN_STEPS, seed=0):
    """Trains on the toy task; returns (first loss, last loss)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    model.train()
    for _ in range(steps):
        x, y = toy_batch(gen, 32, SEQ)
        loss = nn.functional.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    model.eval()
    return losses[0], losses[-1]


def record_batches(seed=1):
    gen = torch.Generator().manual_seed(seed)
    return [toy_batch(gen, BATCH, SEQ)[0] for _ in range(STEPS)]


def build(seed=0):
    torch.manual_seed(seed)
    return TinyMoE()


def trained():
    """Factory for record_routing.py --model tests/python/tiny_moe.py:trained."""
    model = build()
    first, last = train(model)
    return {"model": model, "batches": record_batches(), "num_experts": EXPERTS, "top_k": TOP_K,
            "routers": ROUTERS,
            "source": f"tests/python/tiny_moe.py: {LAYERS}-layer MoE, N={EXPERTS}, K={TOP_K}, trained "
                      f"{TRAIN_STEPS} steps (loss {first:.2f} -> {last:.2f}), {STEPS} batches of {BATCH}x{SEQ}"}
