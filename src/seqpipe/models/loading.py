"""The one way to load a trained model: rebuild it from a checkpoint's settings and weights.

A checkpoint (`best.pt`, `last.pt`, written by seqpipe.training.checkpoint, or a run's `model.pt`) is a plain dict read with
`torch.load(..., weights_only=True)`: no pickled code runs. Evaluation, MLflow model logging and
prediction all load through `load_trained`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from seqpipe.models import Normalised, build_model


def load_trained(checkpoint: str | Path) -> tuple[Normalised, dict]:
    """(the model in eval mode on the CPU, the checkpoint dict) from a checkpoint file."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    config = state["model_config"] if "model_config" in state else state["job"]["model"]
    model = build_model(config, **state["dims"])
    model.load_state_dict(state["model"])
    model.eval()
    return model, state
