"""TCN-VAE: a causal TCN encoder, a VAE latent, a reconstruction decoder, a task head and a domain adversary.

encoder: tcn.CausalBlock x num_layers (dilations 1, 2, 4, ...) over [B, T, D] -> pooled [B, hidden_size]
         -> mu, logvar [B, latent_dim]; z = mu + exp(logvar / 2) eps while training, z = mu otherwise.
decoder: z -> hidden_size -> the input window [B, T, D] (the model's normalised input).
head:    z -> hidden_size -> the prediction [B, out_dim] (class logits for classification).
domain:  z -> hidden_size -> n_domains logits (only when n_domains >= 2), trained as an adversary with
         alpha = grl.dann_alpha(p) = 2 / (1 + exp(-10 p)) - 1 rising with the training progress p (`set_progress`):
         `adversary: confusion` (default): the head learns the domain from a detached z, and the encoder
           minimises alpha * CE(head(z), uniform) through the head's current (frozen) weights;
         `adversary: reversal`: CE(head(grad_reverse(z, alpha)), domain), DANN's gradient reversal.
         Reversal maximises the head's cross-entropy without bound, which an encoder wins by keeping the
         domain and flipping the head's answers: measured on tests/test_domains.py's data, a linear probe
         on the latent read the domain as well or better with reversal; confusion is bounded (its best is
         a head at chance) and took the probe from 0.93 to 0.64.

The seed's objective is  recon + beta KL + lambda_act CE(activity) + lambda_dom CE(domain).
Here the task loss (configured under the task, e.g. cross_entropy) plays lambda_act CE(activity) up to
one global factor: the auxiliary terms are divided by lambda_act, so that
    task + aux = (recon + beta KL + lambda_dom CE(domain)) / lambda_act + CE(activity)
               = (the seed's objective) / lambda_act.
aux_losses while training: `reconstruction` = MSE(decoder(z), x) / lambda_act, `kl` = beta_now KL / lambda_act
(beta_now annealed over `kl_anneal` as in vae.py), and `domain` = lambda_dom CE / lambda_act when domain
labels were given.

seq2seq tasks (e.g. reconstruction): the prediction is the decoder's output shaped [B, out_len, out_dim];
the task loss is then the reconstruction term, so aux_losses holds `kl` = beta_now KL and `domain` =
lambda_dom CE only (no activity head, lambda_act unused).

With a domain head (n_domains >= 2), the seq2static auxiliary decoder also gets the domain as a
one-hot vector next to z (a domain-conditional decoder, as in variational fair autoencoders): the
reconstruction then needs no domain information in z, so nothing pulls against the adversary.

Domains: call `set_domains(ids)` (int64 [B], values in 0..n_domains-1) right before a training forward;
that forward consumes them. Without them (or with n_domains < 2) the domain term is off.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from seqpipe.models.autoencoder import stack, xavier
from seqpipe.models.grl import GradientReversal
from seqpipe.models.pooling import Pool
from seqpipe.models.protocol import AuxLossModule
from seqpipe.models.registry import register_model
from seqpipe.models.tcn import CausalBlock
from seqpipe.models.vae import annealed_beta, kl_divergence

DEFAULTS = {"hidden_size": 64, "num_layers": 1, "kernel_size": 3, "dropout": 0.0, "pooling": {}, "latent_dim": 16, "beta": 0.01,
            "kl_anneal": 0.0, "lambda_act": 1.0, "lambda_dom": 0.1, "n_domains": 0,
            "adversary": "confusion"}


class TCNVAE(AuxLossModule):
    """TCN encoder -> VAE latent -> (reconstruction, task head, domain head behind gradient reversal)."""

    def __init__(self, cfg: dict, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None):
        super().__init__()
        width, z_dim = cfg["hidden_size"], cfg["latent_dim"]
        if cfg["lambda_act"] <= 0:
            raise ValueError(f"model tcn_vae: lambda_act must be > 0 (got {cfg['lambda_act']}); it divides the auxiliary losses")
        self.blocks = nn.Sequential(
            *(CausalBlock(in_dim if i == 0 else width, width, cfg["kernel_size"], 2**i, cfg["dropout"]) for i in range(cfg["num_layers"]))
        )
        self.pool = Pool(**(cfg.get("pooling") or {}))
        self.mu, self.logvar = xavier(nn.Linear(width, z_dim)), xavier(nn.Linear(width, z_dim))
        self.static = mapping == "seq2static"
        self.input_shape = (seq_len, in_dim)
        self.out_shape = (out_len or seq_len, out_dim)
        self.n_domains = cfg["n_domains"] if cfg["n_domains"] >= 2 else 0
        self.conditional = self.static and self.n_domains > 0  # the auxiliary decoder is told the domain
        decoder_in = z_dim + (self.n_domains if self.conditional else 0)
        self.decoder = stack([decoder_in, width, seq_len * in_dim if self.static else (out_len or seq_len) * out_dim], "relu", 0.0, last_activation=False)
        self.head = stack([z_dim, width, out_dim], "relu", 0.0, last_activation=False) if self.static else None
        self.reverse = GradientReversal()
        self.domain_head = stack([z_dim, width, cfg["n_domains"]], "relu", 0.0, last_activation=False) if cfg["n_domains"] >= 2 else None
        self.beta, self.kl_anneal, self.progress = cfg["beta"], cfg["kl_anneal"], 1.0
        self.lambda_act, self.lambda_dom = cfg["lambda_act"], cfg["lambda_dom"]
        self.domains: torch.Tensor | None = None
        self.adversary, self.domains_checked = cfg["adversary"], False
        if self.adversary not in ("confusion", "reversal"):
            raise ValueError(f"model tcn_vae: adversary {self.adversary!r}; expected 'confusion' or 'reversal'")

    def set_progress(self, p: float) -> None:
        """Training progress p = epoch / epochs: sets the reversal strength alpha and the KL weight."""
        self.progress = float(p)
        self.reverse.set_progress(p)

    def set_domains(self, domains: torch.Tensor | None) -> None:
        """Domain ids [B] of the next training batch (consumed by the next forward)."""
        self.domains = domains

    def check_domains(self, domains: torch.Tensor) -> None:
        """Once per model: ids must lie in [0, n_domains) (a bad id would fail deep inside one_hot or cross_entropy)."""
        low, top = int(domains.min()), int(domains.max())
        if low < 0 or top >= self.n_domains:
            raise ValueError(f"model tcn_vae: the data holds domain ids {low}..{top} but n_domains is {self.n_domains}; "
                             f"set models.<model>.n_domains to at least {top + 1} (the length of the file's domain_names)")
        self.domains_checked = True

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) [B, latent_dim] of windows x [B, T, D]."""
        h = self.pool(self.blocks(x.transpose(1, 2)).transpose(1, 2))
        return self.mu(h), self.logvar(h).clamp(-10.0, 10.0)

    def domain_logits(self, x: torch.Tensor) -> torch.Tensor | None:
        """The domain adversary's logits [B, n_domains] on the latent mean of (normalised) windows; None without a head."""
        return None if self.domain_head is None else self.domain_head(self.encode(x)[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.encode(x)
        domains, self.domains = self.domains, None
        self.aux_losses, self.aux_metrics = {}, {}
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        if self.static:
            out = self.head(z)
        else:
            out = self.decoder(z).view(len(x), *self.out_shape)
        if not self.training:
            return out
        if self.n_domains and domains is not None and not self.domains_checked and len(domains):
            self.check_domains(domains)
        kl, beta = kl_divergence(mu, logvar), annealed_beta(self.beta, self.kl_anneal, self.progress)
        scale = 1.0 / self.lambda_act if self.static else 1.0
        self.aux_losses["kl"] = beta * kl * scale
        self.aux_metrics = {"kl": kl.detach(), "beta": beta, "alpha": self.reverse.alpha}  # tensors stay on the device
        if self.static:
            code = z
            if self.conditional:
                known = domains is not None and domains.shape == (len(x),)
                onehot = F.one_hot(domains.to(x.device), self.n_domains).to(z.dtype) if known else z.new_zeros(len(x), self.n_domains)
                code = torch.cat([z, onehot], dim=1)
            self.aux_losses["reconstruction"] = F.mse_loss(self.decoder(code).view(len(x), *self.input_shape), x) * scale
        if self.domain_head is not None and domains is not None and self.lambda_dom > 0:
            if domains.shape != (len(x),):
                raise ValueError(f"model tcn_vae: domains have shape {list(domains.shape)}; expected [{len(x)}] (one id per sample of the batch)")
            domains = domains.to(x.device)
            if self.adversary == "reversal":
                logits = self.domain_head(self.reverse(z))
                self.aux_losses["domain"] = self.lambda_dom * F.cross_entropy(logits, domains) * scale
            else:  # confusion: the head learns on a detached z; the encoder pushes the (fixed) head towards uniform
                logits = self.domain_head(z.detach())
                frozen = {k: v.detach() for k, v in self.domain_head.named_parameters()}
                confused = torch.func.functional_call(self.domain_head, frozen, (z,))
                uniform = -F.log_softmax(confused, dim=1).mean(dim=1).mean()
                self.aux_losses["domain"] = self.lambda_dom * (F.cross_entropy(logits, domains) + self.reverse.alpha * uniform) * scale
            self.aux_metrics["domain_accuracy"] = (logits.argmax(1) == domains).float().mean()
        return out


@register_model("tcn_vae")
def build_tcn_vae(cfg: dict, *, in_dim: int, seq_len: int, out_dim: int, mapping: str, out_len: int | None) -> nn.Module:
    """The `tcn_vae` model."""
    return TCNVAE({**DEFAULTS, **cfg}, in_dim, seq_len, out_dim, mapping, out_len)
