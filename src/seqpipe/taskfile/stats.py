"""Normalisation statistics in one pass: float64 moments merged block by block, and the rule that
keeps a near-constant column from exploding."""

from __future__ import annotations

from dataclasses import dataclass

import torch

CONSTANT_REL_STD = 1e-4  # a column whose std is below this x max(1, |mean|) is constant (see `negligible_spread`)


def is_one_hot(values: torch.Tensor) -> bool:
    """True when every vector along the last axis is one-hot (0/1 entries summing to 1, at least 2 entries)."""
    if values.ndim < 2 or values.shape[-1] < 2 or values.numel() == 0 or not values.is_floating_point():
        return False
    return bool(((values == 0) | (values == 1)).all() and (values.sum(-1) == 1).all())


@dataclass
class Moments:
    """Count, mean and summed squared deviations per column (float64), mergeable block by block."""

    count: int = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None
    one_hot: bool = True  # every block so far was one-hot
    detect: bool = True  # check the blocks for one-hot values (off when the caller knows)

    def add(self, values: torch.Tensor) -> None:
        """Merge a block [..., D] into the moments (Chan et al.'s parallel update)."""
        flat = values.reshape(-1, values.shape[-1]).double()
        self.one_hot = self.detect and self.one_hot and is_one_hot(values)
        if not len(flat):
            return
        mean = flat.mean(0)
        m2 = ((flat - mean) ** 2).sum(0)
        if self.mean is None:
            self.count, self.mean, self.m2 = len(flat), mean, m2
            return
        total = self.count + len(flat)
        delta = mean - self.mean
        self.mean = self.mean + delta * len(flat) / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * len(flat) / total
        self.count = total

    def std(self) -> torch.Tensor:
        """Population standard deviation (float64)."""
        return (self.m2 / self.count).sqrt()


def negligible_spread(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Columns whose spread is negligible against their scale: std < CONSTANT_REL_STD * max(1, |mean|).

    Features are stored as float32, often computed from larger float32 quantities (seconds into a
    piece, sample counts); a column that is constant in truth then carries rounding noise of about
    1e-7 of those quantities (~1e-5 for note times of a few minutes). Dividing by that noise turns
    any real variation on the test split into values of ~1e4. A spread under 1e-4 of the column's
    scale (at least 1: the unit scale standardised inputs have) is below what any feature of this
    pipeline means, so such columns are centred but not scaled.
    """
    return std < CONSTANT_REL_STD * torch.clamp(mean.abs(), min=1.0)


def finish_standardisation(moments: Moments, one_hot_inputs: bool | None, width: int, features: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) float32 from merged moments; std 1 for constant or single-row columns, and for feature
    columns (`features`: inputs, reconstruction targets) of negligible spread."""
    if one_hot_inputs or (one_hot_inputs is None and moments.one_hot and moments.count) or moments.mean is None:
        return torch.zeros(width), torch.ones(width)
    mean = moments.mean
    if moments.count < 2:
        return mean.float(), torch.ones(width)
    std = moments.std()
    constant = (std < 1e-8) | negligible_spread(mean, std) if features else std < 1e-8
    std = torch.where(constant, torch.ones_like(std), std)
    return mean.float(), std.float()


def standardisation(values: torch.Tensor, one_hot_inputs: bool | None = None, features: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std over all but the last axis, for the train split only.

    std is 1 where a column is constant, where a feature column's spread is negligible against its
    scale (`negligible_spread`; `features=False` for regression targets, whose small spreads are
    real), or where there is a single row, so normalising never divides by (almost) zero. One-hot
    values (`one_hot_inputs`, or detected when None) get mean 0 and std 1.
    """
    if one_hot_inputs:
        return torch.zeros(values.shape[-1]), torch.ones(values.shape[-1])
    moments = Moments(detect=one_hot_inputs is None)
    moments.add(values)
    return finish_standardisation(moments, one_hot_inputs, values.shape[-1], features)
