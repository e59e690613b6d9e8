"""The typed settings (seqpipe.config.types): built once from the checked config, JSON for the rules' params,
parsed back exactly at the job's entry, read-only, and the runtime settings' one route ($SEQPIPE_RUNTIME)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from seqpipe.config.load import load_config, train_job_from_dict
from seqpipe.config.plan import cells, run_config_hash, runtime_settings, train_params
from seqpipe.config.types import (RUNTIME_KEYS, Runtime, SettingsError, Task, TaskType, TrainJob, runtime_from_env,
                                  with_runtime)
from seqpipe.io import config_hash

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def config() -> dict:
    return load_config(REPO / "config.yaml")


def test_every_cells_params_parse_back_to_the_same_json(config):
    """A rule's params are the JSON of the TrainJob its job parses: byte for byte the same after the round trip."""
    for cell in cells(config):
        text = json.dumps(train_params(config, cell.task, cell.model, cell.seed), sort_keys=True)
        job = TrainJob.from_json(text)
        assert job.to_json() == text
        assert isinstance(job.task.type, TaskType) and job.seed == cell.seed
        assert not set(RUNTIME_KEYS) & set(job.training.to_dict())  # result-neutral settings are Runtime's


def test_task_types_have_properties_not_string_compares():
    assert TaskType("classification").is_classification and TaskType.CLASSIFICATION.metric_name == "accuracy"
    assert not TaskType("regression").is_classification and TaskType.SUMMARY.metric_name == "RMSE"
    with pytest.raises(ValueError):
        TaskType("clasification")


def test_a_tasks_data_settings_are_read_through_the_task():
    """vocab_size and num_classes (None when unset); with_data gives a new task and leaves the JSON shape as it is."""
    settings = {"name": "t", "type": "classification", "mapping": "seq2static", "vocab_size": 5, "split_fractions": [0.5, 0.25, 0.25]}
    task = Task.from_dict(settings)
    assert (task.vocab_size, task.num_classes) == (5, None)
    seeded = task.with_data(split_seed=3, num_classes=4)
    assert seeded.num_classes == 4 and seeded.data["split_seed"] == 3 and "split_seed" not in task.data
    assert seeded.to_dict() == {**settings, "split_seed": 3, "num_classes": 4}
    assert Task.from_json(json.dumps(seeded.to_dict())) == seeded
    with pytest.raises(TypeError):
        seeded.data["split_seed"] = 4  # type: ignore[index]


def test_settings_are_read_only(config):
    cell = cells(config)[0]
    job = TrainJob.from_dict(train_params(config, cell.task, cell.model, cell.seed))
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.seed = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        job.training.optimizer["lr"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        job.model.params["x"] = 1  # type: ignore[index]


def test_a_job_missing_or_adding_a_key_is_one_clear_error(config):
    cell = cells(config)[0]
    params = train_params(config, cell.task, cell.model, cell.seed)
    params["training"].pop("amp")
    params["training"]["checkpoint_every"] = 3
    with pytest.raises(SettingsError, match=r"training settings: missing amp; unknown checkpoint_every; expected exactly"):
        TrainJob.from_dict(params)


def test_a_hand_written_job_gets_the_schemas_defaults():
    task = {"name": "t", "type": "classification", "mapping": "seq2static", "paradigm": "supervised",
            "losses": [{"name": "cross_entropy", "weight": 1.0, "params": {}}]}
    job, runtime = train_job_from_dict({"task": task, "model": {"name": "m", "arch": "mlp"},
                                        "training": {"epochs": 2, "checkpoint_every": 4}, "seed": 3})
    assert job.training.epochs == 2 and job.training.batch_size == 32 and job.training.early_stopping.mode == "min"
    assert runtime.checkpoint_every == 4 and runtime.memory_budget_mb == 2048


def test_runtime_travels_in_one_variable(config):
    runtime = runtime_settings(config)
    assert runtime_from_env({}) is None
    assert runtime_from_env({"SEQPIPE_RUNTIME": runtime.to_json()}) == runtime
    assert runtime.cache == (config.get("cache") or {}) and runtime.memory_budget_mb == config["training"]["memory_budget_mb"]
    with pytest.raises(SettingsError, match=r"\$SEQPIPE_RUNTIME: .*expected the JSON of seqpipe.config.types.Runtime"):
        runtime_from_env({"SEQPIPE_RUNTIME": "{not json"})


def test_a_models_own_runtime_settings_win(config):
    runtime = Runtime(checkpoint_every=1, progress=True, num_workers=0, memory_budget_mb=2048, cache={},
                      models={"gru": {"checkpoint_every": 5}})
    assert runtime.for_model("gru").checkpoint_every == 5 and runtime.for_model("mlp").checkpoint_every == 1
    cell = next(c for c in cells(config) if c.model == "gru")
    params = train_params(config, cell.task, cell.model, cell.seed)
    assert with_runtime(params, runtime)["training"]["checkpoint_every"] == 5
    assert run_config_hash(params, runtime) == config_hash(TrainJob.from_dict(params).as_run(runtime.for_model("gru")))


def test_parsing_a_job_imports_no_schema_library():
    """A job's entry parses its settings with the stdlib only (each job's start-up counts, issue 25)."""
    code = ("import sys; from seqpipe.config.types import TrainJob, runtime_from_env; "
            "print(sorted(m for m in ('jsonschema', 'yaml', 'pydantic') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_an_unknown_task_type_is_one_clear_error(tmp_path):
    """A hand-written --task with a type no stage knows: one paragraph naming the task, the type and the choices
    (not an enum traceback)."""
    with pytest.raises(SettingsError, match=r"task 'x': type is 'ranking'; expected one of classification, regression"):
        Task.from_dict({"name": "x", "type": "ranking", "mapping": "seq2static"})
    proc = subprocess.run([sys.executable, "-m", "seqpipe", "validate", "--data", str(tmp_path / "none.h5"), "--task",
                           '{"name": "x", "type": "ranking", "mapping": "seq2static"}', "--out", str(tmp_path / "v.json")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "type is 'ranking'" in proc.stderr, proc.stderr
