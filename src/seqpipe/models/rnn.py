"""Recurrent encoders (GRU, LSTM) with a pooled, per-step or horizon (forecasting) head (`heads.Head`)."""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models.heads import Head
from seqpipe.models.registry import register_model


class RNN(nn.Module):
    """A GRU or LSTM over the steps, then a head."""

    def __init__(self, cell: type[nn.RNNBase], cfg: dict, in_dim: int, out_dim: int, mapping: str, out_len: int | None,
                 seq_len: int | None = None):
        super().__init__()
        layers = cfg["num_layers"]
        self.rnn = cell(in_dim, cfg["hidden_size"], num_layers=layers, batch_first=True, dropout=cfg["dropout"] if layers > 1 else 0.0)
        self.head = Head(cfg["hidden_size"], out_dim, mapping, cfg.get("pooling"), out_len, seq_len, cfg.get("head", "auto"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.head(h)


@register_model("gru")
def build_gru(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `gru` model."""
    return RNN(nn.GRU, cfg, in_dim, out_dim, mapping, out_len, seq_len)


@register_model("lstm")
def build_lstm(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `lstm` model."""
    return RNN(nn.LSTM, cfg, in_dim, out_dim, mapping, out_len, seq_len)
