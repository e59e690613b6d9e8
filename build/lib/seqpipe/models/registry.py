"""Model and pooling registries: plain dicts filled by decorators."""

from __future__ import annotations

from collections.abc import Callable

MODELS: dict[str, Callable] = {}
POOLINGS: dict[str, Callable] = {}


def register_model(name: str) -> Callable:
    """Register a builder `fn(cfg, *, in_dim, seq_len, out_dim, mapping, out_len) -> nn.Module`."""

    def deco(fn: Callable) -> Callable:
        MODELS[name] = fn
        return fn

    return deco


def register_pooling(name: str) -> Callable:
    """Register a time pooling `fn(h [B, T, H], **params) -> [B, H]`."""

    def deco(fn: Callable) -> Callable:
        POOLINGS[name] = fn
        return fn

    return deco
