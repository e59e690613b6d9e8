"""The leaderboard's best cell of a task, from its runs' metrics.json files.

The leaderboard ranks a task's models by the mean of the primary test metric over their seeds
(`mean`, in the direction `higher_is_better` says); the best model is the first of that ranking
(ties: the model name). Its run is the seed with the best primary metric (ties: the lowest seed).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from seqpipe.evaluation.leaderboard import load_metrics


def best_run(metrics_paths: Iterable[str | Path]) -> tuple[Path, dict]:
    """The run folder of the best cell and a record of the choice (task, model, seed, primary, mean, value)."""
    records = [r for r in load_metrics(metrics_paths) if r["model"] != "baseline"]
    if not records:
        raise ValueError("no run metrics to choose from; expected metrics.json files of results/runs/<task>/<model>/<seed>")
    tasks = {r["task"] for r in records}
    if len(tasks) != 1:
        raise ValueError(f"the metrics files are of several tasks ({', '.join(sorted(tasks))}); give the runs of one task")
    sign = -1.0 if records[0]["higher_is_better"] else 1.0  # sorted ascending: the best first
    by_model: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_model[r["model"]].append(r)

    def score(r: dict) -> float:
        value = float(r["metrics"][r["primary"]])
        return math.inf if math.isnan(value) else sign * value

    means = {m: sum(score(r) for r in recs) / len(recs) for m, recs in by_model.items()}
    model = min(means, key=lambda m: (means[m], m))
    run = min(by_model[model], key=lambda r: (score(r), int(r["seed"])))
    choice = {"task": run["task"], "model": model, "seed": int(run["seed"]), "primary": run["primary"],
              "higher_is_better": bool(run["higher_is_better"]), "model_mean": sign * means[model],
              "run_value": float(run["metrics"][run["primary"]]), "models": sorted(by_model)}
    return Path(run["metrics_path"]).parent, choice
