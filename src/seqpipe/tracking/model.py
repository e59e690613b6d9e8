"""Log a checkpoint's model as an MLflow model (`mlflow.pytorch.log_model`) into an existing run.

Two MLflow 3 details shape this module:
- `log_model` talks to the *global* tracking URI and, without an active run, creates its
  LoggedModel in the default experiment (id 0, artifacts under `./mlruns`), not the run's. So the
  LoggedModel is created here with an explicit experiment, and `log_model` gets its `model_id`
  while the tracking URI is set for the duration of the call only.
- The default serialisation (`pt2`, torch.export) needs an input example and took ~3 s for a small
  GRU on CPU; pickle takes ~0.3 s. The model classes live in `seqpipe.models`, so loading a logged
  model needs seqpipe installed; `best.pt` is logged beside it as the weights-only copy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch

MODEL_NAME = "model"


def load_model(checkpoint: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild the model of a checkpoint on the CPU (weights only: no pickled code runs): seqpipe.models.loading."""
    from seqpipe.models.loading import load_trained

    return load_trained(checkpoint)


def pip_requirements() -> list[str]:
    """Explicit, pinned requirements, so MLflow does not spend seconds inferring them."""
    from importlib.metadata import version

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={version('mlflow')}", f"cloudpickle=={version('cloudpickle')}"]


@contextlib.contextmanager
def global_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking URI at `uri` for the block, then restore it."""
    import mlflow

    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def log_model(client, experiment_id: str, run_id: str, checkpoint: str | Path, tags: dict[str, str]) -> str:
    """Log the model of `checkpoint` to run `run_id`, linked at its best epoch; returns the model id."""
    import mlflow.pytorch

    model, state = load_model(checkpoint)
    example, signature = input_example(model, state["dims"])
    logged = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id, tags=tags)
    with global_tracking_uri(client.tracking_uri):
        info = mlflow.pytorch.log_model(model, name=MODEL_NAME, model_id=logged.model_id, run_id=run_id, step=int(state["epoch"]),
                                        pip_requirements=pip_requirements(), serialization_format="pickle",
                                        signature=signature, input_example=example)
    return info.model_id


def input_example(model: torch.nn.Module, dims: dict):
    """A one-sample input of the model's shape [1, T, D] (float32) and the signature inferred from it and its output."""
    import numpy as np
    from mlflow.models import infer_signature

    example = np.zeros((1, int(dims["seq_len"]), int(dims["in_dim"])), dtype=np.float32)
    with torch.no_grad():
        output = model(torch.from_numpy(example))
    output = output[0] if isinstance(output, (tuple, list)) else output
    return example, infer_signature(example, output.detach().numpy())
