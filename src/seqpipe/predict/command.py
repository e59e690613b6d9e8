"""Label new audio or MIDI files (or an HDF5 file of the task's layout) with a trained run: `seqpipe predict`.

    seqpipe predict --run results/runs/<task>/<model>/<seed> --out predictions.csv INPUT...
    seqpipe predict --best-of results/runs/<task>/*/*/metrics.json --choice run.json --out predictions.csv INPUT...

Writes the window table to --out and the item table beside it (`<name>.items.csv`), both atomically;
files that give no predictions are rows of the item table with their reason (docs/predict.md).
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Iterable
from pathlib import Path

from seqpipe.io import atomic_path, write_json
from seqpipe.predict import tables
from seqpipe.predict.choose import best_run
from seqpipe.predict.inputs import Source, expand
from seqpipe.predict.run import Predictor, load_run
from seqpipe.predict.featurise import BLOCK_BYTES
from seqpipe.predict.stream import BATCH, predict_rows

log = logging.getLogger("seqpipe.predict")


def items_path(out: str | Path) -> Path:
    """The item table beside the window table: `x.csv` -> `x.items.csv`."""
    out = Path(out)
    return out.with_name(f"{out.stem}.items.csv" if out.suffix == ".csv" else f"{out.name}.items.csv")


def write_tables(p: Predictor, sources: Iterable[Source], out: str | Path, workers: int = 1, batch: int = BATCH,
                 block_bytes: int = BLOCK_BYTES) -> dict:
    """Write both tables (rows streamed to temporary files, renamed when complete); returns counts.
    HDF5 inputs are read `block_bytes` of inputs at a time."""
    counts = {"items": 0, "skipped": 0, "windows": 0}
    with atomic_path(out) as tmp_windows, atomic_path(items_path(out)) as tmp_items:
        with open(tmp_windows, "w", newline="", encoding="utf-8") as fw, open(tmp_items, "w", newline="", encoding="utf-8") as fi:
            windows, items = csv.writer(fw, lineterminator="\n"), csv.writer(fi, lineterminator="\n")
            windows.writerow(tables.window_columns(p))
            items.writerow(tables.item_columns(p))
            for table, row in predict_rows(p, sources, workers, batch, block_bytes):
                (windows if table == "window" else items).writerow([tables.fmt(v) for v in row])
                counts["windows" if table == "window" else "items"] += 1
                counts["skipped"] += table == "item" and row[2] == "skipped"
    return counts


def main(argv: list[str] | None = None) -> int:
    """`seqpipe predict --run DIR --out CSV [--data H5] [--workers N] INPUT...`"""
    parser = argparse.ArgumentParser(prog="seqpipe predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="audio or MIDI files, folders of them, or HDF5 files of the task's layout")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="the run folder, results/runs/<task>/<model>/<seed>")
    which.add_argument("--best-of", nargs="+", metavar="METRICS", help="metrics.json files of a task's runs: use the leaderboard's best "
                                                                        "(docs/predict.md says how it is chosen)")
    parser.add_argument("--choice", help="with --best-of: write the chosen run and why (JSON)")
    parser.add_argument("--out", required=True, help="the window table (CSV); the item table goes beside it as <name>.items.csv")
    parser.add_argument("--data", help="the task's HDF5 file, for the feature settings of a run whose model.pt lacks them")
    parser.add_argument("--workers", type=int, default=1, help="feature extraction processes (default: 1)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when any file was skipped (the tables are written all the same)")
    args = parser.parse_args(argv)
    missing = [i for i in args.inputs if not Path(i).exists()]
    if missing:
        raise FileNotFoundError(f"INPUT {missing[0]} does not exist; expected audio or MIDI files, folders of them, or HDF5 files")
    run = args.run
    if args.best_of:
        run, choice = best_run(args.best_of)
        log.info("best run of %s: %s (%s %s)", choice["task"], run, choice["primary"], choice["model_mean"])
        if args.choice:
            write_json(args.choice, {**choice, "run": run.as_posix()})
    p = load_run(run, args.data)
    counts = write_tables(p, expand(args.inputs, p.dataset), args.out, args.workers)
    log.info("%s: %d rows of %d items (%d skipped, reasons in %s)", args.out, counts["windows"], counts["items"],
             counts["skipped"], items_path(args.out))
    return 1 if args.strict and counts["skipped"] else 0
