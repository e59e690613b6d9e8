"""Evaluate a trained model's best checkpoint on the test split; add the metrics to its MLflow run.

Only the test split is read (`seqpipe.taskfile.reader`): in memory when it fits `--memory-budget-mb`,
else batch by batch from the file, predicting each batch as it comes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from seqpipe.config.types import Task, TaskType
from seqpipe.taskfile.reader import StreamSplit, TaskFile, add_budget_option, open_task, targets
from seqpipe.evaluation import pieces, predictions, stats
from seqpipe.evaluation.metrics import (
    check_finite,
    check_same_shape,
    classification_metrics,
    reconstruction_metrics,
    regression_metrics,
)
from seqpipe.evaluation.predictions import Predictions
from seqpipe.taskfile.domains import domain_accuracy
from seqpipe.evaluation.per_song import song_scores
from seqpipe.io import read_json, write_json
from seqpipe.models import Normalised
from seqpipe.models.loading import load_trained
from seqpipe.tracking.run import Tracker, live_tracking

log = logging.getLogger("seqpipe.evaluate")
EVAL_BATCH = 256  # samples per prediction batch (fewer when the memory budget is small)
RECONSTRUCTION_SCORING = 4  # whole-split reconstruction scoring needs about this many times the split's memory


@torch.no_grad()
def predict(
    model: Normalised, x: torch.Tensor, task_type: str, batch_size: int = 256, probabilities: bool = False
) -> np.ndarray:
    """Class ids (or, with `probabilities`, class probabilities) for classification, values in the
    targets' units otherwise (`x` in memory)."""
    return np.concatenate([predict_batch(model, x[start : start + batch_size], task_type, probabilities)
                           for start in range(0, len(x), batch_size)])


@torch.no_grad()
def predict_batch(model: Normalised, x: torch.Tensor, task_type: str, probabilities: bool = False) -> np.ndarray:
    """One batch's predictions: class ids (or, with `probabilities`, class probabilities, float32) for
    classification, values in the targets' units otherwise."""
    out = model(x)
    if task_type == "classification":
        out = torch.softmax(out.double(), -1).float() if probabilities else out.argmax(-1)
    else:
        out = model.denormalise(out)
    return out.cpu().numpy()


class ReconstructionScore:
    """`score` of a reconstruction task, summed batch by batch in float64 (a streamed test split).

    Gives the same record as `score` on the whole arrays (mse, mae, per-feature MSE, per-step
    metrics) without holding the inputs and reconstructions of the whole split.
    """

    def __init__(self, feature_names: list[str] | None):
        self.feature_names, self.n = feature_names, 0
        self.sq: np.ndarray | None = None
        self.abs: np.ndarray | None = None

    def add(self, y_true: np.ndarray, y_pred: np.ndarray) -> None:
        """Add one batch of inputs [B, T, D] and their reconstructions."""
        a, b = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
        check_same_shape(a, b, "reconstruction_metrics")  # the same checks and messages as the in-memory path
        check_finite(a, "reconstruction_metrics inputs")
        check_finite(b, "reconstruction_metrics reconstructions")
        err = a - b
        sq, ab = (err**2).sum(0), np.abs(err).sum(0)
        self.sq, self.abs = (sq, ab) if self.sq is None else (self.sq + sq, self.abs + ab)
        self.n += len(a)

    def result(self) -> dict:
        """The record `score` gives for a reconstruction task."""
        if self.sq is None or not self.n:
            raise ValueError("reconstruction_metrics: got empty arrays; the split has no samples to evaluate")
        sq, ab, n = self.sq, self.abs, self.n
        steps, width = sq.shape if sq.ndim == 2 else (1, sq.shape[-1])
        sq, ab = sq.reshape(steps, width), ab.reshape(steps, width)
        names = list(self.feature_names) if self.feature_names is not None else [f"f{i}" for i in range(width)]
        if len(names) != width:
            raise ValueError(f"reconstruction_metrics: {len(names)} feature names for {width} features (last axis)")
        per_feature = sq.sum(0) / (n * steps)
        return {
            "metrics": {"mse": float(sq.sum() / (n * steps * width)), "mae": float(ab.sum() / (n * steps * width))},
            "per_feature_mse": {str(name): float(v) for name, v in zip(names, per_feature)},
            "primary": "mse",
            "higher_is_better": False,
            "per_step": [{"mse": float(sq[t].sum() / (n * width)), "mae": float(ab[t].sum() / (n * width))} for t in range(steps)],
        }


class SplitOutputs:
    """A split's targets and outputs gathered batch by batch into what scoring and `predictions.h5` need.

    `add` takes a batch of targets and outputs (class probabilities for classification, values in
    the targets' units otherwise). Classification and regression keep targets and predictions per
    sample (class ids; seq2static classification also its probabilities); reconstruction keeps
    per-sample error sums and counts, and either the whole inputs and reconstructions (`whole`,
    scored as arrays) or only running sums (`ReconstructionScore`, a streamed split).
    """

    def __init__(self, task: Task, n: int, names: dict, whole: bool = True):
        self.task, self.n, self.names, self.filled = task, n, names, 0
        self.arrays: dict[str, np.ndarray] = {}  # predictions.sample_arrays (y_true, y_pred for classification and regression)
        self.whole: dict[str, np.ndarray] = {}  # a reconstruction split's inputs and reconstructions, when `whole`
        reconstruction = task.is_reconstruction
        self.running = ReconstructionScore(names.get("feature_names")) if reconstruction and not whole else None
        self.keep_whole = reconstruction and whole

    def _fill(self, into: dict[str, np.ndarray], batch: dict[str, np.ndarray]) -> None:
        for key, value in batch.items():
            if key not in into:  # filled in place: no small arrays left between the batches' large ones (heap fragmentation)
                into[key] = np.empty((self.n, *value.shape[1:]), value.dtype)
            into[key][self.filled : self.filled + len(value)] = value

    def add(self, y_true: np.ndarray, outputs: np.ndarray) -> None:
        """Add one batch of targets and outputs (in the split's order)."""
        if self.running is not None:
            self.running.add(y_true, outputs)
        elif self.keep_whole:
            self._fill(self.whole, {"y_true": y_true, "y_pred": outputs})
        self._fill(self.arrays, predictions.sample_arrays(self.task.type.value, y_true, outputs))
        self.filled += len(y_true)

    def result(self, item_ids: np.ndarray | None, predictions_path: str | Path | None = None) -> tuple[int, dict]:
        """Sample count and `score` with intervals and piece-level metrics; writes `predictions_path` when given."""
        if self.filled != self.n:
            raise ValueError(f"evaluation: got {self.filled} outputs for a split of {self.n} samples")
        if not self.n:
            raise ValueError(f"{self.task.type.value}_metrics: got empty arrays; the split has no samples to evaluate")
        pred = predictions.from_arrays(self.task.type.value, self.arrays, item_ids, tuple(self.names.get("class_names", ())))
        if predictions_path:
            predictions.save(predictions_path, pred)
        if self.running is not None:
            return self.n, self.running.result() | uncertainty(self.task, pred, self.names)
        y = self.whole if self.keep_whole else self.arrays
        return self.n, score(self.task, y["y_true"], y["y_pred"], self.names, pred)


def score_split(
    task: Task, data: TaskFile, predict_fn: Callable[[torch.Tensor], np.ndarray], split: str = "test",
    predictions_path: str | Path | None = None,
) -> tuple[int, dict]:
    """Sample count and `score` (with intervals and piece-level metrics) of `predict_fn` on one split,
    predicted batch by batch; the per-sample predictions go to `predictions_path` when given.

    `predict_fn` gives a batch's class probabilities for classification, values otherwise. The
    split is held in memory when it fits the budget, else read from the file batch by batch; a
    streamed reconstruction split is scored as it goes (`ReconstructionScore`). Scoring a whole
    reconstruction split takes float64 copies of inputs and outputs (about 4x the split), so that
    one streams unless 4x fits.
    """
    need = data[split].estimate_mb() * (RECONSTRUCTION_SCORING if task.is_reconstruction else 1)
    source = data.source(split, need <= data.memory_budget_mb)
    batch_size = max(1, min(EVAL_BATCH, data[split].block_rows("data", data.memory_budget_mb)))
    outputs = SplitOutputs(task, len(source), data.names, whole=not isinstance(source, StreamSplit))
    for batch in source.batches(batch_size):
        outputs.add(batch.y.cpu().numpy(), predict_fn(batch.x))
    n, scored = outputs.result(data[split].item_ids(), predictions_path)
    return n, _song_scores(scored, task, data, outputs, split)


def split_targets(task: Task, data: TaskFile, split: str = "test") -> np.ndarray:
    """The targets of a classification or regression split, from its labels alone (the inputs are not read)."""
    return np.ascontiguousarray(targets(task, None, data[split].labels()))


def score(task: Task, y_true: np.ndarray, y_pred: np.ndarray, names: dict, pred: Predictions | None = None) -> dict:
    """The metrics of a task type, from metrics.py; seq2seq tasks also get them per step.

    With the per-sample predictions `pred`, every metric also gets its bootstrap interval, and
    seq2static tasks with item ids get piece-level metrics (see `uncertainty`).
    """
    scored = _score(task, y_true, y_pred, names)
    if task.is_seq2seq and y_true.ndim >= 2:
        scored["per_step"] = [_score(task, y_true[:, t], y_pred[:, t], names)["metrics"] for t in range(y_true.shape[1])]
    if pred is not None:
        scored |= uncertainty(task, pred, names)
    return scored


def intervals(pred: Predictions) -> dict[str, list[float]]:
    """The bootstrap interval of every metric, resampling whole items when item ids exist."""
    named = predictions.statistics(pred)
    values = stats.bootstrap(list(named.values()), pred.item_ids)
    return {name: stats.interval(row) for name, row in zip(named, values, strict=True)}


def uncertainty(task: Task, pred: Predictions, names: dict) -> dict:
    """Intervals of the window-level metrics and the piece-level metrics with theirs.

    `piece_level` holds `metrics`, `intervals` and `n_items`, or `absent` with the reason.
    """
    out: dict = {
        "intervals": intervals(pred),
        "interval": {"confidence": stats.CONFIDENCE, "resamples": stats.N_RESAMPLES, "seed": stats.SEED,
                     "unit": "item" if pred.item_ids is not None else "sample", "method": "percentile bootstrap"},
    }
    if pred.item_ids is not None:
        out["n_items"] = int(len(np.unique(pred.item_ids)))
    reason = pieces.why_no_pieces(pred)
    if reason is not None:
        out["piece_level"] = {"absent": reason}
        return out
    piece = pieces.piece_predictions(pred)
    y_true, y_pred = piece.arrays["y_true"], piece.arrays["y_pred"]
    piece_task = task.with_mapping("seq2static")
    out["piece_level"] = {
        "metrics": _score(piece_task, y_true, y_pred, names)["metrics"],
        "intervals": intervals(piece),
        "n_items": len(y_true),
        "method": "mean class probability over an item's windows" if task.is_classification
        else "mean prediction over an item's windows, against the mean target",
    }
    return out


def _score(task: Task, y_true: np.ndarray, y_pred: np.ndarray, names: dict) -> dict:
    if task.is_classification:
        return classification_metrics(y_true.reshape(-1), y_pred.reshape(-1), names["class_names"])
    if task.is_reconstruction:
        if y_true.ndim == 2:  # one step of [N, T, D]: score it as a one-step sequence
            y_true, y_pred = y_true[:, None], y_pred[:, None]
        return reconstruction_metrics(y_true, y_pred, names.get("feature_names"))
    return regression_metrics(y_true, y_pred, names["target_names"])


def record(task: Task, model: str, seed: int, n: int, scored: dict) -> dict:
    """A metrics.json record: task, model, seed, type, split, sample count and the scores."""
    return {"task": task.name, "model": model, "seed": seed, "task_type": task.type.value, "split": "test", "n_samples": n, **scored}


@torch.no_grad()
def has_adversary(model: Normalised) -> bool:
    """Whether the model has a domain adversary (tcn_vae with a domain head) whose accuracy evaluation reports."""
    return getattr(model.net, "domain_logits", None) is not None and getattr(model.net, "domain_head", None) is not None


def evaluate(
    data: TaskFile, task: Task, model: Normalised, model_name: str, seed: int, predictions_path: str | Path | None = None
) -> dict:
    """Metrics of `model` on the test split of `data`, predicted batch by batch (only the test split is
    read); the per-sample predictions go to `predictions_path` (predictions.h5) when given. A model with
    a domain adversary (tcn_vae) also gets its `domain_accuracy`; seq2seq regression on a file with item
    ids also gets the per-song (MediaEval) metrics."""
    device = next(iter(model.buffers()), torch.zeros(())).device
    domains = data["test"].domains() if has_adversary(model) else None
    domain_logits: list[torch.Tensor] = []

    def predict_fn(x: torch.Tensor) -> np.ndarray:
        x = x.to(device)
        if domains is not None:  # the adversary's guesses in the same pass over the split
            with torch.no_grad():
                domain_logits.append(model.net.domain_logits((x - model.x_mean) / model.x_std).float().cpu())
        return predict_batch(model, x, task.type.value, probabilities=True)

    n, scored = score_split(task, data, predict_fn, predictions_path=predictions_path)
    result = record(task, model_name, seed, n, scored)
    if domain_logits:
        result["metrics"].update(domain_accuracy(torch.cat(domain_logits).numpy(), np.asarray(domains)))
    return result


def with_song_scores(result: dict, songs: dict) -> dict:
    """`result` with the per-song block and its means (`song_rmse`, `song_pearson`) beside the pooled metrics."""
    if songs:
        result["per_song"] = songs["per_song"]
        result["metrics"].update(songs["per_song"]["metrics"])
    return result


def _song_scores(scored: dict, task: Task, data: TaskFile, outputs: SplitOutputs, split: str) -> dict:
    """`scored` with the per-song (MediaEval) metrics of a seq2seq regression test split (see per_song.py)."""
    if split != "test" or task.type is not TaskType.REGRESSION or "y_true" not in outputs.arrays:
        return scored
    return with_song_scores(scored, song_scores(data.path, task, outputs.arrays["y_true"], outputs.arrays["y_pred"], data.names))


def scored_record(
    data: TaskFile, task: Task, model_name: str, seed: int, outputs: np.ndarray, predictions_path: str | Path | None = None,
    y_true: np.ndarray | None = None,
) -> dict:
    """The metrics record of whole test-split `outputs` (class probabilities or values) of a
    classification or regression task; writes the predictions file when `predictions_path` is given.
    `y_true` defaults to the test split's targets (read from its labels)."""
    y_true = split_targets(task, data) if y_true is None else y_true
    gathered = SplitOutputs(task, len(y_true), data.names)
    gathered.add(y_true, outputs)
    n, scored = gathered.result(data["test"].item_ids(), predictions_path)
    return record(task, model_name, seed, n, _song_scores(scored, task, data, gathered, "test"))


def log_test_metrics(run: dict, tracking: dict | None, result: dict, run_dir: str | Path | None = None) -> bool:
    """With `mlflow.live`, add `test_<metric>` values, the metrics file and (classification) the confusion matrix
    and per-class table to the training job's MLflow run. Otherwise (the default) nothing is logged here: the
    `track_runs` rule logs the run with its test metrics from the files, and a run already in MLflow gets a
    marker in `run_dir` for it. When tracking fails, the marker keeps the test metrics for `seqpipe sync-mlflow`;
    returns whether they reached MLflow."""
    from seqpipe.tracking.sync import mark_evaluation_pending, log_evaluation

    if not tracking:
        return False
    if not run.get("mlflow_run_id") or run.get("mlflow_error"):
        log.info("training run is not in MLflow yet: the track_runs rule (or `seqpipe sync-mlflow`) logs it with its test metrics")
        return False
    if live_tracking(tracking) is None:
        if run_dir is not None:
            mark_evaluation_pending(run_dir, "logged after evaluation by the track_runs rule (mlflow.live is off)")
        return False
    tracker = Tracker(tracking, run_id=run["mlflow_run_id"])
    if tracker.active:
        log_evaluation(tracker, result)
    if tracker.error or not tracker.active:
        if run_dir is not None:
            mark_evaluation_pending(run_dir, tracker.error or "tracking unavailable")
        return False
    return True


def main(argv: list[str] | None = None) -> None:
    """`seqpipe evaluate --data H5 --task JSON --checkpoint best.pt --run run.json --seed N --out metrics.json
    [--predictions predictions.h5]`"""
    parser = argparse.ArgumentParser(prog="seqpipe evaluate", description="Score a trained model's best checkpoint on its task's "
                                     "test split: metrics with bootstrap intervals, piece-level metrics, per-sample predictions.")
    parser.add_argument("--data", required=True, help="the task's HDF5 file")
    parser.add_argument("--task", required=True, help="the task's settings as JSON")
    parser.add_argument("--checkpoint", required=True, help="the run's best.pt")
    parser.add_argument("--run", required=True, help="run.json of the training job")
    parser.add_argument("--tracking", help="tracking.json: also log the test metrics to the run in MLflow")
    parser.add_argument("--seed", type=int, required=True, help="the run's seed (recorded in metrics.json)")
    parser.add_argument("--out", required=True, help="where metrics.json goes")
    parser.add_argument("--predictions", help="per-sample predictions to write (default: predictions.h5 beside --out)")
    add_budget_option(parser)
    args = parser.parse_args(argv)
    task = Task.from_json(args.task)
    model, state = load_trained(args.checkpoint)
    predictions_path = args.predictions or str(Path(args.out).with_name("predictions.h5"))
    try:
        data = open_task(args.data, task, args.memory_budget_mb)
        result = evaluate(data, task, model, state["job"]["model"]["name"], args.seed, predictions_path)
    except (OSError, KeyError, ValueError) as err:  # a locked, unreadable or malformed file: the message says what to do
        log.error("%s", err.args[0] if isinstance(err, KeyError) and err.args else err)
        sys.exit(1)
    write_json(args.out, result)
    log.info("%s: %s", args.out, result["metrics"])
    log_test_metrics(read_json(args.run), read_json(args.tracking) if args.tracking else None, result, Path(args.out).parent)
