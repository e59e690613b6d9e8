import hashlib

import h5py
import numpy as np

from seqpipe.taskfile.hdf5 import auto_split_indices, read_attrs, write_splits
from taskfiles import load_splits


def splits(rng):
    return {
        s: {
            "data": rng.normal(size=(n, 5, 3)).astype(np.float32),
            "labels": rng.integers(0, 3, n).astype(np.int64),
            "item_ids": np.array([f"{s}{i // 2}" for i in range(n)]),
        }
        for s, n in (("train", 8), ("val", 4), ("test", 4))
    }


def test_write_is_byte_identical(tmp_path):
    attrs = {"feature_names": ["a", "b", "c"], "frame_rate": 2.0, "provenance": {"x": 1}}
    write_splits(tmp_path / "a.h5", splits(np.random.default_rng(0)), attrs)
    write_splits(tmp_path / "b.h5", splits(np.random.default_rng(0)), attrs)
    digest = [hashlib.sha256((tmp_path / f).read_bytes()).hexdigest() for f in ("a.h5", "b.h5")]
    assert digest[0] == digest[1]
    assert not list(tmp_path.glob("*.part"))


def test_round_trip(tmp_path):
    data = splits(np.random.default_rng(1))
    write_splits(tmp_path / "a.h5", data, {"class_names": ["x", "y", "z"], "provenance": {"k": "v"}})
    got = load_splits(tmp_path / "a.h5")
    np.testing.assert_array_equal(got["val"].data, data["val"]["data"])
    assert got["test"].item_ids.tolist() == data["test"]["item_ids"].tolist()
    attrs = read_attrs(tmp_path / "a.h5")
    assert attrs["class_names"] == ["x", "y", "z"] and attrs["provenance"] == '{"k": "v"}'


def test_root_level_file_auto_splits_by_seed(tmp_path):
    with h5py.File(tmp_path / "r.h5", "w") as fh:
        fh["data"] = np.arange(100 * 2 * 1, dtype=np.float32).reshape(100, 2, 1)
        fh["labels"] = np.arange(100, dtype=np.int64)
    a = load_splits(tmp_path / "r.h5", (0.6, 0.2, 0.2), seed=3)
    b = load_splits(tmp_path / "r.h5", (0.6, 0.2, 0.2), seed=3)
    assert [len(a[s].data) for s in ("train", "val", "test")] == [60, 20, 20]
    np.testing.assert_array_equal(a["test"].labels, b["test"].labels)
    assert set(a["train"].labels) | set(a["val"].labels) | set(a["test"].labels) == set(range(100))


def test_auto_split_keeps_groups_whole():
    groups = np.repeat(np.arange(20), 5)
    parts = auto_split_indices(100, [0.7, 0.15, 0.15], 0, groups)
    seen = [set(groups[idx]) for idx in parts.values()]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
