"""The slurm profile. Two ways in:

- the whole pipeline (small) through a real one-node SLURM cluster on this machine, started and
  stopped by .ci/slurm.sh (needs root and Debian's slurmctld, slurmd, slurm-client and munge, which
  .ci/run installs on CI; skipped otherwise);
- the sbatch calls the executor plugin builds, recorded by a stand-in `sbatch` on PATH (with
  stand-in `sinfo`, `sacct`, `scontrol`, `squeue`): runs anywhere, and shows what a real GPU
  cluster is asked for.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline import copy_workflow

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SLURM_SH = REPO / ".ci" / "slurm.sh"
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
SLURMCTLD_LOG = Path("/var/log/slurm/slurmctld.log")

SMALL = {"threads": 1, "mem_mb": 500, "runtime": 10}  # fits any test node's memory, retry included
TINY_CONFIG = {
    "demo": {"groove": {"n_items": 20}},
    "features": {"grid": {"dataset": "groove", "kind": "drum_grid", "target": "style"}},
    "tasks": {"style": {"features": "grid", "paradigm": "supervised", "mapping": "seq2static", "type": "classification"}},
    "models": {"mlp": {"arch": "mlp", "hidden": [32]}},
    "training": {"epochs": 3},
    "resources": {group: dict(SMALL) for group in ("demo", "data", "features", "train", "evaluate")},
}
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: .*?/rule_(\w+)/")


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=timeout)


def tiny_workflow(tmp_path: Path) -> Path:
    workdir = copy_workflow(tmp_path)
    (workdir / "config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    return workdir


# -- a real one-node cluster -----------------------------------------------------------------------

def slurm_sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(SLURM_SH), command], env={**os.environ, "PATH": SBIN_PATH}, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture()
def slurm_cluster():
    """A one-node cluster on 127.0.0.1 for the test; a cluster that was already up stays up."""
    if os.geteuid() != 0:
        pytest.skip("SLURM test needs root: .ci/slurm.sh writes /etc/slurm/slurm.conf and starts munged, "
                    "slurmctld and slurmd")
    missing = [cmd for cmd in ("sinfo", "sbatch", "squeue", "scontrol", "slurmctld", "slurmd", "munged")
               if not shutil.which(cmd, path=SBIN_PATH)]
    if missing:
        pytest.skip(f"SLURM is not installed (no {', '.join(missing)}): "
                    "apt-get install slurmctld slurmd slurm-client munge (.ci/run does this on CI as root)")
    was_up = slurm_sh("status").returncode == 0
    started = time.monotonic()
    proc = slurm_sh("start")
    if proc.returncode == 3:
        pytest.skip(f"a real SLURM configuration is in place, left alone: {proc.stderr.strip()}")
    assert proc.returncode == 0, f".ci/slurm.sh start failed:\n{proc.stdout}\n{proc.stderr}"
    print(f"cluster up in {time.monotonic() - started:.1f} s: {proc.stdout.strip()}")
    try:
        yield
    finally:
        if not was_up:
            stopped = slurm_sh("stop")
            assert stopped.returncode == 0, stopped.stderr


def test_pipeline_through_slurm(slurm_cluster, tmp_path):
    """Every rule but the local code stamps runs as a SLURM job and completes; training asked its GPU and
    read the command line's dotted override."""
    workdir = tiny_workflow(tmp_path)
    log_offset = SLURMCTLD_LOG.stat().st_size if SLURMCTLD_LOG.exists() else 0
    started = time.monotonic()
    # The plugin checks job states 40 s after each wave of jobs by default (gentle on a busy
    # controller); 2 s keeps this 7-level DAG short. MinJobAge=300 stays above 3x that, so the
    # plugin keeps to squeue.
    # A dotted override (config.yaml says 3 epochs; the form `seqpipe run training.epochs=2` hands Snakemake) must
    # reach the jobs SLURM runs.
    proc = snakemake(workdir, "--profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "2",
                     "--config", "set=training.epochs=2")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    print(f"pipeline through SLURM in {time.monotonic() - started:.1f} s")

    assert (workdir / "results/runs/style/mlp/0/metrics.json").exists()
    assert json.loads((workdir / "results/runs/style/mlp/0/run.json").read_text())["epochs_run"] == 2
    assert (workdir / "results/report/leaderboard.csv").exists()
    assert "Falling back to 'sacct'" not in output  # squeue answered every status check

    jobs = {int(job_id): rule for job_id, rule in SUBMITTED.findall(output)}
    stages = {"tracking_setup", "demo", "features", "validate", "baseline", "train", "evaluate", "report"}
    assert stages <= set(jobs.values()), output[-6000:]
    controller_log = SLURMCTLD_LOG.read_text(errors="replace")[log_offset:]
    for job_id, rule in jobs.items():
        assert re.search(rf"_job_complete: JobId={job_id} WEXITSTATUS 0\b", controller_log), (rule, job_id)
    train_id = max(job_id for job_id, rule in jobs.items() if rule == "train")
    shown = subprocess.run(["scontrol", "show", "job", str(train_id)], capture_output=True, text=True).stdout
    assert "JobState=COMPLETED" in shown and "Comment=rule_train" in shown, shown
    if "gpu" in subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True).stdout:
        assert "TresPerJob=gres:gpu:1" in shown, shown  # .ci/slurm.sh's node has a stand-in GPU


# -- the plugin's sbatch calls, recorded -----------------------------------------------------------

STAND_INS = {
    "sbatch": f"""#!{sys.executable}
import json, os, sys
with open(os.environ["SEQPIPE_SBATCH_CALLS"], "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
sys.exit("sbatch: error: test: no cluster here; the call was recorded")
""",
    "sinfo": "#!/bin/sh\nprintf 'PARTITION\\nbatch*\\n'\n",  # the plugin's default partition lookup
    "sacct": "#!/bin/sh\necho 'Slurm accounting storage is disabled' >&2\nexit 1\n",
    "scontrol": "#!/bin/sh\necho 'MinJobAge               = 300 sec'\n",
    "squeue": "#!/bin/sh\nexit 0\n",
}


@pytest.fixture(scope="module")
def validated(tmp_path_factory) -> Path:
    """A tiny workflow built up to training (locally), for submissions of single jobs."""
    workdir = tiny_workflow(tmp_path_factory.mktemp("slurm_submit"))
    proc = snakemake(workdir, "--cores", "2", "--until", "validate", "tracking_setup")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return workdir


def sbatch_calls(workdir: Path, tmp_path: Path, target: str, rule: str, *args: str) -> list[list[str]]:
    """Submit `rule`'s job for `target` to the stand-in sbatch; the argument lists sbatch was called
    with. (Forcing a job removes its outputs: only rules that nothing here depends on.)"""
    tools = tmp_path / "bin"
    tools.mkdir(parents=True)
    for name, text in STAND_INS.items():
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    calls = tmp_path / "sbatch_calls.jsonl"
    env = {"PATH": os.pathsep.join([str(tools), str(BIN), os.environ["PATH"]]), "SEQPIPE_SBATCH_CALLS": str(calls)}
    proc = snakemake(workdir, "--profile", "profiles/slurm", "--retries", "0", "--slurm-init-seconds-before-status-checks",
                     "1", target, "--forcerun", rule, *args, env=env, timeout=300)
    assert proc.returncode != 0 and calls.exists(), (proc.stdout + proc.stderr)[-3000:]
    return [json.loads(line) for line in calls.read_text().splitlines()]


def flags(call: list[str]) -> list[str]:
    """sbatch's options, without the wrapped job command."""
    return [arg for arg in call if not arg.startswith("--wrap")]


def option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


def test_sbatch_call_for_training_asks_a_gpu(validated, tmp_path):
    (call,) = sbatch_calls(validated, tmp_path / "plain", "results/runs/style/mlp/0/best.pt", "train")
    assert "--gpus=1" in flags(call), call
    assert option(call, "-p") == "batch" and option(call, "--mem") == "500" and option(call, "-t") == "10", call
    assert "--cpus-per-task=1" in call and "-A" not in call
    assert "--comment" in call and "rule_train_wildcards_style_mlp_0" in call
    (typed,) = sbatch_calls(validated, tmp_path / "typed", "results/runs/style/mlp/0/best.pt", "train",
                            "--set-resources", "train:gpu_model=a100")
    assert "--gpus=a100:1" in flags(typed), typed


def test_sbatch_call_without_gpu(validated, tmp_path):
    """The baseline asks no GPU; a CPU-only cluster drops training's with train:gpu=0."""
    (baseline,) = sbatch_calls(validated, tmp_path / "baseline", "results/baselines/style/metrics.json", "baseline")
    assert not any(arg.startswith("--gpus") for arg in flags(baseline)), baseline
    assert "--cpus-per-task=1" in baseline and "--ntasks=1" in baseline
    (train,) = sbatch_calls(validated, tmp_path / "cpu", "results/runs/style/mlp/0/best.pt", "train",
                            "--set-resources", "train:gpu=0", "train:slurm_partition=cpu")
    assert not any(arg.startswith("--gpus") for arg in flags(train)), train
    assert option(train, "-p") == "cpu"


def log_span(log: Path) -> tuple[datetime, datetime]:
    """The first and last timestamp of a training job's log (Python logging's asctime)."""
    stamps = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in log.read_text().splitlines()
              if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ", line)]
    assert stamps, log.read_text()[-2000:]
    return stamps[0], stamps[-1]


def test_packed_training_group_through_slurm(slurm_cluster, tmp_path):
    """`pack: 2`: the two training cells and their pack record go to SLURM as one job asking one GPU, twice
    the CPUs and memory (no --group-components needed); inside the allocation one job step runs the pack
    and the two cells train side by side (their logs overlap in time), each told it shares the GPU
    (--gpu-share 2), and each writes its run.json. (The job-step plugin runs each of a group's jobs
    through a blocking srun when they are separate groups inside: snakemake-executor-plugin-slurm
    issue #469; the pack record joins them into one; see docs/clusters.md.)"""
    workdir = tiny_workflow(tmp_path)
    config = {**TINY_CONFIG, "training": {"epochs": 8, "seeds": [0, 1], "early_stopping": {"patience": 1000}}}
    config["resources"] = {**TINY_CONFIG["resources"], "train": {**SMALL, "pack": 2}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "--profile", "profiles/slurm", "--slurm-init-seconds-before-status-checks", "2",
                     "--retries", "0", "--verbose", "--printshellcmds", "--slurm-keep-successful-logs")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for seed in (0, 1):
        assert json.loads((workdir / f"results/runs/style/mlp/{seed}/run.json").read_text())["epochs_run"] == 8
    groups = [line for line in output.splitlines() if line.startswith("sbatch call:") and "rule_train_train" in line]
    assert len(groups) == 1, output[-6000:]
    flags = groups[0].split("--wrap")[0]
    assert "--cpus-per-task=2" in flags and "--mem 1000" in flags, flags
    if "gpu" in subprocess.run(["sinfo", "-h", "-o", "%G"], capture_output=True, text=True).stdout:
        assert "--gpus=1" in flags, flags  # one GPU for the group, not one per cell
    assert "seed=0" in groups[0] and "seed=1" in groups[0] and "train_pack:pack=0" in groups[0]

    # inside the allocation: one job step for the whole pack, its CPUs, no GPU request of its own (it
    # shares the allocation's), and each cell's command told that two jobs share the GPU
    (slurm_log,) = (workdir / ".snakemake/slurm_logs").glob("group_train*/*.log")
    inside = slurm_log.read_text(errors="replace")
    steps = [line for line in inside.splitlines() if line.startswith("The call for this job is: srun")]
    assert len(steps) == 1, inside[-6000:]
    assert "--cpus-per-task=2" in steps[0] and "--gpus" not in steps[0], steps[0]
    assert "train:task=style,model=mlp,seed=0" in steps[0] and "train:task=style,model=mlp,seed=1" in steps[0]
    assert inside.count("--gpu-share 2") >= 2, inside[-6000:]

    # side by side: each cell's training began before the other's ended
    (start0, end0), (start1, end1) = (log_span(workdir / f"logs/train/style/mlp/{seed}.log") for seed in (0, 1))
    assert start0 < end1 and start1 < end0, (start0, end0, start1, end1)
    record = json.loads((workdir / "results/benchmarks/packs/0.json").read_text())
    assert sorted(cell["run"] for cell in record["cells"]) == ["results/runs/style/mlp/0", "results/runs/style/mlp/1"]
    assert record["overlap_s"] > 0 and not record["skipped"], record
    assert (workdir / "results/report/leaderboard.csv").exists()


# -- no shared file system: profiles/slurm-nofs ----------------------------------------------------

def watch_until(log: Path, store: Path, proc: subprocess.Popen, timeout: float = 600) -> int:
    """The SLURM job id of seed 0's training, once its resume state is in storage (it has saved an epoch)."""
    deadline = time.monotonic() + timeout
    resume = store / "results/resume/style/mlp/0/last.pt"
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"submitted with SLURM jobid (\d+) \(log: .*?/rule_train/style_mlp_0/", log.read_text())
        if found and resume.exists():
            return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f"seed 0 never saved resume state in storage:\n{log.read_text()[-4000:]}")


def test_pipeline_through_slurm_without_a_shared_file_system(slurm_cluster, tmp_path):
    """profiles/slurm-nofs: jobs in scratch folders of their own that hold only what was staged from
    the fs storage; a training job killed (scancel) after saving an epoch resumes from storage on its
    next attempt; the leaderboard lands in storage and both runs reach MLflow from the submit side."""
    if not shutil.which("rsync"):
        pytest.skip("rsync is not installed (the fs storage provider copies with it): apt-get install rsync")
    (tmp_path / "submit").mkdir()
    workdir, store = tiny_workflow(tmp_path / "submit"), tmp_path / "store"
    config = {**TINY_CONFIG, "training": {"epochs": 150, "seeds": [0, 1], "early_stopping": {"patience": 1000}}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    log = tmp_path / "snakemake.log"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "TMPDIR": str(tmp_path / "node")}
    (tmp_path / "node").mkdir()
    with log.open("w") as out:
        proc = subprocess.Popen([str(BIN / "snakemake"), "--profile", "profiles/slurm-nofs", "--default-storage-prefix",
                                 str(store), "--slurm-init-seconds-before-status-checks", "2", "--retries", "1"],
                                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        try:
            killed = watch_until(log, store, proc)
            subprocess.run(["scancel", str(killed)], check=True)
            proc.wait(timeout=900)
        finally:
            if proc.poll() is None:
                proc.kill()
    output = log.read_text()
    assert proc.returncode == 0, output[-6000:]

    assert (store / "results/report/leaderboard.csv").exists()
    assert not (workdir / "results/runs").exists()  # nothing written into the project folder by a job
    run = json.loads((store / "results/runs/style/mlp/0/run.json").read_text())
    assert run["epochs_run"] == 150 and run["resumed_at_epoch"] >= 1, run
    assert not (store / "results/resume/style/mlp/0/last.pt").exists()  # cleared once the run completed
    scratches = sorted((tmp_path / "node").glob("seqpipe-job-*"))
    assert scratches
    # inputs and outputs went through storage/; the one thing a job writes in place is the features rule's copy
    # of the last good file (results/features/.previous, see docs/clusters.md), lost with the scratch folder
    in_place = {p.relative_to(s).parts[:3] for s in scratches for p in (s / "results").glob("*/*") if (s / "results").exists()}
    assert in_place <= {("results", "features", ".previous")}, in_place
    staged = {p.relative_to(s).parts[0] for s in scratches for p in s.iterdir()}
    assert staged <= {"Snakefile", "config.yaml", "workflow", "envs", "profiles", "src", "storage", ".snakemake", "results",
                      "resources", "logs"}, staged

    # MLflow from the submit side: a store here, the run folders from storage
    seqpipe = str(BIN / "seqpipe")
    subprocess.run([seqpipe, "tracking-setup", "--out", "results/mlflow/tracking.json"], cwd=workdir, check=True, env=env)
    synced = subprocess.run([seqpipe, "sync-mlflow", "--runs", str(store / "results/runs"), "--tracking",
                             "results/mlflow/tracking.json"], cwd=workdir, env=env, capture_output=True, text=True)
    assert synced.returncode == 0, synced.stderr[-3000:]
    import mlflow

    runs = mlflow.MlflowClient(f"sqlite:///{workdir}/results/mlflow/mlflow.db").search_runs(["1"])
    assert sorted(r.data.params.get("seed") for r in runs) == ["0", "1"] and all(r.info.status == "FINISHED" for r in runs)
