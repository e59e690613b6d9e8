"""Rollout files (parameter_names + param_<i> groups) as seq2static regression through the contract."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from seqpipe.taskfile.rollout import RolloutError, read_rollout, rollout_spec
from seqpipe.taskfile.validate import ValidationError, validate
from seqpipe.evaluation.baseline import run_baseline
from seqpipe.evaluation.evaluate import evaluate
from seqpipe.models.loading import load_trained
from seqpipe.taskfile.reader import standardisation
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_splits, load_task_data

NAMES = ["gait_stride", "gait_cadence", "hip_stiffness", "knee_damping", "ankle_gain"]
COT, SPEED = "metabolic/cot/MA/mean", "kinematics/speed/mean"
TASK = {"name": "gait", "paradigm": "supervised", "mapping": "seq2static", "type": "regression", "format": "rollout",
        "in_lbl": ["gait_cadence", "gait_stride"], "out_lbl": {"cot": COT, "speed": SPEED},
        "losses": [{"name": "mse", "weight": 1.0, "params": {}}]}
JOB = {"model": {"name": "mlp", "arch": "mlp", "hidden": [32, 32], "activation": "gelu", "residual": False, "dropout": 0.0,
                 "hidden_size": 32, "num_layers": 1, "kernel_size": 3, "pooling": {"name": "mean", "params": {"scale": 1.0}}},
       "training": {"epochs": 40, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.01, "weight_decay": 0.0},
                    "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 10, "min_delta": 0.0},
                    "grad_clip": 1.0, "device": "cpu", "deterministic": True}, "seed": 0}


def write_rollouts(path, n=150, failed_every=7, names=NAMES, seed=0, success=True):
    """A rollout file: cost of transport and speed as smooth functions of stride and cadence.

    Every `failed_every`-th rollout failed: success false and NaN metrics (training on them would break).
    """
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as fh:
        fh["parameter_names"] = np.array(names, dtype=h5py.string_dtype())
        meta = fh.create_group("metadata")
        meta.attrs["checkpoint_path"], meta.attrs["commit_hash"] = "policy.pt", "abc123"
        for i in range(n):
            state = rng.uniform(0.5, 1.5, len(names))
            group = fh.create_group(f"param_{i}")
            group["param_state"] = state
            ok = success and not (failed_every and i % failed_every == 3)
            stride, cadence = state[0], state[1 % len(names)]
            group.attrs["success"] = ok
            group.attrs[COT] = 2.0 + (stride - 1.0) ** 2 * 3 + 0.5 * cadence if ok else np.nan
            group.attrs["metabolic/cot/MA/std"] = 0.1
            group.attrs[SPEED] = stride * cadence if ok else np.nan
    return path


def expected_successes(n=150, failed_every=7):
    return [i for i in range(n) if i % failed_every != 3]


# --- reading -----------------------------------------------------------------------------------------------

def test_reads_successful_rollouts_only(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5")
    arrays = read_rollout(h5, rollout_spec(Task.from_dict(TASK)))
    ok = expected_successes()
    assert arrays.data.shape == (len(ok), 1, 2) and arrays.data.dtype == np.float32
    assert arrays.labels.shape == (len(ok), 2) and arrays.labels.dtype == np.float32
    assert arrays.item_ids.tolist() == [f"param_{i}" for i in ok] and arrays.n_failed == 150 - len(ok)
    with h5py.File(h5) as fh:
        state = fh["param_4/param_state"][()]
        assert np.allclose(arrays.data[ok.index(4), 0], [state[1], state[0]])  # in_lbl order: cadence, stride
        assert np.isclose(arrays.labels[ok.index(4), 1], fh["param_4"].attrs[SPEED])


def test_groups_in_numeric_order_and_out_lbl_as_list(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5", n=12, failed_every=0)
    arrays = read_rollout(h5, rollout_spec(Task.from_dict({**TASK, "out_lbl": [COT]})))
    assert arrays.item_ids.tolist() == [f"param_{i}" for i in range(12)] and arrays.labels.shape == (12, 1)


def test_load_task_data_splits_rollouts(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5")
    data = load_task_data(h5, TASK)
    n = len(expected_successes())
    assert sum(len(data.x[s]) for s in ("train", "val", "test")) == n
    assert data.dims == {"in_dim": 2, "seq_len": 1, "out_dim": 2, "mapping": "seq2static", "out_len": None, "target_dim": 2}
    assert data.names == {"feature_names": ["gait_cadence", "gait_stride"], "target_names": ["cot", "speed"]}
    splits = load_splits(h5, (0.7, 0.15, 0.15), 0, task=TASK)
    ids = [set(splits[s].item_ids.tolist()) for s in ("train", "val", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_regression_on_rollouts_beats_mean_predictor(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5", n=300)
    summary = validate(h5, Task.from_dict(TASK))
    assert summary["rollouts"] == {"groups": 300, "failed": 43, "used": 257}
    train({**JOB, "task": TASK}, h5, tmp_path / "run")
    model, _ = load_trained(tmp_path / "run" / "best.pt")
    data = load_task_data(h5, TASK)
    got, base = evaluate(data, Task.from_dict(TASK), model, "mlp", 0), run_baseline(data, Task.from_dict(TASK))
    assert got["metrics"]["rmse"] < 0.5 * base["metrics"]["rmse"], (got["metrics"], base["metrics"])
    assert set(got["per_target"]) == {"cot", "speed"}


# --- a single group ------------------------------------------------------------------------------------------

def test_single_group_file(tmp_path):
    h5 = write_rollouts(tmp_path / "one.h5", n=1, failed_every=0)
    arrays = read_rollout(h5, rollout_spec(Task.from_dict(TASK)))
    assert arrays.data.shape == (1, 1, 2) and arrays.labels.shape == (1, 2)
    mean, std = standardisation(torch.from_numpy(arrays.labels))
    assert torch.equal(std, torch.ones(2)) and torch.allclose(mean, torch.from_numpy(arrays.labels[0]))
    with pytest.raises(ValueError, match=r"one\.h5: split\(s\) \['val', 'test'\] have no samples.*at least 3"):
        load_task_data(h5, TASK)
    problems = _problems(h5, TASK)
    assert any("[auto-split val]: key `data` has no samples" in p and "split_fractions" in p for p in problems)


def test_single_parameter_scalar_state(tmp_path):
    """One parameter name, param_state stored as a scalar, metrics as 1-element arrays."""
    with h5py.File(tmp_path / "s.h5", "w") as fh:
        fh["parameter_names"] = np.array([b"gain"])  # fixed-length bytes
        for i in range(5):
            fh[f"param_{i}/param_state"] = float(i)
            fh[f"param_{i}"].attrs[COT] = np.array([2.0 * i])
    arrays = read_rollout(tmp_path / "s.h5", rollout_spec(Task.from_dict({**TASK, "in_lbl": ["gain"], "out_lbl": {"cot": COT}})))
    assert arrays.data[:, 0, 0].tolist() == [0, 1, 2, 3, 4] and arrays.labels[:, 0].tolist() == [0, 2, 4, 6, 8]


# --- clear errors: file, key, found, expected, fix --------------------------------------------------------------

def _problems(path, task):
    with pytest.raises(ValidationError) as err:
        validate(path, Task.from_dict(task))
    return err.value.problems


def test_missing_parameter_name(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5", n=20)
    task = {**TASK, "in_lbl": ["gait_cadance", "gait_stride"]}
    with pytest.raises(RolloutError) as err:
        load_task_data(h5, task)
    message = str(err.value)
    for part in (str(h5), "key `parameter_names` has no 'gait_cadance'", "did you mean 'gait_cadence'", "found 5 names", "fix tasks.<task>.in_lbl"):
        assert part in message, part
    assert any("no 'gait_cadance'" in p for p in _problems(h5, task))


def test_missing_attribute_path(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5", n=20)
    task = {**TASK, "out_lbl": {"cot": "metabolic/cot/MA/meen"}}
    with pytest.raises(RolloutError) as err:
        load_task_data(h5, task)
    message = str(err.value)
    for part in (str(h5), "key `param_0` has no attribute 'metabolic/cot/MA/meen'", "did you mean 'metabolic/cot/MA/mean'",
                 "out_lbl 'cot'", "found attributes", "expected it in every successful rollout", "fix tasks.<task>.out_lbl"):
        assert part in message, part


def test_no_successful_rollout(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5", n=6, success=False)
    problems = _problems(h5, TASK)
    assert len(problems) == 1
    for part in (str(h5), "key `success`: 0 of 6 rollouts succeeded", "expected at least one with success = true", "check the simulation"):
        assert part in problems[0], part


def test_param_state_length_mismatch(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5", n=10, failed_every=0)
    with h5py.File(h5, "a") as fh:
        del fh["param_2/param_state"]
        fh["param_2/param_state"] = np.zeros(3)
    problems = _problems(h5, TASK)
    assert "key `param_2/param_state` is float64 [3]" in problems[0] and "expected a numeric vector of 5 values" in problems[0]


def test_rollout_layout_missing(tmp_path):
    with h5py.File(tmp_path / "plain.h5", "w") as fh:
        fh["data"] = np.zeros((9, 1, 2), np.float32)
    problems = _problems(tmp_path / "plain.h5", TASK)
    assert "key `parameter_names` is missing" in problems[0] and "remove `format: rollout`" in problems[0]
    assert "no `param_<i>` groups" in problems[1]


def test_rollout_file_without_format_gets_a_hint(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5", n=5)
    plain = {k: v for k, v in TASK.items() if k not in ("format", "in_lbl", "out_lbl")}
    problems = _problems(h5, plain)
    assert "no `data` dataset" in problems[0] and "set tasks.<task>.format: rollout" in problems[0]


def test_rollout_task_settings(tmp_path):
    h5 = write_rollouts(tmp_path / "r.h5", n=5)
    problems = _problems(h5, {**TASK, "in_lbl": [], "type": "classification"})
    assert any("tasks.gait.in_lbl: found []" in p and "expected a list of parameter names" in p for p in problems)
    assert any("a rollout file gives supervised seq2static regression data" in p for p in problems)
