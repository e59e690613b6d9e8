"""The configuration is checked as a whole before any job: every problem, one line each, with the fix (issue 11)."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Mapping

import h5py
import numpy as np
import pytest
import yaml

from seqpipe import signatures
from seqpipe.config.load import ConfigError, load_schema, problems, task_config, train_job, validate_config
from seqpipe.config.checks import arch_rules


@pytest.fixture()
def raw(repo) -> dict:
    """config.yaml as written (before defaults)."""
    return yaml.safe_load((repo / "config.yaml").read_text())


def refused(config: dict, *expected: str, files: bool = False) -> str:
    """The ConfigError message; each expected fragment appears in it."""
    with pytest.raises(ConfigError) as err:
        validate_config(config, files=files)
    message = str(err.value)
    for fragment in expected:
        assert fragment in message, message
    return message


def test_repository_config_and_experiments_have_no_problems(raw, repo):
    assert problems(raw, files=True) == []
    for path in sorted((repo / "experiments").glob("*.yaml")):
        from seqpipe.config.load import load_config

        assert load_config(repo / "config.yaml", yaml.safe_load(path.read_text()), files=True)["tasks"], path


def test_model_key_typo_is_refused_with_a_suggestion(raw):
    raw["models"]["gru"]["hiden_size"] = 8
    refused(raw, "models.gru.hiden_size: arch gru has no setting 'hiden_size' (did you mean 'hidden_size'?)")


def test_a_key_of_another_arch_is_refused(raw):
    raw["models"]["mlp"]["hidden_size"] = 8
    refused(raw, "models.mlp.hidden_size: arch mlp has no setting", "is a setting of gan_ae, gru")


def test_per_model_training_block_is_strict(raw):
    raw["models"]["gru"]["training"] = {"epochz": 3, "optimizer": {"lrr": 0.1}, "batch_size": "big"}
    refused(raw, "models.gru.training.epochz: unknown key (did you mean 'epochs'?)",
            "models.gru.training.optimizer.lrr: unknown key (did you mean 'lr'?)",
            "models.gru.training.batch_size: found str 'big'; expected integer")


def test_per_model_seeds_are_checked_and_planned(raw):
    from seqpipe.config.load import validate_config
    from seqpipe.config.plan import cells

    raw["models"]["gru"]["training"] = {"seeds": [1, 1]}
    refused(raw, "models.gru.training.seeds: [1, 1] has non-unique elements")
    raw["models"]["gru"]["training"] = {"seeds": [1, 2]}
    config = validate_config(raw)
    assert {c.seed for c in cells(config) if c.model == "gru"} == {1, 2}
    assert {c.seed for c in cells(config) if c.model == "mlp"} == set(config["training"]["seeds"])


def test_loss_names_and_parameters(raw):
    raw["tasks"]["groove_style"]["losses"] = [
        {"name": "cross_entropi"}, {"name": "gap_loss", "params": {"margn": 0.1}}, {"name": "gap_loss", "params": {"margin": "wide"}}]
    refused(raw, "tasks.groove_style.losses[0].name: unknown loss 'cross_entropi' (did you mean 'cross_entropy'?)",
            "tasks.groove_style.losses[1].params.margn: loss gap_loss has no parameter 'margn' (did you mean 'margin'?)",
            "tasks.groove_style.losses[2].params.margin: found str 'wide'; expected float")


def test_pooling_and_regularizer_names_and_parameters(raw):
    raw["models"]["gru"]["pooling"] = {"name": "mean_last_n", "params": {"m": 2}}
    raw["training"]["regularizers"] = [{"name": "l3"}]
    refused(raw, "models.gru.pooling.params.m: pooling mean_last_n has no parameter 'm'; allowed: n, scale",
            "training.regularizers[0].name: unknown regularizer 'l3'")


def test_sweep_cells_are_checked_after_expansion(raw):
    raw["sweep"] = {"models": ["gru"], "grid": {"hidden_size": [16, "wide"], "training.optimizer.lrr": [0.1]}}
    message = refused(raw, "sweep.grid: models.gru.hidden_size: found str 'wide'; expected integer (in gru--hidden_size-wide--lrr-0.1)",
                      "sweep.grid: models.gru.training.optimizer.lrr: unknown key (did you mean 'lr'?)")
    assert "(in gru--hidden_size-16--lrr-0.1 and 1 more cells)" in message and message.count("lrr") == 3  # one line for both cells


@pytest.mark.parametrize("name", ["../../escape", "a{b}", "a/b", "-x", "a..b", "tab\tname"])
def test_unsafe_task_and_model_names_are_refused(raw, name):
    raw["tasks"][name] = raw["tasks"].pop("deam_emotion")
    raw["models"][name] = {"arch": "gru"}
    message = refused(raw, f"tasks.{name}: the name {name!r} is not allowed", f"models.{name}: the name {name!r} is not allowed")
    assert "rename it" in message


def test_baseline_is_a_reserved_model_name(raw):
    raw["models"]["baseline"] = {"arch": "gru"}
    refused(raw, "models.baseline: the name 'baseline' is reserved")


def test_top_level_typo_is_one_short_line(raw):
    raw["trainig"] = {"epochs": 3}
    message = refused(raw, "trainig: unknown key (did you mean 'training'?)")
    assert len(message.splitlines()) == 3 and len(message) < 600, message


def test_every_problem_in_one_pass(raw):
    raw["trainig"] = {}
    raw["models"]["gru"]["hiden_size"] = 8
    raw["models"]["baseline"] = {"arch": "mlp"}
    raw["tasks"]["groove_style"]["losses"] = [{"name": "nope"}]
    message = refused(raw, "trainig", "hiden_size", "baseline", "unknown loss 'nope'")
    assert message.startswith("the configuration has 4 problems")


def test_data_path_must_exist_and_be_hdf5(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "text.h5").write_text("not hdf5")
    (tmp_path / "folder.h5").mkdir()
    with h5py.File(tmp_path / "good.h5", "w") as f:
        f["data"] = np.zeros((2, 3, 1), dtype=np.float32)
    task = {"paradigm": "self_supervised", "mapping": "seq2seq", "type": "reconstruction"}
    raw["tasks"] = {name: {**task, "data_path": f"{name}.h5"} for name in ("missing", "text", "folder", "good")}
    message = refused(raw, "tasks.missing.data_path: the file missing.h5 does not exist",
                      "tasks.text.data_path: text.h5 is not an HDF5 file", "tasks.folder.data_path: folder.h5 is a folder", files=True)
    assert "tasks.good" not in message
    assert validate_config(raw)  # without files=True (tests, tools) the files are not looked at


def test_dataset_root_must_be_an_existing_folder(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mydata" / "groove").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("a file")
    raw["datasets"] = {"groove": {"source": "root", "root": "mydata/grove"}, "maestro": {"source": "root", "root": "notes.txt"},
                       "lakh": {"source": "demo", "root": "nowhere"}, "deam": {"source": "root", "root": "mydata/groove"}}
    message = refused(raw, f"datasets.groove.root: the folder mydata/grove does not exist (looked in {tmp_path / 'mydata'})",
                      "datasets.maestro.root: notes.txt is a file", files=True)
    assert "datasets.lakh" not in message  # not read (demo)
    assert "datasets.deam.root: DEAM" in message  # a folder, but not DEAM's: the module says what it looked for
    assert message.count("datasets.groove") == 1


def test_init_from_must_exist_or_be_built_here(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw["models"]["gru"]["training"] = {"init_from": "results/runs/groove_reconstruction/mlp/0/best.pt"}  # a cell of this config
    raw["models"]["mlp"]["training"] = {"init_from": "elsewhere/best.pt"}
    message = refused(raw, "models.mlp.training.init_from: the checkpoint elsewhere/best.pt does not exist", files=True)
    assert "models.gru.training.init_from" not in message


def test_early_stopping_mode_that_keeps_the_worst_epoch(raw):
    raw["training"]["early_stopping"] = {"monitor": "val_metric"}  # default mode min: the worst accuracy
    refused(raw, "training.early_stopping.mode: min with monitor val_metric keeps the worst epoch on tasks groove_style, "
                 "maestro_composer (accuracy: higher is better)")
    raw["training"]["early_stopping"] = {"monitor": "val_loss", "mode": "max"}
    refused(raw, "training.early_stopping.mode: max with monitor val_loss keeps the worst epoch")


def test_early_stopping_auto_mode_follows_the_metric(raw):
    raw["training"]["early_stopping"] = {"monitor": "val_metric", "mode": "auto"}
    config = validate_config(raw)
    assert train_job(config, "groove_style", "gru", 0)["training"]["early_stopping"]["mode"] == "max"
    assert train_job(config, "deam_emotion", "gru", 0)["training"]["early_stopping"]["mode"] == "min"


def test_models_that_cannot_serve_a_task(raw):
    raw["models"]["vae"] = {"arch": "vae"}
    raw["tasks"]["groove_reconstruction"].pop("models", None)
    config = validate_config(raw)  # without a model list: left out of the tasks it cannot serve
    assert "vae" not in task_config(config, "groove_style")["models"]
    assert "vae" in task_config(config, "groove_reconstruction")["models"]
    raw["tasks"]["groove_style"]["models"] = ["gru", "vae"]  # listed: refused
    refused(raw, "tasks.groove_style.models: model 'vae' (arch vae) cannot serve a classification seq2static task")


def test_model_settings_hold_only_their_arch_defaults(raw):
    config = validate_config(raw)
    assert "latent_dim" not in config["models"]["gru"] and "pooling" not in config["models"]["mlp"]
    assert config["models"]["gru"]["pooling"] == {"name": "mean", "params": {"scale": 1.0}}
    assert validate_config(config) == config  # a filled config checks clean again


# --- the lists the checks use agree with the code ------------------------------------------------------------


def test_signatures_read_from_source_match_the_registries():
    from seqpipe.models.registry import POOLINGS
    from seqpipe.training import losses

    registries = {"register_loss": losses.LOSSES, "register_pooling": POOLINGS}
    for decorator, registry in registries.items():
        scanned = signatures.registered(decorator)
        assert set(scanned) == set(registry)
        for name, fn in registry.items():
            params = {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.default is not p.empty}
            assert scanned[name] == params, name
    assert set(signatures.regularizers()) == {"l1", "l2", "gradient_penalty"}


class Recording(Mapping):
    """A model config that records which keys a model reads."""

    def __init__(self, data: dict):
        self.data, self.read = data, set()

    def __getitem__(self, key):
        self.read.add(key)
        return self.data[key]

    def __iter__(self):
        return iter(self.data)

    def __len__(self):
        return len(self.data)

    def get(self, key, default=None):
        self.read.add(key)
        return self.data.get(key, default)


@pytest.mark.parametrize("arch", sorted(arch_rules(load_schema())))
def test_arch_key_lists_match_what_each_model_reads(arch):
    """Each arch builds from exactly its schema keys; archs without module DEFAULTS read every key they list."""
    import importlib

    from seqpipe.models import MODELS

    rules = arch_rules(load_schema())
    task = {"data_path": "x.h5", "paradigm": "self_supervised", "mapping": "seq2seq", "type": "reconstruction"}
    filled = validate_config({"tasks": {"t": task}, "models": {"m": {"arch": arch}}})["models"]["m"]
    assert set(filled) == rules[arch]["keys"]  # defaults: exactly the arch's own keys
    read = set()
    for mapping, out_len in (("seq2static", None), ("seq2seq", 12)):
        settings = {k: v for k, v in filled.items() if k != "training"}
        cfg = Recording({**settings, "num_layers": 2} if "num_layers" in settings else settings)  # dropout acts between layers
        try:
            MODELS[arch](cfg, in_dim=3, seq_len=12, out_dim=3, mapping=mapping, out_len=out_len)
        except ValueError:  # diffusion_ae refuses seq2static
            continue
        read |= cfg.read
    module = importlib.import_module(MODELS[arch].__module__)
    declared = rules[arch]["keys"] - {"arch", "training"}
    if hasattr(module, "DEFAULTS"):
        assert set(module.DEFAULTS) == declared
    else:
        assert read - {"arch"} == declared


def test_check_needs_no_torch(raw):
    """The check runs before every snakemake call: it must not pay for importing torch."""
    import subprocess
    import sys

    code = ("import sys, yaml; from seqpipe.config.load import problems; "
            "print(problems(yaml.safe_load(open('config.yaml')), files=True), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.stdout.strip() == "[] False", out.stdout + out.stderr


def test_problems_do_not_change_the_config(raw):
    before = copy.deepcopy(raw)
    problems(raw, files=True)
    assert raw == before


def test_schema_problems_read_as_one_line_each(raw):
    raw["tasks"]["groove_style"]["data_path"] = "x.h5"
    del raw["tasks"]["groove_reconstruction"]["features"]
    raw["tasks"]["maestro_composer"]["type"] = "clasification"
    del raw["tasks"]["deam_emotion"]["paradigm"]
    raw["training"]["optimizer"]["lr"] = -1
    assert problems(raw) == [
        "tasks.deam_emotion: the required key 'paradigm' is missing; add it",
        "tasks.groove_reconstruction: found neither; give exactly one of `features` or `data_path`",
        "tasks.groove_style: found both features and data_path; give exactly one of `features` or `data_path`",
        "tasks.maestro_composer.type: found 'clasification' (did you mean 'classification'?); "
        "allowed: classification, reconstruction, regression, summary",
        "training.optimizer.lr: found -1; allowed: > 0",
    ]


def test_init_from_a_sweep_cell_of_this_config(raw, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw["sweep"] = {"models": ["gru"], "grid": {"hidden_size": [16, 32]}}
    raw["models"]["mlp"]["training"] = {"init_from": "results/runs/groove_reconstruction/gru--hidden_size-16/0/best.pt"}
    assert problems(raw, files=True) == []
    raw["training"]["seeds"] = [0, 0]
    assert problems(raw) == ["training.seeds: [0, 0] has non-unique elements"]
