import pytest
import yaml

from seqpipe.config import ConfigError, load_config, train_job, validate_config
from seqpipe.plan import cells, task_h5


def test_defaults_are_filled(config):
    assert config["training"]["early_stopping"]["mode"] == "min"
    assert config["datasets"]["groove"]["limit"] is None
    assert config["models"]["gru"]["pooling"]["name"] == "mean"
    assert config["features"]["deam_logmel"]["sample_rate"] == 22050
    assert config["resources"]["train"]["threads"] == 1


def test_unknown_key_names_the_key(config):
    config["training"]["epochz"] = 3
    with pytest.raises(ConfigError, match=r"config key training: .*epochz"):
        validate_config(config)


def test_wrong_type_names_the_key(config):
    config["training"]["batch_size"] = "big"
    with pytest.raises(ConfigError, match="training.batch_size"):
        validate_config(config)


def test_task_naming_missing_feature_set(config):
    config["tasks"]["groove_style"]["features"] = "nope"
    with pytest.raises(ConfigError, match=r"tasks.groove_style.features: feature set 'nope' is not defined"):
        validate_config(config)


def test_root_source_needs_root(config):
    config["datasets"]["deam"]["source"] = "root"
    with pytest.raises(ConfigError, match="datasets.deam.root"):
        validate_config(config)


def test_train_job_holds_only_its_model(config):
    """A change to one model's hyperparameter changes only that model's jobs (params trigger)."""
    before = {(c.task, c.model): train_job(config, c.task, c.model, c.seed) for c in cells(config)}
    config["models"]["gru"]["hidden_size"] = 17
    changed = {key for key, job in before.items() if train_job(config, key[0], key[1], 0) != job}
    assert changed == {(t, "gru") for t in config["tasks"]}


def test_per_model_training_override(config):
    config["models"]["mlp"]["training"] = {"optimizer": {"lr": 0.01}}
    job = train_job(config, "groove_style", "mlp", 0)
    assert job["training"]["optimizer"] == {**config["training"]["optimizer"], "lr": 0.01}
    assert "training" not in job["model"] and "seeds" not in job["training"]


def test_data_path_task(tmp_path, repo):
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["tasks"]["mine"] = {"data_path": "my.h5", "paradigm": "supervised", "mapping": "seq2static", "type": "regression"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    config = load_config(tmp_path / "c.yaml")
    assert task_h5(config, "mine") == "my.h5"
    assert {c.model for c in cells(config) if c.task == "mine"} == set(config["models"])  # no `models:`: every model
