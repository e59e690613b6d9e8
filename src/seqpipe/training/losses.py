"""Losses as weighted lists of `{name, weight, params}`; `LOSSES` maps a name to its function.

Every loss takes `(pred, target, **params)` in the normalised target space; classification
losses take logits [..., C] and class ids [...].
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

LOSSES: dict[str, Callable[..., torch.Tensor]] = {}


def register_loss(name: str) -> Callable:
    """Register a loss function under `name`."""

    def deco(fn: Callable) -> Callable:
        LOSSES[name] = fn
        return fn

    return deco


@register_loss("cross_entropy")
def cross_entropy(pred: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over the last axis (seq2static [B, C] or seq2seq [B, T, C])."""
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), label_smoothing=label_smoothing)


@register_loss("mse")
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(pred, target)


@register_loss("mae")
def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(pred, target)


@register_loss("huber")
def huber(pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss: quadratic below `delta`, linear above."""
    return F.huber_loss(pred, target, delta=delta)


def check_losses(specs: list[dict]) -> None:
    """Fail early, naming the loss, when a configured loss does not exist."""
    for spec in specs:
        if spec["name"] not in LOSSES:
            raise KeyError(f"tasks.<task>.losses: unknown loss {spec['name']!r}; known: {', '.join(sorted(LOSSES))}")


def total_loss(specs: list[dict], pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the configured losses, and each term's value for logging."""
    total, parts = pred.new_zeros(()), {}
    for spec in specs:
        value = LOSSES[spec["name"]](pred, target, **spec.get("params", {}))
        total = total + spec.get("weight", 1.0) * value
        parts[spec["name"]] = float(value.detach())
    return total, parts
