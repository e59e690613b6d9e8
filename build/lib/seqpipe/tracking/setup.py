"""Create the MLflow store and experiment once, before training jobs fan out.

Several processes creating a new SQLite store at once fail with schema-migration errors; this
rule runs first and alone, so later jobs only ever open an existing, migrated store.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from seqpipe.io import write_json

log = logging.getLogger("seqpipe.tracking")


def default_uri(out: Path) -> str:
    """SQLite store beside the tracking file (results/mlflow/mlflow.db), relative to the workdir."""
    return f"sqlite:///{(out.parent / 'mlflow.db').as_posix()}"


def setup(uri: str | None, experiment: str, out: str | Path, log_model: bool = True) -> dict:
    """Create (or open) the store and the experiment; write what jobs need to log into it.

    `log_model`: whether training jobs also log an MLflow model (`mlflow.pytorch.log_model`, ~0.3 s a job).
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    uri = uri or default_uri(out)
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        artifacts = None if uri.startswith("http") else (out.parent / "artifacts").resolve().as_uri()
        experiment_id = client.create_experiment(experiment, artifact_location=artifacts)
    else:
        experiment_id = found.experiment_id
    info = {"tracking_uri": uri, "experiment_id": experiment_id, "experiment": experiment, "mlflow_version": mlflow.__version__,
            "log_model": log_model}
    write_json(out, info)
    log.info("MLflow store %s, experiment %s (%s)", uri, experiment, experiment_id)
    return info


def main(argv: list[str] | None = None) -> None:
    """`seqpipe tracking-setup --uri URI --experiment NAME --out JSON [--no-log-model]`"""
    parser = argparse.ArgumentParser(prog="seqpipe tracking-setup", description=__doc__)
    parser.add_argument("--uri", default="", help="tracking URI; empty: SQLite beside --out")
    parser.add_argument("--experiment", default="seqpipe")
    parser.add_argument("--out", required=True)
    parser.add_argument("--log-model", action=argparse.BooleanOptionalAction, default=True,
                        help="also log each trained model as an MLflow model (default: yes)")
    args = parser.parse_args(argv)
    setup(args.uri or None, args.experiment, args.out, args.log_model)
