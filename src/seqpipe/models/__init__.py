"""Models: a registry of architectures, and the wrapper that keeps normalisation inside the model.

`build_model` returns a `Normalised` module: inputs are standardised with train-split statistics
stored as buffers (so they travel in the checkpoint), and `predict` maps regression outputs back
to the targets' units. Adding an architecture is one decorated builder function.
"""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models import mlp, rnn, tcn  # noqa: F401 - fill the registry
from seqpipe.models.registry import MODELS, POOLINGS

__all__ = ["MODELS", "POOLINGS", "Normalised", "build_model"]


class Normalised(nn.Module):
    """A network between input standardisation and (for regression) target de-standardisation."""

    def __init__(self, net: nn.Module, in_dim: int, target_dim: int | None):
        super().__init__()
        self.net = net
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_std", torch.ones(in_dim))
        self.register_buffer("y_mean", torch.zeros(target_dim or 1))
        self.register_buffer("y_std", torch.ones(target_dim or 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output in the normalised target space (what the losses see)."""
        return self.net((x - self.x_mean) / self.x_std)

    def normalise_target(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean) / self.y_std

    def denormalise(self, out: torch.Tensor) -> torch.Tensor:
        return out * self.y_std + self.y_mean


def build_model(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None, target_dim: int | None) -> Normalised:
    """Build the architecture `cfg['arch']` inside the normalising wrapper."""
    if cfg["arch"] not in MODELS:
        raise KeyError(f"unknown model arch {cfg['arch']!r}; known: {', '.join(sorted(MODELS))}")
    net = MODELS[cfg["arch"]](cfg, in_dim=in_dim, seq_len=seq_len, out_dim=out_dim, mapping=mapping, out_len=out_len)
    return Normalised(net, in_dim, target_dim)
