"""Output heads shared by the sequence encoders (gru, lstm, tcn, transformer).

Encoder states h [B, T, H] become:
- seq2static: a pooled vector -> Linear -> [B, out];
- seq2seq `per_step`: one Linear per step -> [B, T', out]; when T' != T the last T' states are kept
  (T' < T) or the states are stretched linearly (T' > T), so step k sees the input only up to where
  its state sits;
- seq2seq `horizon`: a forecasting head on the encoder's summary of the whole input (its last state
  next to the mean over all states) -> Linear -> T' x out, so every predicted step sees every input
  step whatever T' is.
`head: auto` (the default) is `horizon` when T' differs from T (forecasting) and `per_step` otherwise
(sequence labelling, reconstruction).
"""

from __future__ import annotations

import torch
from torch import nn

from seqpipe.models.pooling import Pool

HEAD_KINDS = ("auto", "per_step", "horizon")


def head_kind(kind: str, mapping: str, seq_len: int | None, out_len: int | None) -> str:
    """The head a seq2seq/seq2static model gets: `pooled`, `per_step` or `horizon` (resolving `auto`)."""
    if kind not in HEAD_KINDS:
        raise ValueError(f"model head: {kind!r}; expected one of {', '.join(HEAD_KINDS)}")
    if mapping == "seq2static":
        return "pooled"
    if kind != "auto":
        return kind
    return "horizon" if out_len is not None and seq_len is not None and out_len != seq_len else "per_step"


def resample_weights(steps: int, size: int) -> torch.Tensor:
    """The [size, steps] float64 matrix that stretches `steps` states to `size` linearly (align_corners=False)."""
    src = ((torch.arange(size, dtype=torch.float64) + 0.5) * (steps / size) - 0.5).clamp(min=0)
    lo = src.floor().long().clamp(max=steps - 1)
    hi = (lo + 1).clamp(max=steps - 1)
    frac = (src - lo)[:, None]
    return nn.functional.one_hot(lo, steps) * (1 - frac) + nn.functional.one_hot(hi, steps) * frac


def resample_linear(h: torch.Tensor, size: int, cache: dict | None = None) -> torch.Tensor:
    """[B, T, H] -> [B, size, H] along T: the values of F.interpolate(mode="linear", align_corners=False),
    as one matrix product, whose backward is deterministic on CUDA (interpolate's backward adds atomically).

    The weights are built on the host (float64, the same values on every device) once per
    (T, size, device, dtype) when a `cache` dict is given, so a forward on a GPU copies nothing.
    """
    key = (h.shape[1], size, h.device, h.dtype)
    weights = cache.get(key) if cache is not None else None
    if weights is None:
        weights = resample_weights(h.shape[1], size).to(device=h.device, dtype=h.dtype)
        if cache is not None:
            cache[key] = weights
    return torch.einsum("st,bth->bsh", weights, h)


class Head(nn.Module):
    """Map encoder states [B, T, H] to [B, out] (pooled), [B, out_len, out] (per step or horizon)."""

    def __init__(self, hidden: int, out_dim: int, mapping: str, pooling: dict | None, out_len: int | None,
                 seq_len: int | None = None, kind: str = "auto"):
        super().__init__()
        self.mapping, self.out_len, self.out_dim = mapping, out_len or seq_len, out_dim
        self.resampling: dict = {}  # resample_linear's weights per (steps, size, device, dtype)
        self.kind = head_kind(kind, mapping, seq_len, out_len)
        self.pool = Pool(**(pooling or {})) if self.kind == "pooled" else None
        if self.kind == "horizon":
            if self.out_len is None:
                raise ValueError("model head: horizon needs the number of output steps (target_seq_len or the input length)")
            self.linear = nn.Linear(2 * hidden, self.out_len * out_dim)
        else:
            self.linear = nn.Linear(hidden, out_dim)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            return self.linear(self.pool(h))
        if self.kind == "horizon":
            summary = torch.cat([h[:, -1], h.mean(dim=1)], dim=-1)
            return self.linear(summary).view(len(h), self.out_len, self.out_dim)
        if self.out_len is not None and self.out_len != h.shape[1]:
            h = h[:, -self.out_len :] if self.out_len < h.shape[1] else resample_linear(h, self.out_len, self.resampling)
        return self.linear(h)
