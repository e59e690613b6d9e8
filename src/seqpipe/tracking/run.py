"""Log one training job to MLflow without ever letting a tracking outage lose a trained model.

Every call goes through `_safely`: the first failure is logged as one warning and tracking is
switched off for the rest of the job (`error` says why); the job's files are written regardless.
A run carries params, per-epoch metrics, tags (with the invocation id, see `invocation.py`) and,
at the end (`log_outputs`), the facts, figures, the best checkpoint and the model.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from seqpipe.tracking.invocation import with_invocation
from seqpipe.tracking.setup import check_server

log = logging.getLogger("seqpipe.tracking")
FACTS = ("scalars.csv", "events.jsonl")
CHECKPOINT = "best.pt"


def flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    """Flatten nested dicts/lists into `a.b.0.c` keys with string values (MLflow params)."""
    if isinstance(obj, dict):
        out: dict[str, str] = {}
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        out = {}
        for i, value in enumerate(obj):
            out.update(flatten(value, f"{prefix}{i}."))
        return out
    return {prefix.rstrip("."): str(obj)}


def git_commit(cwd: str | Path | None = None) -> str:
    """The current git commit of the working directory, or 'unknown'."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def live_tracking(tracking: dict | None) -> dict | None:
    """What a job logs to while it runs: the tracking settings with `mlflow.live` (tracking.json's `live`), else
    None: the job then imports no MLflow, and the `track_runs` rule logs its run from its files afterwards."""
    return tracking if tracking and tracking.get("live") else None


def metric_name(task_type: str) -> str:
    """What a task's per-epoch `metric` measures, as named in MLflow (`val_accuracy`, `val_rmse`, ...)."""
    return {"classification": "accuracy"}.get(task_type, "rmse")


def rename_metrics(values: dict[str, float], measured: str | None) -> dict[str, float]:
    """`train_metric`/`val_metric` under the name of what they measure, so charts never mix accuracy and RMSE."""
    if not measured:
        return dict(values)
    return {(k[: -len("metric")] + measured if k.endswith("_metric") else k): v for k, v in values.items()}


def run_params(job: dict) -> dict:
    """MLflow params of a job: the task's settings, the model's own keys (seqpipe.config.load fills only the keys of
    the model's architecture) and the training settings."""
    return {"task": job.get("task", {}), "model": job.get("model", {}), "training": job.get("training", {}), "seed": job.get("seed")}


def dataset_input(task: dict, tags: dict[str, str]):
    """The task's HDF5 data as an MLflow dataset input (name, digest = the raw files' SHA-256, source path)."""
    from mlflow.entities import Dataset, DatasetInput, InputTag

    sets = task.get("features")
    sets = "+".join(sets) if isinstance(sets, list) else sets
    source = task.get("data_path") or f"features/{sets or 'unknown'}"
    name = sets or Path(str(source)).stem
    digest = str(tags.get("dataset_sha256", "unknown"))[:36]
    dataset = Dataset(name=name, digest=digest, source_type="local", source=json.dumps({"path": str(source)}),
                      schema=None, profile=json.dumps({"task_type": task.get("type"), "mapping": task.get("mapping")}))
    return DatasetInput(dataset, tags=[InputTag("mlflow.data.context", "training")])


class Tracker:
    """An MLflow run for one (task, model, seed), or a no-op after the first tracking failure.

    `tracking` is the content of tracking.json (tracking_uri, experiment_id, optional log_model).
    """

    def __init__(self, tracking: dict | None, run_id: str | None = None):
        self.client = None
        self.run_id = run_id
        self.tracking = tracking or {}
        self.tags: dict[str, str] = {}
        self.error: str | None = None
        self.measured: str | None = None  # what `*_metric` measures, from the job's task type
        if tracking:
            self._safely("connect", self._connect)

    def _connect(self) -> None:
        uri = self.tracking["tracking_uri"]
        if uri.startswith(("http://", "https://")):
            check_server(uri)
        from mlflow.tracking import MlflowClient

        if self.tracking.get("experiment_id") is None:  # the server was down at setup: create the experiment now
            from seqpipe.tracking.setup import ensure_experiment

            self.tracking = {**self.tracking, "experiment_id": ensure_experiment(uri, self.tracking.get("experiment", "seqpipe"))}
        self.client = MlflowClient(tracking_uri=uri)

    def _safely(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - tracking must never break training
            self.error = f"MLflow {what} failed ({type(err).__name__}: {err})"
            log.warning("%s; tracking is off for this job, files are still written", self.error)
            self.client = None
            return None

    @property
    def active(self) -> bool:
        return self.client is not None and self.run_id is not None

    def start(self, name: str, params: dict, tags: dict[str, str], start_time_ms: int | None = None,
              environ: Mapping[str, str] | None = None) -> str | None:
        """Create the run with `tags` plus the invocation id of `environ` (default: this process's environment).

        Returns the run id, or None when tracking is unavailable.
        """
        self.tags = with_invocation(tags, environ)
        self.measured = metric_name(params.get("task", {}).get("type", ""))
        if self.client is None:
            return None

        def create() -> str:
            run = self.client.create_run(self.tracking["experiment_id"], start_time=start_time_ms, run_name=name, tags=self.tags)
            return run.info.run_id

        self.run_id = self._safely("create run", create)
        if self.active:
            flat = sorted(flatten(run_params(params)).items())
            from mlflow.entities import Param

            self._safely("log params", lambda: self.client.log_batch(self.run_id, params=[Param(k, v[:6000]) for k, v in flat]))
            self._safely("log dataset", lambda: self.client.log_inputs(self.run_id, datasets=[dataset_input(params.get("task", {}), self.tags)]))
        return self.run_id

    def metrics(self, values: dict[str, float], step: int | None = None, timestamp_ms: int | None = None) -> None:
        """Log several metrics at one step in one request (timestamp: now unless given)."""
        if not self.active:
            return
        from mlflow.entities import Metric

        when = timestamp_ms or int(time.time() * 1000)
        values = rename_metrics(values, self.measured)
        batch = [Metric(k, float(v), when, step or 0) for k, v in sorted(values.items())]
        self._safely("log metrics", lambda: self.client.log_batch(self.run_id, metrics=batch))

    def artifacts(self, paths: list[str | Path], subdir: str | None = None) -> None:
        """Copy files into the run's artifacts."""
        if not self.active:
            return
        for path in paths:
            if Path(path).exists():
                self._safely(f"log artifact {path}", lambda p=path: self.client.log_artifact(self.run_id, str(p), subdir))

    def log_outputs(self, out_dir: str | Path) -> None:
        """Log a finished run folder: facts/, figures/, checkpoints/best.pt and the model (unless log_model is false)."""
        out_dir = Path(out_dir)
        self.artifacts([out_dir / name for name in FACTS], "facts")
        self.artifacts(sorted((out_dir / "figures").glob("*.png")), "figures")
        self.artifacts([out_dir / CHECKPOINT], "checkpoints")
        if self.active and self.tracking.get("log_model", True) and (out_dir / CHECKPOINT).exists():
            from seqpipe.tracking.model import log_model

            self._safely("log model", lambda: log_model(out_dir, self.client, self.tracking["experiment_id"], self.run_id, self.tags))

    def end(self, status: str = "FINISHED", end_time_ms: int | None = None) -> None:
        """Mark the run finished (or FAILED)."""
        if self.active:
            self._safely("end run", lambda: self.client.set_terminated(self.run_id, status, end_time_ms))
