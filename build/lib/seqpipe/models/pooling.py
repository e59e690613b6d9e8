"""Time pooling for seq2static heads: [B, T, H] -> [B, H], each with a `scale` factor."""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models.registry import POOLINGS, register_pooling


@register_pooling("final")
def final(h: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The last step."""
    return h[:, -1] * scale


@register_pooling("mean")
def mean(h: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The mean over steps."""
    return h.mean(dim=1) * scale


@register_pooling("max")
def max_(h: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """The maximum over steps."""
    return h.amax(dim=1) * scale


@register_pooling("mean_last_n")
def mean_last_n(h: torch.Tensor, n: int = 1, scale: float = 1.0) -> torch.Tensor:
    """The mean over the last `n` steps."""
    return h[:, -int(n) :].mean(dim=1) * scale


class Pool(nn.Module):
    """A configured pooling: `{name, params}`."""

    def __init__(self, name: str = "mean", params: dict | None = None):
        super().__init__()
        if name not in POOLINGS:
            raise KeyError(f"unknown pooling {name!r}; known: {', '.join(sorted(POOLINGS))}")
        self.fn, self.params = POOLINGS[name], dict(params or {})

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.fn(h, **self.params)
