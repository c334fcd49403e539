"""A stand-in for Hugging Face `transformers`, for the docs test only
(tests/python/python_case.py docs): the factory that docs/traces.md shows for
Mixtral runs against it without the network or the checkpoint.

It provides what that factory uses, nothing more: AutoTokenizer (characters
hashed to ids, padding="max_length", truncation, return_tensors="pt",
BatchEncoding.to) and AutoModelForCausalLM returning a tiny model with the
module names and config fields of MixtralForCausalLM
(model.layers.<i>.block_sparse_moe.gate = nn.Linear(D, N) -> logits [tokens, N],
config.num_local_experts, config.num_experts_per_tok; 32 layers, N = 8, K = 2
as Mixtral-8x7B, hidden size 16).
"""
import types

import torch
from torch import nn

__version__ = "0.0-stub"


class BatchEncoding(dict):
    def to(self, device):
        return BatchEncoding({k: v.to(device) for k, v in self.items()})


class _Tokenizer:
    eos_token = "</s>"
    pad_token = None

    def __call__(self, texts, return_tensors="pt", padding="max_length", truncation=True, max_length=512):
        assert return_tensors == "pt" and padding == "max_length" and truncation
        if self.pad_token is None:
            raise ValueError("Asking to pad but the tokenizer does not have a padding token")
        rows = []
        for t in texts:
            ids = [1] + [3 + (ord(c) * 7) % 997 for c in t][: max_length - 1]
            rows.append(ids + [2] * (max_length - len(ids)))
        ids = torch.tensor(rows, dtype=torch.long)
        return BatchEncoding(input_ids=ids, attention_mask=(ids != 2).long())


class AutoTokenizer:
    @staticmethod
    def from_pretrained(name, **kwargs):
        return _Tokenizer()


class _Moe(nn.Module):
    def __init__(self, d, n, k):
        super().__init__()
        self.k = k
        self.gate = nn.Linear(d, n, bias=False)
        self.experts = nn.ModuleList(nn.ModuleDict({"w1": nn.Linear(d, d, bias=False), "w2": nn.Linear(d, d, bias=False)})
                                     for _ in range(n))

    def forward(self, x):
        b, s, d = x.shape
        h = x.reshape(-1, d)
        w, ids = self.gate(h).softmax(-1).topk(self.k, -1)
        out = torch.zeros_like(h)
        for e, ex in enumerate(self.experts):
            tok, slot = (ids == e).nonzero(as_tuple=True)
            if tok.numel():
                out.index_add_(0, tok, w[tok, slot, None] * ex["w2"](torch.relu(ex["w1"](h[tok]))))
        return out.reshape(b, s, d)


class _Layer(nn.Module):
    def __init__(self, d, n, k):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(d)
        self.block_sparse_moe = _Moe(d, n, k)

    def forward(self, x):
        return x + self.block_sparse_moe(self.input_layernorm(x))


class _MixtralLike(nn.Module):
    def __init__(self, layers=32, d=16, n=8, k=2, vocab=1000):
        super().__init__()
        self.config = types.SimpleNamespace(model_type="mixtral", num_local_experts=n, num_experts_per_tok=k,
                                            num_hidden_layers=layers, hidden_size=d)
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(vocab, d)
        self.model.layers = nn.ModuleList(_Layer(d, n, k) for _ in range(layers))
        self.lm_head = nn.Linear(d, vocab, bias=False)

    @property
    def device(self):
        return self.lm_head.weight.device

    def forward(self, input_ids, attention_mask=None):
        x = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            x = layer(x)
        return self.lm_head(x)


class AutoModelForCausalLM:
    @staticmethod
    def from_pretrained(name, **kwargs):
        torch.manual_seed(0)
        return _MixtralLike()
