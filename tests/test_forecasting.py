"""Forecasting (seq2seq regression, T' != T): every sequence model sees the whole input for every step.

The data follow seed 000's forecasting recipe: 500 windows of 24 steps and 3 channels of noise, a
linear trend added to channel 0; the 8 target steps continue channel 0 from its last value with a
new random slope, and the other target channels are fresh noise. Only channel 0 is predictable, and
only from the last input step: a head that reads the last 8 states of a one-way encoder cannot see
it for 7 of the 8 steps (per-step R^2 about 0), a horizon head on the whole input can.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from seqpipe.evaluation.baseline import run_baseline
from seqpipe.evaluation.evaluate import evaluate
from seqpipe.models.loading import load_trained
from seqpipe.models import build_model
from seqpipe.models.heads import head_kind
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_task_data

N, T_IN, T_OUT, D = 500, 24, 8, 3
MODEL = {"hidden_size": 32, "num_layers": 2, "kernel_size": 3, "dropout": 0.0, "pooling": {}, "n_heads": 4}
TRAINING = {"epochs": 25, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.005, "weight_decay": 0.0},
            "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 8, "min_delta": 0.0},
            "grad_clip": 1.0, "device": "cpu", "deterministic": True}
TASK = {"name": "forecast", "paradigm": "supervised", "mapping": "seq2seq", "type": "regression", "target_seq_len": T_OUT,
        "losses": [{"name": "mse", "weight": 1.0, "params": {}}]}


def trend_forecast_file(path, seed: int = 0):
    """Noise with a trend on channel 0; targets continue channel 0 from its last value, other channels noise."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(N, T_IN, D)).astype(np.float32)
    data[:, :, 0] += np.linspace(0.0, 1.0, T_IN)[None, :] * rng.uniform(-1, 1, (N, 1))
    labels = rng.normal(size=(N, T_OUT, D)).astype(np.float32)
    last, slope = data[:, -1, 0], rng.uniform(-0.5, 0.5, N)
    labels[:, :, 0] = last[:, None] + np.linspace(0.0, 1.0, T_OUT)[None, :] * slope[:, None]
    with h5py.File(path, "w") as fh:
        fh["data"], fh["labels"] = data, labels
    return path


@pytest.fixture(scope="module")
def forecast_h5(tmp_path_factory):
    return trend_forecast_file(tmp_path_factory.mktemp("forecast") / "forecast.h5")


def test_auto_head_is_horizon_for_forecasts_and_per_step_otherwise():
    assert head_kind("auto", "seq2seq", 24, 8) == "horizon"
    assert head_kind("auto", "seq2seq", 24, 24) == "per_step"
    assert head_kind("auto", "seq2seq", 24, None) == "per_step"
    assert head_kind("per_step", "seq2seq", 24, 8) == "per_step"
    assert head_kind("auto", "seq2static", 24, None) == "pooled"
    with pytest.raises(ValueError, match="expected one of auto, per_step, horizon"):
        head_kind("decoder", "seq2seq", 24, 8)


@pytest.mark.parametrize("arch", ["gru", "lstm", "tcn", "transformer"])
def test_every_forecast_step_depends_on_the_last_input_step(arch):
    torch.manual_seed(0)
    model = build_model({"arch": arch, **MODEL}, in_dim=D, seq_len=T_IN, out_dim=D, mapping="seq2seq", out_len=T_OUT, target_dim=D)
    x = torch.randn(2, T_IN, D, requires_grad=True)
    out = model(x)
    assert out.shape == (2, T_OUT, D)
    for k in range(T_OUT):
        (grad,) = torch.autograd.grad(out[0, k].sum(), x, retain_graph=True)
        assert grad[0, -1].abs().sum() > 0, f"{arch}: forecast step {k} does not see the last input step"


@pytest.mark.parametrize("arch", ["gru", "lstm", "tcn", "transformer"])
def test_every_sequence_model_clearly_beats_the_baseline_on_the_forecasting_recipe(tmp_path, forecast_h5, arch):
    job = {"task": TASK, "model": {"name": arch, "arch": arch, **MODEL}, "training": TRAINING, "seed": 0}
    train(job, forecast_h5, tmp_path / "run")
    model, _ = load_trained(tmp_path / "run" / "best.pt")
    data = load_task_data(forecast_h5, TASK)
    got, base = evaluate(data, Task.from_dict(TASK), model, arch, 0), run_baseline(data, Task.from_dict(TASK))
    rmse, base_rmse = got["metrics"]["rmse"], base["metrics"]["rmse"]
    # the best possible RMSE is about 0.83 (channels 1 and 2 are unpredictable noise), the baseline's about 1.05
    assert rmse < 0.9 * base_rmse, (arch, rmse, base_rmse)
    assert len(got["per_step"]) == T_OUT  # the per-step metrics stay
    assert min(step["r2"] for step in got["per_step"]) > 0.1, (arch, [round(s["r2"], 3) for s in got["per_step"]])


def test_forecast_feature_sets_predict_the_last_steps_of_each_window():
    from seqpipe.datasets import Item
    from seqpipe.features.build import Extracted, assemble

    grid = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    results = [Extracted(Item(f"i{k}", f"/x/{k}.mid", split, {}), grid + k) for k, split in enumerate(("train", "val", "test"))]
    spec = {"name": "g", "dataset": "groove", "kind": "drum_grid", "target": None, "window": 12, "hop": 8, "forecast": 4}
    splits, attrs = assemble(results, spec)
    train = splits["train"]
    assert train["data"].shape == (4, 8, 3) and train["labels"].shape == (4, 4, 3)
    assert np.array_equal(train["labels"][1], grid[16:20]) and np.array_equal(train["data"][1], grid[8:16])
    assert len(attrs["target_names"]) == 27  # the kind's feature names (drum_grid: 27) name the predicted columns
    with pytest.raises(ValueError, match="forecast 12 must lie between 0 and window 12"):
        assemble(results, {**spec, "forecast": 12})
