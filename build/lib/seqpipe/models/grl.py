"""Gradient reversal (Ganin & Lempitsky, 2015): identity forward, gradient times -alpha backward.

A head placed after `grad_reverse(z, alpha)` learns to *minimise* its loss while everything before
the layer receives the negated gradient and so learns to *maximise* it: an adversarial game that
one optimizer and one backward pass can play. `dann_alpha(p)` is the usual schedule for alpha,
rising from 0 at the start of training (p = 0) towards 1 (p = 1), so the encoder first learns a
useful representation before the adversary pushes on it.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.alpha * grad, None


def grad_reverse(x: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """`x` unchanged; its gradient is multiplied by `-alpha` on the way back."""
    return _GradReverse.apply(x, float(alpha))


def dann_alpha(p: float) -> float:
    """alpha = 2 / (1 + exp(-10 p)) - 1 for training progress p in [0, 1]: 0 at p=0, 0.987 at p=0.5, 0.99991 at p=1."""
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


class GradientReversal(nn.Module):
    """The layer form of `grad_reverse`, with `alpha` set by the training progress."""

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha

    def set_progress(self, p: float) -> None:
        self.alpha = dann_alpha(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.alpha)
