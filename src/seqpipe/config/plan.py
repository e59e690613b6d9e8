"""What the pipeline builds for a configuration: file paths and the (task, model, seed) cells.

Pure functions of the validated config, shared by the Snakefile (workflow/rules/common.smk) and
the tests, so the DAG and the code agree on every path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from seqpipe.config.load import Cell, cells, model_seeds, model_training, task_config, train_job  # noqa: F401 - plan.cells
from seqpipe.config.types import RUNTIME_KEYS, Runtime, with_runtime
from seqpipe.io import config_hash

RESULTS = "results"
TRACKING = f"{RESULTS}/mlflow/tracking.json"
# Written by the track_runs rule: how many runs it logged to MLflow and which are still pending.
TRACKED = f"{RESULTS}/mlflow/logged.json"
# What validation and the baseline read of a task: its data and type, not its losses or models.
NOT_FOR_DATA_JOBS = ("losses", "models")


def project_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> str:
    """`path` relative to the project folder (`root`, default the working directory) when it lies
    inside it, else unchanged: a moved or cloned copy of the project then sees the same paths."""
    root_abs = Path(os.path.abspath(root or os.getcwd()))
    target = Path(os.path.abspath(path)) if os.path.isabs(path) else None
    if target is None:
        return os.fspath(path)
    try:
        return target.relative_to(root_abs).as_posix()
    except ValueError:
        return os.fspath(path)


def task_params(config: dict, task: str, data_only: bool = False) -> dict:
    """A task's settings as a job needs them: no model list (adding a model must not rerun the
    task's other jobs), paths relative to the project, and for validation and the baseline
    (`data_only`) no losses either. (task_config less its model list, without copying that list:
    a 10,000-cell sweep's tasks list thousands of models, and every job asks.)"""
    own = config["tasks"][task]
    cfg = task_config({"tasks": {task: {k: v for k, v in own.items() if k != "models"} | {"models": []}}}, task)
    for key in NOT_FOR_DATA_JOBS if data_only else ("models",):
        cfg.pop(key, None)
    if cfg.get("data_path"):
        cfg["data_path"] = project_path(cfg["data_path"])
    return cfg


def init_from(config: dict, model: str) -> list[str]:
    """The checkpoint a model starts from (`training.init_from`), as a list of zero or one input paths."""
    path = model_training(config, model).get("init_from")
    return [project_path(path)] if path else []


def train_params(config: dict, task: str, model: str, seed: int) -> dict:
    """Exactly what determines a training job's outputs: the task (without its model list), the
    model, the training settings without the result-neutral ones (RUNTIME_KEYS) and the seed."""
    own = config["tasks"][task]
    # the job of a config holding only this task without its model list and this model (train_job copies both)
    narrow = {**config, "tasks": {task: {k: v for k, v in own.items() if k != "models"} | {"models": [model]}},
              "models": {model: config["models"][model]}}
    job = train_job(narrow, task, model, seed)
    job["task"] = task_params(config, task)
    training = job["training"]
    for key in RUNTIME_KEYS:
        training.pop(key, None)
    if training.get("init_from"):
        training["init_from"] = project_path(training["init_from"])
    return job


def runtime_settings(config: dict) -> Runtime:
    """The result-neutral settings of a checked config: the training ones (RUNTIME_KEYS) globally and per model,
    and the run cache's section. The workflow hands them to every job as $SEQPIPE_RUNTIME (`Runtime.to_json`)."""
    pick = lambda training: {k: training[k] for k in RUNTIME_KEYS if k in training}  # noqa: E731
    models = {name: pick(cfg.get("training") or {}) for name, cfg in config["models"].items()}
    return Runtime.from_dict({**pick(config["training"]), "cache": config.get("cache") or {},
                              "models": {k: v for k, v in models.items() if v}})


def run_config_hash(job: dict, runtime: Runtime) -> str:
    """The config hash a training run records (run.json): its job's settings (`train_params`) as the run used
    them, with the runtime settings of its model (`TrainJob.as_run`)."""
    return config_hash(with_runtime(job, runtime))


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


def job_resources(settings: dict, gpu: int = 0, place: str = "submit") -> dict:
    """Resources of one rule group for every executor: memory (growing per attempt), disk,
    runtime and GPUs under Snakemake's names (local, SLURM) and HTCondor's own names.
    `place`: where this Snakemake process runs the jobs (see gpu_count)."""
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
        pack = settings.get("pack", 1)
        # HTCondor's request: a string is not summed over a group's jobs, so a packed group asks one GPU.
        request = gpu if pack <= 1 else str(gpu)
        resources.update(gpu=gpu_count(gpu, pack, place), request_gpus=request, gpu_share=pack)
    return resources


# One file per pack of training cells (resources.train.pack > 1): the `train_pack` rule's record of
# when each cell trained. Its job depends on the pack's cells, in the same group, which joins them into
# one group job: one cluster job, one job step inside it, the cells side by side (docs/clusters.md).
PACK_RECORD = f"{RESULTS}/benchmarks/packs/{{pack}}.json"


def packs(config: dict) -> list[list[Cell]]:
    """The cells in packs of `resources.train.pack`, in the stable order of `cells` (the last pack may be
    smaller); no packs when `pack` <= 1."""
    size = config["resources"]["train"].get("pack", 1)
    if size <= 1:
        return []
    every = cells(config)
    return [every[start:start + size] for start in range(0, len(every), size)]


PLACES = ("local", "submit", "inside")


def gpu_count(gpu: int, pack: int, place: str) -> int | str:
    """The `gpu` resource of one training job of a packed group (`pack` jobs share `gpu` GPUs).

    - "local" (local executor): an int, counted against `--resources gpu=G` (G = GPUs x jobs per GPU);
    - "submit" (a cluster executor submitting group jobs): a string, which Snakemake does not sum over a
      group's jobs, so the group job asks `gpu` GPUs (sbatch --gpus, HTCondor request_gpus);
    - "inside" (the Snakemake that runs a group job inside its allocation): 0, so the SLURM job step that
      runs the group asks no GPU of its own (it needs an int) and gets the allocation's GPU, which every
      job of the group then shares.
    Unpacked (`pack` <= 1), `gpu` everywhere."""
    if place not in PLACES:
        raise ValueError(f"place must be one of {PLACES}, not {place!r}")
    if pack <= 1:
        return gpu
    return {"local": gpu, "submit": str(gpu), "inside": 0}[place]


def report_dir(config: dict | None = None) -> str:
    """Where the report goes: `results/report`, or `results/report/<name>` for an experiment file's
    study (`experiment.name`), so an experiment never overwrites the main leaderboard."""
    name = ((config or {}).get("experiment") or {}).get("name")
    return f"{RESULTS}/report/{name}" if name else f"{RESULTS}/report"


def report_files(config: dict | None = None) -> dict[str, str]:
    """The leaderboard files and the figures folder the report rule writes."""
    base = report_dir(config)
    return {"csv": f"{base}/leaderboard.csv", "md": f"{base}/leaderboard.md", "html": f"{base}/leaderboard.html",
            "figures": f"{base}/figures"}


def tracking_pending(record: str | os.PathLike) -> str:
    """The runs the last track_runs job left unlogged (a tracking outage), as one string ('' when none, or no
    record): the workflow then drops the record, so the next call runs track_runs again."""
    try:
        with open(record, encoding="utf-8") as fh:
            return " ".join(json.load(fh).get("pending") or [])
    except (OSError, ValueError):
        return ""
