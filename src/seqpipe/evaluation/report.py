"""Write the leaderboard of all runs: CSV (every number), Markdown and HTML (for people), PNG figures.

The table comes from `leaderboard.py` (means over seeds, bootstrap intervals, paired tests against
each task's baseline); the figures from `figures.py`; the HTML page from the Jinja2 template
`templates/leaderboard.html.j2`, self-contained (figures embedded as base64 PNG, no external
assets). Figures are also written as `<figures>/<task>/<kind>/<model>.png` (kind: comparison,
curves, confusion; the comparison figure's model is `all`), the layout Snakemake's report reads.
Outputs are byte-stable: rerunning on the same inputs gives identical files.

Usage (what the report rule runs):
    seqpipe report --metrics results/runs/*/*/*/metrics.json results/baselines/*/metrics.json \
        --csv results/report/leaderboard.csv --md results/report/leaderboard.md \
        --html results/report/leaderboard.html --figures results/report/figures
"""

from __future__ import annotations

import argparse
import base64
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from seqpipe.evaluation import figures as plots
from seqpipe.evaluation import formatting as fmt
from seqpipe.evaluation import stats
from seqpipe.evaluation.leaderboard import BASELINE, PAIRED, group_records, leaderboard, load_metrics
from seqpipe.io import atomic_path, read_json, write_text

__all__ = ["leaderboard", "load_metrics", "main", "write_leaderboard"]

FLOAT_FORMAT = "%.6g"
PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Figure:
    """One report figure: where it goes under the figures folder, its caption and its PNG bytes."""

    path: str  # <task>/<kind>/<model>.png
    caption: str
    png: bytes


# ---------------------------------------------------------------------------------------------
# Figures of one task
# ---------------------------------------------------------------------------------------------


def _read_scalars(record: dict) -> pd.DataFrame | None:
    """The run's `scalars.csv` beside its metrics.json (epoch, split, loss rows), or None."""
    source = record.get("metrics_path")
    path = Path(source).parent / "scalars.csv" if source else None
    if path is None or not path.is_file():
        return None
    table = pd.read_csv(path)
    missing = {"epoch", "split", "loss"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; expected epoch, split, loss, ...")
    return table[table["split"].isin(["train", "val"])]


def _read_run(record: dict) -> dict | None:
    """The run's `run.json` beside its metrics.json (best_epoch, ...), or None."""
    source = record.get("metrics_path")
    path = Path(source).parent / "run.json" if source else None
    return read_json(path) if path is not None and path.is_file() else None


def _summed_confusion(recs: Sequence[dict]) -> tuple[np.ndarray, list[str]] | None:
    """Confusion matrix summed over seeds, with class names; None when the records have none."""
    with_cm = [r for r in recs if r.get("confusion_matrix")]
    if not with_cm:
        return None
    total = np.zeros_like(np.asarray(with_cm[0]["confusion_matrix"], dtype=np.int64))
    for r in with_cm:
        cm = np.asarray(r["confusion_matrix"], dtype=np.int64)
        if cm.shape != total.shape:
            raise ValueError(
                f"{r.get('metrics_path', r['model'])}: confusion matrix shape {cm.shape} differs from "
                f"{total.shape} of another seed; all seeds of a task must use the same classes"
            )
        total += cm
    names = with_cm[0].get("class_names") or [str(i) for i in range(total.shape[0])]
    return total, [str(n) for n in names]


def task_figures(task: str, task_df: pd.DataFrame, groups: dict[tuple[str, str], list[dict]]) -> list[Figure]:
    """The comparison bar chart, each model's learning curves and (classification) confusion matrices."""
    first = task_df.iloc[0]
    metric = fmt.metric_name(str(first["primary"]))
    out = [Figure(f"{task}/comparison/all.png",
                  f"{task}: test {metric} of every model (mean over seeds) with its 95% bootstrap interval; "
                  "grey: the trivial baseline", plots.plot_leaderboard(task_df))]
    for model in task_df["model"]:
        recs = groups.get((task, model), [])
        curves = {str(r["seed"]): t for r in recs if (t := _read_scalars(r)) is not None and len(t)}
        if curves:
            best = {str(r["seed"]): plots.best_epoch(curves[str(r["seed"])], _read_run(r)) for r in recs if str(r["seed"]) in curves}
            title = f"{task} / {model}: training and validation loss"
            caption = (f"{task} / {model}: loss per epoch, training (solid) and validation (dashed), per seed; "
                       "a circle marks the best epoch, whose checkpoint was evaluated")
            out.append(Figure(f"{task}/curves/{model}.png", caption, plots.plot_curves(curves, title, best)))
    if str(first["task_type"]) == "classification":
        for model in task_df["model"]:
            recs = groups.get((task, model), [])
            summed = _summed_confusion(recs)
            if summed is not None:
                title = f"{task} / {model}\ntest confusion matrix, {len(recs)} seed(s) summed"
                caption = (f"{task} / {model}: test confusion matrix summed over {len(recs)} seed(s); rows are true "
                           "classes, columns predictions, colour the share of the row")
                out.append(Figure(f"{task}/confusion/{model}.png", caption, plots.plot_confusion(*summed, title)))
    return out


# ---------------------------------------------------------------------------------------------
# Text outputs
# ---------------------------------------------------------------------------------------------


def leaderboard_csv(df: pd.DataFrame) -> str:
    """CSV text with every column, floats at 6 significant digits (byte-stable across reruns)."""
    return df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def _interval(row: pd.Series, low: str, high: str) -> str:
    return fmt.interval([row[low], row[high]])


def _display_row(row: pd.Series) -> dict:
    """The readable cells of one leaderboard row."""
    is_baseline = row["model"] == BASELINE
    delta = "–" if is_baseline or not math.isfinite(row["vs_baseline"]) else fmt.signed(row["vs_baseline"])
    if delta != "–" and math.isfinite(row["vs_baseline_low"]):
        delta += " " + _interval(row, "vs_baseline_low", "vs_baseline_high")
    if is_baseline or row["baseline_test"] == "no baseline":
        beats = "–"
    else:
        beats = "yes" if row["beats_baseline"] else "no"
        beats += "" if row["baseline_test"] == PAIRED else " (point estimate)"
    piece = "–" if not math.isfinite(row["piece_mean"]) else fmt.number(row["piece_mean"])
    if piece != "–" and math.isfinite(row["piece_ci_low"]):
        piece += " " + _interval(row, "piece_ci_low", "piece_ci_high")
    return {
        "model": str(row["model"]), "is_baseline": is_baseline, "seeds": int(row["n_seeds"]),
        "mean_std": fmt.mean_std(row["mean"], row["std"], int(row["n_seeds"])),
        "interval": _interval(row, "ci_low", "ci_high"), "delta": delta, "beats": beats,
        "test": str(row["baseline_test"]), "piece": piece,
    }


def leaderboard_markdown(df: pd.DataFrame) -> str:
    """A compact Markdown leaderboard of the primary metric; every number is in the CSV."""
    header = ["Task", "Model", "Seeds", "Metric", "Mean ± std", "95% interval", "Δ vs baseline [95%]",
              "Beats baseline", "Piece level [95%]"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in df.iterrows():
        cells = _display_row(row)
        metric = f"{fmt.metric_name(str(row['primary']))} {fmt.arrow(bool(row['higher_is_better']))}"
        values = [row["task"], cells["model"], cells["seeds"], metric, cells["mean_std"], cells["interval"],
                  cells["delta"], cells["beats"], cells["piece"]]
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |")
    intro = (f"Test metrics per (task, model): mean ± std over seeds, 95% percentile bootstrap intervals "
             f"({stats.N_RESAMPLES} resamples of test items), improvement over the baseline with its paired "
             "bootstrap interval. Every metric is in leaderboard.csv.")
    return "# Leaderboard\n\n" + intro + "\n\n" + "\n".join(lines) + "\n"


def _metric_cell(row: pd.Series, name: str) -> dict:
    """A metric's mean over seeds and its 95% interval ('' where there is none)."""
    low, high = row.get(f"{name}_ci_low", math.nan), row.get(f"{name}_ci_high", math.nan)
    bounds = fmt.interval([low, high]) if pd.notna(low) and pd.notna(high) else ""
    return {"value": fmt.number(row[f"{name}_mean"]), "interval": "" if bounds == "–" else bounds}


def _samples_text(recs: list[dict]) -> str:
    """'138 test samples from 22 items' from a task's records."""
    first = recs[0]
    text = f"{first.get('n_samples', '?')} test samples"
    return text + (f" from {first['n_items']} source items" if first.get("n_items") else "")


def _task_context(task: str, task_df: pd.DataFrame, recs: list[dict], figs: list[Figure]) -> dict:
    """What the template shows for one task."""
    first = task_df.iloc[0]
    others = [c[: -len("_mean")] for c in task_df.columns
              if c.endswith("_mean") and c != "piece_mean" and task_df[c].notna().any()]
    primary = str(first["primary"])
    shown = task_df.rename(columns={"mean": f"{primary}_mean", "ci_low": f"{primary}_ci_low", "ci_high": f"{primary}_ci_high"})
    names = [primary, *others]
    return {
        "name": task, "type": fmt.TASK_TYPES.get(str(first["task_type"]), str(first["task_type"])),
        "metric": fmt.metric_name(str(first["primary"])), "arrow": fmt.arrow(bool(first["higher_is_better"])),
        "samples": _samples_text(recs), "pieces": bool(task_df["piece_mean"].notna().any()),
        "rows": [_display_row(row) for _, row in task_df.iterrows()],
        "metric_names": [fmt.metric_name(n) for n in names],
        "metric_rows": [{"model": str(row["model"]), "cells": [_metric_cell(row, n) for n in names]}
                        for _, row in shown.iterrows()],
        "figures": [{"caption": f.caption, "data": base64.b64encode(f.png).decode("ascii")} for f in figs],
    }


def leaderboard_html(df: pd.DataFrame, records: Sequence[dict], figures: dict[str, list[Figure]]) -> str:
    """The self-contained HTML page, rendered from templates/leaderboard.html.j2."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("seqpipe.evaluation", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    tasks = [_task_context(str(task), task_df, [r for r in records if str(r["task"]) == task], figures.get(str(task), []))
             for task, task_df in df.groupby("task", sort=True)]
    return env.get_template("leaderboard.html.j2").render(tasks=tasks, resamples=stats.N_RESAMPLES)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _write_bytes(path: Path, data: bytes) -> None:
    """Write bytes atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_leaderboard(
    df: pd.DataFrame,
    records: Sequence[dict],
    csv_path: PathLike,
    md_path: PathLike,
    html_path: PathLike,
    figures_dir: PathLike,
) -> list[Path]:
    """Write the CSV, Markdown and HTML leaderboard and every figure as a PNG; return the PNG paths."""
    groups = group_records(records)
    figures = {str(task): task_figures(str(task), task_df, groups) for task, task_df in df.groupby("task", sort=True)}
    write_text(csv_path, leaderboard_csv(df))
    write_text(md_path, leaderboard_markdown(df))
    written = []
    for task_figures_ in figures.values():
        for figure in task_figures_:
            path = Path(figures_dir) / figure.path
            _write_bytes(path, figure.png)
            written.append(path)
    Path(figures_dir).mkdir(parents=True, exist_ok=True)
    write_text(html_path, leaderboard_html(df, records, figures))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: read metrics files, write the leaderboard files and figures."""
    parser = argparse.ArgumentParser(
        prog="seqpipe report",
        description="Write the leaderboard of all runs (CSV, Markdown, HTML with figures, PNG figures): "
        "test metrics as mean ± std over seeds with 95% bootstrap intervals, and a paired bootstrap "
        "test against each task's baseline (from the predictions.h5 files beside the metrics.json files).",
    )
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json files of all runs and baselines")
    parser.add_argument("--csv", required=True, help="leaderboard CSV to write (every column)")
    parser.add_argument("--md", required=True, help="leaderboard Markdown to write (primary metric)")
    parser.add_argument("--html", required=True, help="self-contained HTML page to write (tables and figures)")
    parser.add_argument("--figures", required=True, help="folder for the PNG figures (<task>/<kind>/<model>.png)")
    args = parser.parse_args(argv)
    records = load_metrics(args.metrics)
    write_leaderboard(leaderboard(records), records, args.csv, args.md, args.html, args.figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
