"""Resume: a training job killed at a random point and started again ends bit for bit where an
uninterrupted one ends (CPU): same per-epoch losses, same best epoch, same best.pt weights.

In process (an exception mid-epoch), as a `seqpipe train` process SIGKILLed after a random number
of epochs (the run folder's last.pt, or a separate --resume-dir whose run folder is wiped as
Snakemake wipes declared outputs), and through Snakemake: the whole `snakemake` process group is
killed mid-training, then `snakemake --rerun-incomplete` continues from results/resume/.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from seqpipe.taskfile.hdf5 import write_splits
from seqpipe.training import checkpoint, loop as loop_module
from seqpipe.training.train import train
from tests.test_training import job

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("best.pt", "last.pt", "model.pt", "scalars.csv", "run.json")  # what the train rule declares (and Snakemake deletes)


def make_data(path: Path, n_train: int = 240, seed: int = 0) -> Path:
    """Classification: which of 3 channels carries a pulse (noisy enough to keep learning for a while)."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("val", n_train // 4), ("test", n_train // 4)):
        x = rng.normal(0, 1.0, size=(n, 16, 3)).astype(np.float32)
        y = rng.integers(0, 3, n)
        x[np.arange(n), 4:8, y] += 0.8
        splits[split] = {"data": x, "labels": y.astype(np.int64)}
    write_splits(path, splits, {"class_names": ["a", "b", "c"]})
    return path


def resume_job(epochs: int = 8, **training) -> dict:
    """Every piece of state in play: dropout and noise (global RNG), shuffling, a plateau schedule, AdamW."""
    j = job("classification", "gru", epochs=epochs, optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
            scheduler={"name": "reduce_on_plateau", "factor": 0.5, "patience": 1, "min_lr": 1e-5}, noise_std=0.1,
            early_stopping={"monitor": "val_loss", "mode": "min", "patience": 100, "min_delta": 0.0}, **training)
    j["model"]["dropout"] = 0.2
    return j


def outcome(run_dir: Path) -> dict:
    """What must not depend on an interruption: per-epoch values, the summary, the best and last weights."""
    rows = [line.split(",")[:5] for line in (run_dir / "scalars.csv").read_text().splitlines()]  # epoch, split, loss, metric, lr
    run = json.loads((run_dir / "run.json").read_text())
    return {"rows": rows, "best": run["best"], "best_epoch": run["best_epoch"], "epochs_run": run["epochs_run"],
            "best.pt": checkpoint.load(run_dir / "best.pt")["model"], "last.pt": checkpoint.load(run_dir / "last.pt")["model"]}


def assert_same(got: dict, want: dict) -> None:
    for key in ("rows", "best", "best_epoch", "epochs_run"):
        assert got[key] == want[key], key
    for name in ("best.pt", "last.pt"):
        assert got[name].keys() == want[name].keys()
        assert all(torch.equal(got[name][k], want[name][k]) for k in want[name]), name


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "events.jsonl"
    try:
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    except json.JSONDecodeError:
        return []


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("data") / "d.h5")


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """The uninterrupted run of `resume_job()`."""
    out = tmp_path_factory.mktemp("reference") / "run"
    train(resume_job(), data, out)
    return outcome(out)


class Killed(BaseException):
    """Stands in for SIGKILL in process: not an Exception, so nothing is cleaned up."""


def die_in_epoch(monkeypatch, epoch: int) -> None:
    """Make training stop dead in `epoch`, after its validation and before its checkpoint."""
    calls = {"n": 0}
    real = loop_module.step_scheduler

    def step(scheduler, value):
        calls["n"] += 1
        if calls["n"] == epoch + 1:
            monkeypatch.setattr(loop_module, "step_scheduler", real)
            raise Killed
        real(scheduler, value)

    monkeypatch.setattr(loop_module, "step_scheduler", step)


@pytest.mark.parametrize("kill_at", [1, 4, 7])
def test_in_process_interruption_resumes_bit_for_bit(tmp_path, data, reference, monkeypatch, kill_at):
    die_in_epoch(monkeypatch, kill_at)
    with pytest.raises(Killed):
        train(resume_job(), data, tmp_path / "run")
    assert checkpoint.load(tmp_path / "run" / "last.pt")["epoch"] == kill_at - 1
    run = train(resume_job(), data, tmp_path / "run")
    assert run["resumed_at_epoch"] == kill_at
    assert_same(outcome(tmp_path / "run"), reference)
    resumed = [e for e in events(tmp_path / "run") if e["event"] == "on_resume"]
    assert [e["epoch"] for e in resumed] == [kill_at]
    assert checkpoint.load(tmp_path / "run" / "last.pt")["complete"] is True


def test_checkpoint_every_and_a_separate_resume_dir(tmp_path, data, reference, monkeypatch):
    """State every 3 epochs in a resume folder; the run folder wiped as Snakemake wipes outputs; cleared at the end."""
    die_in_epoch(monkeypatch, 5)  # the last state is epoch 2's
    with pytest.raises(Killed):
        train(resume_job(checkpoint_every=3), data, tmp_path / "run", resume_dir=tmp_path / "resume")
    assert checkpoint.load(tmp_path / "resume" / "last.pt")["epoch"] == 2 and (tmp_path / "resume" / "best.pt").exists()
    assert not (tmp_path / "run" / "last.pt").exists()  # the run folder gets the final state only
    for name in OUTPUTS:
        (tmp_path / "run" / name).unlink(missing_ok=True)
    run = train(resume_job(checkpoint_every=3), data, tmp_path / "run", resume_dir=tmp_path / "resume")
    assert run["resumed_at_epoch"] == 3
    assert_same(outcome(tmp_path / "run"), reference)
    assert not (tmp_path / "resume").exists()


def test_a_changed_job_starts_afresh(tmp_path, data, caplog, monkeypatch):
    caplog.set_level("INFO", logger="seqpipe.train")
    die_in_epoch(monkeypatch, 2)
    with pytest.raises(Killed):
        train(resume_job(), data, tmp_path / "run")
    assert (tmp_path / "run" / "last.pt").exists()
    run = train(resume_job(epochs=3), data, tmp_path / "run")  # another config hash
    assert "resumed_at_epoch" not in run
    assert any("starting from scratch" in r.getMessage() and "config_hash" in r.getMessage() for r in caplog.records)
    again = train(resume_job(epochs=3), data, tmp_path / "run")  # a finished run is trained again, not resumed
    assert "resumed_at_epoch" not in again


# --- a real process, SIGKILLed ------------------------------------------------------------------


def start_training(j: dict, data: Path, out: Path, resume_dir: Path | None) -> subprocess.Popen:
    args = [str(BIN / "seqpipe"), "train", "--data", str(data), "--job", json.dumps(j), "--out-dir", str(out)]
    if resume_dir:
        args += ["--resume-dir", str(resume_dir)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_epochs(run_dir: Path, count: int, proc: subprocess.Popen, timeout: float = 120, since: float = 0.0) -> None:
    """Poll events.jsonl (of a run started after `since`) until `count` epochs have ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = events(run_dir)
        if seen and seen[0]["time"] >= since and sum(e["event"] == "on_epoch_end" for e in seen) >= count:
            return
        assert proc.poll() is None, f"training ended before epoch {count}: {proc.stderr.read()[-3000:] if proc.stderr else ''}"
        time.sleep(0.005)
    raise TimeoutError(f"{run_dir}: fewer than {count} epochs after {timeout} s")


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory) -> Path:
    return make_data(tmp_path_factory.mktemp("slow") / "d.h5", n_train=1200)


@pytest.fixture(scope="module")
def slow_reference(slow_data, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("slow_reference") / "run"
    proc = start_training(resume_job(epochs=10), slow_data, out, None)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    return outcome(out)


@pytest.mark.parametrize("state", ["run_folder", "resume_dir"])
def test_sigkill_at_a_random_point_then_restart(tmp_path, slow_data, slow_reference, state):
    rng = random.Random()
    kill_after, fraction = rng.randint(2, 7), rng.random()
    out, resume_dir = tmp_path / "run", (tmp_path / "resume" if state == "resume_dir" else None)
    proc = start_training(resume_job(epochs=10), slow_data, out, resume_dir)
    wait_for_epochs(out, kill_after, proc)
    ends = [e["time"] for e in events(out) if e["event"] == "on_epoch_end"]
    delay = fraction * (ends[-1] - ends[0]) / (len(ends) - 1)  # a random point of the next epoch
    print(f"killing {delay:.3f} s after epoch {kill_after - 1} ended")
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "run.json").exists()
    if resume_dir:
        for name in OUTPUTS:  # as Snakemake does before it reruns an incomplete job
            (out / name).unlink(missing_ok=True)
    proc = start_training(resume_job(epochs=10), slow_data, out, resume_dir)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-3000:]
    resumed = [e for e in events(out) if e["event"] == "on_resume"]
    assert len(resumed) == 1 and resumed[0]["epoch"] >= kill_after - 1 >= 1
    assert_same(outcome(out), slow_reference)
    assert not list(out.glob(".*.part"))  # writes the kill cut short are cleaned up
    if resume_dir:
        assert not resume_dir.exists()


# --- through Snakemake --------------------------------------------------------------------------

TINY = {
    "cache": {"enabled": False},  # --forcerun train must train, not restore the first run from the run cache
    "demo": {"groove": {"n_items": 20}},
    "features": {"grid": {"dataset": "groove", "kind": "drum_grid", "target": "style"}},
    "tasks": {"style": {"features": "grid", "paradigm": "supervised", "mapping": "seq2static", "type": "classification"}},
    "models": {"gru": {"arch": "gru", "hidden_size": 64, "num_layers": 2, "dropout": 0.1}},
    "training": {"epochs": 15, "batch_size": 4, "early_stopping": {"patience": 100}, "noise_std": 0.05},
}


def snakemake(workdir: Path, *args: str, background: bool = False):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    command = [str(BIN / "snakemake"), "--cores", "2", *args]
    if background:
        return subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    proc = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    return proc.stdout + proc.stderr


def planned_jobs_after(workdir: Path) -> str:
    """Jobs a dry run would still run ('' when everything is up to date)."""
    out = snakemake(workdir, "-n", "--quiet", "rules")
    return "" if "Nothing to be done" in out or not out.strip() else out


@pytest.mark.slow
def test_snakemake_rerun_incomplete_resumes_a_killed_training(tmp_path):
    from tests.test_pipeline import copy_workflow

    workdir = copy_workflow(tmp_path)
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY))
    run_dir, resume_dir = workdir / "results/runs/style/gru/0", workdir / "results/resume/style/gru/0"
    snakemake(workdir)  # uninterrupted
    want_metrics = (run_dir / "metrics.json").read_text()
    want = outcome(run_dir)
    assert not resume_dir.exists()

    kill_after = random.Random().randint(3, 11)
    started = time.time()
    proc = snakemake(workdir, "--forcerun", "train", background=True)
    wait_for_epochs(run_dir, kill_after, proc, timeout=300, since=started)
    os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its job: a lost node, an evicted job
    proc.wait(timeout=30)
    assert (resume_dir / "last.pt").exists() and not (run_dir / "run.json").exists()

    snakemake(workdir, "--unlock")
    snakemake(workdir, "--rerun-incomplete")
    resumed = [e for e in events(run_dir) if e["event"] == "on_resume"]
    assert len(resumed) == 1 and resumed[0]["epoch"] > 0, events(run_dir)
    assert "resuming at epoch" in (workdir / "logs/train/style/gru/0.log").read_text()
    assert (run_dir / "metrics.json").read_text() == want_metrics
    assert_same(outcome(run_dir), want)
    assert not resume_dir.exists() and not list(run_dir.glob(".*.part"))
    assert planned_jobs_after(workdir) == ""
    shutil.rmtree(workdir / "results", ignore_errors=True)


def test_a_resumed_run_continues_its_mlflow_run(tmp_path, data, monkeypatch):
    from mlflow.tracking import MlflowClient

    from seqpipe.tracking.setup import setup

    monkeypatch.chdir(tmp_path)
    info = setup(f"sqlite:///{tmp_path}/m.db", "exp", tmp_path / "tracking.json", log_model=False, live=True)
    die_in_epoch(monkeypatch, 3)
    with pytest.raises(Killed):
        train(resume_job(epochs=5), data, tmp_path / "run", info)
    run = train(resume_job(epochs=5), data, tmp_path / "run", info)
    client = MlflowClient(info["tracking_uri"])
    [got] = client.search_runs([info["experiment_id"]])
    assert got.info.run_id == run["mlflow_run_id"] and got.info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(got.info.run_id, "val_loss")) == [0, 1, 2, 3, 4]
