"""Autoencoder over the whole window, with latent `none`, `linear` or `vq` (vector quantisation).

encoder: the window [B, T, D] flattened -> `hidden` widths (activation after each) -> h
latent:  none   z = h (the code is the encoder's last hidden layer, width hidden[-1])
         linear z = Linear(h) (a linear bottleneck of width `latent_dim`)
         vq     z_e = Linear(h), cut into latent_dim / code_dim vectors of `code_dim`, each replaced
                by its nearest of `codebook_size` learned codes; the straight-through estimator
                (z_e + (q - z_e).detach()) passes the decoder's gradient to the encoder unchanged.
decoder: z -> reversed `hidden` widths -> the output, shaped [B, out_len, out_dim] (seq2seq) or
         [B, out_dim] (seq2static).

The prediction is the decoder's output; it serves `reconstruction` tasks, where the task loss is the
reconstruction loss. VQ adds two auxiliary losses (van den Oord et al., 2017), in `aux_losses`
while training: `codebook` = ||sg(z_e) - q||^2 moves the codes to the encodings, and `commitment` =
commitment * ||z_e - sg(q)||^2 keeps the encodings near their codes. The codebook is initialised
from the first training batch's encodings (so no code starts dead far from the data).

`WindowEncoder`, `WindowDecoder`, `stack` and `xavier` are shared by vae.py, gan_ae.py, diffusion_ae.py and tcn_vae.py.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqpipe.models.mlp import ACTIVATIONS
from seqpipe.models.protocol import AuxLossModule
from seqpipe.models.registry import register_model

DEFAULTS = {"hidden": [128, 64], "activation": "relu", "dropout": 0.0, "latent": "none", "latent_dim": 16,
            "codebook_size": 64, "code_dim": 4, "commitment": 0.25}


def xavier(module: nn.Module) -> nn.Module:
    """Xavier-uniform weights and zero biases for every Linear in `module`."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def stack(widths: list[int], activation: str, dropout: float, last_activation: bool) -> nn.Sequential:
    """Linear layers through `widths`, activation (and dropout) after each but optionally the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(widths) - 2:
            layers += [ACTIVATIONS[activation](), nn.Dropout(dropout)]
    return xavier(nn.Sequential(*layers))


class WindowEncoder(nn.Module):
    """[B, T, D] -> [B, hidden[-1]]: the flattened window through an MLP."""

    def __init__(self, cfg: dict, in_dim: int, seq_len: int):
        super().__init__()
        self.mlp = stack([in_dim * seq_len, *cfg["hidden"]], cfg["activation"], cfg["dropout"], last_activation=True)
        self.width = cfg["hidden"][-1] if cfg["hidden"] else in_dim * seq_len

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.flatten(1))


class WindowDecoder(nn.Module):
    """[B, Z] -> [B, out_len, out_dim] (seq2seq) or [B, out_dim] (seq2static), through the reversed widths."""

    def __init__(self, cfg: dict, latent_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None):
        super().__init__()
        self.out_shape = (out_dim,) if mapping == "seq2static" else (out_len or seq_len, out_dim)
        n_out = out_dim if mapping == "seq2static" else (out_len or seq_len) * out_dim
        self.mlp = stack([latent_dim, *reversed(cfg["hidden"]), n_out], cfg["activation"], cfg["dropout"], last_activation=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.mlp(z).view(len(z), *self.out_shape)


class VectorQuantizer(nn.Module):
    """Nearest-code quantisation of [B, G, code_dim] vectors with a straight-through gradient."""

    def __init__(self, codebook_size: int, code_dim: int, commitment: float):
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(codebook_size, code_dim))
        self.commitment = commitment
        self.register_buffer("initialised", torch.tensor(False))
        self.known_initialised = False  # a host-side copy of `initialised`, so a forward need not read the buffer

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        self.known_initialised = False  # the loaded buffer decides again
        super()._load_from_state_dict(*args, **kwargs)

    @torch.no_grad()
    def init_from(self, vectors: torch.Tensor) -> None:
        """Codes := randomly chosen encodings (with replacement and a little noise if there are too few)."""
        k = len(self.codebook)
        pick = torch.randperm(len(vectors), device=vectors.device)[:k] if len(vectors) >= k else torch.randint(len(vectors), (k,), device=vectors.device)
        chosen = vectors[pick]
        self.codebook.copy_(chosen + 0.01 * chosen.std(unbiased=False).clamp_min(1e-3) * torch.randn_like(chosen))
        self.initialised.fill_(True)
        self.known_initialised = True

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, dict, dict]:
        """(z_q with straight-through gradient, {codebook, commitment} losses, {perplexity})."""
        flat = z_e.reshape(-1, z_e.shape[-1])
        if self.training and not self.known_initialised:
            if bool(self.initialised):  # one read of the buffer after construction or loading, not one per batch
                self.known_initialised = True
            else:
                self.init_from(flat.detach())
        ids = torch.cdist(flat.detach(), self.codebook.detach()).argmin(dim=1)
        q = self.codebook[ids].view_as(z_e)
        losses = {"codebook": F.mse_loss(q, z_e.detach()), "commitment": self.commitment * F.mse_loss(z_e, q.detach())}
        usage = code_usage(ids, len(self.codebook))
        perplexity = torch.exp(-(usage * (usage + 1e-10).log()).sum()).detach()  # stays on the device
        return z_e + (q - z_e).detach(), losses, {"perplexity": perplexity}


def code_usage(ids: torch.Tensor, k: int) -> torch.Tensor:
    """The share of `ids` (codes 0..k-1) that is each code, [k], counted on their device.

    `bincount` would read the ids' min and max back to the host (two syncs per step on a GPU, and no
    fixed output size); comparing with 0..k-1 has a fixed size and is exact (integer counts).
    """
    counts = (ids[:, None] == torch.arange(k, device=ids.device)).sum(0)
    return counts.float() / len(ids)


class Autoencoder(AuxLossModule):
    """encoder -> latent (none | linear | vq) -> decoder."""

    def __init__(self, cfg: dict, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None):
        super().__init__()
        kind, z_dim = cfg["latent"], cfg["latent_dim"]
        if kind not in ("none", "linear", "vq"):
            raise ValueError(f"model autoencoder: latent {kind!r}; expected none, linear or vq")
        if kind == "vq" and z_dim % cfg["code_dim"]:
            raise ValueError(f"model autoencoder: latent_dim {z_dim} is not a multiple of code_dim {cfg['code_dim']}; make it one")
        self.encoder = WindowEncoder(cfg, in_dim, seq_len)
        self.kind, self.code_dim = kind, cfg["code_dim"]
        self.project = xavier(nn.Linear(self.encoder.width, z_dim)) if kind != "none" else nn.Identity()
        self.quantizer = VectorQuantizer(cfg["codebook_size"], cfg["code_dim"], cfg["commitment"]) if kind == "vq" else None
        self.decoder = WindowDecoder(cfg, self.encoder.width if kind == "none" else z_dim, seq_len, out_dim, mapping, out_len)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The latent code of each window, [B, Z] (quantised for vq)."""
        z = self.project(self.encoder(x))
        self.aux_losses, self.aux_metrics = {}, {}
        if self.quantizer is not None:
            z_q, losses, metrics = self.quantizer(z.view(len(z), -1, self.code_dim))
            z = z_q.flatten(1)
            if self.training:
                self.aux_losses, self.aux_metrics = losses, metrics
        return z

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encode(x))


@register_model("autoencoder")
def build_autoencoder(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `autoencoder` model."""
    return Autoencoder({**DEFAULTS, **cfg}, in_dim, seq_len, out_dim, mapping, out_len)
