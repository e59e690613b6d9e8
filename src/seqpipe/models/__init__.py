"""Models: a registry of architectures, and the wrapper that keeps normalisation inside the model.

`build_model` returns a `Normalised` module: inputs are standardised with train-split statistics
stored as buffers (so they travel in the checkpoint), and `predict` maps regression outputs back
to the targets' units. Adding an architecture is one decorated builder function.

The protocol between a model and the training loop, all of it optional for a model:
- `aux_losses`: dict of scalar tensors, already weighted, set by a training-mode forward (VAE KL,
  VQ codebook/commitment, adversarial, diffusion, domain...). The loop adds their sum to the task
  loss. `Normalised.aux_losses` is the wrapped network's dict of the latest forward ({} if none).
- `aux_metrics`: dict of values worth logging (unweighted KL, current beta and alpha, VQ perplexity): Python
  numbers or detached 0-dim tensors; never `float(tensor)` in a forward (a host sync on every batch).
- `set_progress(p)`: p = epoch / epochs, called by the loop at the start of every epoch (gradient
  reversal strength, KL annealing).
- `set_domains(ids)`: domain ids [B] of the next training batch (tcn_vae's domain adversary).
`Normalised` forwards `set_progress` and `set_domains` to the network and ignores them where it has none.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from seqpipe.config.types import Model
from seqpipe.models import autoencoder, diffusion_ae, gan_ae, mlp, rnn, tcn, tcn_vae, transformer, vae  # noqa: F401 - fill the registry
from seqpipe.models.protocol import AuxLossModule
from seqpipe.models.registry import MODELS, POOLINGS

__all__ = ["MODELS", "POOLINGS", "Normalised", "build_model"]


class Normalised(AuxLossModule):
    """A network between input standardisation and (for regression) target de-standardisation."""

    def __init__(self, net: nn.Module, in_dim: int, target_dim: int | None):
        super().__init__()
        self.net = net
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_std", torch.ones(in_dim))
        self.register_buffer("y_mean", torch.zeros(target_dim or 1))
        self.register_buffer("y_std", torch.ones(target_dim or 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output in the normalised target space (what the losses see); sets `aux_losses` and `aux_metrics`."""
        out = self.net((x - self.x_mean) / self.x_std)
        self.aux_losses = dict(getattr(self.net, "aux_losses", None) or {})
        self.aux_metrics = dict(getattr(self.net, "aux_metrics", None) or {})
        return out

    def set_progress(self, p: float) -> None:
        """Training progress p = epoch / epochs in [0, 1], for networks that schedule something on it."""
        if hasattr(self.net, "set_progress"):
            self.net.set_progress(p)

    def set_domains(self, domains: torch.Tensor | None) -> None:
        """Domain ids [B] for the next training forward, for networks with a domain head."""
        if hasattr(self.net, "set_domains"):
            self.net.set_domains(domains)

    def normalise_target(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_mean) / self.y_std

    def denormalise(self, out: torch.Tensor) -> torch.Tensor:
        return out * self.y_std + self.y_mean


def build_model(settings: Model | Mapping, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None,
                target_dim: int | None) -> Normalised:
    """Build the architecture `settings.arch` inside the normalising wrapper; its builder gets the model's settings
    as a dict (`cfg["hidden_size"]`, ...). `settings`: a `seqpipe.config.types.Model`, or its dict."""
    cfg = settings.to_dict() if isinstance(settings, Model) else settings
    if cfg["arch"] not in MODELS:
        raise KeyError(f"unknown model arch {cfg['arch']!r}; known: {', '.join(sorted(MODELS))}")
    net = MODELS[cfg["arch"]](cfg, in_dim=in_dim, seq_len=seq_len, out_dim=out_dim, mapping=mapping, out_len=out_len)
    return Normalised(net, in_dim, target_dim)
