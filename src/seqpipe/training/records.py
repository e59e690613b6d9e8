"""What a run writes as it trains: scalars.csv and events.jsonl (`Facts`, restored on resume), the
KL-collapse warning, and model.pt (the best weights with what rebuilds the model)."""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path

from seqpipe import __version__
from seqpipe.config.types import KlCollapse, TrainJob
from seqpipe.taskfile.reader import TrainingData
from seqpipe.io import atomic_path, write_text
from seqpipe.training import checkpoint

log = logging.getLogger("seqpipe.train")
SCALAR_FIELDS = ["epoch", "split", "loss", "metric", "lr", "epoch_time_s", "samples_per_s", "max_memory_mib"]


class Facts:
    """scalars.csv and events.jsonl of a run, appended as training goes (and restored on resume)."""

    def __init__(self, out_dir: Path, history: dict | None = None):
        self.scalars, self.events = out_dir / "scalars.csv", out_dir / "events.jsonl"
        history = history or {}
        self.rows: list[dict] = list(history.get("rows", []))
        self.lines: list[str] = list(history.get("events", []))
        self.metrics: list[list] = list(history.get("metrics", []))  # [epoch, {name: value}] as logged to MLflow
        if history:
            self._write_rows()

    def history(self) -> dict:
        return {"rows": list(self.rows), "events": list(self.lines), "metrics": list(self.metrics)}

    def event(self, name: str, **fields) -> None:
        self.lines.append(json.dumps({"event": name, "time": time.time(), **fields}, sort_keys=True))
        write_text(self.events, "\n".join(self.lines) + "\n")

    @staticmethod
    def append_event(out_dir: Path, name: str, **fields) -> None:
        """Add one event to an existing events.jsonl (e.g. on_exception, after the facts object is gone)."""
        facts = Facts(out_dir)
        facts.lines = facts.events.read_text(encoding="utf-8").splitlines() if facts.events.exists() else []
        facts.event(name, **fields)

    def epoch(self, rows: list[dict], epoch: int, values: dict) -> None:
        self.rows += rows
        self.metrics.append([epoch, values])
        self._write_rows()

    def _write_rows(self) -> None:
        extra = sorted({k for row in self.rows for k in row} - set(SCALAR_FIELDS))
        with atomic_path(self.scalars) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=SCALAR_FIELDS + extra, restval="")
            writer.writeheader()
            writer.writerows(self.rows)


def epoch_rows(epoch: int, stats: dict[str, dict], lr: float, elapsed: float, throughput: float, memory: float) -> list[dict]:
    """scalars.csv's rows of one epoch: one per split (`stats`: split -> run_epoch's result)."""
    return [{"epoch": epoch, "split": split, "loss": f"{s['loss']:.6g}", "metric": f"{s['metric']:.6g}", "lr": lr,
             "epoch_time_s": f"{elapsed:.4f}", "samples_per_s": f"{throughput:.1f}", "max_memory_mib": f"{memory:.1f}",
             **{name: f"{v:.6g}" for name, v in s["terms"].items()}}
            for split, s in stats.items()]


def check_kl_collapse(kl: dict, terms: dict, settings: KlCollapse, epoch: int, facts: Facts) -> None:
    """Count epochs whose KL (unweighted `model_kl` when the model reports it, else the `aux_kl` loss) is below
    the threshold; warn once, in the log and events.jsonl, when they reach `kl_collapse.epochs` in a row."""
    value = terms.get("model_kl", terms.get("aux_kl"))
    if value is None:
        return
    kl["low_epochs"] = kl["low_epochs"] + 1 if value < settings.threshold else 0
    if kl["low_epochs"] >= settings.epochs and not kl["warned"]:
        kl["warned"] = True
        log.warning("KL collapse: the KL stayed below %g for %d epochs (now %.3g): the latent carries little information; "
                    "lower the KL weight (beta) or anneal it (kl_anneal)", settings.threshold, kl["low_epochs"], value)
        facts.event("kl_collapse", epoch=epoch, kl=value, threshold=settings.threshold, epochs=kl["low_epochs"])


def write_model_file(out_dir: Path, job: TrainJob, data: TrainingData, provenance: dict | None = None) -> None:
    """model.pt: the best weights with what rebuilds the model (its config and dimensions), weights-only loadable,
    and the task file's provenance (its feature settings: what `seqpipe predict` runs new files through)."""
    best = checkpoint.load(out_dir / "best.pt")
    checkpoint.save(out_dir / "model.pt", {"model": best["model"], "model_config": job.model.to_dict(), "dims": data.dims, "names": data.names,
                                           "task": {"name": job.task.name, "type": job.task.type.value, "mapping": job.task.mapping}, "epoch": best["epoch"],
                                           "seqpipe_version": __version__, "provenance": provenance or {}})


