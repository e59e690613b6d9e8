import pytest
import yaml

from seqpipe.config.load import ConfigError, load_config, train_job
from seqpipe.config.plan import cells
from seqpipe.config.sweep import apply_sweep, expand_models, value_label


def test_value_labels_are_path_safe():
    assert [value_label(v) for v in (0.001, 64, [64, 32], "relu", True, "a/b c")] == ["0.001", "64", "64x32", "relu", "true", "a_b_c"]


def test_grid_expands_swept_models_with_stable_names():
    models = {"gru": {"arch": "gru", "hidden_size": 8}, "mlp": {"arch": "mlp"}}
    out, variants = expand_models(models, {"models": ["gru"], "grid": {"hidden_size": [32, 64], "training.optimizer.lr": [0.001, 0.01]}})
    assert variants["gru"] == ["gru--hidden_size-32--lr-0.001", "gru--hidden_size-32--lr-0.01",
                               "gru--hidden_size-64--lr-0.001", "gru--hidden_size-64--lr-0.01"]
    assert variants["mlp"] == ["mlp"] and out["mlp"] == models["mlp"]
    assert out["gru--hidden_size-64--lr-0.01"] == {"arch": "gru", "hidden_size": 64, "training": {"optimizer": {"lr": 0.01}}}


def test_unknown_swept_model_is_named():
    with pytest.raises(ConfigError, match=r"sweep.models: \['nope'\]"):
        expand_models({"gru": {}}, {"models": ["nope"], "grid": {"x": [1]}})


def test_sweep_cells_and_jobs(repo, tmp_path):
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["training"]["seeds"] = [0, 1]
    cfg["sweep"] = {"models": ["gru"], "grid": {"hidden_size": [16, 32, 64], "training.optimizer.lr": [0.001, 0.003]}}
    cfg["tasks"]["groove_style"]["models"] = ["gru"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    config = load_config(tmp_path / "c.yaml")
    grid = cells(config)
    plain = load_config(repo / "config.yaml")
    per_seed = sum(6 if "gru" in spec.get("models", plain["models"]) else 0 for spec in cfg["tasks"].values())  # gru -> 6 variants
    others = sum(len([m for m in spec.get("models", plain["models"]) if m != "gru"]) for spec in cfg["tasks"].values())
    assert len(grid) == (per_seed + others) * 2  # groove_style trains the gru variants only
    job = train_job(config, "deam_emotion", "gru--hidden_size-64--lr-0.003", 1)
    assert job["model"]["hidden_size"] == 64 and job["training"]["optimizer"]["lr"] == 0.003 and job["seed"] == 1
    assert apply_sweep(config) == config  # once applied, a sweep is not applied again


def reference_train_params(config: dict, task: str, model: str, seed: int) -> dict:
    """train_params as it was computed before issue 25 (from the whole config, model list and all)."""
    from seqpipe.config.load import train_job
    from seqpipe.config.plan import RUNTIME_KEYS, project_path

    job = train_job(config, task, model, seed)
    job["task"].pop("models")
    if job["task"].get("data_path"):
        job["task"]["data_path"] = project_path(job["task"]["data_path"])
    for key in RUNTIME_KEYS:
        job["training"].pop(key, None)
    return job


def test_job_params_are_unchanged_by_the_planning_shortcuts(config):
    """The params strings decide reruns: planning faster must not change one byte of them (issue 25 item 2)."""
    import json

    from seqpipe.config.load import task_config
    from seqpipe.config.plan import cells, task_params, train_params

    swept = apply_sweep({**config, "sweep": {"models": ["gru"], "grid": {"hidden_size": [8, 16], "training.optimizer.lr": [0.1, 0.2]}}})
    for cfg in (config, swept):
        for cell in cells(cfg):
            got = json.dumps(train_params(cfg, cell.task, cell.model, cell.seed), sort_keys=True)
            assert got == json.dumps(reference_train_params(cfg, cell.task, cell.model, cell.seed), sort_keys=True)
        for task in cfg["tasks"]:
            full = task_config(cfg, task)
            full.pop("models")
            assert task_params(cfg, task) == full
            full.pop("losses")
            assert task_params(cfg, task, data_only=True) == full
