"""Tracking outages and what a run carries: setup never blocks training, evaluation keeps its metrics for sync,
runs are named, typed and described so the MLflow UI explains them, and a moved store finds its artifacts."""

import shutil
import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from seqpipe.config.load import load_config, train_job
from seqpipe.evaluation.evaluate import evaluate, log_test_metrics
from seqpipe.models.loading import load_trained
from seqpipe.io import read_json, write_json
from seqpipe.tracking.relocate import relocate
from seqpipe.tracking.setup import setup
from seqpipe.tracking.sync import EVAL_PENDING, main, pending
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_task_data
from tests.test_training import job, make_file

REPO = Path(__file__).resolve().parents[1]
DOWN = "http://127.0.0.1:9"  # nothing listens on port 9


def test_setup_with_a_down_server_records_it_and_training_still_runs(tmp_path):
    info = setup(DOWN, "exp", tmp_path / "tracking.json", live=True)
    assert info["available"] is False and info["experiment_id"] is None and "ConnectionError" in info["error"]
    assert read_json(tmp_path / "tracking.json") == info
    h5 = make_file(tmp_path / "d.h5", "classification")
    run = train(job("classification", "mlp", epochs=2), h5, tmp_path / "run", info)
    assert run["mlflow_run_id"] is None and run["mlflow_error"]
    assert (tmp_path / "run" / "best.pt").exists() and pending(tmp_path) == [tmp_path / "run"]

    # the server answers again: sync creates the experiment the setup could not, and logs the run
    good = setup(f"sqlite:///{tmp_path}/m.db", "exp", tmp_path / "good.json", live=True)
    assert main(["--runs", str(tmp_path), "--tracking", str(tmp_path / "good.json")]) == 0
    assert len(MlflowClient(good["tracking_uri"]).search_runs([good["experiment_id"]])) == 1


def test_setup_cli_with_a_down_server_exits_zero(tmp_path):
    out = subprocess.run([sys.executable, "-m", "seqpipe", "tracking-setup", f"--uri={DOWN}", "--out", str(tmp_path / "t.json")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "unreachable" in out.stderr and "sync-mlflow" in out.stderr


def test_evaluation_outage_is_kept_for_sync(tmp_path):
    info = setup(f"sqlite:///{tmp_path}/m.db", "exp", tmp_path / "tracking.json", live=True)
    h5 = make_file(tmp_path / "d.h5", "classification")
    j = job("classification", "gru", epochs=2)
    run_dir = tmp_path / "runs" / "t" / "gru" / "0"
    run = train(j, h5, run_dir, info)
    model, _ = load_trained(run_dir / "best.pt")
    result = evaluate(load_task_data(h5, j["task"]), Task.from_dict(j["task"]), model, "gru", 0)
    write_json(run_dir / "metrics.json", result)

    down = {**info, "tracking_uri": DOWN}  # the store goes away while evaluation runs
    assert log_test_metrics(run, down, result, run_dir) is False
    assert (run_dir / EVAL_PENDING).exists() and pending(tmp_path / "runs") == [run_dir]

    assert main(["--runs", str(tmp_path / "runs"), "--tracking", str(tmp_path / "tracking.json")]) == 0
    assert not (run_dir / EVAL_PENDING).exists() and pending(tmp_path / "runs") == []
    client = MlflowClient(info["tracking_uri"])
    got = client.get_run(run["mlflow_run_id"])
    assert got.data.metrics["test_accuracy"] == result["metrics"]["accuracy"]
    artifacts = {a.path for a in client.list_artifacts(got.info.run_id, "evaluation")}
    assert {"evaluation/metrics.json", "evaluation/per_class.csv", "evaluation/confusion_matrix.png"} <= artifacts


def test_run_explains_itself(tmp_path):
    info = setup(f"sqlite:///{tmp_path}/m.db", "exp", tmp_path / "tracking.json", live=True)
    client = MlflowClient(info["tracking_uri"])
    assert client.get_experiment(info["experiment_id"]).tags["mlflow.experimentKind"] == "custom_model_development"
    h5 = make_file(tmp_path / "d.h5", "regression")
    j = job("regression", "gru", epochs=2)
    j["model"] = train_job(load_config(REPO / "config.yaml"), "deam_emotion", "gru", 0)["model"]  # as a rule passes it
    run = train(j, h5, tmp_path / "run", info)
    got = client.get_run(run["mlflow_run_id"])
    params = got.data.params
    assert params["model.hidden_size"] == str(j["model"]["hidden_size"]) and params["model.arch"] == "gru"
    assert not {"model.codebook_size", "model.diffusion_steps", "model.n_heads"} & set(params)  # other archs' keys
    assert {"val_rmse", "train_rmse"} <= set(got.data.metrics) and "val_metric" not in got.data.metrics
    [dataset] = got.inputs.dataset_inputs
    assert dataset.dataset.digest and dataset.tags[0].value == "training"
    [model] = got.outputs.model_outputs
    logged = client.get_logged_model(model.model_id)
    import mlflow

    from seqpipe.tracking.model import global_tracking_uri

    with global_tracking_uri(info["tracking_uri"]):  # restored after: no global state leaks into later tests
        meta = mlflow.models.get_model_info(logged.model_uri)
    # the pyfunc model labels files by path (seqpipe.tracking.model): its signature says so
    assert meta.signature is not None and meta.signature.inputs.input_names() == ["path"]


def test_moved_store_finds_its_artifacts_after_relocate(tmp_path):
    old = tmp_path / "a" / "results" / "mlflow"
    info = setup(f"sqlite:///{old}/mlflow.db", "exp", old / "tracking.json", live=True)
    client = MlflowClient(info["tracking_uri"])
    run = client.create_run(info["experiment_id"])
    client.log_text(run.info.run_id, "hello", "note.txt")
    new = tmp_path / "b" / "results" / "mlflow"
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    assert relocate(new / "mlflow.db", new / "artifacts") >= 2
    moved = MlflowClient(f"sqlite:///{new}/mlflow.db")
    path = moved.download_artifacts(run.info.run_id, "note.txt", str(tmp_path))
    assert open(path).read() == "hello"
    assert relocate(new / "mlflow.db", new / "artifacts") == 0  # idempotent


def test_test_metrics_carry_intervals_and_piece_level():
    from seqpipe.tracking.sync import evaluation_metrics

    result = {"metrics": {"accuracy": 0.5, "macro_f1": 0.4}, "intervals": {"accuracy": [0.4, 0.6]},
              "piece_level": {"metrics": {"accuracy": 0.75}, "intervals": {"accuracy": [0.5, 1.0]}}}
    assert evaluation_metrics(result) == {"test_accuracy": 0.5, "test_accuracy_ci_low": 0.4, "test_accuracy_ci_high": 0.6,
                                    "test_macro_f1": 0.4, "test_piece_accuracy": 0.75, "test_piece_accuracy_ci_low": 0.5,
                                    "test_piece_accuracy_ci_high": 1.0}
