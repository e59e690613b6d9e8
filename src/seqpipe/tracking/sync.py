"""`seqpipe sync-mlflow`: log to MLflow the runs that trained while tracking was down, from their files.

A run folder needs syncing when its run.json has no `mlflow_run_id` (tracking was unreachable or
off) or records an `mlflow_error` (tracking failed part-way; the partial MLflow run is deleted
and replaced), or when evaluation could not log its test metrics (a `mlflow_eval_pending.json`
marker). Everything is rebuilt from the files training wrote: params from the job stored in
last.pt (or best.pt), every per-epoch metric exactly as training logged it (the checkpoint's
history, full precision: losses, per-term losses, metrics, lr, timings; scalars.csv for older
runs) with their times from events.jsonl, test metrics and evaluation tables from metrics.json,
artifacts and the model, tags from run.json. The new run id is then recorded in the ledger
(`logged_runs.json` beside tracking.json; the track_runs rule's `results/mlflow/logged_runs.json`),
keyed by the run folder (relative to the runs folder) and the SHA-256 of its run.json, with the
store it went to. run.json, a training output, is never written: a run the run cache restores has
the same run.json, so it counts as logged, and a retrained one (a new run.json) is logged anew; a
new store or experiment logs every run into it. Idempotent: a synced folder is skipped, and a run
the previous sync created but did not record (it stopped in between) is found again by its
`seqpipe.sync_key` tag. Run one sync at a time, while no pipeline is writing these run folders.

The ledger is not the track_runs record (`logged.json`): Snakemake deletes a job's outputs before
it runs the job again, and the workflow drops the record to retry pending runs.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from seqpipe.io import config_hash, read_json, sha256_file, write_json
from seqpipe.tracking.run import CHECKPOINT, Tracker

log = logging.getLogger("seqpipe.tracking")
SYNC_KEY_TAG = "seqpipe.sync_key"
SYNCED_TAG = "seqpipe.synced_from_files"
TRAIN_COLUMNS = {"loss": "train_loss", "metric": "train_metric", "epoch_time_s": "epoch_time_s", "samples_per_s": "samples_per_s"}
VAL_COLUMNS = {"loss": "val_loss", "metric": "val_metric"}


EVAL_PENDING = "mlflow_eval_pending.json"
LEDGER = "logged_runs.json"


class SyncError(RuntimeError):
    """A run folder that could not be logged (its run.json is left unchanged)."""


def needs_sync(run: dict) -> bool:
    """True when run.json has no MLflow run id or records a tracking failure."""
    return not run.get("mlflow_run_id") or bool(run.get("mlflow_error"))


def ledger_path(tracking_file: str | Path) -> Path:
    """The default ledger of logged runs: beside tracking.json."""
    return Path(tracking_file).with_name(LEDGER)


def read_ledger(path: str | Path | None) -> dict[str, dict]:
    """Run folder -> {identity, run_id, store} of every run a sync logged ({} when there is no ledger yet). A damaged
    ledger is reported and read as empty: its runs are then found again by their sync_key tag, not logged twice."""
    if path is None or not Path(path).exists():
        return {}
    try:
        runs = read_json(path)["runs"]
        if isinstance(runs, dict):
            return runs
    except (ValueError, KeyError, TypeError):
        pass
    log.warning("%s: not a ledger of logged runs ({\"runs\": {...}}); reading it as empty (earlier runs are found again "
                "in MLflow by their %s tag, not logged twice) and writing it anew", path, SYNC_KEY_TAG)
    return {}


def store_of(tracking: dict | None) -> list:
    """The MLflow store and experiment a run is logged to."""
    return [(tracking or {}).get("tracking_uri"), (tracking or {}).get("experiment")]


def ledger_entry(runs_dir: Path, run_dir: Path) -> tuple[str, str]:
    """A run folder's key in the ledger (its path below the runs folder) and its run.json's identity (SHA-256)."""
    return run_dir.relative_to(runs_dir).as_posix(), sha256_file(run_dir / "run.json")[:16]


def is_logged(logged: dict[str, dict], runs_dir: Path, run_dir: Path, tracking: dict | None) -> bool:
    """True when the ledger holds this run folder with this very run.json, logged to this store."""
    key, identity = ledger_entry(runs_dir, run_dir)
    entry = logged.get(key) or {}
    return entry.get("identity") == identity and entry.get("store") == store_of(tracking)


def pending(runs_dir: str | Path, tracking: dict | None = None, ledger: str | Path | None = None) -> list[Path]:
    """Run folders under `runs_dir` (any depth) not logged yet to `tracking`'s store (run.json has no MLflow run id
    or records an error, and the ledger does not hold it) or whose test metrics wait, sorted."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise SyncError(f"{runs_dir}: no such folder of training runs")
    logged = read_ledger(ledger)
    return sorted(path.parent for path in runs_dir.rglob("run.json")
                  if (path.parent / EVAL_PENDING).exists()
                  or (needs_sync(read_json(path)) and not is_logged(logged, runs_dir, path.parent, tracking)))


def mark_evaluation_pending(run_dir: str | Path, why: str) -> None:
    """Record that a run's test metrics did not reach MLflow (metrics.json keeps them; sync logs them)."""
    write_json(Path(run_dir) / EVAL_PENDING, {"why": why})
    log.warning("test metrics not logged to MLflow (%s); kept for `seqpipe sync-mlflow` (%s)", why, Path(run_dir) / EVAL_PENDING)


def evaluation_metrics(result: dict) -> dict[str, float]:
    """A metrics.json as MLflow metrics: `test_<name>`, its bootstrap interval (`test_<name>_ci_low/_ci_high`) and the
    piece-level ones (`test_piece_<name>`, with theirs) where the evaluation has them."""
    out: dict[str, float] = {}

    def add(prefix: str, metrics: dict, intervals: dict) -> None:
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"{prefix}{name}"] = float(value)
                low_high = intervals.get(name)
                if isinstance(low_high, (list, tuple)) and len(low_high) == 2 and None not in low_high:
                    out[f"{prefix}{name}_ci_low"], out[f"{prefix}{name}_ci_high"] = map(float, low_high)

    add("test_", result.get("metrics", {}), result.get("intervals", {}))
    piece = result.get("piece_level") or {}
    add("test_piece_", piece.get("metrics", {}), piece.get("intervals", {}))
    return out


def log_evaluation(tracker: Tracker, result: dict) -> None:
    """Test metrics (`test_<name>`), the metrics file, and for classification the confusion matrix (figure and
    table) and the per-class scores, into the tracker's run."""
    tracker.metrics(evaluation_metrics(result))
    if not tracker.active:
        return
    client, run_id = tracker.client, tracker.run_id
    tracker._safely("log evaluation", lambda: client.log_dict(run_id, result, "evaluation/metrics.json"))
    if "per_class" in result:
        rows = ["class,precision,recall,f1,support"] + [
            ",".join([str(name)] + [f"{scores.get(k, '')}" for k in ("precision", "recall", "f1", "support")])
            for name, scores in result["per_class"].items()]
        tracker._safely("log per-class table", lambda: client.log_text(run_id, "\n".join(rows) + "\n", "evaluation/per_class.csv"))
    if "confusion_matrix" in result:
        from seqpipe.tracking.figures import confusion_figure

        figure = confusion_figure(result["confusion_matrix"], list(result.get("per_class", {})) or None)
        tracker._safely("log confusion matrix", lambda: client.log_figure(run_id, figure, "evaluation/confusion_matrix.png"))
        import matplotlib.pyplot as plt

        plt.close(figure)


def read_checkpoint(run_dir: Path) -> dict:
    """The last (else best) checkpoint's state: the job's resolved settings and the whole training history."""
    import torch  # here, not at the top: `sync-mlflow` with nothing pending does not pay for torch

    for name in ("last.pt", CHECKPOINT):
        if (run_dir / name).exists():
            return torch.load(run_dir / name, map_location="cpu", weights_only=True)
    raise SyncError(f"{run_dir}: neither best.pt nor last.pt; the job's params cannot be recovered")


def epoch_metrics(scalars: Path) -> dict[int, dict[str, float]]:
    """Per-epoch metrics from scalars.csv under the names training logs them with."""
    out: dict[int, dict[str, float]] = {}
    with open(scalars, newline="") as fh:
        for row in csv.DictReader(fh):
            columns = TRAIN_COLUMNS if row["split"] == "train" else VAL_COLUMNS
            values = out.setdefault(int(row["epoch"]), {})
            values.update({name: float(row[col]) for col, name in columns.items() if row.get(col) not in (None, "")})
    return out


def event_times(events: Path) -> dict[str | int, int]:
    """Milliseconds of `on_start`, `on_train_end` and each epoch's end (keyed by epoch) from events.jsonl."""
    times: dict[str | int, int] = {}
    if not events.exists():
        return times
    for line in events.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        key = event["epoch"] if event["event"] == "on_epoch_end" else event["event"]
        times[key] = int(event["time"] * 1000)
    return times


def run_tags(run: dict, state: dict, key: str) -> dict[str, str]:
    """Tags recorded in run.json (or rebuilt from the checkpoint for older runs) plus the sync tags."""
    job = state["job"]
    rebuilt = {"task": job["task"]["name"], "model": job["model"]["name"], "seed": str(job["seed"]), "config_hash": config_hash(job),
               "seqpipe_version": str(state.get("seqpipe_version", "unknown"))}
    return {**(run.get("tags") or rebuilt), SYNC_KEY_TAG: key, SYNCED_TAG: "true"}


def sync_key(run_dir: Path) -> str:
    """Identifies one training of a folder (events.jsonl carries its wall-clock times)."""
    source = run_dir / "events.jsonl" if (run_dir / "events.jsonl").exists() else run_dir / CHECKPOINT
    return sha256_file(source)[:16]


def adopt_or_clear(tracker: Tracker, key: str, stale_run_id: str | None) -> str | None:
    """A FINISHED run an earlier sync made for `key` (returned to adopt); unfinished ones and the stale run are deleted."""
    client, adopted = tracker.client, None
    for found in client.search_runs([tracker.tracking["experiment_id"]], filter_string=f"tags.`{SYNC_KEY_TAG}` = '{key}'"):
        if found.info.status == "FINISHED" and adopted is None:
            adopted = found.info.run_id
        else:
            client.delete_run(found.info.run_id)
    if stale_run_id and stale_run_id != adopted:
        try:
            client.delete_run(stale_run_id)
        except Exception as err:  # noqa: BLE001 - the partial run may live in another store
            log.info("could not delete the partial MLflow run %s (%s); leaving it", stale_run_id, err)
    return adopted


def log_from_files(tracker: Tracker, run_dir: Path, run: dict, state: dict, key: str) -> None:
    """Create the MLflow run of `run_dir` and log params, metrics, artifacts and model from its files."""
    times = event_times(run_dir / "events.jsonl")
    tracker.start(run["name"], state["job"], run_tags(run, state, key), start_time_ms=times.get("on_start"), environ={})
    logged = (state.get("history") or {}).get("metrics")
    per_epoch = {int(epoch): values for epoch, values in logged} if logged else epoch_metrics(run_dir / "scalars.csv")
    for epoch, values in sorted(per_epoch.items()):
        tracker.metrics(values, step=epoch, timestamp_ms=times.get(epoch))
    if (run_dir / "metrics.json").exists():
        log_evaluation(tracker, read_json(run_dir / "metrics.json"))
    tracker.log_outputs(run_dir)
    tracker.end(end_time_ms=times.get("on_train_end"))


def sync_evaluation(run_dir: Path, run: dict, tracking: dict) -> str:
    """Log the test metrics of an already logged run whose evaluation could not reach MLflow; returns the run id."""
    tracker = Tracker(tracking, run_id=run["mlflow_run_id"])
    if not tracker.active:
        raise SyncError(f"{run_dir}: {tracker.error or 'no tracking configured'}")
    log_evaluation(tracker, read_json(run_dir / "metrics.json"))
    if tracker.error:
        raise SyncError(f"{run_dir}: {tracker.error}; the marker stays, sync again once tracking works")
    (run_dir / EVAL_PENDING).unlink()
    return run["mlflow_run_id"]


def sync_run(run_dir: str | Path, tracking: dict, logged_id: str | None = None) -> str:
    """Log one run folder to MLflow (its run.json untouched); returns the run id. `logged_id`: the ledger's run id of
    this folder (only its test metrics wait)."""
    run_dir = Path(run_dir)
    run = read_json(run_dir / "run.json")
    if logged_id:
        return sync_evaluation(run_dir, {**run, "mlflow_run_id": logged_id}, tracking)
    if not needs_sync(run):
        return sync_evaluation(run_dir, run, tracking)
    state = read_checkpoint(run_dir)
    if not (run_dir / "scalars.csv").exists():
        raise SyncError(f"{run_dir}: no scalars.csv; training did not finish here")
    tracker = Tracker(tracking)
    if tracker.client is None:
        raise SyncError(f"{run_dir}: {tracker.error or 'no tracking configured'}")
    key = sync_key(run_dir)
    try:
        run_id = adopt_or_clear(tracker, key, run.get("mlflow_run_id") if run.get("mlflow_error") else None)
    except Exception as err:  # noqa: BLE001 - reported per folder, the others still sync
        raise SyncError(f"{run_dir}: looking for an earlier sync failed ({type(err).__name__}: {err})") from err
    if run_id is None:
        log_from_files(tracker, run_dir, run, state, key)
        if tracker.error or not tracker.run_id:
            raise SyncError(f"{run_dir}: {tracker.error}; run.json left unchanged, sync again once tracking works")
        run_id = tracker.run_id
    (run_dir / EVAL_PENDING).unlink(missing_ok=True)  # its test metrics went in with the run
    return run_id


def sync(runs_dir: str | Path, tracking: dict, ledger: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Sync every pending run folder and record each in the ledger (written once, at the end, atomically); returns
    (synced run ids, error messages). Stops at once if tracking is down."""
    synced, errors, runs_dir = [], [], Path(runs_dir)
    todo = pending(runs_dir, tracking, ledger)
    if todo and (probe := Tracker(tracking)).client is None:
        raise SyncError(f"{len(todo)} run(s) to sync, but {probe.error or 'no tracking is configured'}; run again once it answers")
    logged = read_ledger(ledger)
    try:
        for run_dir in todo:
            key, identity = ledger_entry(runs_dir, run_dir)
            try:
                logged_id = logged[key]["run_id"] if is_logged(logged, runs_dir, run_dir, tracking) else None
                synced.append(sync_run(run_dir, tracking, logged_id))
                log.info("%s -> MLflow run %s", run_dir, synced[-1])
            except SyncError as err:
                errors.append(str(err))
                log.error("%s", err)
                continue
            if needs_sync(read_json(run_dir / "run.json")):
                logged[key] = {"identity": identity, "run_id": synced[-1], "store": store_of(tracking)}
    finally:
        if ledger is not None and synced:
            write_json(ledger, {"runs": dict(sorted(logged.items()))})
    return synced, errors


def logged_run_id(runs_dir: str | Path, run_dir: str | Path, ledger: str | Path, tracking: dict | None = None) -> str | None:
    """The MLflow run id of a run folder: the ledger's (for `tracking`'s store, when given), else its run.json's (a
    live run logged by its own job)."""
    key, identity = ledger_entry(Path(runs_dir), Path(run_dir))
    entry = read_ledger(ledger).get(key) or {}
    if entry.get("identity") == identity and (tracking is None or entry.get("store") == store_of(tracking)):
        return entry.get("run_id")
    run = read_json(Path(run_dir) / "run.json")
    return None if needs_sync(run) else run.get("mlflow_run_id")


def write_record(path: str | Path, runs_dir: str | Path, synced: list[str], errors: list[str], tracking: dict | None = None,
                 ledger: str | Path | None = None) -> None:
    """What a sync logged and what is still pending (the track_runs rule's output; a later call logs the rest)."""
    try:
        left = [Path(d).as_posix() for d in pending(runs_dir, tracking, ledger)]
    except SyncError:
        left = []
    write_json(path, {"logged": len(synced), "pending": left, "errors": errors})
    if left:
        log.warning("%d run(s) not logged to MLflow yet (%s); the next snakemake call or `seqpipe sync-mlflow` logs them",
                    len(left), "; ".join(errors) or "see above")


def main(argv: list[str] | None = None) -> int:
    """`seqpipe sync-mlflow --runs results/runs --tracking results/mlflow/tracking.json [--dry-run] [--record JSON]`"""
    parser = argparse.ArgumentParser(prog="seqpipe sync-mlflow", description="Log to MLflow the runs (and test metrics) that are "
                                     "not logged yet, from the files they wrote: after evaluation (the track_runs rule), or "
                                     "those trained while the tracking server was unreachable.")
    parser.add_argument("--runs", default="results/runs", help="folder of training runs (searched for run.json)")
    parser.add_argument("--tracking", default="results/mlflow/tracking.json", help="tracking.json written by `seqpipe tracking-setup`")
    parser.add_argument("--ledger", help="the ledger of logged runs (default: logged_runs.json beside --tracking)")
    parser.add_argument("--dry-run", action="store_true", help="only list the run folders that need syncing")
    parser.add_argument("--record", help="write what was logged and what is still pending to this JSON file, and exit 0 when "
                        "tracking is down or a folder fails (they stay pending for the next call): the track_runs rule")
    args = parser.parse_args(argv)
    synced, errors = [], []
    ledger = args.ledger or ledger_path(args.tracking)
    tracking = read_json(args.tracking) if Path(args.tracking).exists() else None
    try:
        if args.dry_run:
            for run_dir in pending(args.runs, tracking, ledger):
                print(run_dir)
            return 0
        if tracking is None:
            raise SyncError(f"{args.tracking}: no tracking file; run `seqpipe tracking-setup` (or the tracking_setup rule) first")
        if not args.record or Path(args.runs).is_dir():
            synced, errors = sync(args.runs, tracking, ledger)
    except SyncError as err:
        log.error("%s", err)
        if not args.record:
            return 1
        errors.append(str(err))
    log.info("synced %d run(s) to MLflow, %d failed", len(synced), len(errors))
    if args.record:
        write_record(args.record, args.runs, synced, errors, tracking, ledger)
        return 0
    return 1 if errors else 0
