"""MLP over the whole window: [B, T, D] is flattened, so every step's position is an input.

Sequential or residual (a skip connection around each equal-width layer), Xavier-initialised.
For seq2seq the output is reshaped to [B, out_len, out_dim].
"""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models.registry import register_model

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


class MLP(nn.Module):
    """Flatten -> [Linear -> activation -> dropout] x len(hidden) -> Linear."""

    def __init__(self, in_features: int, hidden: list[int], out_features: int, activation: str, dropout: float, residual: bool):
        super().__init__()
        widths = [in_features, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.act, self.drop, self.residual = ACTIVATIONS[activation](), nn.Dropout(dropout), residual
        self.out = nn.Linear(widths[-1], out_features)
        for layer in [*self.layers, self.out]:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer in self.layers:
            z = self.drop(self.act(layer(h)))
            h = h + z if self.residual and z.shape == h.shape else z
        return self.out(h)


class FlatMLP(nn.Module):
    """MLP on flattened windows, shaped for the task's mapping."""

    def __init__(self, cfg: dict, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None):
        super().__init__()
        self.out_shape = (out_dim,) if mapping == "seq2static" else (out_len or seq_len, out_dim)
        n_out = out_dim if mapping == "seq2static" else (out_len or seq_len) * out_dim
        self.mlp = MLP(in_dim * seq_len, cfg["hidden"], n_out, cfg["activation"], cfg["dropout"], cfg["residual"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x).view(len(x), *self.out_shape)


@register_model("mlp")
def build_mlp(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `mlp` model."""
    return FlatMLP(cfg, in_dim, seq_len, out_dim, mapping, out_len)
