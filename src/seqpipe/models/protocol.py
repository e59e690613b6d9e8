"""The base of networks that report auxiliary losses to the training loop (see seqpipe.models).

`aux_losses` holds the latest training forward's weighted loss terms, tensors inside the autograd
graph; such tensors cannot be deep-copied, so copies and pickles of a model (copy.deepcopy,
torch.save of the whole module) leave out these per-batch values.
"""

from __future__ import annotations

import torch
from torch import nn

TRANSIENT = {"aux_losses": dict, "aux_metrics": dict, "domains": lambda: None}  # per-batch attributes -> what a copy gets


class AuxLossModule(nn.Module):
    """nn.Module with `aux_losses` (scalar tensors, already weighted) and `aux_metrics` (values to log: Python
    numbers, or 0-dim tensors left on the device, which the training loop reads once per epoch)."""

    def __init__(self):
        super().__init__()
        self.aux_losses: dict[str, torch.Tensor] = {}
        self.aux_metrics: dict[str, float | torch.Tensor] = {}

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        for key, fresh in TRANSIENT.items():
            if key in state:
                state[key] = fresh()
        return state
