"""Adversarial autoencoder (Makhzani et al., 2016): a latent discriminator shapes the code, one optimizer.

encoder (autoencoder.WindowEncoder) -> z = Linear(h) [B, latent_dim] -> decoder -> prediction.
A discriminator D (latent_dim -> hidden_size -> 1) tells prior samples z_p ~ N(0, I) ("real") from
encodings ("fake"). While training,
    aux_losses["adversarial"] = lambda_adv * [BCE(D(z_p), 1) + BCE(D(grad_reverse(z, alpha)), 0)]
D descends this loss; the gradient reversal layer hands the encoder its negation, so the encoder
ascends it, i.e. learns codes D cannot tell from the prior. Both players step on the same backward
pass of the same optimizer. alpha follows `grl.dann_alpha(p)` through `set_progress` (1 without it).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqpipe.models.autoencoder import WindowDecoder, WindowEncoder, stack, xavier
from seqpipe.models.grl import GradientReversal
from seqpipe.models.protocol import AuxLossModule
from seqpipe.models.registry import register_model

DEFAULTS = {"hidden": [128, 64], "activation": "relu", "dropout": 0.0, "latent_dim": 16, "hidden_size": 64, "lambda_adv": 0.1}


class GanAE(AuxLossModule):
    """encoder -> z -> decoder, plus the latent discriminator behind a gradient reversal."""

    def __init__(self, cfg: dict, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None):
        super().__init__()
        self.encoder = WindowEncoder(cfg, in_dim, seq_len)
        self.project = xavier(nn.Linear(self.encoder.width, cfg["latent_dim"]))
        self.decoder = WindowDecoder(cfg, cfg["latent_dim"], seq_len, out_dim, mapping, out_len)
        self.reverse = GradientReversal()
        self.discriminator = stack([cfg["latent_dim"], cfg["hidden_size"], 1], "relu", 0.0, last_activation=False)
        self.lambda_adv = cfg["lambda_adv"]

    def set_progress(self, p: float) -> None:
        self.reverse.set_progress(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(self.encoder(x))
        self.aux_losses, self.aux_metrics = {}, {}
        if self.training and self.lambda_adv > 0:
            real = self.discriminator(torch.randn_like(z))
            fake = self.discriminator(self.reverse(z))
            adversarial = F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            self.aux_losses = {"adversarial": self.lambda_adv * adversarial}
            self.aux_metrics = {"alpha": self.reverse.alpha, "d_accuracy": ((real > 0).float().mean() + (fake < 0).float().mean()).detach() / 2}
        return self.decoder(z)


@register_model("gan_ae")
def build_gan_ae(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `gan_ae` model."""
    return GanAE({**DEFAULTS, **cfg}, in_dim, seq_len, out_dim, mapping, out_len)
