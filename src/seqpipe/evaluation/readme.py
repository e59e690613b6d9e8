"""The README's results table, generated from a run's leaderboard.csv (`make readme-results`).

The table sits between `<!-- results:begin -->` and `<!-- results:end -->` in README.md; this module
rewrites only what lies between the markers (atomically), so the numbers shown are those of a run,
never typed by hand. One row per task: each model's test mean of the primary metric with its 95%
bootstrap interval, ✓ where the paired bootstrap of the difference to the baseline lies wholly on
the better side (the leaderboard's "beats baseline"), and the baseline's mean. Per-song metrics and
an adversary's domain accuracy follow the mean where the leaderboard has them.

    python -m seqpipe.evaluation.readme README.md results/report/leaderboard.csv [--check]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from seqpipe.evaluation import formatting as fmt
from seqpipe.evaluation.leaderboard import BASELINE, PAIRED
from seqpipe.io import write_text

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
DIGITS = 3


def _num(value: float) -> str:
    return fmt.number(value, DIGITS)


def _extras(row: pd.Series) -> str:
    """What follows the mean: per-song RMSE / r, or the adversary's domain accuracy."""
    get = lambda name: row.get(name, math.nan)  # noqa: E731
    if math.isfinite(get("song_rmse_mean")):
        return f"; per song {_num(get('song_rmse_mean'))} / r {_num(get('song_pearson_mean'))}"
    if math.isfinite(get("domain_accuracy_mean")):
        return f" (domain accuracy {_num(get('domain_accuracy_mean'))}; majority {_num(get('domain_majority_mean'))})"
    return ""


def cell(row: pd.Series) -> str:
    """One model's cell: mean [interval], per-song or domain figures, ✓, as the leaderboard has them."""
    text = _num(row["mean"])
    if row["model"] != BASELINE and math.isfinite(row["ci_low"]):
        text += f" [{_num(row['ci_low'])}, {_num(row['ci_high'])}]"
    text += _extras(row)
    if row["model"] != BASELINE and row["baseline_test"] == PAIRED and bool(row["beats_baseline"]):
        text += " ✓"
    return text


def results_table(leaderboard: pd.DataFrame) -> str:
    """The Markdown table: one row per task (leaderboard order), one column per model, then the baseline."""
    models = list(dict.fromkeys(m for m in leaderboard["model"] if m != BASELINE))
    lines = ["| task | metric | " + " | ".join([*models, "baseline"]) + " |", "|---|---|" + "---|" * (len(models) + 1)]
    for task, rows in leaderboard.groupby("task", sort=False):
        by_model = {r["model"]: r for _, r in rows.iterrows()}
        first = rows.iloc[0]
        metric = f"{fmt.metric_name(str(first['primary']))} {fmt.arrow(bool(first['higher_is_better']))}"
        cells = [cell(by_model[m]) if m in by_model else "" for m in [*models, BASELINE]]
        line = "| " + " | ".join([str(task), metric, *cells]) + " |"
        while "|  |" in line:  # an empty cell
            line = line.replace("|  |", "| |")
        lines.append(line)
    return "\n".join(lines) + "\n"


def with_table(readme: str, table: str, source: str = "README.md") -> str:
    """`readme` with the text between the markers replaced by `table`; ValueError naming the markers when absent."""
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{source}: no {BEGIN} ... {END} markers (in this order) around the results table; "
                         "add them where the table goes, then run `make readme-results` again")
    return readme[: start + len(BEGIN)] + "\n" + table + readme[end:]


def main(argv: list[str] | None = None) -> int:
    """Write (or with --check, compare) the README's results table from a leaderboard.csv."""
    parser = argparse.ArgumentParser(prog="python -m seqpipe.evaluation.readme", description=__doc__.split("\n\n")[0])
    parser.add_argument("readme", type=Path)
    parser.add_argument("leaderboard", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's table differs; write nothing")
    args = parser.parse_args(argv)
    if not args.leaderboard.is_file():
        print(f"{args.leaderboard}: not found; run the pipeline first (`make demo`), then `make readme-results`", file=sys.stderr)
        return 1
    text = args.readme.read_text(encoding="utf-8")
    try:
        new = with_table(text, results_table(pd.read_csv(args.leaderboard)), str(args.readme))
    except ValueError as err:
        print(err, file=sys.stderr)
        return 1
    if args.check:
        if new != text:
            print(f"{args.readme}: the results table differs from {args.leaderboard}; run `make readme-results`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        write_text(args.readme, new)
    print(f"{args.readme}: results table written from {args.leaderboard}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
