"""Domains (SPEC shared interface 2): task files from several feature sets, validation, the loader passing
domain ids per batch, tcn_vae's adversary removing the domain from its latent, and evaluation reporting it."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from seqpipe.config import plan
from seqpipe.config.load import check_config, ConfigError
from seqpipe.taskfile import assemble
from seqpipe.taskfile.assemble import AssemblyError, assemble_task
from seqpipe.taskfile.hdf5 import read_attrs, write_splits
from seqpipe.taskfile.validate import ValidationError, validate
from seqpipe.evaluation.evaluate import evaluate
from seqpipe.models.loading import load_trained
from seqpipe.features.build import assemble as assemble_windows
from seqpipe.features.build import Extracted
from seqpipe.datasets import Item
from seqpipe.training.train import train
from seqpipe.config.types import Task
from taskfiles import load_task_data, memory_task_data, stream_task_data
from tests.test_training import MODEL_DEFAULTS

RECON = {"name": "drums", "paradigm": "self_supervised", "mapping": "seq2seq", "type": "reconstruction",
         "losses": [{"name": "mse", "weight": 1.0, "params": {}}], "features": ["a_grid", "b_grid"], "domain": "source"}


def feature_file(path, n=(6, 2, 2), offset=0.0, labels=True, t=8, d=3, seed=0):
    """A feature-set-like file: splits with data, item ids (2 windows per item) and optionally class labels."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, size in zip(("train", "val", "test"), n):
        part = {"data": (rng.normal(size=(size, t, d)) + offset).astype(np.float32),
                "item_ids": np.array([f"{split}{i // 2}" for i in range(size)])}
        if labels:
            part["labels"] = rng.integers(0, 2, size).astype(np.int64)
        splits[split] = part
    attrs = {"feature_names": [f"f{i}" for i in range(d)], "frame_rate": 4.0, "dataset": path.stem}
    if labels:
        attrs["class_names"] = ["x", "y"]
    write_splits(path, splits, attrs)
    return path


def test_assembled_task_file_has_a_domain_per_sample_and_validates(tmp_path):
    a, b = feature_file(tmp_path / "a.h5"), feature_file(tmp_path / "b.h5", n=(4, 2, 2), labels=False, seed=1)
    out = tmp_path / "tasks" / "drums.h5"
    result = assemble_task({"a_grid": str(a), "b_grid": str(b)}, Task.from_dict(RECON), out)
    assert result["domain_names"] == ["a_grid", "b_grid"]
    with h5py.File(out, "r") as fh, h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert fh["train/domains"][()].tolist() == [0] * 6 + [1] * 4
        assert np.array_equal(fh["train/data"][()], np.concatenate([fa["train/data"][()], fb["train/data"][()]]))
        ids = [v.decode() for v in fh["test/item_ids"][()]]
        assert ids[0] == "a_grid/test0" and ids[-1] == "b_grid/test0"  # the same id in two datasets stays two items
        assert "labels" not in fh["train"]  # reconstruction: b has none, so none are kept
    assert read_attrs(out)["domain_names"] == ["a_grid", "b_grid"]
    summary = validate(out, Task.from_dict(RECON))
    assert summary["domain_names"] == ["a_grid", "b_grid"]


def test_assembly_copies_in_blocks_with_the_same_bytes(tmp_path, monkeypatch):
    a, b = feature_file(tmp_path / "a.h5"), feature_file(tmp_path / "b.h5", seed=1)
    task = Task.from_dict({**RECON, "type": "classification", "paradigm": "supervised", "mapping": "seq2static"})
    assemble_task({"a_grid": str(a), "b_grid": str(b)}, task, tmp_path / "whole.h5")
    assemble_task({"a_grid": str(a), "b_grid": str(b)}, task, tmp_path / "again.h5")
    assert (tmp_path / "whole.h5").read_bytes() == (tmp_path / "again.h5").read_bytes()  # reproducible bytes
    monkeypatch.setattr(assemble, "CHUNK_BYTES", 1)  # one row per read: memory flat in the data size
    assemble_task({"a_grid": str(a), "b_grid": str(b)}, task, tmp_path / "rows.h5")
    with h5py.File(tmp_path / "rows.h5", "r") as rows, h5py.File(tmp_path / "whole.h5", "r") as whole:
        assert rows["train/labels"].shape == (12,)
        for key in ("train/data", "train/labels", "test/item_ids", "val/domains"):
            assert np.array_equal(rows[key][()], whole[key][()]), key


def test_assembly_names_the_file_that_does_not_fit(tmp_path):
    a, b = feature_file(tmp_path / "a.h5"), feature_file(tmp_path / "b.h5", t=6)
    with pytest.raises(AssemblyError, match=r"b\.h5: key `data` has per-sample shape \[6, 3\].*\[8, 3\]"):
        assemble_task({"a_grid": str(a), "b_grid": str(b)}, Task.from_dict(RECON), tmp_path / "out.h5")
    c = feature_file(tmp_path / "c.h5", labels=False)
    task = Task.from_dict({**RECON, "type": "classification", "paradigm": "supervised", "mapping": "seq2static"})
    with pytest.raises(AssemblyError, match=r"c\.h5.*`class_names`"):
        assemble_task({"a_grid": str(a), "c_grid": str(c)}, task, tmp_path / "out.h5")


def test_validation_reports_bad_domains(tmp_path):
    path = feature_file(tmp_path / "a.h5")
    with h5py.File(path, "a") as fh:
        for split in ("train", "val", "test"):
            fh[f"{split}/domains"] = np.full(len(fh[f"{split}/data"]), 3, dtype=np.int64)
        fh.attrs["domain_names"] = json.dumps(["p", "q"])  # not a list of names
    task = Task.from_dict({**RECON, "type": "classification", "paradigm": "supervised", "mapping": "seq2static"})
    with pytest.raises(ValidationError, match="domain_names"):
        validate(path, task)
    with h5py.File(path, "a") as fh:
        fh.attrs["domain_names"] = np.array(["p", "q"], dtype=h5py.string_dtype())
    with pytest.raises(ValidationError, match=r"key `domains` holds ids 3..3; expected \[0, 2\)"):
        validate(path, task)


def test_a_label_column_becomes_the_domain_in_feature_files():
    items = [Item(item_id=f"i{k}", path=f"/x/{k}.mid", split=s, labels={"style": "rock", "drummer": d})
             for k, (s, d) in enumerate([("train", "d2"), ("train", "d1"), ("val", "d1"), ("test", "d2")])]
    results = [Extracted(item, np.ones((8, 2), np.float32)) for item in items]
    splits, attrs = assemble_windows(results, {"name": "g", "dataset": "groove", "kind": "drum_grid", "target": "style", "window": 4, "hop": 4, "domain": "drummer"})
    assert attrs["domain_names"] == ["d1", "d2"]
    assert splits["train"]["domains"].tolist() == [1, 1, 0, 0] and splits["test"]["domains"].tolist() == [1, 1]


def test_config_and_plan_for_a_task_on_several_feature_sets():
    config = {"tasks": {"drums": {**RECON, "features": ["a_grid", "b_grid"]}}, "models": {"m": {"arch": "tcn_vae"}},
              "features": {"a_grid": {"dataset": "groove"}, "b_grid": {"dataset": "lakh"}}}
    check_config(config)
    assert plan.task_h5(config, "drums") == "results/tasks/drums.h5"
    assert plan.task_sources(config, "drums") == {"a_grid": "results/features/groove/a_grid.h5", "b_grid": "results/features/lakh/b_grid.h5"}
    config["tasks"]["drums"]["features"] = ["a_grid", "nope"]
    with pytest.raises(ConfigError, match="feature set 'nope' is not defined"):
        check_config(config)


# --- the loader and the adversary -----------------------------------------------------------------------------

N_CLASSES = 3


def domain_file(path, seed=0):
    """Classes from where a pulse sits (channels 0-2); the domain (2) only shifts channel 3, useless for the task."""
    rng = np.random.default_rng(seed)

    def part(n, prefix):
        y, d = rng.integers(0, N_CLASSES, n), rng.integers(0, 2, n)
        x = rng.normal(size=(n, 16, 4)).astype(np.float32)
        x[np.arange(n), 4:9, y] += 2.0
        x[:, :, 3] += d[:, None].astype(np.float32)
        return {"data": x, "labels": y.astype(np.int64), "domains": d.astype(np.int64), "item_ids": np.array([f"{prefix}{k}" for k in range(n)])}

    write_splits(path, {"train": part(400, "t"), "val": part(100, "v"), "test": part(200, "s")},
                 {"domain_names": ["studio", "live"], "class_names": ["c0", "c1", "c2"]})
    return path


TASK = {"name": "dom", "paradigm": "supervised", "mapping": "seq2static", "type": "classification",
        "losses": [{"name": "cross_entropy", "weight": 1.0, "params": {}}]}


def test_both_loaders_pass_the_domain_of_every_sample(tmp_path):
    path = domain_file(tmp_path / "dom.h5")
    expected = load_task_data(path, TASK).domains["train"]
    for data in (memory_task_data(path, TASK), stream_task_data(path, TASK)):
        order = torch.randperm(400, generator=torch.Generator().manual_seed(0))
        got = torch.cat([batch.domain for batch in data.splits["train"].batches(64, order)])
        assert torch.equal(got, expected[order])


def latent_probe_accuracy(run_dir, path) -> float:
    """Test accuracy of a logistic-regression probe that reads the domain from the latent mean."""
    model, _ = load_trained(run_dir / "last.pt")
    data = load_task_data(path, TASK)
    with torch.no_grad():
        mu = {s: model.net.encode((data.x[s] - model.x_mean) / model.x_std)[0].numpy() for s in ("train", "test")}
    probe = LogisticRegression(max_iter=2000).fit(mu["train"], data.domains["train"].numpy())
    return probe.score(mu["test"], data.domains["test"].numpy())


@pytest.fixture(scope="module")
def adversary_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversary")
    path = domain_file(root / "dom.h5")
    training = {"epochs": 30, "batch_size": 32, "optimizer": {"name": "adam", "lr": 0.003, "weight_decay": 0.0},
                "early_stopping": {"monitor": "val_loss", "mode": "min", "patience": 100, "min_delta": 0.0},
                "grad_clip": 1.0, "device": "cpu", "deterministic": True}
    runs = {}
    for lambda_dom in (0.0, 1.0):
        model = {**MODEL_DEFAULTS, "name": "tcn_vae", "arch": "tcn_vae", "n_domains": 2, "latent_dim": 8, "lambda_dom": lambda_dom}
        train({"task": TASK, "model": model, "training": training, "seed": 0}, path, root / str(lambda_dom))
        runs[lambda_dom] = root / str(lambda_dom)
    return path, runs


def test_the_adversary_removes_the_domain_from_the_latent(adversary_runs):
    path, runs = adversary_runs
    plain, adversarial = (latent_probe_accuracy(runs[lam], path) for lam in (0.0, 1.0))
    assert plain > 0.85, plain  # without the adversary the latent tells the domains apart
    assert adversarial < plain - 0.15, (plain, adversarial)


def test_training_logs_the_adversary_and_evaluation_reports_its_domain_accuracy(adversary_runs):
    path, runs = adversary_runs
    header = (runs[1.0] / "scalars.csv").read_text().splitlines()[0].split(",")
    assert "aux_domain" in header and "model_alpha" in header
    model, _ = load_trained(runs[1.0] / "best.pt")
    data = load_task_data(path, TASK)
    got = evaluate(data, Task.from_dict(TASK), model, "tcn_vae", 0)
    assert got["metrics"]["accuracy"] > 0.8
    assert 0.0 <= got["metrics"]["domain_accuracy"] <= 1.0 and got["metrics"]["domain_majority"] >= 0.5


def test_too_few_domains_in_the_model_config_is_named():
    from seqpipe.models import build_model

    model = build_model({**MODEL_DEFAULTS, "arch": "tcn_vae", "n_domains": 2}, in_dim=4, seq_len=16, out_dim=3,
                        mapping="seq2static", out_len=None, target_dim=None).train()
    model.set_domains(torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match=r"domain ids 0..2 but n_domains is 2; set models.<model>.n_domains to at least 3"):
        model(torch.randn(4, 16, 4))
