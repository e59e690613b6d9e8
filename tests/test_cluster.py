"""Cluster profiles. No HTCondor pool can run on these machines (no package ships its daemons), so
the HTCondor tests drive the real executor plugin and record the submit description it hands to
the schedd, at the one boundary that needs a pool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline import copy_workflow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

RECORDER = '''
import json, os
import htcondor2

def _record(self, description, *args, **kwargs):
    with open(os.environ["SEQPIPE_SUBMITS"], "a") as fh:
        fh.write(json.dumps({key: str(description[key]) for key in description.keys()}) + "\\n")
    raise RuntimeError("test: no HTCondor pool here; the submit description was recorded")

htcondor2.Schedd.__init__ = lambda self, *args, **kwargs: None  # would look for the local daemon
htcondor2.Schedd.submit = _record
htcondor2.Submit.issue_credentials = lambda self, *args, **kwargs: None
'''


def snakemake(workdir: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", **(env or {})}
    return subprocess.run([str(BIN / "snakemake"), *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=600)


def test_condor_profile_dry_run():
    proc = snakemake(REPO, "--profile", "profiles/condor", "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "request_gpus=1" in proc.stdout + proc.stderr


def test_condor_profile_by_name_after_the_one_time_step(tmp_path):
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path)}
    subprocess.run(["make", "-s", "condor-profile"], cwd=REPO, env=env, check=True, capture_output=True)
    assert (tmp_path / "snakemake" / "condor").resolve() == REPO / "profiles" / "condor"
    proc = snakemake(REPO, "--profile", "condor", "-n", env={"XDG_CONFIG_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_condor_submit_descriptions(tmp_path):
    """Training asks a GPU, memory and disk; feature extraction asks memory and disk and no GPU."""
    workdir = copy_workflow(tmp_path)
    config = {
        "demo": {"groove": {"n_items": 20}},
        "features": {"grid": {"dataset": "groove", "kind": "drum_grid", "target": "style"}},
        "tasks": {"style": {"features": "grid", "paradigm": "supervised", "mapping": "seq2static", "type": "classification"}},
        "models": {"mlp": {"arch": "mlp"}},
        "resources": {"train": {"mem_mb": 3000, "disk_mb": 5000}},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    local = snakemake(workdir, "--cores", "2", "--until", "validate", "tracking_setup")
    assert local.returncode == 0, local.stderr[-3000:]
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(textwrap.dedent(RECORDER))
    submits = tmp_path / "submits.jsonl"
    env = {"PYTHONPATH": str(shim), "SEQPIPE_SUBMITS": str(submits)}
    for target, rule in (("results/runs/style/mlp/0/best.pt", "train"), ("results/features/groove/grid.h5", "features")):
        snakemake(workdir, "--profile", "profiles/condor", "--retries", "0", target, "--forcerun", rule, env=env)
    described = {d["batch_name"].rsplit("-", 1)[0]: d for d in map(json.loads, submits.read_text().splitlines())}
    train, features = described["train"], described["features"]
    assert train["request_gpus"] == "1"
    assert train["request_memory"] == "3000MB"
    assert train["request_disk"] == str(5000 * 1024)  # KB
    assert "request_gpus" not in features
    assert features["request_memory"] == "2000MB" and features["request_disk"] == str(4000 * 1024)
    assert features["request_cpus"] == "2" and train["getenv"] == "True"


# -- packed training (resources.train.pack > 1) ----------------------------------------------------

PACKED = {
    "demo": {"groove": {"n_items": 20}},
    "features": {"grid": {"dataset": "groove", "kind": "drum_grid", "target": "style"}},
    "tasks": {"style": {"features": "grid", "paradigm": "supervised", "mapping": "seq2static", "type": "classification"}},
    "models": {"mlp": {"arch": "mlp", "hidden": [32]}},
    "training": {"seeds": [0, 1]},
    "resources": {"train": {"pack": 2}},
}


def test_gpu_count_of_a_packed_job_by_place():
    """One GPU per group job when submitting, an int against the local `--resources gpu=G`, none of
    its own for the job step inside the allocation (the SLURM job-step plugin needs an int)."""
    from seqpipe.config.plan import gpu_count, job_resources

    assert [gpu_count(1, 2, place) for place in ("local", "submit", "inside")] == [1, "1", 0]
    assert [gpu_count(1, 1, place) for place in ("local", "submit", "inside")] == [1, 1, 1]
    settings = {"mem_mb": 100, "disk_mb": 100, "runtime": 1, "pack": 3}
    inside = job_resources(settings, gpu=1, place="inside")
    assert inside["gpu"] == 0 and inside["request_gpus"] == "1" and inside["gpu_share"] == 3
    with pytest.raises(ValueError, match="place"):
        gpu_count(1, 2, "elsewhere")


def test_packing_combines_with_the_local_profiles_gpu_cap(tmp_path):
    """`pack: 2` with profiles/local's `--resources gpu=4`: a plan, not a type clash of "1" against 4."""
    workdir = copy_workflow(tmp_path)
    (workdir / "config.yaml").write_text(yaml.safe_dump(PACKED))
    proc = snakemake(workdir, "--profile", "profiles/local", "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("rule train:") == 2, proc.stdout[-3000:]


@pytest.mark.slow
def test_condor_packed_group_asks_one_gpu(tmp_path):
    """A pack of two training cells goes to the pool as one job (its pack record joins them; no
    --group-components) with one request_gpus and both cells' threads and memory."""
    workdir = copy_workflow(tmp_path)
    settings = {"pack": 2, "threads": 1, "mem_mb": 700}
    (workdir / "config.yaml").write_text(yaml.safe_dump({**PACKED, "resources": {"train": settings}}))
    local = snakemake(workdir, "--cores", "2", "--until", "validate", "tracking_setup")
    assert local.returncode == 0, local.stderr[-3000:]
    submits = record_submits(workdir, tmp_path, ["results/benchmarks/packs/0.json"])
    (group,) = submits
    assert group["request_gpus"] == "1" and group["request_cpus"] == "2", group
    assert group["request_memory"] == "1400MB", group
    assert "seed=0" in group["arguments"] and "seed=1" in group["arguments"] and "pack=0" in group["arguments"]


def record_submits(workdir: Path, tmp_path: Path, args: list[str], profile: str = "profiles/condor") -> list[dict]:
    """The submit descriptions the HTCondor plugin hands to the schedd for `args` (no pool needed)."""
    shim = tmp_path / "shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "sitecustomize.py").write_text(textwrap.dedent(RECORDER))
    submits = tmp_path / "submits.jsonl"
    env = {"PYTHONPATH": str(shim), "SEQPIPE_SUBMITS": str(submits)}
    snakemake(workdir, "--profile", profile, "--retries", "0", *args, env=env)
    return [json.loads(line) for line in submits.read_text().splitlines()] if submits.exists() else []


@pytest.mark.slow
def test_condor_nofs_submit_descriptions_list_each_jobs_transfers(tmp_path):
    """profiles/condor-nofs: each job's submit description names HTCondor's file transfer and lists
    exactly the job's declared inputs and outputs (the code stamp and tracking file included)."""
    workdir = copy_workflow(tmp_path)
    config = {key: PACKED[key] for key in ("demo", "features", "tasks", "models")}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    local = snakemake(workdir, "--cores", "2", "--until", "validate", "tracking_setup")
    assert local.returncode == 0, local.stderr[-3000:]
    (train,) = record_submits(workdir, tmp_path, ["results/runs/style/mlp/0/best.pt", "--forcerun", "train"],
                              profile="profiles/condor-nofs")
    assert train["should_transfer_files"] == "YES" and train["when_to_transfer_output"] == "ON_EXIT"
    inputs = {item.strip() for item in train["transfer_input_files"].split(",")}
    for needed in ("results/features/groove/grid.h5", "results/validation/style.json", "results/mlflow/tracking.json",
                   "results/code/seqpipe.training.train.sha256"):
        assert needed in inputs, inputs
    outputs = {item.strip() for item in train["transfer_output_files"].split(",")}
    assert {f"results/runs/style/mlp/0/{name}" for name in ("best.pt", "last.pt", "model.pt", "run.json")} <= outputs
    assert "results/runs/style/mlp/0/run.json" in train["transfer_output_remaps"]
    (features,) = record_submits(workdir, tmp_path / "features", ["results/features/groove/grid.h5", "--forcerun", "features"],
                                 profile="profiles/condor-nofs")
    inputs = {item.strip() for item in features["transfer_input_files"].split(",")}
    assert {"resources/raw/groove.manifest.json", "resources/raw/groove"} <= inputs, inputs  # the raw files too
