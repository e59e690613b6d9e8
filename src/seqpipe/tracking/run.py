"""Log one training job to MLflow without ever letting a tracking outage lose a trained model.

Every call goes through `_safely`: the first failure is logged as one warning and tracking is
switched off for the rest of the job; the job's files are written regardless.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("seqpipe.tracking")


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


def check_server(uri: str, timeout: float = 5.0) -> None:
    """Fail fast when a tracking server does not answer, instead of MLflow's minutes of retries."""
    import requests

    response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    response.raise_for_status()


class Tracker:
    """An MLflow run for one (task, model, seed), or a no-op after the first tracking failure."""

    def __init__(self, tracking: dict | None, run_id: str | None = None):
        self.client = None
        self.run_id = run_id
        self.tracking = tracking or {}
        if tracking:
            self._safely("connect", self._connect)

    def _connect(self) -> None:
        uri = self.tracking["tracking_uri"]
        if uri.startswith(("http://", "https://")):
            check_server(uri)
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)

    def _safely(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - tracking must never break training
            log.warning("MLflow %s failed (%s: %s); tracking is off for this job, files are still written", what, type(err).__name__, err)
            self.client = None
            return None

    @property
    def active(self) -> bool:
        return self.client is not None and self.run_id is not None

    def start(self, name: str, params: dict, tags: dict[str, str]) -> str | None:
        """Create the run; returns its id (None when tracking is unavailable)."""
        if self.client is None:
            return None

        def create() -> str:
            run = self.client.create_run(self.tracking["experiment_id"], run_name=name, tags=tags)
            return run.info.run_id

        self.run_id = self._safely("create run", create)
        if self.active:
            flat = sorted(flatten(params).items())
            from mlflow.entities import Param

            self._safely("log params", lambda: self.client.log_batch(self.run_id, params=[Param(k, v[:6000]) for k, v in flat]))
        return self.run_id

    def metrics(self, values: dict[str, float], step: int | None = None) -> None:
        """Log several metrics at one step in one request."""
        if not self.active:
            return
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in sorted(values.items())]
        self._safely("log metrics", lambda: self.client.log_batch(self.run_id, metrics=batch))

    def artifacts(self, paths: list[str | Path], subdir: str | None = None) -> None:
        """Copy files into the run's artifacts."""
        if not self.active:
            return
        for path in paths:
            if Path(path).exists():
                self._safely(f"log artifact {path}", lambda p=path: self.client.log_artifact(self.run_id, str(p), subdir))

    def end(self, status: str = "FINISHED") -> None:
        """Mark the run finished (or FAILED)."""
        if self.active:
            self._safely("end run", lambda: self.client.set_terminated(self.run_id, status))
