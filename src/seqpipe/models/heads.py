"""Output heads shared by the sequence encoders: pooled (seq2static) or per step (seq2seq)."""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models.pooling import Pool


def resample_linear(h: torch.Tensor, size: int) -> torch.Tensor:
    """[B, T, H] -> [B, size, H] along T: the values of F.interpolate(mode="linear", align_corners=False),
    as one matrix product, whose backward is deterministic on CUDA (interpolate's backward adds atomically)."""
    steps = h.shape[1]
    src = ((torch.arange(size, dtype=torch.float64) + 0.5) * (steps / size) - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=steps - 1)
    hi = (lo + 1).clamp(max=steps - 1)
    frac = (src - lo)[:, None]
    weights = nn.functional.one_hot(lo, steps) * (1 - frac) + nn.functional.one_hot(hi, steps) * frac  # [size, T]
    return torch.einsum("st,bth->bsh", weights.to(device=h.device, dtype=h.dtype), h)


class Head(nn.Module):
    """Map encoder states [B, T, H] to [B, out] (pooled) or [B, out_len, out] (per step)."""

    def __init__(self, hidden: int, out_dim: int, mapping: str, pooling: dict | None, out_len: int | None):
        super().__init__()
        self.mapping, self.out_len = mapping, out_len
        self.pool = Pool(**(pooling or {})) if mapping == "seq2static" else None
        self.linear = nn.Linear(hidden, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            return self.linear(self.pool(h))
        if self.out_len is not None and self.out_len != h.shape[1]:
            h = h[:, -self.out_len :] if self.out_len < h.shape[1] else resample_linear(h, self.out_len)
        return self.linear(h)
