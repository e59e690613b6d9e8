"""Train one model on one task with one seed: the training stage's entry (`seqpipe train`).

`main` parses the job's settings once (`--job JSON` -> `seqpipe.config.types.TrainJob`; the result-neutral
ones from $SEQPIPE_RUNTIME -> `Runtime`) and `train` runs it: device, seed, data, the resume state, MLflow,
then `loop.fit` (the epochs; the step is `epoch.run_epoch`, the files a run writes are `records`').

Checkpoints are plain dicts (`checkpoint.py`, loadable with `torch.load(..., weights_only=True)`)
written atomically: best.pt, last.pt and model.pt (the best weights with the model's config and
dimensions). A run killed at any point continues from its last saved state when started again
with the same job, data and code, and ends bit for bit where an uninterrupted run ends (CPU).
Per run: `scalars.csv` (one row per epoch and split), `events.jsonl` (on_start, on_resume,
on_epoch_end, on_train_end, on_exception, ...), `figures/loss.png` and `run.json` (MLflow run id,
best epoch). Files first, MLflow second: a tracking outage never loses a trained model.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Mapping
from pathlib import Path

import torch

from seqpipe import __version__
from seqpipe.config.types import Runtime, SettingsError, Training, TrainJob, runtime_from_env
from seqpipe.taskfile.hdf5 import read_attrs
from seqpipe.taskfile.reader import training_data
from seqpipe.io import config_hash, read_json, write_json
from seqpipe.tracking.invocation import with_invocation
from seqpipe.tracking.run import Tracker, git_commit, live_tracking
from seqpipe.training import checkpoint, gpus
from seqpipe.training.device import data_budget_mb, seed_everything, set_up_device
from seqpipe.training.epoch import regularizers_fn
from seqpipe.training.loop import Context, fit
from seqpipe.training.losses import check_losses
from seqpipe.training.records import Facts

log = logging.getLogger("seqpipe.train")


def training_settings(training: Mapping) -> Training:
    """`training` validated, with every default of the schema's `training` section filled in (the one place
    defaults live), as a `Training` (its result-neutral keys left out: they are `Runtime`'s)."""
    from seqpipe.config.load import training_from_dict

    return training_from_dict(training)


def job_and_runtime(job: TrainJob | Mapping, runtime: Runtime | None) -> tuple[TrainJob, Runtime]:
    """A `TrainJob` (a plain dict, e.g. a test's or a notebook's, gets the schema's defaults) and its runtime
    settings: `runtime`, else the dict's own training keys, else $SEQPIPE_RUNTIME, else the schema's defaults."""
    if not isinstance(job, TrainJob):
        from seqpipe.config.load import train_job_from_dict

        job, own = train_job_from_dict(job)
        runtime = runtime or own
    if runtime is None:
        from seqpipe.config.load import default_runtime

        runtime = runtime_from_env() or default_runtime()
    return job, runtime.for_model(job.model.name)


def start_tracker(job: TrainJob, settings: dict, saved: dict | None, tracking: dict | None, raw_sha: str) -> Tracker:
    """The run's MLflow tracker (live tracking only; else the track_runs rule logs the files): the saved run continued
    when the state was saved to this store, else a new run with the resolved settings as params."""
    tracker = Tracker(live_tracking(tracking))
    tags = {"task": job.task.name, "model": job.model.name, "seed": str(job.seed), "git_commit": git_commit(),
            "config_hash": config_hash(settings), "dataset_sha256": raw_sha, "seqpipe_version": __version__}
    same_store = saved is not None and saved.get("tracking_uri") == (tracking or {}).get("tracking_uri")
    if same_store and saved.get("mlflow_run_id") and tracker.client is not None:
        tracker.run_id, tracker.tags = saved["mlflow_run_id"], with_invocation(tags)  # continue the same MLflow run
    else:
        tracker.start(job.label, settings, tags)  # params: the resolved settings, defaults included
    return tracker


def data_provenance(data_path: str | Path) -> tuple[dict | None, str]:
    """The task file's provenance (its feature settings) and the raw data's sha256 it names."""
    provenance = read_attrs(data_path).get("provenance", "{}")
    if not isinstance(provenance, str):
        return None, "unknown"
    parsed = json.loads(provenance)
    return parsed, parsed.get("raw_sha256", "unknown")


def train(job: TrainJob | Mapping, data_path: str | Path, out_dir: str | Path, tracking: dict | None = None, threads: int = 1,
          resume_dir: str | Path | None = None, gpu_share: int = 1, runtime: Runtime | None = None,
          code_stamp: str | Path | None = None) -> dict:
    """Run one training job end to end (continuing a saved unfinished run of the same job); returns run.json's contents.

    The resume state lives in `resume_dir` when given (kept outside Snakemake's declared outputs,
    cleared after success), else in `out_dir`/last.pt. `gpu_share`: how many jobs share this GPU
    (packed cluster jobs); each may then allocate at most its share of the GPU's memory.
    """
    job, runtime = job_and_runtime(job, runtime)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state_dir = Path(resume_dir) if resume_dir else out_dir
    torch.set_num_threads(threads)
    device = set_up_device(job.training.device, job.training.deterministic, gpu_share)
    generator = seed_everything(job.seed)
    check_losses(job.task.losses)
    regularizers_fn(job.training.regularizers)
    budget = data_budget_mb(runtime.memory_budget_mb, device, gpu_share)  # in-memory splits live on the GPU
    data = training_data(data_path, job.task, budget, runtime.num_workers, device)
    for folder in {out_dir, state_dir}:
        checkpoint.remove_partial(folder)
    settings = job.as_run(runtime)
    key = checkpoint.resume_key(settings, data_path, code_stamp)
    saved, why = checkpoint.find_resume_state(state_dir, key)
    if saved is None and (state_dir / "last.pt").exists():
        log.info("starting from scratch: %s", why)
    provenance, raw_sha = data_provenance(data_path)
    tracker = start_tracker(job, settings, saved, tracking, raw_sha)
    try:
        summary = fit(job, runtime, data, Context(out_dir, state_dir, tracker, device, generator), saved, key, provenance)
    except Exception as err:
        Facts.append_event(out_dir, "on_exception", error=f"{type(err).__name__}: {err}")
        tracker.end("FAILED")
        raise
    tracker.log_outputs(out_dir)  # facts, best.pt and the model; tags go to run.json for `seqpipe sync-mlflow`
    tracker.end()
    run = {"name": job.label, "mlflow_run_id": tracker.run_id, "tracking_uri": (tracking or {}).get("tracking_uri"),
           "config_hash": config_hash(settings), "tags": tracker.tags, "mlflow_error": tracker.error, **summary}
    if saved is not None:
        run["resumed_at_epoch"] = saved["epoch"] + 1
    write_json(out_dir / "run.json", run)
    if state_dir != out_dir:
        checkpoint.clear(state_dir)
    return run


def parse_job(text: str) -> TrainJob | dict:
    """`--job`: the complete settings the workflow writes (seqpipe.config.plan.train_params) as a `TrainJob`, parsed
    as they are; a hand-written job (a partial `training`, its runtime keys among them) as a dict, which `train`
    completes with the schema's defaults (seqpipe.config.load.train_job_from_dict)."""
    try:
        return TrainJob.from_json(text)
    except SettingsError:
        return json.loads(text)


def main(argv: list[str] | None = None) -> None:
    """`seqpipe train --data H5 --job JSON --tracking JSON --out-dir DIR [--resume-dir DIR] [--threads N] [--gpu-locks DIR] [--gpu-share N]`"""
    parser = argparse.ArgumentParser(prog="seqpipe train", description="Train one model on one task with one seed: writes best.pt, "
                                     "last.pt, model.pt, scalars.csv, figures and run.json, logs to MLflow, and resumes an "
                                     "interrupted run of the same job. The result-neutral settings (checkpoint_every, progress, "
                                     "num_workers, memory_budget_mb) come from $SEQPIPE_RUNTIME (docs/configuration.md), else the "
                                     "schema's defaults.")
    parser.add_argument("--data", required=True, help="the task's HDF5 file")
    parser.add_argument("--job", required=True, help="the job's settings as JSON (seqpipe.config.types.TrainJob, "
                                                     "as seqpipe.config.plan.train_params writes them)")
    parser.add_argument("--tracking", help="tracking.json written by `seqpipe tracking-setup`")
    parser.add_argument("--out-dir", required=True, help="the run folder (results/runs/<task>/<model>/<seed>)")
    parser.add_argument("--resume-dir", help="where the resume state lives, outside the rule's outputs (default: the run folder)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for torch (default: 1)")
    parser.add_argument("--gpu-locks", help="folder of the GPU lock files: with CUDA_VISIBLE_DEVICES unset, claim a GPU of "
                                            "this machine that no other training job holds (seqpipe.training.gpus)")
    parser.add_argument("--gpu-share", type=int, default=1, help="jobs sharing this GPU (packed jobs): each gets 1/N of its memory")
    parser.add_argument("--code", help="the code stamp of training (results/code/...sha256): the resume key's code part")
    args = parser.parse_args(argv)
    tracking = read_json(args.tracking) if args.tracking else None
    try:
        job = parse_job(args.job)
        device = job.training.device if isinstance(job, TrainJob) else (job.get("training") or {}).get("device", "auto")
        with gpus.claimed_gpu(args.gpu_locks, device) if args.gpu_locks else contextlib.nullcontext():
            train(job, args.data, args.out_dir, tracking, args.threads, args.resume_dir, args.gpu_share, code_stamp=args.code)
    except (FloatingPointError, KeyError, ValueError, FileNotFoundError) as err:
        log.error("%s", err)
        sys.exit(1)
