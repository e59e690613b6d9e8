"""Diffusion autoencoder: an encoder's latent conditions a small denoiser; the prediction is a few-step DDIM decode.

encoder (autoencoder.WindowEncoder) -> z = Linear(h) [B, latent_dim]. The denoiser eps(x_t, t, z) is an
MLP on [flattened x_t, sinusoidal embedding of t, z] that predicts the noise in x_t.

Noise schedule (`diffusion_steps` = T): x_t = cos(theta_t) x_0 + sin(theta_t) eps with theta_t rising
linearly from 0 (t = 0, clean) to arccos(0.1) (t = T), i.e. a cosine schedule truncated where the
signal keeps 1% of its power (alpha_bar_T = 0.01), so the first step of the decode below does not
divide by ~0.

Training (`aux_losses["diffusion"]`): lambda_diff * mean ||eps - eps(x_t, t, z)||^2 with t uniform in
1..T and eps ~ N(0, I); x_0 is the model's own (normalised) input window, so this model serves
reconstruction tasks: `out_len` x `out_dim` must equal `seq_len` x `in_dim`.

Prediction (train and eval alike, deterministic): DDIM with eta = 0 over `sample_steps` steps from
x_T = 0 (the mean of the noise prior): at each t, x0_hat = (x_t - sin eps_hat) / cos, then
x_t' = cos' x0_hat + sin' eps_hat; the last step lands on x_0. The task loss (the reconstruction
loss) back-propagates through these steps into the denoiser and the encoder, so the decode is
trained end to end as well as by the denoising objective. `sample(z, steps)` decodes any latent.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from seqpipe.models.autoencoder import WindowEncoder, stack, xavier
from seqpipe.models.protocol import AuxLossModule
from seqpipe.models.registry import register_model
from seqpipe.models.transformer import sinusoidal_positions

DEFAULTS = {"hidden": [128, 64], "activation": "relu", "dropout": 0.0, "latent_dim": 16, "diffusion_steps": 100, "sample_steps": 4, "lambda_diff": 1.0}
TIME_DIM = 32
ALPHA_BAR_MIN = 0.01


class DiffusionAE(AuxLossModule):
    """encoder -> z; denoiser eps(x_t, t, z); prediction = DDIM decode of z."""

    def __init__(self, cfg: dict, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None):
        super().__init__()
        if mapping != "seq2seq" or (out_len or seq_len, out_dim) != (seq_len, in_dim):
            raise ValueError(
                f"model diffusion_ae: output {mapping} [{out_len}, {out_dim}] is not the input window [{seq_len}, {in_dim}]; "
                "the denoiser learns the input windows, so use it on a reconstruction task (mapping: seq2seq)"
            )
        steps, sample_steps = cfg["diffusion_steps"], cfg["sample_steps"]
        if not 1 <= sample_steps <= steps:
            raise ValueError(f"model diffusion_ae: sample_steps {sample_steps} must lie in 1..diffusion_steps ({steps})")
        self.shape, features = (seq_len, in_dim), seq_len * in_dim
        self.encoder = WindowEncoder(cfg, in_dim, seq_len)
        self.project = xavier(nn.Linear(self.encoder.width, cfg["latent_dim"]))
        width = max(cfg["hidden"]) if cfg["hidden"] else 128
        self.denoiser = stack([features + TIME_DIM + cfg["latent_dim"], width, width, features], cfg["activation"], 0.0, last_activation=False)
        theta = torch.linspace(0, math.acos(math.sqrt(ALPHA_BAR_MIN)), steps + 1)
        self.register_buffer("cos", theta.cos(), persistent=False)
        self.register_buffer("sin", theta.sin(), persistent=False)
        self.register_buffer("time_embedding", sinusoidal_positions(steps + 1, TIME_DIM), persistent=False)
        self.steps, self.sample_steps, self.lambda_diff = steps, sample_steps, cfg["lambda_diff"]
        self.grid = self.time_grid(sample_steps)

    def time_grid(self, steps: int) -> list[int]:
        """The DDIM decode's steps, from T down to 0 (host integers: no device read per decode)."""
        return torch.linspace(self.steps, 0, steps + 1).round().long().tolist()

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The predicted noise in flattened x_t [B, F] at integer steps t [B]."""
        return self.denoiser(torch.cat([x_t, self.time_embedding[t], z], dim=1))

    def sample(self, z: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """Deterministic DDIM decode of latents z [B, Z] from x_T = 0 in `steps` steps -> [B, T, D].

        Always float32, also under autocast: each step divides by cos(theta_t) (down to 0.1), which
        would magnify fp16/bf16 rounding of the predicted noise tenfold per step.
        """
        grid = self.grid if steps is None or steps == self.sample_steps else self.time_grid(steps)
        with torch.autocast(z.device.type, enabled=False):
            z = z.float()
            x = z.new_zeros(len(z), self.shape[0] * self.shape[1])
            for t, t_next in zip(grid[:-1], grid[1:]):
                eps = self.eps(x, torch.full((len(z),), t, device=z.device, dtype=torch.long), z)
                x0 = (x - self.sin[t] * eps) / self.cos[t]
                x = self.cos[t_next] * x0 + self.sin[t_next] * eps
        return x.view(len(z), *self.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.project(self.encoder(x))
        self.aux_losses = {}
        if self.training and self.lambda_diff > 0:
            x0 = x.flatten(1)
            t = torch.randint(1, self.steps + 1, (len(x),), device=x.device)
            noise = torch.randn_like(x0)
            x_t = self.cos[t, None] * x0 + self.sin[t, None] * noise
            self.aux_losses = {"diffusion": self.lambda_diff * F.mse_loss(self.eps(x_t, t, z), noise)}
        return self.sample(z)


@register_model("diffusion_ae")
def build_diffusion_ae(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `diffusion_ae` model."""
    return DiffusionAE({**DEFAULTS, **cfg}, in_dim, seq_len, out_dim, mapping, out_len)
