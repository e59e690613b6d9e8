"""Create the MLflow store and experiment once, before training jobs fan out.

Several processes creating a new SQLite store at once fail with schema-migration errors; this
rule runs first and alone, so later jobs only ever open an existing, migrated store.

A tracking server that does not answer costs seconds here, not MLflow's minutes of retries: the
tracking file then records `available: false` and why, training runs regardless (files first), and
`seqpipe sync-mlflow` logs the runs once the server answers (it creates the experiment if needed).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seqpipe.io import write_json

log = logging.getLogger("seqpipe.tracking")
# Opens the experiment in the MLflow UI's model-training view instead of the GenAI one.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def check_server(uri: str, timeout: float = 3.0) -> None:
    """Fail fast when a tracking server does not answer, instead of MLflow's minutes of retries."""
    import requests

    response = requests.get(uri.rstrip("/") + "/health", timeout=timeout)
    response.raise_for_status()


def default_uri(out: Path) -> str:
    """SQLite store beside the tracking file (results/mlflow/mlflow.db), relative to the workdir."""
    return f"sqlite:///{(out.parent / 'mlflow.db').as_posix()}"


def ensure_experiment(uri: str, experiment: str, artifacts: str | None = None) -> str:
    """Create (or find) `experiment` in the store at `uri`, tagged as a model-training experiment; returns its id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        experiment_id = client.create_experiment(experiment, artifact_location=artifacts, tags=EXPERIMENT_KIND)
    else:
        experiment_id = found.experiment_id
        if found.tags.get("mlflow.experimentKind") != EXPERIMENT_KIND["mlflow.experimentKind"]:
            client.set_experiment_tag(experiment_id, *next(iter(EXPERIMENT_KIND.items())))
    return experiment_id


def setup(uri: str | None, experiment: str, out: str | Path, log_model: bool = True, live: bool = False) -> dict:
    """Create (or open) the store and the experiment; write what jobs need to log into it.

    `log_model`: whether a run's MLflow model is logged with it (a pyfunc model that labels files by path:
    seqpipe.tracking.model). `live`: whether training jobs log every epoch to the store themselves
    (`mlflow.live`); otherwise they import no MLflow and the `track_runs` rule logs each run from its files
    after evaluation (`seqpipe sync-mlflow`).
    A server that does not answer is recorded (`available: false`), not raised: training goes on.
    """
    import mlflow

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    uri = uri or default_uri(out)
    info = {"tracking_uri": uri, "experiment": experiment, "mlflow_version": mlflow.__version__, "log_model": log_model,
            "live": live}
    try:
        if uri.startswith(("http://", "https://")):
            check_server(uri)
            artifacts = None
        else:
            artifacts = (out.parent / "artifacts").resolve().as_uri()
        info.update(experiment_id=ensure_experiment(uri, experiment, artifacts), available=True)
    except Exception as err:  # noqa: BLE001 - an outage must not stop training: recorded, synced later
        info.update(experiment_id=None, available=False, error=f"{type(err).__name__}: {err}")
        log.warning("MLflow at %s is unreachable (%s): training goes on and writes its files; run "
                    "`seqpipe sync-mlflow` once it answers", uri, info["error"])
    write_json(out, info)
    if info["available"]:
        log.info("MLflow store %s, experiment %s (%s)", uri, experiment, info["experiment_id"])
    return info


def main(argv: list[str] | None = None) -> None:
    """`seqpipe tracking-setup --uri URI --experiment NAME --out JSON [--no-log-model]`"""
    parser = argparse.ArgumentParser(
        prog="seqpipe tracking-setup",
        description="Create the MLflow store (SQLite by default) and the experiment that every training job logs into. "
        "An unreachable server is recorded, not fatal: runs are logged later by `seqpipe sync-mlflow`.")
    parser.add_argument("--uri", default="", help="MLflow tracking URI (http://host:port or sqlite:///path); "
                        "empty: a SQLite store beside --out")
    parser.add_argument("--experiment", default="seqpipe", help="experiment name (default: seqpipe)")
    parser.add_argument("--out", required=True, help="tracking file to write (results/mlflow/tracking.json)")
    parser.add_argument("--log-model", action=argparse.BooleanOptionalAction, default=True,
                        help="also log each trained model as an MLflow model (default: yes)")
    parser.add_argument("--live", action=argparse.BooleanOptionalAction, default=False,
                        help="training jobs log every epoch to MLflow while they run (default: no; runs are logged from "
                        "their files after evaluation)")
    args = parser.parse_args(argv)
    setup(args.uri or None, args.experiment, args.out, args.log_model, args.live)
