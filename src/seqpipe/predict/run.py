"""A trained run as a predictor: its model (from model.pt, weights only), task, names and feature settings.

The feature settings are the `provenance` of the task's HDF5 file, which training copies into
model.pt; a run trained before that reads them from the task or feature file given as `data`.
Predictions are those of evaluation (`seqpipe.evaluation.evaluate.predict_batch`): class
probabilities, or values in the targets' units; a reconstruction gives each window's error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from seqpipe.config.types import Task
from seqpipe.taskfile.hdf5 import read_attrs
from seqpipe.evaluation.evaluate import predict_batch
from seqpipe.models import Normalised
from seqpipe.models.loading import load_trained
from seqpipe.tracking.model import feature_specs, model_file

@dataclass
class Predictor:
    """What predicting with one run needs."""

    model: Normalised
    task: Task  # name, type, mapping (what model.pt records of it)
    names: dict  # class_names / target_names / feature_names
    dims: dict  # build_model's keyword arguments (seq_len, in_dim, ...)
    specs: list[dict] = field(default_factory=list)  # the feature set(s) the task was built from
    name: str = ""  # <task>/<model>/<seed>

    @property
    def spec(self) -> dict:
        """The feature set raw files go through (a task on several sets: the first; they share a kind)."""
        if not self.specs:
            raise ValueError(f"run {self.name}: its feature settings are unknown (model.pt has no provenance: trained before "
                             "`seqpipe predict` existed); pass --data with the task's HDF5 file (results/tasks/<task>.h5 or "
                             "results/features/<dataset>/<set>.h5), or retrain")
        return self.specs[0]

    @property
    def dataset(self) -> str | None:
        """The dataset the run's features came from (a folder in its layout is read through its metadata)."""
        return self.specs[0].get("dataset") if self.specs else None

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """A batch's predictions [B, ...]: class probabilities, values, or (reconstruction) per-window mean squared error."""
        out = predict_batch(self.model, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), self.task.type.value, probabilities=True)
        if self.task.is_reconstruction:
            err = np.asarray(x, dtype=np.float64) - np.asarray(out, dtype=np.float64)
            return (err.reshape(len(err), -1) ** 2).mean(1)
        return out


def load_run(run_dir: str | Path, data: str | Path | None = None) -> Predictor:
    """The predictor of run folder `run_dir`; `data` (a task or feature HDF5 file) supplies feature settings model.pt lacks."""
    run_dir = Path(run_dir)
    model, state = load_trained(model_file(run_dir))
    task = state.get("task") or {k: state["job"]["task"][k] for k in ("name", "type", "mapping")}
    specs = feature_specs(state.get("provenance"))
    if data is not None:
        specs = feature_specs(read_attrs(data).get("provenance"))
    name = "/".join(run_dir.parts[-3:])
    return Predictor(model, Task.from_dict(task), dict(state.get("names") or {}), dict(state["dims"]), specs, name)
