"""Leaderboard of all runs: one row per (task, model), compared with each task's trivial baseline.

Reads `results/runs/<task>/<model>/<seed>/metrics.json` files and writes a CSV, a Markdown table
and a self-contained HTML page (figures embedded as base64 PNG, no external assets), and the same
figures as PNG files. Outputs are byte-stable: rerunning on the same inputs gives identical files.

Usage (what the report rule runs):
    python -m seqpipe.evaluation.report --metrics results/runs/*/*/*/metrics.json \
        --csv results/report/leaderboard.csv --md results/report/leaderboard.md \
        --html results/report/leaderboard.html --figures results/report/figures
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqpipe.io import atomic_path, read_json, write_text

REQUIRED_KEYS = ("task", "model", "seed", "task_type", "primary", "higher_is_better", "metrics")
BASELINE = "baseline"
FLOAT_FORMAT = "%.6g"
DPI = 100
PathLike = str | os.PathLike[str]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


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
    """Read metrics.json files; each record gains `metrics_path` (used to find `scalars.csv`)."""
    records = []
    for path in paths:
        record = read_json(path)
        _check_record(record, str(path))
        records.append({**record, "metrics_path": str(path)})
    return records


# ---------------------------------------------------------------------------------------------
# Leaderboard table
# ---------------------------------------------------------------------------------------------


def _sorted_records(records: Iterable[dict]) -> list[dict]:
    """Records in a fixed order (task, model, seed) so float sums do not depend on input order."""
    return sorted(records, key=lambda r: (str(r["task"]), str(r["model"]), str(r["seed"])))


def _group(records: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    """Group records by (task, model), refusing two records for the same seed."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for rec in _sorted_records(records):
        _check_record(rec, rec.get("metrics_path", f"record {rec.get('task')}/{rec.get('model')}"))
        key = (str(rec["task"]), str(rec["model"]))
        seeds = [str(r["seed"]) for r in groups.get(key, [])]
        if str(rec["seed"]) in seeds:
            raise ValueError(f"two metrics records for task {key[0]}, model {key[1]}, seed {rec['seed']}")
        groups.setdefault(key, []).append(rec)
    return groups


def _task_setting(groups: dict[tuple[str, str], list[dict]], task: str) -> tuple[str, str, bool]:
    """(task_type, primary, higher_is_better) of a task; all its records must agree."""
    settings = {
        (str(r["task_type"]), str(r["primary"]), bool(r["higher_is_better"]))
        for (t, _), recs in groups.items()
        if t == task
        for r in recs
    }
    if len(settings) != 1:
        raise ValueError(
            f"task {task}: records disagree on (task_type, primary, higher_is_better): {sorted(settings)}; "
            "every model of a task must be evaluated the same way"
        )
    return settings.pop()


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0
    return float(np.mean(arr)), std


def _row(task: str, model: str, recs: list[dict], setting: tuple[str, str, bool]) -> dict:
    """One leaderboard row: primary mean/std over seeds and the mean of every other metric."""
    task_type, primary, hib = setting
    mean, std = _mean_std([float(r["metrics"][primary]) for r in recs])
    row: dict[str, Any] = {
        "task": task,
        "task_type": task_type,
        "model": model,
        "n_seeds": len(recs),
        "primary": primary,
        "higher_is_better": hib,
        "mean": mean,
        "std": std,
    }
    others = sorted({name for r in recs for name in r["metrics"]} - {primary})
    for name in others:
        values = [float(r["metrics"][name]) for r in recs if name in r["metrics"]]
        row[f"{name}_mean"] = float(np.mean(values))
    return row


def _add_baseline_columns(rows: list[dict]) -> None:
    """Set `vs_baseline` (positive = better than the task's baseline) and `beats_baseline`.

    A task without a baseline row gets NaN and False.
    """
    baselines = {r["task"]: r["mean"] for r in rows if r["model"] == BASELINE}
    for r in rows:
        base = baselines.get(r["task"])
        if base is None:
            r["vs_baseline"], r["beats_baseline"] = math.nan, False
            continue
        diff = r["mean"] - base if r["higher_is_better"] else base - r["mean"]
        r["vs_baseline"] = float(diff)
        r["beats_baseline"] = bool(diff > 0.0)


def leaderboard(records: Sequence[dict]) -> pd.DataFrame:
    """One row per (task, model), sorted by task, then best primary mean first, then model name.

    Columns: task, task_type, model, n_seeds, primary, higher_is_better, mean, std, vs_baseline,
    beats_baseline, then `<metric>_mean` for every other metric (sorted by name; NaN where a task
    does not have that metric). Baseline rows (`model == "baseline"`) are included.
    """
    groups = _group(records)
    if not groups:
        raise ValueError("leaderboard: no metrics records given; expected at least one metrics.json")
    settings = {task: _task_setting(groups, task) for task, _ in groups}
    rows = [_row(task, model, recs, settings[task]) for (task, model), recs in groups.items()]
    _add_baseline_columns(rows)
    rows.sort(key=lambda r: (r["task"], -r["mean"] if r["higher_is_better"] else r["mean"], r["model"]))
    fixed = ["task", "task_type", "model", "n_seeds", "primary", "higher_is_better", "mean", "std",
             "vs_baseline", "beats_baseline"]
    extra = sorted({k for r in rows for k in r} - set(fixed))
    return pd.DataFrame(rows, columns=fixed + extra).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Text outputs
# ---------------------------------------------------------------------------------------------


def leaderboard_csv(df: pd.DataFrame) -> str:
    """CSV text with floats at 6 significant digits (byte-stable across reruns)."""
    return df.to_csv(index=False, float_format=FLOAT_FORMAT, lineterminator="\n")


def _cell(value: Any) -> str:
    """Markdown cell text: floats at 6 significant digits, empty for NaN, pipes escaped."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else FLOAT_FORMAT % value
    return str(value).replace("|", "\\|")


def leaderboard_markdown(df: pd.DataFrame) -> str:
    """A compact Markdown leaderboard: the primary metric per (task, model); every metric is in the CSV."""
    header = ["task", "task_type", "model", "seeds", "metric", "mean ± std", "vs baseline", "beats baseline"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in df.itertuples(index=False):
        direction = "↑" if row.higher_is_better else "↓"
        cells = [row.task, row.task_type, row.model, row.n_seeds, f"{row.primary} {direction}",
                 f"{_cell(row.mean)} ± {_cell(row.std)}", _cell(row.vs_baseline), "yes" if row.beats_baseline else ""]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "# Leaderboard\n\nPrimary test metric per (task, model); all metrics are in leaderboard.csv.\n\n" + "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib's object API on the Agg canvas: no pyplot, no global backend state)
# ---------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Any:
    """A Figure attached to an Agg canvas (headless; nothing registered with pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig: Any) -> bytes:
    """Render a figure to PNG bytes without the software/date metadata (reproducible bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    fig.clear()
    return buf.getvalue()


def plot_leaderboard(task_df: pd.DataFrame) -> bytes:
    """Bar chart of one task's models (primary mean, error bars = std over seeds), baseline in grey."""
    fig = _new_figure(max(4.0, 0.9 * len(task_df) + 2.0), 3.6)
    ax = fig.add_subplot()
    models = task_df["model"].tolist()
    colors = ["#9e9e9e" if m == BASELINE else "#1f77b4" for m in models]
    ax.bar(range(len(models)), task_df["mean"], yerr=task_df["std"], color=colors, capsize=4)
    base = task_df.loc[task_df["model"] == BASELINE, "mean"]
    if len(base):
        ax.axhline(float(base.iloc[0]), color="#616161", linestyle="--", linewidth=1, label="baseline")
        ax.legend(loc="best", fontsize=8)
    ax.set_xticks(range(len(models)), models, rotation=30, ha="right")
    first = task_df.iloc[0]
    direction = "higher" if first["higher_is_better"] else "lower"
    ax.set_ylabel(str(first["primary"]))
    ax.set_title(f"{first['task']}: {first['primary']} ({direction} is better)", fontsize=10)
    fig.tight_layout()
    return _png_bytes(fig)


def plot_curves(curves: dict[str, pd.DataFrame], title: str) -> bytes:
    """Train/val loss per epoch, one line per (seed, split); `curves` maps seed -> scalars table."""
    fig = _new_figure(5.0, 3.4)
    ax = fig.add_subplot()
    styles = {"train": "-", "val": "--"}
    for seed, table in curves.items():
        for split, part in table.groupby("split", sort=True):
            part = part.sort_values("epoch")
            ax.plot(part["epoch"], part["loss"], styles.get(str(split), ":"), label=f"{split} (seed {seed})")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return _png_bytes(fig)


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], title: str) -> bytes:
    """Confusion matrix (rows = true class, columns = predicted), counts annotated, row-normalised colour."""
    n = len(class_names)
    size = min(12.0, 2.5 + 0.45 * n)
    fig = _new_figure(size, size)
    ax = fig.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=np.float64), where=rows > 0)
    ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                color = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(n), list(class_names), rotation=90, fontsize=7)
    ax.set_yticks(range(n), list(class_names), fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _png_bytes(fig)


# ---------------------------------------------------------------------------------------------
# Figure data from records
# ---------------------------------------------------------------------------------------------


def _read_scalars(record: dict) -> pd.DataFrame | None:
    """The run's `scalars.csv` beside its metrics.json (epoch, split, loss rows), or None."""
    source = record.get("metrics_path")
    if not source:
        return None
    path = Path(source).parent / "scalars.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    missing = {"epoch", "split", "loss"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}; expected epoch, split, loss, ...")
    return table[table["split"].isin(["train", "val"])]


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


def _task_figures(
    task: str, task_df: pd.DataFrame, groups: dict[tuple[str, str], list[dict]]
) -> list[tuple[str, str, bytes]]:
    """(file name, caption, PNG bytes) for one task: bar chart, learning curves, confusion matrices."""
    figures = [(f"{task}_leaderboard.png", f"{task}: models vs baseline", plot_leaderboard(task_df))]
    for model in task_df["model"]:
        recs = groups.get((task, model), [])
        curves = {str(r["seed"]): t for r in recs if (t := _read_scalars(r)) is not None and len(t)}
        if curves:
            title = f"{task} / {model}: learning curves"
            figures.append((f"{task}_{model}_curves.png", title, plot_curves(curves, title)))
    if str(task_df["task_type"].iloc[0]) == "classification":
        for model in task_df["model"]:
            recs = groups.get((task, model), [])
            summed = _summed_confusion(recs)
            if summed is not None:
                title = f"{task} / {model}\nconfusion matrix, {len(recs)} seed(s)"
                figures.append((f"{task}_{model}_confusion.png", title, plot_confusion(*summed, title)))
    return figures


# ---------------------------------------------------------------------------------------------
# HTML and writing
# ---------------------------------------------------------------------------------------------

_CSS = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:3px 6px}"
    "figure{display:inline-block;margin:0.5em;vertical-align:top}figcaption{font-size:0.8em}"
)


def _html_table(task_df: pd.DataFrame) -> str:
    """The task's rows as an HTML table (escaped, 6 significant digits, NaN-only columns dropped)."""
    shown = task_df.dropna(axis=1, how="all")
    return shown.to_html(index=False, float_format=lambda v: FLOAT_FORMAT % v, na_rep="", border=0)


def _html_figure(caption: str, png: bytes) -> str:
    """An <img> with the PNG embedded as base64 and its caption."""
    data = base64.b64encode(png).decode("ascii")
    cap = html.escape(caption)
    return f'<figure><img src="data:image/png;base64,{data}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'


def leaderboard_html(df: pd.DataFrame, figures: dict[str, list[tuple[str, str, bytes]]]) -> str:
    """Self-contained HTML page: per task, its table and its figures (no external assets)."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>seqpipe leaderboard</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>seqpipe leaderboard</h1>"]
    for task, task_df in df.groupby("task", sort=True):
        parts.append(f"<h2>{html.escape(str(task))}</h2>")
        parts.append(_html_table(task_df))
        parts.extend(_html_figure(caption, png) for _, caption, png in figures.get(str(task), []))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


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
    groups = _group(records)
    figures = {
        str(task): _task_figures(str(task), task_df, groups)
        for task, task_df in df.groupby("task", sort=True)
    }
    write_text(csv_path, leaderboard_csv(df))
    write_text(md_path, leaderboard_markdown(df))
    Path(figures_dir).mkdir(parents=True, exist_ok=True)
    written = []
    for task_figures in figures.values():
        for name, _, png in task_figures:
            path = Path(figures_dir) / name
            _write_bytes(path, png)
            written.append(path)
    write_text(html_path, leaderboard_html(df, figures))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: read metrics files, write the leaderboard files and figures."""
    parser = argparse.ArgumentParser(
        description="Write the seqpipe leaderboard (CSV, Markdown, HTML, PNG figures)."
    )
    parser.add_argument("--metrics", nargs="+", required=True, help="metrics.json files of all runs")
    parser.add_argument("--csv", required=True, help="leaderboard CSV to write")
    parser.add_argument("--md", required=True, help="leaderboard Markdown to write")
    parser.add_argument("--html", required=True, help="self-contained HTML report to write")
    parser.add_argument("--figures", required=True, help="folder for the PNG figures")
    args = parser.parse_args(argv)
    records = load_metrics(args.metrics)
    write_leaderboard(leaderboard(records), records, args.csv, args.md, args.html, args.figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
