"""Issue 25 item 1: jobs stay off MLflow by default; the track_runs rule logs their runs from the files afterwards,
once each, and a tracking outage costs nothing. The run cache runs a `seqpipe` command in its own process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from seqpipe.io import read_json, write_json
from seqpipe.tracking.setup import setup
from seqpipe.tracking.sync import ledger_path, logged_run_id
from tests.test_training import job, make_file

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DOWN = "http://127.0.0.1:9"  # nothing listens on port 9
# runs `seqpipe ARGS...` and prints, last, whether MLflow was imported in that process
PROBE = ("import sys\nfrom seqpipe.cli import main\ntry:\n    main(sys.argv[1:])\nfinally:\n"
         "    print('MLFLOW-IMPORTED' if 'mlflow' in sys.modules else 'NO-MLFLOW')\n")


def seqpipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def train_and_evaluate(tmp_path: Path, run_dir: Path, tracking: Path) -> subprocess.CompletedProcess:
    """`seqpipe train` then `seqpipe evaluate`, as the rules call them; returns the evaluation's process."""
    h5 = make_file(tmp_path / "d.h5", "classification")
    j = job("classification", "mlp", epochs=2)
    trained = seqpipe("train", "--data", str(h5), "--job", json.dumps(j), "--tracking", str(tracking), "--out-dir", str(run_dir),
                      cwd=tmp_path)
    assert trained.stdout.strip().endswith("NO-MLFLOW"), trained.stdout
    return seqpipe("evaluate", "--data", str(h5), "--task", json.dumps(j["task"]), "--checkpoint", str(run_dir / "best.pt"),
                   "--run", str(run_dir / "run.json"), "--tracking", str(tracking), "--seed", "0",
                   "--out", str(run_dir / "metrics.json"), cwd=tmp_path)


def test_jobs_import_no_mlflow_and_the_sync_logs_each_run_once(tmp_path):
    tracking = tmp_path / "results/mlflow/tracking.json"
    info = setup(f"sqlite:///{tmp_path}/results/mlflow/mlflow.db", "exp", tracking)
    runs, record = tmp_path / "results/runs", tmp_path / "results/mlflow/logged.json"
    evaluated = train_and_evaluate(tmp_path, runs / "t/mlp/0", tracking)
    assert evaluated.stdout.strip().endswith("NO-MLFLOW"), evaluated.stdout
    assert read_json(runs / "t/mlp/0/run.json")["mlflow_run_id"] is None  # not logged by the job

    args = ("sync-mlflow", "--runs", str(runs), "--tracking", str(tracking), "--record", str(record))
    seqpipe(*args, cwd=tmp_path)
    client = MlflowClient(info["tracking_uri"])
    [got] = client.search_runs([info["experiment_id"]])
    metrics = read_json(runs / "t/mlp/0/metrics.json")["metrics"]
    assert got.info.status == "FINISHED" and got.data.metrics["test_accuracy"] == metrics["accuracy"]
    assert len(client.get_metric_history(got.info.run_id, "val_loss")) == 2
    assert logged_run_id(runs, runs / "t/mlp/0", ledger_path(tracking)) == got.info.run_id
    assert read_json(record) == {"logged": 1, "pending": [], "errors": []}

    again = seqpipe(*args, cwd=tmp_path)  # idempotent: nothing pending, no MLflow imported
    assert again.stdout.strip().endswith("NO-MLFLOW")
    assert len(client.search_runs([info["experiment_id"]])) == 1 and read_json(record)["logged"] == 0


def test_a_run_restored_from_the_run_cache_is_not_logged_again(tmp_path):
    """sync-mlflow writes no training output: run.json keeps its bytes, and the same run.json back in its folder (as the
    run cache restores it) counts as logged. The ledger holds each run id by folder and run.json identity, per store."""
    tracking = tmp_path / "results/mlflow/tracking.json"
    info = setup(f"sqlite:///{tmp_path}/results/mlflow/mlflow.db", "exp", tracking)
    runs, record, run_dir = tmp_path / "results/runs", tmp_path / "results/mlflow/logged.json", tmp_path / "results/runs/t/mlp/0"
    train_and_evaluate(tmp_path, run_dir, tracking)
    saved = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    args = ("sync-mlflow", "--runs", str(runs), "--tracking", str(tracking), "--record", str(record))
    seqpipe(*args, cwd=tmp_path)
    assert (run_dir / "run.json").read_bytes() == saved["run.json"]  # a training output: untouched
    client = MlflowClient(info["tracking_uri"])
    [got] = client.search_runs([info["experiment_id"]])
    assert logged_run_id(runs, run_dir, ledger_path(tracking)) == got.info.run_id

    shutil.rmtree(run_dir)  # Snakemake deletes the outputs of a job it reruns; the run cache restores them
    run_dir.mkdir(parents=True)
    for name, data in saved.items():
        (run_dir / name).write_bytes(data)
    again = seqpipe(*args, cwd=tmp_path)
    assert again.stdout.strip().endswith("NO-MLFLOW") and read_json(record)["logged"] == 0
    assert len(client.search_runs([info["experiment_id"]])) == 1

    other = setup(f"sqlite:///{tmp_path}/results/mlflow/mlflow.db", "exp2", tmp_path / "results/mlflow/tracking2.json")
    seqpipe("sync-mlflow", "--runs", str(runs), "--tracking", str(tmp_path / "results/mlflow/tracking2.json"), "--record",
            str(record), "--ledger", str(ledger_path(tracking)), cwd=tmp_path)  # a new experiment gets every run
    assert read_json(record)["logged"] == 1 and len(client.search_runs([other["experiment_id"]])) == 1
    # a new training of the folder (its own run.json and event times) is logged anew
    write_json(run_dir / "run.json", {**read_json(run_dir / "run.json"), "config_hash": "retrained"})
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    (run_dir / "events.jsonl").write_text("".join(json.dumps({**e, "time": e["time"] + 60}) + "\n" for e in events))
    seqpipe(*args, cwd=tmp_path)
    assert read_json(record)["logged"] == 1 and len(client.search_runs([info["experiment_id"]])) == 2


def test_an_outage_leaves_the_runs_pending_and_exits_zero(tmp_path):
    down = tmp_path / "down.json"
    write_json(down, {"tracking_uri": DOWN, "experiment": "exp", "experiment_id": None, "available": False, "log_model": True})
    runs, record = tmp_path / "results/runs", tmp_path / "logged.json"
    train_and_evaluate(tmp_path, runs / "t/mlp/0", down)
    seqpipe("sync-mlflow", "--runs", str(runs), "--tracking", str(down), "--record", str(record), cwd=tmp_path)
    got = read_json(record)
    assert got["logged"] == 0 and got["pending"] == [(runs / "t/mlp/0").as_posix()] and "connect failed" in got["errors"][0]
    assert read_json(runs / "t/mlp/0/run.json")["mlflow_run_id"] is None  # still pending for the next call

    good = tmp_path / "good.json"
    info = setup(f"sqlite:///{tmp_path}/m.db", "exp", good)
    seqpipe("sync-mlflow", "--runs", str(runs), "--tracking", str(good), "--record", str(record), cwd=tmp_path)
    assert read_json(record) == {"logged": 1, "pending": [], "errors": []}
    assert len(MlflowClient(info["tracking_uri"]).search_runs([info["experiment_id"]])) == 1


def test_live_runs_log_each_epoch_from_the_job(tmp_path):
    """`mlflow.live: true`: the training job logs while it runs (tracking.json says so)."""
    tracking = tmp_path / "tracking.json"
    info = setup(f"sqlite:///{tmp_path}/m.db", "exp", tracking, log_model=False, live=True)
    assert read_json(tracking)["live"] is True
    h5 = make_file(tmp_path / "d.h5", "classification")
    proc = seqpipe("train", "--data", str(h5), "--job", json.dumps(job("classification", "mlp", epochs=2)), "--tracking",
                   str(tracking), "--out-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.stdout.strip().endswith("MLFLOW-IMPORTED")
    run_id = read_json(tmp_path / "run/run.json")["mlflow_run_id"]
    assert run_id and len(MlflowClient(info["tracking_uri"]).get_metric_history(run_id, "val_loss")) == 2


def test_run_cache_runs_a_seqpipe_command_in_its_own_process(tmp_path):
    """One Python start per job: `seqpipe run-cache ... -- seqpipe CMD` calls CMD in-process (here `seqpipe` is not
    even on the PATH, so a second process could not start)."""
    (tmp_path / "src/seqpipe").mkdir(parents=True)
    (tmp_path / "src/seqpipe/a.py").write_text("x = 1\n")
    env = {k: v for k, v in os.environ.items() if k != "PATH"} | {"PATH": "/usr/bin:/bin"}
    cache = json.dumps({"enabled": True, "dir": str(tmp_path / "cache")})
    args = [sys.executable, "-m", "seqpipe", "run-cache", "--cache", cache, "--kind", "code", "--params", "{}", "--inputs",
            "src/seqpipe/a.py", "--outputs", "stamp.sha256", "--", "seqpipe", "code-stamp", "--src", "src", "--out",
            "stamp.sha256", "src/seqpipe/a.py"]
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "stamp.sha256").read_text() and len(list((tmp_path / "cache").rglob("entry.json"))) == 1
    failing = [*args[:5], json.dumps({"enabled": False}), *args[6: args.index("--") + 1], "seqpipe", "code-stamp", "--src", "src", "--out", "x", "missing.py"]
    assert subprocess.run(failing, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120).returncode != 0


def tiny_project(folder: Path, tracking_uri: str | None) -> Path:
    """A copy of the workflow whose only task is folder_emotion/mlp, one seed, one epoch."""
    shutil.copy2(REPO / "Snakefile", folder / "Snakefile")
    for sub in ("workflow", "src", "envs"):
        shutil.copytree(REPO / sub, folder / sub, ignore=shutil.ignore_patterns("__pycache__"))
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    config = {**base, "datasets": {"folder": base["datasets"]["folder"]}, "demo": {"folder": {**base["demo"]["folder"], "n_items": 40}},
              "features": {"folder_summary": base["features"]["folder_summary"]},
              "tasks": {"folder_emotion": {**base["tasks"]["folder_emotion"], "models": ["mlp"]}},
              "models": {"mlp": base["models"]["mlp"]}, "training": {**base.get("training", {}), "epochs": 1, "seeds": [0]},
              "mlflow": {"tracking_uri": tracking_uri, "log_model": False}}
    config.pop("sweep", None)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder


def snakemake(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_track_runs_rule_through_snakemake_survives_an_outage(tmp_path):
    """A tracking server down: everything runs, track_runs exits 0 with the run pending; the next call (store back)
    logs it, and a third call plans nothing."""
    folder = tiny_project(tmp_path, DOWN)
    snakemake(folder)
    record = read_json(folder / "results/mlflow/logged.json")
    assert record["pending"] == ["results/runs/folder_emotion/mlp/0"] and (folder / "results/report/leaderboard.csv").exists()

    tiny_project_config = yaml.safe_load((folder / "config.yaml").read_text())
    tiny_project_config["mlflow"]["tracking_uri"] = None  # the store answers again (SQLite)
    (folder / "config.yaml").write_text(yaml.safe_dump(tiny_project_config))
    snakemake(folder)
    assert read_json(folder / "results/mlflow/logged.json") == {"logged": 1, "pending": [], "errors": []}
    tracking = read_json(folder / "results/mlflow/tracking.json")
    client = MlflowClient(f"sqlite:///{folder}/results/mlflow/mlflow.db")
    [got] = client.search_runs([tracking["experiment_id"]])
    assert "test_rmse" in got.data.metrics and got.info.status == "FINISHED"
    runs = folder / "results/runs"
    assert logged_run_id(runs, runs / "folder_emotion/mlp/0", folder / "results/mlflow/logged_runs.json") == got.info.run_id
    planned = snakemake(folder, "-n")
    assert "Nothing to be done" in planned.stdout + planned.stderr
    assert len(client.search_runs([tracking["experiment_id"]])) == 1
