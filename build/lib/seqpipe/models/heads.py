"""Output heads shared by the sequence encoders: pooled (seq2static) or per step (seq2seq)."""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models.pooling import Pool


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
            h = h[:, -self.out_len :] if self.out_len < h.shape[1] else nn.functional.interpolate(
                h.transpose(1, 2), size=self.out_len, mode="linear", align_corners=False
            ).transpose(1, 2)
        return self.linear(h)
