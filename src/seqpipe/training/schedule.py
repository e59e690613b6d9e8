"""Optimizers and learning-rate schedules from the `training` section.

Schedules step once per epoch, after validation: `reduce_on_plateau` watches the early-stopping
monitor (same `mode`), `cosine_warm_restarts` counts epochs (restart after T_0, then T_0 * T_mult, ...).
"""

from __future__ import annotations

import torch


def make_optimizer(cfg: dict, params, fused: bool = False) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD from `training.optimizer`.

    `fused`: one kernel per step (training uses it on CUDA). A fused optimizer also takes the fp16
    GradScaler's overflow flag as a tensor and skips the update on the device, where an unfused one
    makes the scaler read the flag back to the host on every step.
    """
    name, lr, wd = cfg["name"], cfg["lr"], cfg.get("weight_decay", 0.0)
    kw = {"fused": True} if fused else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, **kw)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **kw)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=cfg.get("momentum", 0.9), weight_decay=wd, **kw)
    raise KeyError(f"training.optimizer.name: unknown optimizer {name!r}; expected adam, adamw or sgd")


def make_scheduler(cfg: dict, optimizer: torch.optim.Optimizer, mode: str):
    """The `training.scheduler` schedule, or None for `name: none`."""
    name = cfg.get("name", "none")
    if name == "none":
        return None
    if name == "reduce_on_plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=cfg["factor"], patience=cfg["patience"],
                                                          min_lr=cfg["min_lr"])
    if name == "cosine_warm_restarts":
        return torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=cfg["T_0"], T_mult=cfg["T_mult"], eta_min=cfg["eta_min"])
    raise KeyError(f"training.scheduler.name: unknown schedule {name!r}; expected none, reduce_on_plateau or cosine_warm_restarts")


def step_scheduler(scheduler, monitored: float) -> None:
    """Advance the schedule by one epoch (`monitored`: the early-stopping monitor's value)."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored)
    else:
        scheduler.step()
