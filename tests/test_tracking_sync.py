"""Outage then sync: runs trained while MLflow was unreachable are logged later from their files."""

import json
import math

import torch

from mlflow.tracking import MlflowClient

from seqpipe.evaluation.evaluate import evaluate, log_test_metrics
from seqpipe.models.loading import load_trained
from seqpipe.io import read_json, write_json
from seqpipe.tracking.invocation import ENV_VAR, TAG
from seqpipe.tracking.setup import setup
from seqpipe.tracking.sync import LEDGER, SYNC_KEY_TAG, SYNCED_TAG, logged_run_id, main, pending
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_task_data
from tests.test_training import job, make_file

UNREACHABLE = {"tracking_uri": "http://127.0.0.1:9", "experiment_id": "1", "live": True}  # nothing listens on port 9


def train_and_evaluate(tmp_path, run_dir, tracking):
    """One training job and its evaluation, the way the train and evaluate rules run them."""
    h5 = make_file(tmp_path / "d.h5", "classification")
    j = job("classification", "gru", epochs=3)
    run = train(j, h5, run_dir, tracking)
    model, _ = load_trained(run_dir / "best.pt")
    result = evaluate(load_task_data(h5, j["task"]), Task.from_dict(j["task"]), model, "gru", 0)
    write_json(run_dir / "metrics.json", result)
    log_test_metrics(run, tracking, result)
    return run, result


def test_outage_then_sync_logs_the_run_once(tmp_path, monkeypatch, capsys):
    runs = tmp_path / "results/runs"
    run_dir = runs / "synthetic_classification/gru/0"
    monkeypatch.setenv(ENV_VAR, "invocation-of-training")
    run, result = train_and_evaluate(tmp_path, run_dir, UNREACHABLE)
    assert run["mlflow_run_id"] is None and "connect" in run["mlflow_error"]
    assert pending(runs) == [run_dir]
    assert main(["--runs", str(runs), "--dry-run"]) == 0 and capsys.readouterr().out.strip() == str(run_dir)

    monkeypatch.setenv(ENV_VAR, "invocation-of-sync")
    info = setup(f"sqlite:///{tmp_path}/m.db", "exp", tmp_path / "tracking.json", live=True)
    before, text = (run_dir / "run.json").stat().st_mtime_ns, (run_dir / "run.json").read_text()
    assert main(["--runs", str(runs), "--tracking", str(tmp_path / "tracking.json")]) == 0

    client = MlflowClient(info["tracking_uri"])
    [got] = client.search_runs([info["experiment_id"]])
    assert (run_dir / "run.json").read_text() == text and (run_dir / "run.json").stat().st_mtime_ns == before  # an output: untouched
    assert logged_run_id(runs, run_dir, tmp_path / LEDGER, info) == got.info.run_id
    assert got.info.status == "FINISHED" and got.info.run_name == "synthetic_classification/gru/seed0"
    assert got.data.params["model.hidden_size"] == "32" and got.data.params["training.epochs"] == "3"
    assert got.data.tags[TAG] == "invocation-of-training" and got.data.tags[SYNCED_TAG] == "true"
    assert got.data.tags["config_hash"] == run["config_hash"] and got.data.tags["git_commit"] == run["tags"]["git_commit"]
    assert got.data.metrics["test_accuracy"] == result["metrics"]["accuracy"]
    logged = torch.load(run_dir / "last.pt", weights_only=True)["history"]["metrics"]  # exactly what training logged
    assert {"train_loss", "val_loss", "lr"} <= set(logged[0][1])
    for name in sorted(logged[0][1]):
        history = sorted((m.step, m.value) for m in client.get_metric_history(got.info.run_id, name.replace("_metric", "_accuracy")))
        assert history == [(int(epoch), values[name]) for epoch, values in logged], name  # full precision, every term
    assert {"epoch_time_s", "samples_per_s", "train_accuracy", "val_accuracy"} <= set(got.data.metrics)
    assert not {"train_metric", "val_metric"} & set(got.data.metrics)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert got.info.start_time == int(events[0]["time"] * 1000)  # when it trained, not when it synced
    assert {a.path for a in client.list_artifacts(got.info.run_id, "facts")} == {"facts/scalars.csv", "facts/events.jsonl"}
    assert [a.path for a in client.list_artifacts(got.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    assert len(got.outputs.model_outputs) == 1

    # idempotent: nothing pending, a second sync logs nothing and leaves run.json alone
    assert pending(runs, info, tmp_path / LEDGER) == [] and main(["--runs", str(runs), "--tracking", str(tmp_path / "tracking.json")]) == 0
    assert len(client.search_runs([info["experiment_id"]])) == 1 and (run_dir / "run.json").read_text() == text

    # a sync that stopped after logging but before writing the ledger: the next one adopts its run
    (tmp_path / LEDGER).unlink()
    assert main(["--runs", str(runs), "--tracking", str(tmp_path / "tracking.json")]) == 0
    assert len(client.search_runs([info["experiment_id"]])) == 1
    assert logged_run_id(runs, run_dir, tmp_path / LEDGER, info) == got.info.run_id and got.data.tags[SYNC_KEY_TAG]


def test_partial_run_is_replaced_and_sync_fails_clearly_while_down(tmp_path):
    runs = tmp_path / "runs"
    info = setup(f"sqlite:///{tmp_path}/m.db", "exp", tmp_path / "tracking.json", live=True)
    run, _ = train_and_evaluate(tmp_path, runs / "a", info)
    client = MlflowClient(info["tracking_uri"])
    client.update_run(run["mlflow_run_id"], "RUNNING")  # as if tracking had failed part-way through the job
    write_json(runs / "a/run.json", {**run, "mlflow_error": "MLflow log metrics failed (ConnectionError: ...)"})

    write_json(tmp_path / "down.json", UNREACHABLE)
    assert main(["--runs", str(runs), "--tracking", str(tmp_path / "down.json")]) == 1
    assert read_json(runs / "a/run.json")["mlflow_run_id"] == run["mlflow_run_id"]  # unchanged while down

    assert main(["--runs", str(runs), "--tracking", str(tmp_path / "tracking.json")]) == 0
    new_id = logged_run_id(runs, runs / "a", tmp_path / LEDGER, info)
    assert new_id != run["mlflow_run_id"] and client.get_run(run["mlflow_run_id"]).info.lifecycle_stage == "deleted"
    [live] = client.search_runs([info["experiment_id"]])
    assert live.info.run_id == new_id
    for name in ("train_loss", "val_loss", "val_metric"):  # files keep 6 significant digits of what was logged live
        old = sorted((m.step, m.value) for m in client.get_metric_history(run["mlflow_run_id"], name))
        new = sorted((m.step, m.value) for m in client.get_metric_history(new_id, name))
        assert [s for s, _ in old] == [s for s, _ in new]
        assert all(math.isclose(a, b, rel_tol=1e-5) for (_, a), (_, b) in zip(old, new))
    assert live.data.metrics["test_accuracy"] == client.get_run(run["mlflow_run_id"]).data.metrics["test_accuracy"]


def test_sync_reports_missing_inputs(tmp_path):
    assert main(["--runs", str(tmp_path / "nope"), "--tracking", str(tmp_path / "t.json")]) == 1
    (tmp_path / "runs").mkdir()
    assert main(["--runs", str(tmp_path / "runs"), "--tracking", str(tmp_path / "t.json")]) == 1
