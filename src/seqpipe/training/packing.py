"""The record of one pack of training cells (`seqpipe pack-record`, the `train_pack` rule).

With `resources.train.pack: N` the cells are cut into packs of N (`plan.packs`). Each pack's record
depends on its cells' runs, in the same Snakemake group as their training jobs, so a cluster gets the
pack as one group job (one GPU, N times the threads and memory), and the Snakemake inside runs its
cells side by side. The record says whether they did: each cell's training span (its first and last
event in `events.jsonl`), the seconds they took one after another (`busy_s`), the wall-clock seconds
they covered together (`wall_s`), and `overlap_s = busy_s - wall_s` (0 when they ran one after
another). It holds times, so it lives with the benchmarks, outside the byte-reproducible results.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from seqpipe.io import write_json

log = logging.getLogger("seqpipe.pack")


def training_span(run_dir: str | Path) -> tuple[float, float]:
    """The first and last event time (Unix seconds) of a run's `events.jsonl`."""
    path = Path(run_dir) / "events.jsonl"
    times = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                times.append(float(json.loads(line)["time"]))
    if not times:
        raise ValueError(f"{path} holds no events")
    return min(times), max(times)


def covered_seconds(spans: list[tuple[float, float]]) -> float:
    """How many seconds the union of the spans covers."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def pack_record(run_dirs: list[str]) -> dict:
    """Each cell's training span and how much the pack's cells overlapped. A cell whose events cannot be
    read (a run restored from another machine's storage without them, say) is listed under `skipped`
    with the reason, and left out of the sums."""
    cells, skipped = [], []
    for run_dir in run_dirs:
        try:
            start, end = training_span(run_dir)
        except (OSError, ValueError, KeyError, TypeError) as err:
            skipped.append({"run": run_dir, "reason": f"{type(err).__name__}: {err}"})
            continue
        cells.append({"run": run_dir, "start": start, "end": end, "seconds": round(end - start, 3)})
    spans = [(cell["start"], cell["end"]) for cell in cells]
    busy, wall = sum(end - start for start, end in spans), covered_seconds(spans)
    return {"cells": cells, "skipped": skipped, "busy_s": round(busy, 3), "wall_s": round(wall, 3),
            "overlap_s": round(busy - wall, 3)}


def main(argv: list[str] | None = None) -> None:
    """`seqpipe pack-record --runs RUN.json... --out PACK.json`"""
    parser = argparse.ArgumentParser(prog="seqpipe pack-record",
                                     description="Record when each training cell of a pack ran, and how much they overlapped.")
    parser.add_argument("--runs", nargs="+", required=True, help="the pack's run.json files (their folders hold events.jsonl)")
    parser.add_argument("--out", required=True, help="where the pack's record goes (JSON)")
    args = parser.parse_args(argv)
    record = pack_record([Path(run).parent.as_posix() for run in args.runs])
    for item in record["skipped"]:
        log.warning("pack record: %s left out: %s (its training span is unknown; the sums cover the others)",
                    item["run"], item["reason"])
    write_json(args.out, record)
    log.info("%s: %d cells, %.1f s of training in %.1f s of wall clock (overlap %.1f s)", args.out,
             len(record["cells"]), record["busy_s"], record["wall_s"], record["overlap_s"])
