"""The preloaded worker (seqpipe.worker, issue 25): a job's `seqpipe train|evaluate|...` runs in a fork of one
process that imported torch once, with the job's streams, folder, environment, exit status and signals; a
local `snakemake` call starts one, and its outputs are the bytes of jobs run in their own processes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from seqpipe.worker import STATS_PREFIX
from seqpipe.worker_client import ENV_VAR
from tests.test_training import job, make_file

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SEQPIPE = str(BIN / "seqpipe")


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def worker(tmp_path):
    """A real worker serving this test process (it exits when the test's `sleep` parent is killed)."""
    parent = subprocess.Popen(["sleep", "600"])
    socket_path = tmp_path / "s"
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "seqpipe.worker", "--socket", str(socket_path), "--parent", str(parent.pid)],
                            stdout=log, stderr=subprocess.STDOUT)
    wait_for(socket_path.exists)
    yield {"socket": socket_path, "proc": proc, "parent": parent, "log": tmp_path / "worker.log"}
    parent.kill()
    parent.wait()
    proc.wait(timeout=30)
    log.close()


def run(args: list[str], cwd: Path, socket: Path | None, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, **({ENV_VAR: str(socket)} if socket else {})}
    env.pop(ENV_VAR, None) if socket is None else None
    return subprocess.run([SEQPIPE, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300, **kwargs)


def forks(worker_pid: int) -> list[int]:
    """The worker's running forks (its children, from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == worker_pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def test_a_command_runs_in_the_worker_with_the_jobs_streams_folder_environment_and_status(worker, tmp_path):
    h5 = make_file(tmp_path / "d.h5", "classification")
    (tmp_path / "job").mkdir()
    task = json.dumps(job("classification", "mlp")["task"])
    ok = run(["baseline", "--data", "../d.h5", "--task", task, "--out", "m.json"], tmp_path / "job", worker["socket"])
    assert ok.returncode == 0, ok.stderr
    assert json.loads((tmp_path / "job" / "m.json").read_text())["model"] == "baseline"  # relative paths: the job's folder
    assert "m.json" in ok.stderr  # the command's log lines reach the job's own stderr
    bad = run(["evaluate", "--data", str(h5)], tmp_path, worker["socket"])
    assert bad.returncode == 2 and "the following arguments are required" in bad.stderr
    own = run(["baseline", "--data", "../d.h5", "--task", task, "--out", "own.json"], tmp_path / "job", None)
    assert own.returncode == 0 and (tmp_path / "job" / "own.json").read_bytes() == (tmp_path / "job" / "m.json").read_bytes()
    worker["parent"].kill()
    worker["proc"].wait(timeout=30)
    stats = [line for line in worker["log"].read_text().splitlines() if line.startswith(STATS_PREFIX)]
    assert json.loads(stats[-1][len(STATS_PREFIX):])["jobs"] == 2  # both forks were the worker's (the last ran here)
    assert not worker["socket"].exists()


def test_the_first_job_that_needs_the_worker_starts_it_and_runs_in_its_own_process(tmp_path):
    """`prepare` (the Snakefile's onstart) only names the worker; the first torch job starts it, the next use it."""
    from seqpipe.worker import prepare
    from seqpipe.worker_client import LOG_VAR, PARENT_VAR

    parent = subprocess.Popen(["sleep", "600"])
    saved = {name: os.environ.get(name) for name in (ENV_VAR, PARENT_VAR, LOG_VAR)}
    try:
        socket_path = Path(prepare(parent.pid, tmp_path / "worker.log"))
        env = {**os.environ}
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)
    assert prepare(parent.pid, tmp_path / "x.log", ("CONDA",)) is None  # --sdm conda: the jobs' own seqpipe
    assert not socket_path.exists() and env[PARENT_VAR] == str(parent.pid)
    first = subprocess.run([SEQPIPE, "evaluate", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0 and "--checkpoint" in first.stdout
    wait_for(socket_path.exists)
    for _ in range(2):
        again = subprocess.run([SEQPIPE, "evaluate", "--help"], env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "--checkpoint" in again.stdout
    parent.kill()
    parent.wait()
    log = tmp_path / "worker.log"
    wait_for(lambda: STATS_PREFIX in log.read_text() if log.exists() else False)
    assert json.loads(log.read_text().split(STATS_PREFIX)[-1].splitlines()[0])["jobs"] == 2
    assert not socket_path.parent.exists()  # the worker's folder goes with it


def test_without_a_worker_the_command_runs_in_its_own_process(tmp_path):
    gone = tmp_path / "no-such-socket"
    proc = run(["evaluate", "--help"], tmp_path, gone)
    assert proc.returncode == 0 and "--checkpoint" in proc.stdout


def test_killing_the_jobs_process_stops_its_fork(worker, tmp_path):
    """Snakemake stops a job by signalling its process: the fork gets the signal and the process dies of it; a
    process killed outright (SIGKILL) takes its fork with it too."""
    make_file(tmp_path / "d.h5", "classification")
    for how in (signal.SIGTERM, signal.SIGKILL):
        spec = job("classification", "gru", epochs=100000)
        out = tmp_path / f"run{how}"
        env = {**os.environ, ENV_VAR: str(worker["socket"])}
        proc = subprocess.Popen([SEQPIPE, "train", "--data", str(tmp_path / "d.h5"), "--job", json.dumps(spec), "--out-dir",
                                 str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: (out / "scalars.csv").exists(), timeout=120)
        assert len(forks(worker["proc"].pid)) == 1
        proc.send_signal(how)
        assert proc.wait(timeout=30) == -how
        wait_for(lambda: not forks(worker["proc"].pid), timeout=30)


@pytest.mark.slow
def test_a_local_run_trains_and_evaluates_in_the_worker_with_the_same_bytes(tmp_path):
    """`snakemake` on one machine starts the worker (preload: true, the default) and its jobs fork from it;
    every output is the bytes of the same jobs in their own processes (preload: false)."""
    results = {}
    for preload in (False, True):
        folder = tmp_path / f"preload_{preload}"
        folder.mkdir()
        shutil.copy2(REPO / "Snakefile", folder / "Snakefile")
        for sub in ("workflow", "src", "envs"):
            shutil.copytree(REPO / sub, folder / sub, ignore=shutil.ignore_patterns("__pycache__"))
        base = yaml.safe_load((REPO / "config.yaml").read_text())
        config = {**base, "datasets": {"folder": base["datasets"]["folder"]}, "demo": {"folder": base["demo"]["folder"]},
                  "features": {"folder_summary": base["features"]["folder_summary"]},
                  "tasks": {"folder_emotion": {**base["tasks"]["folder_emotion"], "models": ["mlp"]}},
                  "models": {"mlp": base["models"]["mlp"]}, "cache": {"enabled": False}, "preload": preload,
                  "training": {**base.get("training", {}), "epochs": 2, "seeds": [0, 1, 2, 3]}}
        config.pop("sweep", None)
        (folder / "config.yaml").write_text(yaml.safe_dump(config))
        env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
        env.pop(ENV_VAR, None)
        proc = subprocess.run([str(BIN / "snakemake"), "--cores", "1"], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=1800)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
        log = folder / ".snakemake/log/seqpipe-worker.log"
        if preload:
            wait_for(lambda: STATS_PREFIX in log.read_text() if log.exists() else False)
            served = json.loads(log.read_text().split(STATS_PREFIX)[-1].splitlines()[0])["jobs"]
            assert served >= 4, log.read_text()  # the worker is ready ~2 s after the first job: most jobs fork from it
        else:
            assert not log.exists()
        files = sorted([*folder.glob("results/runs/*/*/*/metrics.json"), *folder.glob("results/runs/*/*/*/predictions.h5"),
                        *folder.glob("results/runs/*/*/*/model.pt"), folder / "results/report/leaderboard.csv"])
        results[preload] = {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    assert len(results[True]) == 13 and results[True] == results[False]
