"""Variational autoencoder over the whole window (Kingma & Welling, 2014).

encoder (autoencoder.WindowEncoder) -> mu, logvar [B, latent_dim] -> z -> decoder -> prediction.
Training: z = mu + exp(logvar / 2) * eps (the reparameterisation trick) and
`aux_losses["kl"] = beta_now * KL(q(z|x) || N(0, I))` (nats per sample, see
`kl_divergence`, here beside the models that use it); the task loss on the prediction is the reconstruction term.
Evaluation: z = mu, so predictions are deterministic.

KL annealing: with `kl_anneal` = f > 0, beta_now = beta * min(1, p / f) for training progress
p = epoch / epochs (given by `set_progress`), i.e. beta rises linearly from 0 over the first
fraction f of training; with f = 0, beta_now = beta throughout. Without `set_progress` calls
the model behaves as at the end of training (p = 1).
"""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models.autoencoder import WindowDecoder, WindowEncoder, xavier
from seqpipe.models.protocol import AuxLossModule
from seqpipe.models.registry import register_model

DEFAULTS = {"hidden": [128, 64], "activation": "relu", "dropout": 0.0, "latent_dim": 16, "beta": 0.01, "kl_anneal": 0.0}


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) in nats per sample: -1/2 sum_z (1 + logvar - mu^2 - exp(logvar)),
    summed over the latent (last) axis and averaged over all other axes (the batch)."""
    return (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=-1)).mean()


def annealed_beta(beta: float, kl_anneal: float, progress: float) -> float:
    """beta * min(1, progress / kl_anneal); beta itself when kl_anneal is 0."""
    return beta if kl_anneal <= 0 else beta * min(1.0, progress / kl_anneal)


class VAE(AuxLossModule):
    """encoder -> (mu, logvar) -> sampled or mean z -> decoder."""

    def __init__(self, cfg: dict, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None):
        super().__init__()
        self.encoder = WindowEncoder(cfg, in_dim, seq_len)
        self.mu = xavier(nn.Linear(self.encoder.width, cfg["latent_dim"]))
        self.logvar = xavier(nn.Linear(self.encoder.width, cfg["latent_dim"]))
        self.decoder = WindowDecoder(cfg, cfg["latent_dim"], seq_len, out_dim, mapping, out_len)
        self.beta, self.kl_anneal, self.progress = cfg["beta"], cfg["kl_anneal"], 1.0

    def set_progress(self, p: float) -> None:
        self.progress = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-10.0, 10.0)  # exp(+-10) keeps the variance finite
        self.aux_losses, self.aux_metrics = {}, {}
        if not self.training:
            return self.decoder(mu)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        kl = kl_divergence(mu, logvar)
        beta = annealed_beta(self.beta, self.kl_anneal, self.progress)
        self.aux_losses = {"kl": beta * kl}
        self.aux_metrics = {"kl": kl.detach(), "beta": beta}  # a device tensor: read once per epoch
        return self.decoder(z)


@register_model("vae")
def build_vae(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `vae` model."""
    return VAE({**DEFAULTS, **cfg}, in_dim, seq_len, out_dim, mapping, out_len)
