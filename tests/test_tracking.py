"""MLflow with a real SQLite store: created once, one run per training job, test metrics added."""

from datetime import datetime, timezone

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch
from mlflow.tracking import MlflowClient

from seqpipe.evaluation.evaluate import evaluate, log_test_metrics
from seqpipe.models.loading import load_trained
from seqpipe.io import read_json
from seqpipe.tracking.invocation import ENV_VAR, TAG, ensure_invocation, invocation_id, new_invocation_id, with_invocation
from seqpipe.tracking.run import flatten
from seqpipe.tracking.setup import setup
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_task_data
from tests.test_training import job, make_file


def test_flatten_params():
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "losses": [{"name": "mse"}]})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "losses.0.name": "mse"}


def test_invocation_id_from_environment():
    assert new_invocation_id(datetime(2025, 1, 31, 12, 0, 5, tzinfo=timezone.utc)).startswith("20250131T120005Z-")
    assert new_invocation_id() != new_invocation_id()
    assert invocation_id({ENV_VAR: " abc "}) == "abc" and invocation_id({ENV_VAR: ""}) is None and invocation_id({}) is None
    assert with_invocation({"a": "1"}, {ENV_VAR: "x"}) == {"a": "1", TAG: "x"}
    assert with_invocation({TAG: "kept"}, {ENV_VAR: "x"}) == {TAG: "kept"}  # a recorded id wins (sync)
    assert with_invocation({"a": "1"}, {}) == {"a": "1"}
    environ = {}
    first = ensure_invocation(environ)
    assert environ == {ENV_VAR: first} and ensure_invocation(environ) == first  # set once, then kept
    assert ensure_invocation({ENV_VAR: "named-by-user"}) == "named-by-user"


def test_setup_train_and_evaluate_log_one_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(ENV_VAR, "20250131T120005Z-abcdef")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    info = setup(None, "exp", tmp_path / "results/mlflow/tracking.json", live=True)
    assert info["tracking_uri"] == f"sqlite:///{tmp_path}/results/mlflow/mlflow.db"
    assert setup(None, "exp", tmp_path / "results/mlflow/tracking.json")["experiment_id"] == info["experiment_id"]

    h5 = make_file(tmp_path / "d.h5", "classification")
    j = job("classification", "gru", epochs=3)
    run = train(j, h5, tmp_path / "run", info)
    model, _ = load_trained(tmp_path / "run" / "best.pt")
    result = evaluate(load_task_data(h5, j["task"]), Task.from_dict(j["task"]), model, "gru", 0)
    log_test_metrics(run, info, result)

    client = MlflowClient(info["tracking_uri"])
    runs = client.search_runs([info["experiment_id"]])
    assert len(runs) == 1
    got = runs[0]
    assert got.info.run_name == "synthetic_classification/gru/seed0" and got.info.status == "FINISHED"
    assert got.data.params["model.hidden_size"] == "32" and got.data.params["training.optimizer.lr"] == "0.01"
    assert {"task", "model", "seed", "git_commit", "config_hash", "dataset_sha256", "seqpipe_version"} <= set(
        got.data.tags
    )
    assert got.data.metrics["test_accuracy"] == result["metrics"]["accuracy"]
    assert len(client.get_metric_history(got.info.run_id, "val_loss")) == 3
    artifacts = {a.path for a in client.list_artifacts(got.info.run_id, "facts")}
    assert artifacts == {"facts/scalars.csv", "facts/events.jsonl"}
    assert [a.path for a in client.list_artifacts(got.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    assert got.data.tags[TAG] == "20250131T120005Z-abcdef" and read_json(tmp_path / "run/run.json")["tags"][TAG] == got.data.tags[TAG]

    # the model: a LoggedModel in the run's experiment (not MLflow's default one), linked at the best epoch
    [output] = got.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert (logged.experiment_id, logged.source_run_id, str(logged.status)) == (info["experiment_id"], got.info.run_id, "READY")
    assert output.step == run["best_epoch"] and logged.tags[TAG] == got.data.tags[TAG]
    x = load_task_data(h5, j["task"]).x["test"]
    with torch.no_grad():  # the pyfunc model (seqpipe.tracking.model) labels files by path: here the task file itself
        expected = torch.softmax(model(x).double(), -1).float().numpy()
    table = mlflow.pyfunc.load_model(logged.artifact_location).predict(pd.DataFrame({"path": [str(h5)]}))
    assert np.abs(table[["a", "b", "c"]].to_numpy()[-len(x):] - expected).max() < 1e-6
    assert not (tmp_path / "mlruns").exists() and not mlflow.is_tracking_uri_set()  # global URI restored


def test_log_model_can_be_switched_off(tmp_path):
    info = setup(f"sqlite:///{tmp_path}/m.db", "exp", tmp_path / "tracking.json", log_model=False, live=True)
    assert read_json(tmp_path / "tracking.json")["log_model"] is False
    run = train(job("regression", "mlp", epochs=2), make_file(tmp_path / "d.h5", "regression"), tmp_path / "run", info)
    got = MlflowClient(info["tracking_uri"]).get_run(run["mlflow_run_id"])
    assert got.info.status == "FINISHED" and not got.outputs.model_outputs and run["mlflow_error"] is None
