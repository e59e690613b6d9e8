"""Temporal convolutional network: causal dilated residual blocks, then a head."""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models.heads import Head
from seqpipe.models.registry import register_model


class CausalBlock(nn.Module):
    """Two causal dilated convolutions with a residual connection."""

    def __init__(self, channels_in: int, channels: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv1 = nn.Conv1d(channels_in, channels, kernel, dilation=dilation)
        self.conv2 = nn.Conv1d(channels, channels, kernel, dilation=dilation)
        self.drop = nn.Dropout(dropout)
        self.skip = nn.Conv1d(channels_in, channels, 1) if channels_in != channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, T]
        h = self.drop(torch.relu(self.conv1(nn.functional.pad(x, (self.pad, 0)))))
        h = self.drop(torch.relu(self.conv2(nn.functional.pad(h, (self.pad, 0)))))
        return torch.relu(h + self.skip(x))


class TCN(nn.Module):
    """`num_layers` blocks with dilations 1, 2, 4, ..."""

    def __init__(self, cfg: dict, in_dim: int, out_dim: int, mapping: str, out_len: int | None, seq_len: int | None = None):
        super().__init__()
        width = cfg["hidden_size"]
        self.blocks = nn.Sequential(
            *(CausalBlock(in_dim if i == 0 else width, width, cfg["kernel_size"], 2**i, cfg["dropout"]) for i in range(cfg["num_layers"]))
        )
        self.head = Head(width, out_dim, mapping, cfg.get("pooling"), out_len, seq_len, cfg.get("head", "auto"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x.transpose(1, 2)).transpose(1, 2))


@register_model("tcn")
def build_tcn(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `tcn` model."""
    return TCN(cfg, in_dim, out_dim, mapping, out_len, seq_len)
