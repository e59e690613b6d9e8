"""The one reader: stratified auto-splits, statistics that cannot explode, domains in batches,
batch sources (in memory on the device, streamed with pinned memory), and its messages."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from seqpipe.taskfile.hdf5 import auto_split_indices, open_h5, write_splits
from seqpipe.taskfile.reader import Batch, MemorySplit, epoch_order, open_task, standardisation, training_data
from seqpipe.taskfile.validate import ValidationError, validate
from seqpipe.config.types import Task
from tests.test_training import job

CLS = Task.from_dict({"name": "t", "paradigm": "supervised", "mapping": "seq2static", "type": "classification"})


def test_auto_split_is_stratified_by_class_and_keeps_items_whole():
    """A 90/10 class imbalance over 200 items of 3 windows: every split gets both classes in proportion."""
    rng = np.random.default_rng(0)
    items = np.repeat(np.arange(200), 3)
    item_class = (rng.random(200) < 0.1).astype(np.int64)  # ~10% minority
    labels = item_class[items]
    for seed in range(5):
        parts = auto_split_indices(len(items), [0.7, 0.15, 0.15], seed, items.astype(str), labels)
        seen = [set(items[idx]) for idx in parts.values()]
        assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])  # items whole
        assert sorted(np.concatenate(list(parts.values()))) == list(range(len(items)))
        assert [len(s) for s in seen] == [140, 30, 30]  # group counts by the fractions
        minority = item_class.sum()
        for split, fraction in zip(parts, (0.7, 0.15, 0.15)):
            got = item_class[sorted(seen[list(parts).index(split)])].sum()
            assert abs(got - fraction * minority) <= 1.5, (seed, split, got, fraction * minority)


def test_root_level_classification_file_is_split_stratified(tmp_path):
    """The reader's auto-split of a root-level classification file: each split's majority is the train majority."""
    n = 300
    labels = np.r_[np.zeros(150), np.ones(100), np.full(50, 2)].astype(np.int64)
    with h5py.File(tmp_path / "r.h5", "w") as fh:
        fh["data"] = np.zeros((n, 2, 1), np.float32)
        fh["labels"] = labels
    data = open_task(tmp_path / "r.h5", CLS.with_data(split_seed=7))
    for split, size in (("train", 210), ("val", 45), ("test", 45)):
        counts = np.bincount(data[split].labels(), minlength=3)
        assert counts.sum() == size
        assert np.allclose(counts / size, [0.5, 1 / 3, 1 / 6], atol=1 / size + 1e-9), (split, counts)


def test_root_level_labels_of_another_length_are_reported_not_crashed(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as fh:
        fh["data"] = np.zeros((30, 2, 1), np.float32)
        fh["labels"] = np.zeros(20, np.int64)
    with pytest.raises(ValidationError, match="key `labels` has N=20 but `data` has N=30"):
        validate(tmp_path / "r.h5", CLS)


def test_negligible_spread_is_treated_as_constant():
    """Quantised timing: float32 rounding noise of 1e-5 in train; a real offset of 0.3 in test stays ~0.3, not ~3e4."""
    rng = np.random.default_rng(0)
    train = rng.normal(0, 1, size=(200, 16, 3)).astype(np.float32)
    train[..., 1] = rng.normal(0, 1e-5, size=(200, 16))  # micro-timing of a quantised take
    train[..., 2] = 440.0 + rng.normal(0, 1e-3, size=(200, 16))  # a large constant with rounding noise
    mean, std = standardisation(torch.from_numpy(train))
    assert std[1] == 1 and std[2] == 1 and 0.9 < std[0] < 1.1
    test = torch.tensor([0.5, 0.3, 440.002])
    assert torch.all(((test - mean) / std).abs() < 1)
    assert standardisation(torch.from_numpy(train), features=False)[1][1] < 1e-4  # regression targets: small spreads are real


def test_negligible_input_columns_are_logged(tmp_path, caplog):
    x = np.random.default_rng(0).normal(size=(40, 4, 2)).astype(np.float32)
    x[..., 1] = 1e-6 * x[..., 1]
    write_splits(tmp_path / "d.h5", {s: {"data": x, "labels": np.zeros(40, np.int64)} for s in ("train", "val", "test")}, {})
    caplog.set_level("WARNING", logger="seqpipe.reader")
    _, std = open_task(tmp_path / "d.h5", CLS).standardisation("x")
    assert std[1] == 1 and any("1 input column(s) [1]" in r.getMessage() and "treated as constant" in r.getMessage() for r in caplog.records)


def test_streamed_statistics_in_many_blocks_match_memory(tmp_path):
    rng = np.random.default_rng(1)
    x = (rng.normal(3, 2, size=(500, 8, 4)) * [1, 10, 0.1, 1000]).astype(np.float32)
    write_splits(tmp_path / "d.h5", {s: {"data": x, "labels": np.zeros((500, 1), np.float32)} for s in ("train", "val", "test")}, {})
    task = Task.from_dict({"name": "t", "type": "regression", "mapping": "seq2static"})
    whole = open_task(tmp_path / "d.h5", task)["train"].standardisation("x")
    blocks = open_task(tmp_path / "d.h5", task, memory_budget_mb=0.01)["train"].standardisation("x", budget_mb=0.01)  # 10 blocks of ~10 rows
    assert open_task(tmp_path / "d.h5", task)["train"].block_rows("data", 0.01) < 20
    for a, b in zip(whole, blocks):
        assert torch.allclose(a, b, rtol=1e-6, atol=0)


def domain_file(path):
    rng = np.random.default_rng(0)
    splits = {s: {"data": rng.normal(size=(n, 4, 2)).astype(np.float32), "labels": (np.arange(n) % 2).astype(np.int64),
                  "domains": (np.arange(n) % 3).astype(np.int64)} for s, n in (("train", 30), ("val", 9), ("test", 9))}
    write_splits(path, splits, {"class_names": ["a", "b"], "domain_names": ["x", "y", "z"]})
    return path


def test_batches_carry_domains_in_memory_and_streamed(tmp_path):
    h5 = domain_file(tmp_path / "d.h5")
    task = Task.from_dict(job("classification", "mlp")["task"])
    memory, streamed = training_data(h5, task, 2048), training_data(h5, task, 0.0)
    assert memory.domain_names == ["x", "y", "z"] and streamed.streaming
    order = epoch_order(30, 2, torch.Generator().manual_seed(0))
    pairs = list(zip(memory.splits["train"].batches(8, order), streamed.splits["train"].batches(8, order), strict=True))
    for a, b in pairs:
        assert isinstance(a, Batch) and isinstance(b, Batch)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.domain, b.domain)
    assert torch.equal(torch.cat([a.domain for a, _ in pairs]), (order % 3))
    assert validate(h5, CLS)["splits"]["train"]["domains"] == 3


def test_domain_names_as_a_json_string(tmp_path):
    h5 = domain_file(tmp_path / "d.h5")
    with h5py.File(h5, "a") as fh:
        fh.attrs["domain_names"] = '["x", "y"]'
    assert open_task(h5, CLS).domain_names == ["x", "y"]
    with pytest.raises(ValidationError, match=r"expected \[0, 2\) \(the 2 names of `domain_names`\)"):
        validate(h5, CLS)


def test_batches_without_domains_have_none(tmp_path):
    h5 = tmp_path / "d.h5"
    write_splits(h5, {s: {"data": np.zeros((4, 2, 1), np.float32), "labels": np.zeros(4, np.int64)} for s in ("train", "val", "test")}, {})
    batch = next(open_task(h5, CLS).source("train").batches(2))
    assert batch.domain is None and batch.x.shape == (2, 2, 1)


@pytest.mark.parametrize(("domains", "attrs", "words"), [
    (lambda n: np.full(n, -1, np.int64), {}, "holds ids -1..-1; expected ids >= 0"),
    (lambda n: np.full(n, 3, np.int64), {"domain_names": ["x", "y", "z"]}, "expected [0, 3) (the 3 names of `domain_names`)"),
    (lambda n: np.zeros(n - 1, np.int64), {}, "expected int64 [N] = [6]"),
    (lambda n: np.zeros(n, np.float32), {}, "key `domains` is float32"),
])
def test_validation_checks_domains(tmp_path, domains, attrs, words):
    h5 = tmp_path / "d.h5"
    write_splits(h5, {s: {"data": np.zeros((6, 2, 1), np.float32), "labels": np.zeros(6, np.int64), "domains": domains(6)}
                      for s in ("train", "val", "test")}, attrs)
    with pytest.raises(ValidationError) as err:
        validate(h5, CLS)
    assert any(words in p and "key `domains`" in p for p in err.value.problems), err.value.problems


def test_negative_class_ids_name_the_class_count(tmp_path):
    h5 = tmp_path / "d.h5"
    write_splits(h5, {s: {"data": np.zeros((6, 2, 1), np.float32), "labels": np.array([-1, 0, 1, 2, 3, 4], np.int64)}
                      for s in ("train", "val", "test")}, {})
    with pytest.raises(ValidationError) as err:
        validate(h5, CLS)
    message = err.value.problems[0]
    assert "holds class ids -1..4; expected ids in [0, 5)" in message and "C = 5 classes, the largest id in the file + 1" in message
    assert "None" not in message


def test_missing_data_points_to_the_datasets_doc(tmp_path):
    with h5py.File(tmp_path / "x.h5", "w") as fh:
        fh["inputs"] = np.zeros((3, 2, 1), np.float32)
    with pytest.raises(ValidationError) as err:
        validate(tmp_path / "x.h5", CLS)
    message = err.value.problems[0]
    assert "docs/datasets.md" in message and "SPEC.md" not in message and "found keys ['inputs']" in message


def test_a_file_locked_by_a_writer_says_so(tmp_path):
    h5 = tmp_path / "busy.h5"
    write_splits(h5, {s: {"data": np.zeros((3, 2, 1), np.float32), "labels": np.zeros(3, np.int64)} for s in ("train", "val", "test")}, {})
    writer = subprocess.Popen([sys.executable, "-c", f"import h5py, time\nfh = h5py.File({str(h5)!r}, 'a')\nprint('open', flush=True)\ntime.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "open"
        with pytest.raises(OSError, match="locked: another process has it open for writing"):
            open_h5(h5)
        with pytest.raises(ValidationError) as err:
            validate(h5, CLS)
        assert "wait until that writer" in err.value.problems[0] and "HDF5_USE_FILE_LOCKING=FALSE" in err.value.problems[0]
    finally:
        writer.kill()
        writer.wait()


def test_memory_split_gathers_where_the_data_is():
    """The epoch order is moved to the split's device once; every batch is gathered there."""
    x, y = torch.arange(20.0).reshape(10, 2, 1), torch.arange(10)
    split = MemorySplit(x, y)
    order = epoch_order(10, 1, torch.Generator().manual_seed(0))
    got = torch.cat([b.y for b in split.batches(4, order)])
    assert torch.equal(got, order) and all(b.x.device == x.device for b in split.batches(4, order))


def test_streamed_split_pins_memory_for_cuda_and_prefetches(tmp_path):
    h5 = domain_file(tmp_path / "d.h5")
    task = Task.from_dict(job("classification", "mlp")["task"])
    cuda = open_task(h5, task, 0.0, device="cuda", num_workers=2).source("train")
    cpu = open_task(h5, task, 0.0).source("train")
    assert cuda.loader.pin_memory and cuda.loader.prefetch_factor == 4 and cuda.loader.persistent_workers
    assert not cpu.loader.pin_memory


def test_evaluation_reads_only_the_test_split(tmp_path, monkeypatch):
    from seqpipe.taskfile import reader
    from seqpipe.evaluation.evaluate import evaluate
    from seqpipe.models import build_model

    h5 = domain_file(tmp_path / "d.h5")
    j = job("classification", "mlp")
    task = Task.from_dict(j["task"])
    data = open_task(h5, task)
    model = build_model({"name": "mlp", **j["model"]}, **data.dims).eval()
    read = []
    original = reader.H5Rows.read
    monkeypatch.setattr(reader.H5Rows, "read", lambda self, key, positions: read.append((self.group, key)) or original(self, key, positions))
    result = evaluate(data, task, model, "mlp", 0)
    assert result["n_samples"] == 9 and {group for group, key in read if key == "data"} == {"test"}
