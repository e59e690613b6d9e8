"""Parallel training jobs logging into one SQLite store that the setup step created first.

The jobs are real `python -m seqpipe train` processes, started the way the train rule starts them.
"""

import json
import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from seqpipe.io import read_json
from seqpipe.tracking.invocation import ENV_VAR, TAG
from seqpipe.tracking.setup import setup
from tests.test_training import job, make_file

JOBS = 4
EPOCHS = 6
PER_EPOCH = ("train_loss", "val_loss", "train_accuracy", "val_accuracy", "epoch_time_s", "samples_per_s")


def start_job(tmp_path, h5, tracking_json, seed: int) -> subprocess.Popen:
    """One `seqpipe train` process; its output goes to a log file (not a pipe that could fill)."""
    j = job("classification", "gru", seed=seed, epochs=EPOCHS)
    cmd = [sys.executable, "-m", "seqpipe", "train", "--data", str(h5), "--job", json.dumps(j), "--tracking", str(tracking_json),
           "--out-dir", str(tmp_path / f"run{seed}")]
    env = {**os.environ, ENV_VAR: "one-invocation"}  # as Snakemake passes it to every job
    with open(tmp_path / f"train{seed}.log", "wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)


@pytest.mark.slow
def test_parallel_jobs_lose_no_metric(tmp_path):
    tracking_json = tmp_path / "results/mlflow/tracking.json"
    info = setup(f"sqlite:///{tmp_path}/results/mlflow/mlflow.db", "exp", tracking_json, live=True)
    h5 = make_file(tmp_path / "d.h5", "classification")
    procs = [start_job(tmp_path, h5, tracking_json, seed) for seed in range(JOBS)]
    codes = [proc.wait(timeout=120) for proc in procs]
    logs = "\n".join((tmp_path / f"train{seed}.log").read_text() for seed in range(JOBS))
    assert codes == [0] * JOBS, logs
    assert "failed" not in logs and "Traceback" not in logs, logs  # no tracking warning in any job

    runs = [read_json(tmp_path / f"run{seed}/run.json") for seed in range(JOBS)]
    assert all(r["mlflow_run_id"] and r["mlflow_error"] is None for r in runs), runs
    client = MlflowClient(info["tracking_uri"])
    got = client.search_runs([info["experiment_id"]])
    assert sorted(r.info.run_id for r in got) == sorted(r["mlflow_run_id"] for r in runs)
    assert all(r.info.status == "FINISHED" and r.data.tags[TAG] == "one-invocation" for r in got)
    for run in runs:
        for name in PER_EPOCH:
            steps = sorted(m.step for m in client.get_metric_history(run["mlflow_run_id"], name))
            assert steps == list(range(run["epochs_run"])), (run["name"], name, steps)
    assert len(client.search_logged_models([info["experiment_id"]])) == JOBS
