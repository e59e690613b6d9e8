"""Every stage under a memory budget far below its file's size gives the in-memory results.

Validation, baseline, training and evaluation run twice on the same file: once with the default
budget (splits in memory) and once with a budget of a few KB (splits read in blocks and batches
from the file). In the second run, reading a whole split into memory fails, and no read of `data`
may return more rows than the budget allows.
"""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from seqpipe.taskfile import reader
from seqpipe.taskfile.reader import SplitReader, open_task
from seqpipe.taskfile.validate import main as validate_main
from seqpipe.taskfile.validate import validate
from seqpipe.evaluation.baseline import main as baseline_main
from seqpipe.evaluation.baseline import run_baseline
from seqpipe.evaluation.evaluate import evaluate
from seqpipe.models.loading import load_trained
from seqpipe.config.types import Runtime
from seqpipe.training.train import train
from seqpipe.config.types import Task
from tests.test_training import job, make_file
from tests.test_training_features import same_weights

TINY_MB = 0.005  # 5 KB against a 200 KB file; a block is at most 1/8 of it: 4 samples of float32 [12, 3]


def close(a, b, rel=1e-6, path="") -> bool:
    """Equal records: numbers within `rel` (float32 batches of another size, float64 sums in another order),
    everything else exactly."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        return all(close(a[k], b[k], rel, f"{path}.{k}") for k in a)
    if isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        return all(close(x, y, rel, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
    if isinstance(a, float):
        assert math.isclose(a, b, rel_tol=rel, abs_tol=1e-7), (path, a, b)
        return True
    assert a == b, (path, a, b)
    return True


def guard(monkeypatch) -> dict:
    """From now on reading a whole split into memory fails; the largest read of `data` is recorded (rows)."""
    reads = {"max_rows": 0}
    original = reader.H5Rows.read

    def read(self, key, positions):
        if key == "data":
            reads["max_rows"] = max(reads["max_rows"], len(positions))
        return original(self, key, positions)

    def refuse(self, device="cpu"):
        raise AssertionError(f"{self.where}: the whole split was read into memory under a tiny budget")

    monkeypatch.setattr(reader.H5Rows, "read", read)
    monkeypatch.setattr(SplitReader, "memory", refuse)
    return reads


def root_file(path, n=300):
    """Root-level regression data with item ids (auto-split, whole items)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 12, 3)).astype(np.float32)
    labels = np.stack([x[:, :, 0].mean(1) * 3 + 1, x[:, :, 1].std(1)], 1).astype(np.float32)
    with h5py.File(path, "w") as fh:
        fh["data"], fh["labels"] = x, labels
        fh.create_dataset("item_ids", data=np.array([f"piece{i // 5}" for i in range(n)], dtype=object), dtype=h5py.string_dtype())
    return path


@pytest.mark.parametrize("task_type", ["classification", "reconstruction", "regression"])
def test_validate_and_baseline_under_a_tiny_budget_equal_memory(tmp_path, monkeypatch, task_type):
    h5 = make_file(tmp_path / "d.h5", "regression" if task_type == "regression" else "classification")
    task = Task.from_dict(job(task_type, "mlp", "seq2seq" if task_type == "reconstruction" else "seq2static")["task"])
    memory = {"validate": validate(h5, task), "baseline": run_baseline(open_task(h5, task), task)}
    reads = guard(monkeypatch)
    small = {"validate": validate(h5, task, memory_budget_mb=TINY_MB), "baseline": run_baseline(open_task(h5, task, TINY_MB), task)}
    assert small["validate"] == memory["validate"]  # ranges, counts and shapes are exact
    assert close(small["baseline"], memory["baseline"]), (small["baseline"]["metrics"], memory["baseline"]["metrics"])
    assert 0 < reads["max_rows"] <= 4  # blocks, not splits (the train split has 240 samples)


@pytest.mark.parametrize(("task_type", "layout"), [("regression", "root"), ("reconstruction", "groups")])
def test_train_and_evaluate_under_a_tiny_budget_equal_memory(tmp_path, monkeypatch, task_type, layout):
    h5 = root_file(tmp_path / "r.h5") if layout == "root" else make_file(tmp_path / "d.h5", "classification")
    mapping = "seq2seq" if task_type == "reconstruction" else "seq2static"
    runs, results = {}, {}
    for name, budget in (("memory", 2048), ("stream", TINY_MB)):
        if name == "stream":
            reads = guard(monkeypatch)
        j = job(task_type, "gru", mapping, epochs=2, memory_budget_mb=budget, shuffle_block=4)
        runs[name] = train(j, h5, tmp_path / name)
        model, _ = load_trained(tmp_path / name / "best.pt")
        task = Task.from_dict(j["task"])
        results[name] = evaluate(open_task(h5, task, budget), task, model, "gru", 0)
    assert same_weights(tmp_path / "memory" / "best.pt", tmp_path / "stream" / "best.pt")
    assert runs["memory"]["best"] == runs["stream"]["best"]
    assert close(results["stream"], results["memory"]), (results["stream"]["metrics"], results["memory"]["metrics"])
    assert 0 < reads["max_rows"] <= 32  # a training batch at most (batch_size 32), never a whole split


def test_cli_stages_take_the_budget(tmp_path, monkeypatch):
    """`seqpipe validate/baseline --memory-budget-mb MB` reach the reader; $SEQPIPE_RUNTIME's budget sets the default."""
    h5 = make_file(tmp_path / "d.h5", "classification")
    task = json.dumps(job("classification", "mlp")["task"])
    opened = []
    real = reader.SplitFile.__init__  # every stage opens its file through it

    def spy(self, path, task, memory_budget_mb=None):
        opened.append(memory_budget_mb)
        real(self, path, task, memory_budget_mb)

    monkeypatch.setattr(reader.SplitFile, "__init__", spy)
    validate_main(["--data", str(h5), "--task", task, "--out", str(tmp_path / "v.json"), "--memory-budget-mb", "3"])
    baseline_main(["--data", str(h5), "--task", task, "--out", str(tmp_path / "b.json"), "--memory-budget-mb", "5"])
    runtime = Runtime(checkpoint_every=1, progress=False, num_workers=0, memory_budget_mb=12, cache={}, models={})
    monkeypatch.setenv("SEQPIPE_RUNTIME", runtime.to_json())
    baseline_main(["--data", str(h5), "--task", task, "--out", str(tmp_path / "c.json")])
    assert opened == [3.0, 5.0, 12.0]
    assert json.loads((tmp_path / "b.json").read_text()) == json.loads((tmp_path / "c.json").read_text())


def test_the_default_budget_is_the_schemas(monkeypatch):
    """Without a budget or $SEQPIPE_RUNTIME, the readers take the schema's training.memory_budget_mb (defaults live in
    one place: the schema); with $SEQPIPE_RUNTIME, its budget."""
    from seqpipe.config.load import load_schema
    from seqpipe.taskfile.splits import default_budget_mb

    monkeypatch.delenv("SEQPIPE_RUNTIME", raising=False)
    schema_default = load_schema()["properties"]["training"]["properties"]["memory_budget_mb"]["default"]
    assert default_budget_mb() == float(schema_default)
    runtime = Runtime(checkpoint_every=1, progress=False, num_workers=0, memory_budget_mb=7, cache={}, models={})
    monkeypatch.setenv("SEQPIPE_RUNTIME", runtime.to_json())
    assert default_budget_mb() == 7.0
