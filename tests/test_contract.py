"""The HDF5 dataset contract: a file in each of the six task layouts trains end to end and beats its
trivial baseline; one-hot token inputs, root-level auto-split, forecasting (T' != T), and the
normalisation statistics (train split only, reused by evaluation)."""

from __future__ import annotations

import copy

import h5py
import numpy as np
import pytest
import torch

from seqpipe.config.load import ConfigError, load_config, task_config, train_job, validate_config
from seqpipe.taskfile.validate import validate
from seqpipe.evaluation.baseline import run_baseline
from seqpipe.evaluation.evaluate import evaluate, predict
from seqpipe.models.loading import load_trained
from seqpipe.taskfile.reader import standardisation
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_splits, load_task_data

N = 300
MODEL = {"hidden": [64], "activation": "relu", "residual": False, "dropout": 0.0, "hidden_size": 32,
         "num_layers": 1, "kernel_size": 3, "pooling": {"name": "mean", "params": {"scale": 1.0}}}
TRAINING = {"epochs": 20, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
            "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 6, "min_delta": 0.0},
            "grad_clip": 1.0, "device": "cpu", "deterministic": True}


# --- files in the six layouts (small N; learnable on purpose) -------------------------------------

def write_root(path, data, labels=None):
    """Root-level `data` (+ `labels`): auto-split by the task's split_fractions and split_seed."""
    with h5py.File(path, "w") as fh:
        fh["data"] = data
        if labels is not None:
            fh["labels"] = labels
    return path


def write_presplit(path, data, labels, fractions=(0.7, 0.15, 0.15)):
    """train/val/test groups, cut in order."""
    a, b = int(fractions[0] * len(data)), int((fractions[0] + fractions[1]) * len(data))
    with h5py.File(path, "w") as fh:
        for split, part in (("train", slice(0, a)), ("val", slice(a, b)), ("test", slice(b, None))):
            fh[f"{split}/data"], fh[f"{split}/labels"] = data[part], labels[part]
    return path


def pulse_count(path, rng):
    """seq2static classification, pre-split: how many pulses (0, 1 or 2) a noisy signal holds."""
    t_len = 32
    y = rng.integers(0, 3, N)
    x = rng.normal(0, 0.5, (N, t_len, 1)).astype(np.float32)
    for i in range(N):
        for start in rng.choice(np.arange(2, t_len - 4, 6), y[i], replace=False):
            x[i, start : start + 3, 0] += 2.5
    return write_presplit(path, x, y.astype(np.int64))


def level_and_spread(path, rng):
    """seq2static regression, root-level: mean and std over time of channel 0."""
    mu, sd = rng.normal(size=N), rng.uniform(0.3, 2.0, N)
    x = rng.normal(size=(N, 24, 3)).astype(np.float32)
    x[:, :, 0] = mu[:, None] + sd[:, None] * x[:, :, 0]
    y = np.stack([x[:, :, 0].mean(1), x[:, :, 0].std(1)], 1).astype(np.float32)
    return write_root(path, x, y)


def step_labels(path, rng):
    """seq2seq classification, root-level: per step, which channel is raised (class 4: none)."""
    c = rng.integers(0, 5, (N, 16))
    x = rng.normal(0, 0.5, (N, 16, 4)).astype(np.float32)
    n, t = np.nonzero(c < 4)
    x[n, t, c[n, t]] += 2.0
    return write_root(path, x, c.astype(np.int64))


def forecast(path, rng, t_in=24, t_out=8):
    """seq2seq regression, root-level: continue a sine of random frequency and a linear trend for t_out steps."""
    t = np.arange(t_in + t_out)
    w, phase, slope = rng.uniform(0.2, 0.6, N), rng.uniform(0, 2 * np.pi, N), rng.normal(0, 0.05, N)
    signal = np.stack([np.sin(w[:, None] * t + phase[:, None]), slope[:, None] * t], -1).astype(np.float32)
    x = np.concatenate([signal[:, :t_in] + rng.normal(0, 0.05, (N, t_in, 2)), rng.normal(size=(N, t_in, 1))], -1)
    return write_root(path, x.astype(np.float32), signal[:, t_in:].copy())


def periodic(path, rng, labels=True):
    """Reconstruction, root-level: periodic channels of random amplitude; dummy labels (ignored)."""
    t = np.arange(20)
    x = rng.normal(0, 0.1, (N, 20, 6)).astype(np.float32)
    amp = rng.uniform(0.5, 2.0, (N, 1))
    x[:, :, 0] += amp * np.sin(2 * np.pi * t / 10)
    x[:, :, 1] += amp * np.cos(2 * np.pi * t / 15)
    return write_root(path, x, np.zeros(N, np.int64) if labels else None)


def summaries(path, rng):
    """Self-supervised summary, root-level: labels are statistics of the inputs (mean, max, variance)."""
    x = (rng.normal(size=(N, 20, 5)) * rng.uniform(0.5, 2.0, (N, 1, 5))).astype(np.float32)
    y = np.stack([x[:, :, 0].mean(1), x[:, :, 1].max(1), x[:, :, 2].var(1)], 1).astype(np.float32)
    return write_root(path, x, y)


def token_counts(path, rng, vocab=8, trailing_axis=False):
    """One-hot classification: token ids [N, T] (or [N, T, 1]); is token 3 more frequent than token 5?"""
    ids = rng.integers(0, vocab, (N, 12))
    y = ((ids == 3).sum(1) > (ids == 5).sum(1)).astype(np.int64)
    return write_root(path, ids[..., None] if trailing_axis else ids, y)


RECIPES = {
    "seq2static_classification": (pulse_count, ("supervised", "seq2static", "classification"), {}),
    "seq2static_regression": (level_and_spread, ("supervised", "seq2static", "regression"), {}),
    "seq2seq_classification": (step_labels, ("supervised", "seq2seq", "classification"), {}),
    "seq2seq_regression": (forecast, ("supervised", "seq2seq", "regression"), {"target_seq_len": 8}),
    "reconstruction": (periodic, ("self_supervised", "seq2seq", "reconstruction"), {}),
    "summary": (summaries, ("self_supervised", "seq2static", "summary"), {}),
    "one_hot": (token_counts, ("supervised", "seq2static", "classification"), {"input_encoding": "one_hot", "vocab_size": 8}),
}


def make_task(name, paradigm, mapping, task_type, **extra):
    return {"name": name, "paradigm": paradigm, "mapping": mapping, "type": task_type,
            "losses": [{"name": "cross_entropy" if task_type == "classification" else "mse", "weight": 1.0, "params": {}}], **extra}


def make_job(task, arch="gru", epochs=20, **model):
    return {"task": task, "model": {"name": arch, "arch": arch, **MODEL, **model},
            "training": {**TRAINING, "epochs": epochs}, "seed": 0}


def recipe(tmp_path, name, **kwargs):
    make, kind, extra = RECIPES[name]
    return make(tmp_path / f"{name}.h5", np.random.default_rng(0), **kwargs), make_task(name, *kind, **extra)


def train_and_score(tmp_path, h5, task, arch="gru", epochs=20):
    """Train, then the model's and the baseline's test metrics, and the test data."""
    train(make_job(task, arch, epochs), h5, tmp_path / "run")
    model, _ = load_trained(tmp_path / "run" / "best.pt")
    data = load_task_data(h5, task)
    return evaluate(data, Task.from_dict(task), model, arch, 0), run_baseline(data, Task.from_dict(task)), data


def beats(got: dict, base: dict) -> bool:
    primary = got["primary"]
    if got["higher_is_better"]:
        return got["metrics"][primary] > base["metrics"][primary] + 0.1
    return got["metrics"][primary] < 0.8 * base["metrics"][primary]


# --- the six task types, and one-hot inputs ----------------------------------------------------------

@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_validates_trains_and_beats_baseline(tmp_path, name):
    h5, task = recipe(tmp_path, name)
    summary = validate(h5, Task.from_dict(task))
    assert sum(s["n"] for s in summary["splits"].values()) == N
    got, base, _ = train_and_score(tmp_path, h5, task)
    assert beats(got, base), (got["metrics"], base["metrics"])


def test_shapes_per_task_type(tmp_path):
    expected = {  # name: (x shape per sample, y shape per sample, out_dim, out_len, target_dim)
        "seq2static_classification": ((32, 1), (), 3, None, None),
        "seq2static_regression": ((24, 3), (2,), 2, None, 2),
        "seq2seq_classification": ((16, 4), (16,), 5, 16, None),
        "seq2seq_regression": ((24, 3), (8, 2), 2, 8, 2),
        "reconstruction": ((20, 6), (20, 6), 6, 20, 6),
        "summary": ((20, 5), (3,), 3, None, 3),
        "one_hot": ((12, 8), (), 2, None, None),
    }
    for name, (x_shape, y_shape, out_dim, out_len, target_dim) in expected.items():
        h5, task = recipe(tmp_path, name)
        data = load_task_data(h5, task)
        assert tuple(data.x["train"].shape[1:]) == x_shape and data.x["train"].dtype == torch.float32, name
        assert tuple(data.y["train"].shape[1:]) == y_shape, name
        assert data.y["train"].dtype == (torch.int64 if task["type"] == "classification" else torch.float32), name
        assert (data.dims["out_dim"], data.dims["out_len"], data.dims["target_dim"]) == (out_dim, out_len, target_dim), name


def test_reconstruction_without_labels(tmp_path):
    h5 = periodic(tmp_path / "nolabels.h5", np.random.default_rng(1), labels=False)
    task = make_task("ae", "self_supervised", "seq2seq", "reconstruction")
    validate(h5, Task.from_dict(task))
    got, base, data = train_and_score(tmp_path, h5, task, epochs=8)
    assert torch.equal(data.y["test"], data.x["test"]) and beats(got, base)


# --- one-hot token inputs ------------------------------------------------------------------------------

def test_one_hot_encoding_and_identity_normalisation(tmp_path):
    h5, task = recipe(tmp_path, "one_hot", trailing_axis=True)  # [N, T, 1] ids
    raw = load_splits(h5, seed=0, task=task)["train"].data  # the same (stratified) auto-split as the reader
    data = load_task_data(h5, task)
    x = data.x["train"]
    assert raw.shape[-1] == 1 and x.shape[-1] == 8 and data.input_encoding == "one_hot"
    assert torch.equal(x.argmax(-1), torch.from_numpy(raw[..., 0])) and torch.all(x.sum(-1) == 1)
    train(make_job(task, epochs=2), h5, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]
    assert torch.equal(state["x_mean"], torch.zeros(8)) and torch.equal(state["x_std"], torch.ones(8))


def test_one_hot_token_unseen_in_train_stays_finite(tmp_path):
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 4, (40, 6))
    ids[-3:, 0] = 9  # token 9 only in the last samples (test split of a pre-split file)
    h5 = write_presplit(tmp_path / "rare.h5", ids.astype(np.int64), (ids[:, 1] % 2).astype(np.int64), (0.8, 0.1, 0.1))
    task = make_task("tok", "supervised", "seq2static", "classification", input_encoding="one_hot", vocab_size=10)
    train(make_job(task, arch="mlp", epochs=2), h5, tmp_path / "run")
    model, _ = load_trained(tmp_path / "run" / "best.pt")
    out = model(load_task_data(h5, task).x["test"])
    assert torch.isfinite(out).all()


# --- root-level auto-split and forecasting ---------------------------------------------------------------

def test_root_level_auto_split_by_fractions_and_seed(tmp_path):
    h5, task = recipe(tmp_path, "seq2static_regression")
    task = {**task, "split_fractions": [0.6, 0.2, 0.2]}
    a, b = load_task_data(h5, task), load_task_data(h5, task)
    assert [len(a.x[s]) for s in ("train", "val", "test")] == [180, 60, 60]
    assert torch.equal(a.x["test"], b.x["test"])
    other = load_task_data(h5, {**task, "split_seed": 1})
    assert not torch.equal(a.x["test"], other.x["test"])
    assert torch.equal(load_task_data(h5, task, split_seed=1).x["test"], other.x["test"])
    counts = {s: e["n"] for s, e in validate(h5, Task.from_dict({**task, "split_seed": 1}))["splits"].items()}
    assert counts == {"train": 180, "val": 60, "test": 60}


def test_forecasting_longer_than_input(tmp_path):
    """T' > T: the per-step head stretches the encoder states to target_seq_len steps."""
    h5 = forecast(tmp_path / "long.h5", np.random.default_rng(3), t_in=8, t_out=12)
    task = make_task("fc", "supervised", "seq2seq", "regression", target_seq_len=12)
    validate(h5, Task.from_dict(task))
    for arch in ("gru", "mlp"):
        got, base, data = train_and_score(tmp_path / arch, h5, task, arch=arch, epochs=15)
        assert data.dims["out_len"] == 12 and data.dims["seq_len"] == 8
        model, _ = load_trained(tmp_path / arch / "run" / "best.pt")
        assert predict(model, data.x["test"], "regression").shape == (len(data.x["test"]), 12, 2)
        assert beats(got, base), (arch, got["metrics"], base["metrics"])


# --- normalisation statistics ------------------------------------------------------------------------------

def test_standardisation_single_sample_and_constant_features():
    mean, std = standardisation(torch.tensor([[2.0, -3.0]]))  # one [N, K] row
    assert mean.tolist() == [2.0, -3.0] and std.tolist() == [1.0, 1.0]
    x = torch.randn(1, 5, 3)
    x[..., 1] = 7.0  # zero variance
    mean, std = standardisation(x)
    assert torch.isfinite(mean).all() and std[1] == 1.0 and mean[1] == 7.0
    mean, std = standardisation(torch.eye(4)[torch.tensor([[0, 1], [2, 0]])])  # one-hot: left alone
    assert torch.equal(mean, torch.zeros(4)) and torch.equal(std, torch.ones(4))


def test_single_sample_train_split_trains(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3, 6, 2)).astype(np.float32)
    x[:, :, 1] = 1.5  # a constant feature
    with h5py.File(tmp_path / "one.h5", "w") as fh:
        for i, split in enumerate(("train", "val", "test")):
            fh[f"{split}/data"], fh[f"{split}/labels"] = x[i : i + 1], np.array([[float(i)]], np.float32)
    task = make_task("one", "supervised", "seq2static", "regression")
    validate(tmp_path / "one.h5", Task.from_dict(task))
    run = train(make_job(task, epochs=2), tmp_path / "one.h5", tmp_path / "run")
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=True)["model"]
    assert run["best_epoch"] >= 0 and all(torch.isfinite(state[k]).all() for k in ("x_mean", "x_std", "y_mean", "y_std"))
    assert state["x_std"][1] == 1.0 and state["y_std"].tolist() == [1.0] and state["y_mean"].tolist() == [0.0]


def shifted_copy(src, dst, scale=3.0, offset=10.0):
    """The same train split; val and test inputs and targets moved and stretched."""
    with h5py.File(src) as fin, h5py.File(dst, "w") as fout:
        for split in ("train", "val", "test"):
            x, y = fin[f"{split}/data"][()], fin[f"{split}/labels"][()]
            if split != "train":
                x, y = x * scale + offset, y * scale + offset
            fout[f"{split}/data"], fout[f"{split}/labels"] = x.astype(np.float32), y.astype(np.float32)
    return dst


def test_statistics_come_from_train_and_evaluation_reuses_them(tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 10, 3)).astype(np.float32)
    y = x.mean(1)[:, :2].astype(np.float32)
    a = write_presplit(tmp_path / "a.h5", x, y)
    b = shifted_copy(a, tmp_path / "b.h5")
    task = make_task("reg", "supervised", "seq2static", "regression")
    keys = ("x_mean", "x_std", "y_mean", "y_std")
    states = {}
    for name, h5 in (("a", a), ("b", b)):
        train(make_job(task, epochs=2), h5, tmp_path / name)
        states[name] = torch.load(tmp_path / name / "best.pt", weights_only=True)["model"]
    for key in keys:  # val/test moved, statistics did not
        assert torch.equal(states["a"][key], states["b"][key]), key
    train_x = load_task_data(a, task).x["train"]
    assert torch.allclose(states["a"]["x_mean"], standardisation(train_x)[0])
    model, _ = load_trained(tmp_path / "a" / "best.pt")
    before = {k: getattr(model, k).clone() for k in keys}
    data_b = load_task_data(b, task)
    evaluate(data_b, Task.from_dict(task), model, "gru", 0)
    assert all(torch.equal(getattr(model, k), before[k]) for k in keys)
    assert not torch.allclose(model.x_mean, standardisation(data_b.x["test"])[0], atol=1.0)


# --- bring your own file: the task settings in config.yaml ----------------------------------------------

def with_task(config: dict, **task) -> dict:
    cfg = copy.deepcopy(config)
    cfg["tasks"] = {"mine": task}
    return cfg


def test_config_accepts_contract_keys(config, tmp_path):
    h5, _ = recipe(tmp_path, "one_hot")
    cfg = validate_config(with_task(config, data_path=str(h5), paradigm="supervised", mapping="seq2static",
                                    type="classification", input_encoding="one_hot", vocab_size=8, split_seed=2))
    task = task_config(cfg, "mine")
    assert task["format"] == "seqpipe" and task["split_fractions"] == [0.7, 0.15, 0.15]
    validate(h5, Task.from_dict(task))
    assert load_task_data(h5, train_job(cfg, "mine", "gru", 0)["task"]).x["train"].shape[-1] == 8
    fc = validate_config(with_task(config, data_path="f.h5", paradigm="supervised", mapping="seq2seq",
                                   type="regression", target_seq_len=8))
    assert fc["tasks"]["mine"]["input_encoding"] == "dense"


@pytest.mark.parametrize("task, words", [
    ({"input_encoding": "one_hot"}, "vocab_size"),
    ({"format": "rollout", "in_lbl": ["a"], "out_lbl": {"y": "m/y"}, "type": "classification"}, "regression"),
    ({"format": "rollout", "out_lbl": {"y": "m/y"}}, "in_lbl"),
    ({"input_encoding": "tokens"}, "input_encoding"),
])
def test_config_rejects_incomplete_contract_keys(config, task, words):
    base = {"data_path": "f.h5", "paradigm": "supervised", "mapping": "seq2static", "type": "regression"}
    with pytest.raises(ConfigError, match="tasks.mine") as err:
        validate_config(with_task(config, **{**base, **task}))
    assert words in str(err.value)


def test_repository_config_still_valid(repo):
    cfg = load_config(repo / "config.yaml")
    assert all(t["format"] == "seqpipe" and t["input_encoding"] == "dense" for t in cfg["tasks"].values())
