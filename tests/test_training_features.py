"""Training features: schedules, checkpoints and model.pt, figures, augmentation, pretrained and
frozen weights, mixed precision off the GPU, the model protocol (aux losses, progress, KL-collapse
warning), regularizers, and reading batches from the file when a task does not fit the memory budget."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from seqpipe.taskfile import reader as loader
from seqpipe.taskfile import splits
from seqpipe.taskfile.hdf5 import write_splits
from seqpipe.taskfile.reader import MemorySplit, epoch_order
from seqpipe.models import MODELS
from seqpipe.config.load import default_runtime
from seqpipe.config.types import KlCollapse, Task
from seqpipe.training.figures import COLOURS
from seqpipe.training.checkpoint import load
from seqpipe.training.schedule import make_scheduler, step_scheduler
from seqpipe.training.train import train, training_settings
from taskfiles import memory_task_data, stream_task_data
from tests.test_training import job, make_file


def scalars(run_dir) -> list[dict]:
    return list(csv.DictReader(open(run_dir / "scalars.csv")))


def events(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def same_weights(a, b) -> bool:
    a, b = load(a)["model"], load(b)["model"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def h5(tmp_path_factory):
    return make_file(tmp_path_factory.mktemp("data") / "d.h5", "classification")


def test_defaults_come_from_the_schema():
    filled = training_settings({"epochs": 3, "scheduler": {"name": "cosine_warm_restarts"}})
    assert filled.epochs == 3 and filled.scheduler == {"name": "cosine_warm_restarts", "factor": 0.5, "patience": 3, "min_lr": 1e-6,
                                                       "T_0": 10, "T_mult": 1, "eta_min": 0.0}
    assert filled.amp == "bf16" and filled.freeze == () and filled.init_from is None
    assert filled.kl_collapse == KlCollapse(threshold=0.001, epochs=3)
    runtime = default_runtime()  # the result-neutral ones are Runtime's, from the same schema
    assert runtime.checkpoint_every == 1 and runtime.memory_budget_mb == 2048


def test_schedulers_step_once_per_epoch():
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    plateau = make_scheduler({"name": "reduce_on_plateau", "factor": 0.5, "patience": 1, "min_lr": 0.2}, opt, "min")
    lrs = []
    for _ in range(8):
        step_scheduler(plateau, 1.0)  # never improves after the first epoch
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2]  # halved after patience + 1 bad epochs, down to min_lr
    opt = torch.optim.SGD([param], lr=1.0)
    cosine = make_scheduler({"name": "cosine_warm_restarts", "T_0": 2, "T_mult": 1, "eta_min": 0.0}, opt, "min")
    seen = [opt.param_groups[0]["lr"]]
    for _ in range(3):
        step_scheduler(cosine, 0.0)
        seen.append(opt.param_groups[0]["lr"])
    assert seen == pytest.approx([1.0, 0.5, 1.0, 0.5])
    assert make_scheduler({"name": "none"}, opt, "min") is None


def test_cosine_schedule_in_scalars_and_complete_checkpoints(tmp_path, h5):
    j = job("classification", "gru", epochs=4, optimizer={"name": "adamw", "lr": 0.01, "weight_decay": 0.01},
            scheduler={"name": "cosine_warm_restarts", "T_0": 2})
    run = train(j, h5, tmp_path / "run")
    lrs = [float(r["lr"]) for r in scalars(tmp_path / "run") if r["split"] == "train"]
    assert lrs == pytest.approx([0.01, 0.005, 0.01, 0.005])
    last = load(tmp_path / "run" / "last.pt")
    assert {"epoch", "model", "optimizer", "scheduler", "scaler", "early_stopping", "rng", "history", "job", "dims",
            "config_hash", "resume_key"} <= set(last)
    assert last["complete"] is True and last["scheduler"]["T_0"] == 2 and last["epoch"] == 3
    assert {"torch", "numpy", "python", "shuffle"} <= set(last["rng"])
    model_pt = load(tmp_path / "run" / "model.pt")  # the best weights, the model's config and dimensions
    best = load(tmp_path / "run" / "best.pt")
    assert model_pt["epoch"] == best["epoch"] == run["best_epoch"]
    assert model_pt["model_config"] == j["model"] and model_pt["dims"]["in_dim"] == 3
    assert all(torch.equal(model_pt["model"][k], best["model"][k]) for k in best["model"])
    png = tmp_path / "run" / "figures" / "loss.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:  # both splits drawn, in their colours, on a two-panel figure
        colours = {c for _, c in image.convert("RGB").getcolors(1 << 20)}
    assert image.size == (900, 340) and set(COLOURS.values()) <= colours


def test_noise_augmentation_changes_training_and_is_seeded(tmp_path, h5):
    for name, noise in (("a", 0.3), ("b", 0.3), ("c", 0.0)):
        train(job("classification", "mlp", epochs=2, noise_std=noise), h5, tmp_path / name)
    assert same_weights(tmp_path / "a" / "last.pt", tmp_path / "b" / "last.pt")
    assert not same_weights(tmp_path / "a" / "last.pt", tmp_path / "c" / "last.pt")


def test_amp_is_a_no_op_on_cpu(tmp_path, h5):
    train(job("classification", "gru", epochs=2, amp="fp16"), h5, tmp_path / "amp")
    train(job("classification", "gru", epochs=2, amp="off"), h5, tmp_path / "fp32")
    assert same_weights(tmp_path / "amp" / "best.pt", tmp_path / "fp32" / "best.pt")


def test_init_from_loads_matching_tensors_and_freeze_keeps_them(tmp_path, h5):
    train(job("classification", "gru", epochs=2), h5, tmp_path / "pre")
    regression = make_file(tmp_path / "r.h5", "regression")  # a 2-target head: its shape differs from the 3-class head
    j = job("regression", "gru", epochs=2, init_from=str(tmp_path / "pre" / "best.pt"), freeze=["rnn"])
    train(j, regression, tmp_path / "fine")
    pre, fine = load(tmp_path / "pre" / "best.pt")["model"], load(tmp_path / "fine" / "last.pt")["model"]
    rnn = [k for k in pre if k.startswith("net.rnn.")]
    assert rnn and all(torch.equal(pre[k], fine[k]) for k in rnn)  # loaded and frozen
    assert fine["net.head.linear.weight"].shape != pre["net.head.linear.weight"].shape
    loaded = next(e for e in events(tmp_path / "fine") if e["event"] == "on_init_from")
    assert set(loaded["loaded"]) == set(rnn) and "net.head.linear.weight" in loaded["skipped"] and set(loaded["frozen"]) == set(rnn)
    started = next(e for e in events(tmp_path / "fine") if e["event"] == "on_start")
    assert started["trainable"] < started["params"]
    with pytest.raises(ValueError, match="training.freeze"):
        train(job("regression", "gru", epochs=1, freeze=["encoder"]), regression, tmp_path / "bad")


class ProtocolNet(nn.Module):
    """A tiny classifier that follows the model protocol: aux_losses while training, set_progress."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.progress: list[float] = []

    def set_progress(self, p: float) -> None:
        self.progress.append(p)

    def forward(self, x):
        out = self.linear(x.mean(1))
        self.aux_losses = {"kl": 1e-5 * out.pow(2).mean()} if self.training else {}  # a collapsed KL
        return out


@pytest.fixture()
def protocol_model(monkeypatch):
    nets = []

    def build(cfg, *, in_dim, seq_len, out_dim, mapping, out_len):
        nets.append(ProtocolNet(in_dim, out_dim))
        return nets[-1]

    monkeypatch.setitem(MODELS, "protocol", build)
    return nets


def test_model_protocol_aux_losses_progress_and_kl_collapse(tmp_path, h5, protocol_model, caplog):
    j = job("classification", "protocol", epochs=5, early_stopping={"monitor": "val_loss", "mode": "min", "patience": 50, "min_delta": 0.0})
    train(j, h5, tmp_path / "run")
    assert protocol_model[0].progress == [0.0, 0.2, 0.4, 0.6, 0.8]
    rows = scalars(tmp_path / "run")
    assert all(float(r["aux_kl"]) > 0 for r in rows if r["split"] == "train")
    assert all(r["aux_kl"] == "" for r in rows if r["split"] == "val")  # set only by training-mode forwards
    warned = [e for e in events(tmp_path / "run") if e["event"] == "kl_collapse"]
    assert len(warned) == 1 and warned[0]["epoch"] == 2
    assert sum("KL collapse" in r.message for r in caplog.records) == 1


def test_regularizers_and_loss_terms_are_logged_and_unknown_ones_fail_first(tmp_path, h5):
    j = job("regression", "mlp", epochs=2, regularizers=[{"name": "l2", "weight": 1e-4, "params": {}}])
    j["task"]["losses"] = [{"name": "mse", "weight": 0.5, "params": {}}, {"name": "huber", "weight": 0.5, "params": {}}]
    train(j, make_file(tmp_path / "r.h5", "regression"), tmp_path / "run")
    rows = scalars(tmp_path / "run")
    for r in (r for r in rows if r["split"] == "train"):
        assert float(r["reg"]) > 0 and float(r["reg_l2"]) == pytest.approx(float(r["reg"]) / 1e-4, rel=1e-3)
        assert float(r["loss"]) == pytest.approx(0.5 * float(r["loss_mse"]) + 0.5 * float(r["loss_huber"]) + float(r["reg"]), rel=1e-4)
    assert all(r["reg"] == "" and float(r["loss_mse"]) > 0 for r in rows if r["split"] == "val")  # a training penalty only
    with pytest.raises(KeyError, match="training.regularizers"):
        train(job("classification", "mlp", epochs=2, regularizers=[{"name": "nope", "weight": 1.0, "params": {}}]), h5, tmp_path / "bad")
    assert not (tmp_path / "bad" / "events.jsonl").exists()  # failed before training started


def test_epoch_order_shuffles_contiguous_blocks():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(epoch_order(50, 1, g1), torch.randperm(50, generator=g2))  # block 1: the in-memory default
    order = epoch_order(50, 8, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(50))
    runs = np.split(order.numpy(), np.flatnonzero(np.diff(order.numpy()) != 1) + 1)
    assert all(len(r) == 8 or r[-1] == 49 for r in runs) and len(runs) <= 7


def test_streamed_statistics_match_memory(tmp_path, monkeypatch):
    h5 = make_file(tmp_path / "r.h5", "regression")
    task = job("regression", "mlp")["task"]
    memory = memory_task_data(h5, task)
    monkeypatch.setattr(splits, "STATS_CHUNK_BYTES", 12 * 3 * 4 * 7)  # 7 rows per chunk: many chunks
    streamed = stream_task_data(h5, task)
    assert torch.allclose(streamed.x_stats[0], memory.x_stats[0], rtol=0, atol=1e-6)
    assert torch.allclose(streamed.x_stats[1], memory.x_stats[1], rtol=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(streamed.y_stats, memory.y_stats))
    assert streamed.dims == memory.dims and streamed.names == memory.names
    source = streamed.splits["train"].dataset
    recon = source.standardisation("x", None, budget_mb=None)
    assert torch.allclose(recon[1], memory.x_stats[1], rtol=1e-6)


def test_streamed_batches_equal_memory_batches(tmp_path):
    h5 = make_file(tmp_path / "c.h5", "classification")
    task = job("classification", "mlp")["task"]
    memory, streamed = memory_task_data(h5, task), stream_task_data(h5, task, num_workers=1)
    order = epoch_order(240, 5, torch.Generator().manual_seed(0))
    for (xm, ym, _), (xs, ys, _) in zip(memory.splits["train"].batches(32, order), streamed.splits["train"].batches(32, order), strict=True):
        assert torch.equal(xm, xs) and torch.equal(ym, ys)
    assert isinstance(memory.splits["val"], MemorySplit)


@pytest.mark.parametrize("layout", ["groups", "root"])
def test_streaming_path_trains_identically(tmp_path, layout, caplog):
    """A tiny memory budget reads batches from the file; with the same shuffle_block the run is the in-memory run."""
    caplog.set_level("INFO", logger="seqpipe.train")
    caplog.set_level("INFO", logger="seqpipe.reader")
    if layout == "groups":
        h5 = make_file(tmp_path / "d.h5", "regression")
    else:  # root-level data, auto-split by fractions: streaming reads the span of each run of split rows
        rng = np.random.default_rng(0)
        x = rng.normal(size=(300, 12, 3)).astype(np.float32)
        labels = np.stack([x[:, :, 0].mean(1) * 3 + 1, x[:, :, 1].std(1)], 1).astype(np.float32)
        h5 = tmp_path / "root.h5"
        import h5py

        with h5py.File(h5, "w") as fh:  # item ids: windows of one piece stay in one split
            fh["data"], fh["labels"] = x, labels
            fh.create_dataset("item_ids", data=np.array([f"piece{i // 5}" for i in range(300)], dtype=object), dtype=h5py.string_dtype())
    runs = {}
    for name, budget in (("memory", 2048), ("stream", 0.001)):
        j = job("regression", "gru", epochs=3, memory_budget_mb=budget, shuffle_block=4)
        runs[name] = train(j, h5, tmp_path / name)
    assert any("reading batches from the file" in r.message for r in caplog.records)
    assert [e["streaming"] for e in (events(tmp_path / "memory")[0], events(tmp_path / "stream")[0])] == [False, True]
    assert runs["memory"]["best"] == runs["stream"]["best"]
    assert same_weights(tmp_path / "memory" / "best.pt", tmp_path / "stream" / "best.pt")
    strip = lambda rows: [(r["loss"], r["metric"]) for r in rows]  # noqa: E731
    assert strip(scalars(tmp_path / "memory")) == strip(scalars(tmp_path / "stream"))


def test_epoch_log_prints_throughput_and_eta(tmp_path, h5, caplog):
    caplog.set_level("INFO", logger="seqpipe.train")
    train(job("classification", "mlp", epochs=2), h5, tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch")]
    assert len(lines) == 2 and all("samples/s" in line and "batches/s" in line and "eta" in line for line in lines)
    throughput = [float(r["samples_per_s"]) for r in scalars(tmp_path / "run")]
    assert all(t > 0 and math.isfinite(t) for t in throughput)


def test_training_reads_no_more_than_it_needs(tmp_path):
    """estimate_mb counts float32 inputs (one-hot expanded) and labels of the three splits."""
    h5 = tmp_path / "ids.h5"
    ids = {s: {"data": np.zeros((n, 10), dtype=np.int64), "labels": np.zeros(n, dtype=np.int64)} for s, n in (("train", 100), ("val", 20), ("test", 20))}
    write_splits(h5, ids, {})
    task = Task.from_dict({"name": "ids", "type": "classification", "mapping": "seq2static", "input_encoding": "one_hot", "vocab_size": 50})
    assert loader.estimate_mb(h5, task) == pytest.approx((140 * 10 * 50 * 4 + 140 * 8) / 2**20)


def test_one_hot_inputs_stream_like_memory(tmp_path):
    rng = np.random.default_rng(0)
    splits = {s: {"data": rng.integers(0, 5, size=(n, 8)).astype(np.int64), "labels": rng.integers(0, 2, n).astype(np.int64)}
              for s, n in (("train", 40), ("val", 10), ("test", 10))}
    write_splits(tmp_path / "ids.h5", splits, {})
    task = {"name": "tokens", "type": "classification", "mapping": "seq2static", "paradigm": "supervised",
            "input_encoding": "one_hot", "vocab_size": 5, "losses": [{"name": "cross_entropy"}]}
    memory, streamed = memory_task_data(tmp_path / "ids.h5", task), stream_task_data(tmp_path / "ids.h5", task)
    assert streamed.dims == memory.dims and streamed.dims["in_dim"] == 5
    assert all(torch.equal(a, b) for a, b in zip(streamed.x_stats, memory.x_stats))  # one-hot: mean 0, std 1
    order = epoch_order(40, 3, torch.Generator().manual_seed(1))
    for (xm, ym, _), (xs, ys, _) in zip(memory.splits["train"].batches(8, order), streamed.splits["train"].batches(8, order), strict=True):
        assert torch.equal(xm, xs) and torch.equal(ym, ys)


