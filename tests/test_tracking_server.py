"""Server mode: a real `mlflow server` over HTTP (as on a cluster), read back through its REST API."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests

from seqpipe.evaluation.evaluate import evaluate, log_test_metrics
from seqpipe.models.loading import load_trained
from seqpipe.tracking.invocation import ENV_VAR, TAG
from seqpipe.tracking.setup import setup
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_task_data
from tests.test_training import job, make_file

EPOCHS = 4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log_path, timeout: float = 60.0) -> None:
    """Poll /health until it answers OK; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    pytest.fail(f"mlflow server not healthy after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate the server's whole process group (it starts uvicorn workers), then kill what is left."""
    for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def mlflow_server(tmp_path):
    """`mlflow server --workers 1` on a free port with a SQLite store and proxied artifacts; yields its URL."""
    port, log_path = free_port(), tmp_path / "server.log"
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path}/m.db", "--serve-artifacts",
           "--artifacts-destination", str(tmp_path / "art"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job-runner processes: not needed for runs
    with open(log_path, "wb") as log:  # a file, not a pipe that could fill and block the server
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def by_key(items: list[dict]) -> dict[str, str]:
    return {item["key"]: item["value"] for item in items}


@pytest.mark.slow
def test_train_and_evaluate_against_a_tracking_server(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "server-invocation")
    with mlflow_server(tmp_path) as url:
        info = setup(url, "exp", tmp_path / "results/mlflow/tracking.json", live=True)
        h5 = make_file(tmp_path / "d.h5", "regression")
        j = job("regression", "tcn", epochs=EPOCHS, early_stopping={"monitor": "val_loss", "mode": "min", "patience": 99, "min_delta": 0.0})
        run = train(j, h5, tmp_path / "run", info)
        model, _ = load_trained(tmp_path / "run/best.pt")
        result = evaluate(load_task_data(h5, j["task"]), Task.from_dict(j["task"]), model, "tcn", 0)
        log_test_metrics(run, info, result)
        assert run["mlflow_error"] is None

        api = f"{url}/api/2.0/mlflow"
        found = requests.post(f"{api}/runs/search", json={"experiment_ids": [info["experiment_id"]],
                                                          "filter": f"tags.`{TAG}` = 'server-invocation'"}, timeout=10).json()
        [got] = found["runs"]
        run_id = got["info"]["run_id"]
        assert run_id == run["mlflow_run_id"] and got["info"]["status"] == "FINISHED"
        assert got["info"]["run_name"] == "synthetic_regression/tcn/seed0"
        params, tags, metrics = by_key(got["data"]["params"]), by_key(got["data"]["tags"]), by_key(got["data"]["metrics"])
        assert params["model.arch"] == "tcn" and params["training.epochs"] == str(EPOCHS) and params["task.losses.0.name"] == "mse"
        assert {"task": "synthetic_regression", "model": "tcn", "seed": "0", TAG: "server-invocation"}.items() <= tags.items()
        assert {"git_commit", "config_hash", "dataset_sha256", "seqpipe_version"} <= set(tags)
        assert metrics["test_rmse"] == pytest.approx(result["metrics"]["rmse"])
        for name in ("train_loss", "val_loss", "train_rmse", "val_rmse"):
            history = requests.get(f"{api}/metrics/get-history", params={"run_id": run_id, "metric_key": name}, timeout=10).json()
            assert sorted(m["step"] for m in history["metrics"]) == list(range(EPOCHS)), name

        def listing(path: str) -> set[str]:
            answer = requests.get(f"{api}/artifacts/list", params={"run_id": run_id, "path": path}, timeout=10).json()
            return {f["path"] for f in answer.get("files", [])}

        assert listing("") == {"facts", "checkpoints", "figures", "evaluation"}
        assert listing("facts") == {"facts/scalars.csv", "facts/events.jsonl"} and listing("checkpoints") == {"checkpoints/best.pt"}
        assert listing("figures") == {"figures/loss.png"} and "evaluation/metrics.json" in listing("evaluation")

        outputs = requests.get(f"{api}/runs/get", params={"run_id": run_id}, timeout=10).json()["run"]["outputs"]["model_outputs"]
        assert [o["step"] for o in outputs] == [run["best_epoch"]]
        logged = requests.get(f"{api}/logged-models/{outputs[0]['model_id']}", timeout=10).json()["model"]["info"]
        assert logged["status"] == "LOGGED_MODEL_READY" and logged["source_run_id"] == run_id
        assert logged["experiment_id"] == info["experiment_id"]
        model_files = requests.get(f"{url}/api/2.0/mlflow-artifacts/artifacts", timeout=10,
                                   params={"path": logged["artifact_uri"].removeprefix("mlflow-artifacts:/")}).json()
        # the pyfunc model (seqpipe.tracking.model): weights and settings under artifacts/, no pickled data/
        assert {"MLmodel", "artifacts", "requirements.txt"} <= {f["path"] for f in model_files["files"]}
    assert not (tmp_path / "mlruns").exists()  # artifacts went through the server, not into a local ./mlruns
