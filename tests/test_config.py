import pytest
import yaml

from seqpipe.config.load import ConfigError, load_config, train_job, validate_config
from seqpipe.config.plan import cells, task_h5


def test_defaults_are_filled(config):
    assert config["training"]["early_stopping"]["mode"] == "min"
    assert config["datasets"]["groove"]["limit"] is None
    assert config["models"]["gru"]["pooling"]["name"] == "mean"
    assert config["features"]["deam_logmel"]["sample_rate"] == 22050
    assert config["resources"]["train"]["threads"] == 1


def test_unknown_key_names_the_key(config):
    config["training"]["epochz"] = 3
    with pytest.raises(ConfigError, match=r"training.epochz: unknown key \(did you mean .epochs.\?\)"):
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
    assert changed == {(c.task, "gru") for c in cells(config) if c.model == "gru"}
    assert changed and all(model == "gru" for _, model in changed)


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
    # no `models:`: every model whose arch serves a seq2static regression task (here all of config.yaml's)
    assert {c.model for c in cells(config) if c.task == "mine"} == {"mlp", "gru", "tcn_vae"} == set(config["models"])


def test_schema_ships_inside_the_package(repo):
    """A wheel install has no workflow/ folder: the schema is package data, read through SCHEMA_PATH/load_schema."""
    import tomllib

    from seqpipe.config.load import SCHEMA_PATH, load_schema

    assert SCHEMA_PATH.parent == (repo / "src" / "seqpipe" / "config").resolve() and SCHEMA_PATH.is_file()
    assert not (repo / "workflow" / "schemas" / "config.schema.yaml").exists()
    package_data = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["seqpipe.config"]
    assert SCHEMA_PATH.name in package_data
    assert load_schema()["properties"]["training"]["properties"]["epochs"]["default"] == 25


@pytest.mark.slow
def test_wheel_install_reads_its_schema(repo, tmp_path):
    """Built as a wheel and installed elsewhere (no source tree), the package checks a config with its own schema."""
    import os
    import subprocess
    import sys

    import shutil

    source, wheels, target = tmp_path / "source", tmp_path / "wheels", tmp_path / "site"
    source.mkdir()  # build from a copy: an in-tree build would leave build/ in the repository
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(repo / name, source / name)
    shutil.copytree(repo / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(source), "-w", str(wheels)],
                   check=True, capture_output=True, timeout=300, cwd=tmp_path)
    wheel = next(wheels.glob("seqpipe-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import seqpipe.config.load as c, yaml; "
            "print(c.SCHEMA_PATH.is_relative_to(sys.argv[1]), c.validate_config(yaml.safe_load(open(sys.argv[2])))['training']['epochs'])")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", "import sys; " + code, str(target), str(repo / "config.yaml")],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    epochs = str(yaml.safe_load((repo / "config.yaml").read_text())["training"]["epochs"])
    assert out.stdout.split() == ["True", epochs], out.stdout + out.stderr
