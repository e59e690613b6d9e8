"""Transformer encoder over the steps, then a pooled (seq2static) or per-step (seq2seq) head.

[B, T, D] -> Linear to `hidden_size` (d_model) + positions -> `num_layers` pre-norm encoder layers
(`n_heads` heads, feed-forward `ff_mult * hidden_size`, GELU) -> LayerNorm -> `heads.Head`.
Positions are `sinusoidal` (fixed, any length) or `learned` (one vector per step of the training
window, so inputs may not be longer than that window). `causal: true` masks attention to the past,
which autoregressive losses need. Linear weights are Xavier-initialised.

When the input requires a gradient (a gradient-penalty regularizer differentiates the output with
respect to the input, then that gradient again), attention runs on PyTorch's math kernel: the
fused flash/memory-efficient kernels have no second derivative.
"""

from __future__ import annotations

import math

import contextlib

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from seqpipe.models.heads import Head
from seqpipe.models.registry import register_model

DEFAULTS = {"hidden_size": 64, "num_layers": 1, "dropout": 0.0, "pooling": {}, "n_heads": 4, "ff_mult": 4, "positions": "sinusoidal", "causal": False, "head": "auto"}


def sinusoidal_positions(length: int, dim: int, start: int = 0, device: torch.device | str | None = None) -> torch.Tensor:
    """Rows `start`..`length`-1 of the [length, dim] table of Vaswani et al.: sin on even, cos on odd channels."""
    pos = torch.arange(start, length, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32, device=device) * (-math.log(10000.0) / dim))
    table = torch.zeros(length - start, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return table


class Transformer(nn.Module):
    """Input projection, positions, encoder layers, head."""

    def __init__(self, cfg: dict, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None):
        super().__init__()
        d, heads = cfg["hidden_size"], cfg["n_heads"]
        if d % heads:
            raise ValueError(f"model transformer: hidden_size {d} is not divisible by n_heads {heads}; choose n_heads dividing hidden_size")
        if cfg["positions"] not in ("sinusoidal", "learned"):
            raise ValueError(f"model transformer: positions {cfg['positions']!r}; expected 'sinusoidal' or 'learned'")
        self.causal = bool(cfg["causal"])
        self.inp = nn.Linear(in_dim, d)
        if cfg["positions"] == "learned":
            self.pos = nn.Parameter(torch.randn(seq_len, d) * 0.02)
        else:
            self.register_buffer("pos", sinusoidal_positions(seq_len, d), persistent=False)
        layer = nn.TransformerEncoderLayer(d, heads, cfg["ff_mult"] * d, cfg["dropout"], activation="gelu", batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg["num_layers"], enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.head = Head(d, out_dim, mapping, cfg.get("pooling"), out_len, seq_len, cfg.get("head", "auto"))
        for module in self.modules():  # the fused q/k/v projection (not a Linear) is Xavier-initialised by torch already
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def positions(self, length: int) -> torch.Tensor:
        if length <= len(self.pos):
            return self.pos[:length]
        if isinstance(self.pos, nn.Parameter):
            raise ValueError(f"model transformer: input has {length} steps but learned positions cover {len(self.pos)}; use positions: sinusoidal")
        # longer than the table: extend it once, on its device (the rows it has keep their values)
        self.pos = torch.cat([self.pos, sinusoidal_positions(length, self.pos.shape[1], len(self.pos), self.pos.device)])
        return self.pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device) if self.causal else None
        kernel = sdpa_kernel(SDPBackend.MATH) if x.requires_grad and torch.is_grad_enabled() else contextlib.nullcontext()
        with kernel:
            h = self.encoder(self.inp(x) + self.positions(length), mask=mask, is_causal=self.causal)
        return self.head(self.norm(h))


@register_model("transformer")
def build_transformer(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `transformer` model."""
    return Transformer({**DEFAULTS, **cfg}, in_dim, seq_len, out_dim, mapping, out_len)
