"""MLflow with a real SQLite store: created once, one run per training job, test metrics added."""

from mlflow.tracking import MlflowClient

from seqpipe.evaluation.evaluate import evaluate, load_checkpoint, log_test_metrics
from seqpipe.tracking.run import flatten
from seqpipe.tracking.setup import setup
from seqpipe.training.data import load_task_data
from seqpipe.training.train import train
from tests.test_training import job, make_file


def test_flatten_params():
    flat = flatten({"a": {"b": 1, "c": [1, 2]}, "losses": [{"name": "mse"}]})
    assert flat == {"a.b": "1", "a.c": "[1, 2]", "losses.0.name": "mse"}


def test_setup_train_and_evaluate_log_one_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    info = setup(None, "exp", tmp_path / "results/mlflow/tracking.json")
    assert info["tracking_uri"] == f"sqlite:///{tmp_path}/results/mlflow/mlflow.db"
    assert setup(None, "exp", tmp_path / "results/mlflow/tracking.json")["experiment_id"] == info["experiment_id"]

    h5 = make_file(tmp_path / "d.h5", "classification")
    j = job("classification", "gru", epochs=3)
    run = train(j, h5, tmp_path / "run", info)
    model, _ = load_checkpoint(tmp_path / "run" / "best.pt")
    result = evaluate(load_task_data(h5, j["task"]), j["task"], model, "gru", 0)
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
