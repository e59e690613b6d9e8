"""What the pipeline builds for a configuration: file paths and the (task, model, seed) cells.

Pure functions of the validated config, shared by the Snakefile (workflow/rules/common.smk) and
the tests, so the DAG and the code agree on every path.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqpipe.config import task_config

RESULTS = "results"
TRACKING = f"{RESULTS}/mlflow/tracking.json"


@dataclass(frozen=True)
class Cell:
    """One training job: a model trained on a task with a seed."""

    task: str
    model: str
    seed: int

    @property
    def run_dir(self) -> str:
        return f"{RESULTS}/runs/{self.task}/{self.model}/{self.seed}"


def cells(config: dict) -> list[Cell]:
    """Every (task, model, seed) the configuration asks for, in a stable order."""
    return [
        Cell(task, model, seed)
        for task in sorted(config["tasks"])
        for model in task_config(config, task)["models"]
        for seed in config["training"]["seeds"]
    ]


def features_h5(config: dict, feature_set: str) -> str:
    """HDF5 file of a feature set."""
    return f"{RESULTS}/features/{config['features'][feature_set]['dataset']}/{feature_set}.h5"


def task_h5(config: dict, task: str) -> str:
    """HDF5 file a task trains on: a feature set's file, the user's own `data_path`, or for a task
    drawing on several feature sets (`features: [a, b]`) its assembled file `results/tasks/<task>.h5`."""
    cfg = config["tasks"][task]
    if "data_path" in cfg:
        return cfg["data_path"]
    if isinstance(cfg["features"], list):
        return f"{RESULTS}/tasks/{task}.h5"
    return features_h5(config, cfg["features"])


def task_sources(config: dict, task: str) -> dict[str, str]:
    """Feature set -> HDF5 file of each feature set a task draws on (none for `data_path` tasks)."""
    sets = config["tasks"][task].get("features")
    sets = [] if sets is None else [sets] if isinstance(sets, str) else sets
    return {name: features_h5(config, name) for name in sets}


def job_resources(settings: dict, gpu: int = 0) -> dict:
    """Resources of one rule group for every executor: memory (growing per attempt), disk,
    runtime and GPUs under Snakemake's names (local, SLURM) and HTCondor's own names."""
    mem, disk = settings["mem_mb"], settings["disk_mb"]

    def memory(wildcards, attempt):
        return mem * attempt

    resources = {
        "mem_mb": memory,
        "disk_mb": disk,
        "runtime": settings["runtime"],
        "htcondor_request_mem_mb": memory,
        "htcondor_request_disk_mb": disk,
    }
    if gpu:
        resources.update(gpu=gpu, request_gpus=gpu)
    return resources


def report_files() -> dict[str, str]:
    """The leaderboard files the report rule writes."""
    base = f"{RESULTS}/report"
    return {"csv": f"{base}/leaderboard.csv", "md": f"{base}/leaderboard.md", "html": f"{base}/leaderboard.html"}
