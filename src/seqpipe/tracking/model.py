"""Log a run folder's model to MLflow as a pyfunc model that labels files by path (no pickle).

`log_model(run_dir, client, experiment_id, run_id, tags)` reads the run folder's files only
(model.pt: weights, model config, dimensions, names, task and the task file's provenance) and logs
- `weights.pt`: the state dict (`torch.save`; loaded with `torch.load(weights_only=True)`);
- `settings.json`: everything else the model needs, as JSON;
- the python model by models-from-code (`seqpipe/predict/mlflow_model.py`, which sets
  `seqpipe.predict.pyfunc.SeqpipeModel`): no cloudpickle anywhere;
with a signature: a `path` string column in, the window table of `seqpipe predict` out, and a
`table` parameter (`windows` or `items`). docs/predict.md shows its use.

Two MLflow 3 details shape this module: `log_model` talks to the *global* tracking URI and, without
an active run, creates its LoggedModel in the default experiment, so the LoggedModel is created here
with an explicit experiment and `Model.log` gets its `model_id` and `run_id` while the tracking URI is
set for the duration of the call only.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import warnings
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path

import torch

MODEL_NAME = "model"
FROM_CODE = "seqpipe.predict.mlflow_model"


def pip_requirements() -> list[str]:
    """Explicit, pinned requirements, so MLflow does not spend seconds inferring them (seqpipe itself: see docs/predict.md)."""
    from importlib.metadata import version

    return [f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={version('mlflow')}", f"pandas=={version('pandas')}"]


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


MODEL_FILES = ("model.pt", "best.pt")


def model_file(run_dir: str | Path) -> Path:
    """The run's model.pt (best.pt for older runs), with a clear error when neither exists."""
    run_dir = Path(run_dir)
    for name in MODEL_FILES:
        if (run_dir / name).is_file():
            return run_dir / name
    raise FileNotFoundError(f"{run_dir}: no model.pt or best.pt; expected a finished run folder results/runs/<task>/<model>/<seed> "
                            "(`snakemake results/runs/<task>/<model>/<seed>/model.pt` trains it)")


def feature_specs(provenance: dict | str | None) -> list[dict]:
    """The feature set settings in a task file's provenance (one set, or an assembled task's sources)."""
    if isinstance(provenance, str):
        provenance = json.loads(provenance or "{}")
    if not provenance:
        return []
    if "spec" in provenance:
        return [provenance["spec"]]
    sources = provenance.get("sources") or {}
    return [spec for name in sorted(sources) for spec in feature_specs(sources[name])]


def settings(run_dir: Path, state: dict) -> dict:
    """The JSON settings of a run's model: model config, dimensions, names, task and feature sets."""
    task = state.get("task") or {k: state["job"]["task"][k] for k in ("name", "type", "mapping")}
    config = state["model_config"] if "model_config" in state else state["job"]["model"]
    return {"model_config": config, "dims": state["dims"], "names": state.get("names") or {}, "task": task,
            "specs": feature_specs(state.get("provenance")), "name": "/".join(Path(run_dir).parts[-3:]),
            "epoch": int(state.get("epoch", 0)), "seqpipe_version": state.get("seqpipe_version", "")}


def signature(config: dict):
    """Paths in; the window table out (its columns for this run's task); the `table` parameter."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    from seqpipe.config.types import Task
    from seqpipe.tracking.prediction_columns import column_type, window_columns

    outputs = [ColSpec(column_type(c), c) for c in window_columns(Task.from_dict(config["task"]), config["names"])]
    return ModelSignature(inputs=Schema([ColSpec("string", "path")]), outputs=Schema(outputs),
                          params=ParamSchema([ParamSpec("table", "string", "windows")]))


def log_model(run_dir: str | Path, client, experiment_id: str, run_id: str, tags: dict[str, str] | None = None) -> str:
    """Log the model of run folder `run_dir` (its model.pt) to run `run_id` as a pyfunc model, linked at its
    best epoch; returns the model id. A best.pt path is taken as its folder."""
    from mlflow.models import Model

    import mlflow.pyfunc

    run_dir = Path(run_dir)
    run_dir = run_dir.parent if run_dir.is_file() else run_dir
    from seqpipe.models.loading import load_trained

    model, state = load_trained(model_file(run_dir))
    config = settings(run_dir, state)
    logged = client.create_logged_model(experiment_id, name=MODEL_NAME, source_run_id=run_id, tags=tags or {})
    with tempfile.TemporaryDirectory(prefix="seqpipe-model-") as scratch:
        weights, settings_file = Path(scratch) / "weights.pt", Path(scratch) / "settings.json"
        torch.save(model.state_dict(), weights)
        settings_file.write_text(json.dumps(config, sort_keys=True, indent=2), encoding="utf-8")
        with global_tracking_uri(client.tracking_uri), warnings.catch_warnings():
            # no input example on purpose: one would be a file path that MLflow predicts on while logging
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            info = Model.log(artifact_path=None, name=MODEL_NAME, flavor=mlflow.pyfunc, python_model=find_spec(FROM_CODE).origin,
                             artifacts={"weights": str(weights), "settings": str(settings_file)}, signature=signature(config),
                             pip_requirements=pip_requirements(), run_id=run_id, model_id=logged.model_id, step=config["epoch"])
    return info.model_id
