"""The leaderboard table: one row per (task, model) over its seeds, compared with the task's baseline.

Each row holds the primary test metric as mean ± std over seeds, the bootstrap interval of that
mean, and the difference from the baseline with its paired bootstrap interval: every seed and the
baseline are scored on the same resamples of test items (stats.py), and a model "beats the
baseline" when the whole 95% interval of its improvement lies above zero. Both need the
`predictions.h5` files beside the metrics.json files; a run without them falls back to the interval
in its metrics.json (one seed) and to the point comparison, and the row's `baseline_test` says so.
Where item ids exist the row also holds the piece-level primary metric (a vote over each piece's
windows) with its interval, and per-step tasks their per-song metrics (`song_rmse_mean`, ...).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqpipe.evaluation import pieces, predictions, stats
from seqpipe.evaluation.predictions import Predictions
from seqpipe.io import read_json

REQUIRED_KEYS = ("task", "model", "seed", "task_type", "primary", "higher_is_better", "metrics")
BASELINE = "baseline"
PAIRED = "paired bootstrap"
POINT = "point estimate (no predictions.h5)"
FIXED_COLUMNS = [
    "task", "task_type", "model", "n_seeds", "primary", "higher_is_better", "mean", "std", "ci_low", "ci_high",
    "vs_baseline", "vs_baseline_low", "vs_baseline_high", "beats_baseline", "baseline_test",
    "piece_mean", "piece_ci_low", "piece_ci_high", "n_items",
]
PathLike = str | os.PathLike[str]


def _check_record(record: Any, source: str) -> None:
    """Raise a ValueError naming `source` when a metrics record lacks a key the report needs."""
    if not isinstance(record, dict):
        raise ValueError(f"{source}: expected a JSON object, found {type(record).__name__}")
    for key in REQUIRED_KEYS:
        if key not in record:
            raise ValueError(
                f"{source}: missing key '{key}' (expected {', '.join(REQUIRED_KEYS)}); "
                "rerun the evaluate rule that writes it"
            )
    if record["primary"] not in record["metrics"]:
        raise ValueError(
            f"{source}: missing key 'metrics.{record['primary']}' (the primary metric); "
            f"found metrics {sorted(record['metrics'])}"
        )


def load_metrics(paths: Iterable[PathLike]) -> list[dict]:
    """Read metrics.json files; each record gains `metrics_path` (used to find the files beside it)."""
    records = []
    for path in paths:
        record = read_json(path)
        _check_record(record, str(path))
        records.append({**record, "metrics_path": str(path)})
    return records


def group_records(records: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    """Records by (task, model) in a fixed order, refusing two records for the same seed."""
    groups: dict[tuple[str, str], list[dict]] = {}
    ordered = sorted(records, key=lambda r: (str(r["task"]), str(r["model"]), str(r["seed"])))
    for rec in ordered:
        _check_record(rec, rec.get("metrics_path", f"record {rec.get('task')}/{rec.get('model')}"))
        key = (str(rec["task"]), str(rec["model"]))
        if str(rec["seed"]) in [str(r["seed"]) for r in groups.get(key, [])]:
            raise ValueError(f"two metrics records for task {key[0]}, model {key[1]}, seed {rec['seed']}")
        groups.setdefault(key, []).append(rec)
    return groups


def _task_setting(recs: Iterable[dict], task: str) -> tuple[str, str, bool]:
    """(task_type, primary, higher_is_better) of a task; all its records must agree."""
    settings = {(str(r["task_type"]), str(r["primary"]), bool(r["higher_is_better"])) for r in recs}
    if len(settings) != 1:
        raise ValueError(
            f"task {task}: records disagree on (task_type, primary, higher_is_better): {sorted(settings)}; "
            "every model of a task must be evaluated the same way"
        )
    return settings.pop()


# ---------------------------------------------------------------------------------------------
# Bootstrap over the runs of one task
# ---------------------------------------------------------------------------------------------


def predictions_path(record: dict) -> Path | None:
    """`predictions.h5` beside the record's metrics.json, when it exists."""
    source = record.get("metrics_path")
    path = Path(source).with_name("predictions.h5") if source else None
    return path if path is not None and path.is_file() else None


def _same_split(reference: tuple[str, Predictions], other: tuple[str, Predictions]) -> None:
    """Refuse to pair predictions made on different test splits."""
    (a_path, a), (b_path, b) = reference, other
    keys = [k for k in ("y_true", "count", "item_ids") if k in a.arrays or k in b.arrays]
    for key in keys:
        if key not in a.arrays or key not in b.arrays or not np.array_equal(a.arrays[key], b.arrays[key]):
            raise ValueError(
                f"{b_path}: key `{key}` differs from {a_path}; the runs of a task must be scored on the same "
                "test split; rerun the evaluate and baseline rules of this task"
            )


def _load_task_predictions(groups: dict[str, list[dict]]) -> dict[str, list[Predictions]]:
    """Predictions of every model whose seeds all have them, checked to share one test split."""
    loaded: dict[str, list[Predictions]] = {}
    reference: tuple[str, Predictions] | None = None
    for model, recs in groups.items():
        paths = [predictions_path(r) for r in recs]
        if any(p is None for p in paths):
            continue
        loaded[model] = []
        for path in paths:
            pred = predictions.load(path)
            reference = reference or (str(path), pred)
            _same_split(reference, (str(path), pred))
            loaded[model].append(pred)
    return loaded


def _bootstrap_rows(runs: dict[str, list[Predictions]], metrics: Sequence[str]) -> dict[tuple[str, str], np.ndarray]:
    """Per (model, metric): the bootstrap values averaged over seeds, every run on the same resamples."""
    if not runs:
        return {}
    order = [(model, i, name) for model, preds in runs.items() for i in range(len(preds)) for name in metrics]
    named = {(m, i): predictions.statistics(runs[m][i]) for m, preds in runs.items() for i in range(len(preds))}
    keep = [(m, i, name) for m, i, name in order if name in named[(m, i)]]
    values = stats.bootstrap([named[(m, i)][name] for m, i, name in keep], next(iter(runs.values()))[0].item_ids)
    rows: dict[tuple[str, str], list[np.ndarray]] = {}
    for (model, _, name), row in zip(keep, values, strict=True):
        rows.setdefault((model, name), []).append(row)
    return {key: np.mean(r, axis=0) for key, r in rows.items()}


def _piece_runs(runs: dict[str, list[Predictions]]) -> dict[str, list[Predictions]]:
    """Piece-level predictions of the runs that have pieces."""
    return {m: [pieces.piece_predictions(p) for p in preds] for m, preds in runs.items()
            if all(pieces.why_no_pieces(p) is None for p in preds)}


def task_statistics(groups: dict[str, list[dict]], primary: str, higher_is_better: bool) -> dict[str, dict]:
    """Per model of one task: `ci` of the primary metric, `vs_ci` and `beats` from the paired
    bootstrap against the baseline, `piece_ci`, and `metric_ci` of every other metric."""
    runs = _load_task_predictions(groups)
    metrics = sorted({name for recs in groups.values() for r in recs for name in r["metrics"]})
    rows = _bootstrap_rows(runs, metrics)
    piece_rows = _bootstrap_rows(_piece_runs(runs), [primary])
    sign = 1.0 if higher_is_better else -1.0
    out: dict[str, dict] = {}
    for model in runs:
        if (model, primary) not in rows:
            continue
        values = rows[(model, primary)]
        entry: dict[str, Any] = {"ci": stats.interval(values), "metric_ci": {
            name: stats.interval(v) for (m, name), v in rows.items() if m == model and name != primary}}
        if (model, primary) in piece_rows:
            entry["piece_ci"] = stats.interval(piece_rows[(model, primary)])
        if (BASELINE, primary) in rows and model != BASELINE:
            entry["vs_ci"] = stats.interval(sign * (values - rows[(BASELINE, primary)]))
            entry["beats"] = entry["vs_ci"][0] > 0.0
        out[model] = entry
    return out


# ---------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------


def _record_interval(recs: list[dict], key: str, primary: str) -> list[float] | None:
    """The interval written in a single seed's metrics.json (`intervals` or `piece_level.intervals`)."""
    if len(recs) != 1:
        return None
    source = recs[0] if key == "intervals" else recs[0].get("piece_level") or {}
    bounds = (source.get("intervals") or {}).get(primary)
    return [float(b) for b in bounds] if bounds else None


def _scores(record: dict) -> dict[str, float]:
    """A record's test metrics with its per-song ones (`song_rmse`, `song_pearson`: MediaEval's averages over songs)."""
    return {**record["metrics"], **((record.get("per_song") or {}).get("metrics") or {})}


def _row(task: str, model: str, recs: list[dict], setting: tuple[str, str, bool], boot: dict) -> dict:
    """One leaderboard row (see FIXED_COLUMNS) plus `<metric>_mean` of every other metric."""
    task_type, primary, hib = setting
    mean, std = stats.mean_std([float(r["metrics"][primary]) for r in recs])
    ci = boot.get("ci") or _record_interval(recs, "intervals", primary) or [math.nan, math.nan]
    piece_values = [r["piece_level"]["metrics"][primary] for r in recs if "metrics" in (r.get("piece_level") or {})]
    piece_ci = boot.get("piece_ci") or _record_interval(recs, "piece", primary) or [math.nan, math.nan]
    items = {int(r["piece_level"]["n_items"]) for r in recs if "n_items" in (r.get("piece_level") or {})}
    row: dict[str, Any] = {
        "task": task, "task_type": task_type, "model": model, "n_seeds": len(recs), "primary": primary,
        "higher_is_better": hib, "mean": mean, "std": std, "ci_low": ci[0], "ci_high": ci[1],
        "piece_mean": float(np.mean(piece_values)) if len(piece_values) == len(recs) else math.nan,
        "piece_ci_low": piece_ci[0], "piece_ci_high": piece_ci[1],
        "n_items": items.pop() if len(items) == 1 else math.nan,
    }
    scores = [_scores(r) for r in recs]
    for name in sorted({name for s in scores for name in s} - {primary}):
        row[f"{name}_mean"] = float(np.mean([float(s[name]) for s in scores if name in s]))
        bounds = boot.get("metric_ci", {}).get(name) or _record_interval(recs, "intervals", name)
        if bounds:
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = bounds
    return row


def _add_baseline_columns(rows: list[dict], boots: dict[tuple[str, str], dict]) -> None:
    """`vs_baseline` (positive = better), its paired interval, and `beats_baseline` with its test."""
    baselines = {r["task"]: r["mean"] for r in rows if r["model"] == BASELINE}
    for r in rows:
        base, boot = baselines.get(r["task"]), boots.get((r["task"], r["model"]), {})
        r["vs_baseline_low"] = r["vs_baseline_high"] = math.nan
        if base is None:
            r["vs_baseline"], r["beats_baseline"], r["baseline_test"] = math.nan, False, "no baseline"
            continue
        diff = r["mean"] - base if r["higher_is_better"] else base - r["mean"]
        r["vs_baseline"] = float(diff)
        if r["model"] == BASELINE:
            r["beats_baseline"], r["baseline_test"] = False, ""
        elif "vs_ci" in boot:
            r["vs_baseline_low"], r["vs_baseline_high"] = boot["vs_ci"]
            r["beats_baseline"], r["baseline_test"] = bool(boot["beats"]), PAIRED
        else:
            r["beats_baseline"], r["baseline_test"] = bool(diff > 0.0), POINT


def leaderboard(records: Sequence[dict]) -> pd.DataFrame:
    """One row per (task, model), sorted by task, then best primary mean first, then model name.

    Columns: FIXED_COLUMNS, then `<metric>_mean` for every other metric (sorted by name; NaN where
    a task does not have that metric). Baseline rows (`model == "baseline"`) are included.
    """
    groups = group_records(records)
    if not groups:
        raise ValueError("leaderboard: no metrics records given; expected at least one metrics.json")
    rows, boots = [], {}
    for task in sorted({t for t, _ in groups}):
        by_model = {m: recs for (t, m), recs in groups.items() if t == task}
        setting = _task_setting([r for recs in by_model.values() for r in recs], task)
        for model, boot in task_statistics(by_model, setting[1], setting[2]).items():
            boots[(task, model)] = boot
        rows += [_row(task, m, recs, setting, boots.get((task, m), {})) for m, recs in by_model.items()]
    _add_baseline_columns(rows, boots)
    rows.sort(key=lambda r: (r["task"], -r["mean"] if r["higher_is_better"] else r["mean"], r["model"]))
    extra = sorted({k for r in rows for k in r} - set(FIXED_COLUMNS))
    return pd.DataFrame(rows, columns=FIXED_COLUMNS + extra).reset_index(drop=True)
