"""Training on small synthetic learnable files: every model beats its trivial baseline."""

import json

import numpy as np
import pytest
import torch

from seqpipe.taskfile.hdf5 import write_splits
from seqpipe.evaluation.baseline import run_baseline
from seqpipe.evaluation.evaluate import evaluate
from seqpipe.models.loading import load_trained
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_task_data

MODEL_DEFAULTS = {"hidden": [64], "activation": "relu", "residual": False, "dropout": 0.0, "hidden_size": 32,
                  "num_layers": 2, "kernel_size": 3, "pooling": {"name": "mean", "params": {"scale": 1.0}}}
TRAINING = {"epochs": 30, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
            "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 8, "min_delta": 0.0},
            "grad_clip": 1.0, "device": "cpu", "deterministic": True}


def make_file(path, kind, seed=0):
    """Classification: which of 3 channels carries a pulse. Regression: mean and slope of channel 0."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", 240), ("val", 60), ("test", 60)):
        x = rng.normal(0, 0.5, size=(n, 12, 3)).astype(np.float32)
        if kind == "classification":
            y = rng.integers(0, 3, n)
            x[np.arange(n), 4:8, y] += 2.0
            labels = y.astype(np.int64)
        else:
            level, slope = rng.normal(size=n), rng.normal(size=n)
            x[:, :, 0] += level[:, None] + slope[:, None] * np.linspace(-1, 1, 12)
            labels = np.stack([level * 3 + 5, slope], 1).astype(np.float32)
        out[split] = {"data": x, "labels": labels, "item_ids": np.array([f"{split}{i}" for i in range(n)])}
    write_splits(path, out, {"class_names": ["a", "b", "c"]} if kind == "classification" else {"target_names": ["level", "slope"]})
    return path


def job(task_type, arch, mapping="seq2static", seed=0, **training):
    paradigm = "self_supervised" if task_type == "reconstruction" else "supervised"
    task = {"name": f"synthetic_{task_type}", "paradigm": paradigm, "mapping": mapping, "type": task_type,
            "losses": [{"name": "cross_entropy" if task_type == "classification" else "mse", "weight": 1.0, "params": {}}]}
    return {"task": task, "model": {"name": arch, "arch": arch, **MODEL_DEFAULTS}, "training": {**TRAINING, **training}, "seed": seed}


@pytest.mark.parametrize("arch", ["mlp", "gru", "lstm", "tcn"])
@pytest.mark.parametrize("task_type", ["classification", "regression", "reconstruction"])
def test_model_beats_baseline(tmp_path, arch, task_type):
    h5 = make_file(tmp_path / "d.h5", "classification" if task_type == "reconstruction" else task_type)
    j = job(task_type, arch, "seq2seq" if task_type == "reconstruction" else "seq2static", epochs=15)
    run = train(j, h5, tmp_path / "run")
    model, state = load_trained(tmp_path / "run" / "best.pt")
    data = load_task_data(h5, j["task"])
    got = evaluate(data, Task.from_dict(j["task"]), model, arch, 0)
    base = run_baseline(data, Task.from_dict(j["task"]))
    primary = got["primary"]
    if got["higher_is_better"]:
        assert got["metrics"][primary] > base["metrics"][primary] + 0.2, (got["metrics"], base["metrics"])
    else:
        assert got["metrics"][primary] < 0.8 * base["metrics"][primary], (got["metrics"], base["metrics"])
    assert run["best_epoch"] == state["epoch"]


def test_checkpoint_is_weights_only_and_complete(tmp_path):
    h5 = make_file(tmp_path / "d.h5", "regression")
    train(job("regression", "gru", epochs=2), h5, tmp_path / "run")
    for name in ("best.pt", "last.pt"):
        state = torch.load(tmp_path / "run" / name, weights_only=True)
        assert {"epoch", "model", "optimizer", "job", "dims"} <= set(state)
        assert state["model"]["x_std"].shape == (3,)  # normalisation statistics travel with the model
    rows = (tmp_path / "run" / "scalars.csv").read_text().splitlines()
    assert rows[0].startswith("epoch,split,loss") and len(rows) == 1 + 2 * 2
    events = [json.loads(line)["event"] for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert events[0] == "on_start" and events[-1] == "on_train_end" and events.count("on_epoch_end") == 2


def test_same_seed_same_metrics(tmp_path):
    h5 = make_file(tmp_path / "d.h5", "classification")
    results = []
    for name in ("a", "b"):
        j = job("classification", "gru", epochs=3)
        train(j, h5, tmp_path / name)
        model, _ = load_trained(tmp_path / name / "best.pt")
        results.append(evaluate(load_task_data(h5, j["task"]), Task.from_dict(j["task"]), model, "gru", 0))
    assert results[0] == results[1]
    # the trained model file is the same bytes (torch names a checkpoint's zip folder after the file it writes:
    # the atomic write's random temporary name made every model.pt differ)
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    j = job("classification", "gru", seed=1, epochs=3)
    train(j, h5, tmp_path / "c")
    other = torch.load(tmp_path / "c" / "last.pt", weights_only=True)["model"]
    first = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    assert not torch.equal(other["net.head.linear.weight"], first["net.head.linear.weight"])


def test_tracking_outage_still_writes_files(tmp_path, caplog):
    h5 = make_file(tmp_path / "d.h5", "classification")
    tracking = {"tracking_uri": "http://127.0.0.1:9", "experiment_id": "1", "live": True}  # nothing listens on port 9
    run = train(job("classification", "mlp", epochs=2), h5, tmp_path / "run", tracking)
    assert run["mlflow_run_id"] is None
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "run.json").exists()
    assert sum("MLflow" in r.message for r in caplog.records) == 1  # warned once


def test_nan_loss_stops_with_clear_message(tmp_path):
    h5 = make_file(tmp_path / "d.h5", "regression")
    with pytest.raises(FloatingPointError, match="lower training.optimizer.lr"):
        train(job("regression", "mlp", optimizer={"name": "sgd", "lr": 1e12, "momentum": 0.0, "weight_decay": 0.0}, grad_clip=None), h5, tmp_path / "run")


def test_seq2seq_metrics_per_step_and_aggregated(tmp_path):
    h5 = make_file(tmp_path / "d.h5", "classification")
    j = job("reconstruction", "gru", "seq2seq", epochs=2)
    train(j, h5, tmp_path / "run")
    model, _ = load_trained(tmp_path / "run" / "best.pt")
    got = evaluate(load_task_data(h5, j["task"]), Task.from_dict(j["task"]), model, "gru", 0)
    assert len(got["per_step"]) == 12 and set(got["per_step"][0]) == {"mse", "mae"}
    assert got["metrics"]["mse"] == pytest.approx(np.mean([step["mse"] for step in got["per_step"]]), rel=1e-5)
    json.dumps(got, allow_nan=False)


@pytest.mark.parametrize(
    ("arch", "task_type"),
    [("transformer", "classification"), ("autoencoder", "reconstruction"), ("vae", "reconstruction"),
     ("gan_ae", "reconstruction"), ("diffusion_ae", "reconstruction"), ("tcn_vae", "classification"),
     ("tcn_vae", "reconstruction")],
)
def test_every_model_trains_through_the_training_stage(tmp_path, arch, task_type):
    """The real loop (aux losses, set_progress) trains each model; evaluation reloads it from best.pt."""
    from seqpipe.config.load import load_schema

    defaults = {k: v["default"] for k, v in load_schema()["$defs"]["model"]["properties"].items() if "default" in v}
    h5 = make_file(tmp_path / "d.h5", "classification")
    mapping = "seq2seq" if task_type == "reconstruction" else "seq2static"
    j = job(task_type, arch, mapping, epochs=12)
    j["model"] = {**defaults, **j["model"], "arch": arch}
    train(j, h5, tmp_path / "run")
    model, _ = load_trained(tmp_path / "run" / "best.pt")
    data = load_task_data(h5, j["task"])
    got, base = evaluate(data, Task.from_dict(j["task"]), model, arch, 0), run_baseline(data, Task.from_dict(j["task"]))
    primary = got["primary"]
    if got["higher_is_better"]:
        assert got["metrics"][primary] > base["metrics"][primary] + 0.2, (got["metrics"], base["metrics"])
    else:
        assert got["metrics"][primary] < 0.9 * base["metrics"][primary], (got["metrics"], base["metrics"])
