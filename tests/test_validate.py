"""Each validation check has a file that fails it, and its message is asserted."""

import h5py
import numpy as np
import pytest

from seqpipe.data.validate import ValidationError, validate

CLS = {"name": "t", "paradigm": "supervised", "mapping": "seq2static", "type": "classification"}
REG = {"name": "t", "paradigm": "supervised", "mapping": "seq2static", "type": "regression"}


def write(path, data=None, labels=None, item_ids=None, attrs=None, splits=("train", "val", "test")):
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as fh:
        for key, value in (attrs or {}).items():
            fh.attrs[key] = value
        for i, s in enumerate(splits):
            g = fh.create_group(s)
            g["data"] = rng.normal(size=(6, 4, 2)).astype(np.float32) if data is None else data(s)
            if labels is not False:
                g["labels"] = (np.arange(6) % 3).astype(np.int64) if labels is None else labels(s)
            if item_ids is not None:
                g["item_ids"] = np.array(item_ids(s), dtype=h5py.string_dtype())
    return path


def problems(path, task):
    with pytest.raises(ValidationError) as err:
        validate(path, task)
    return err.value.problems


def test_clean_file_summary(tmp_path):
    summary = validate(write(tmp_path / "ok.h5", attrs={"class_names": ["a", "b", "c"]}), CLS)
    assert summary["splits"]["train"]["class_counts"] == {"a": 2, "b": 2, "c": 2}
    assert summary["splits"]["test"]["data_shape"] == [6, 4, 2]


def test_label_dtype_wrong(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros(6, np.float32)), CLS)
    assert "key `labels` is float32 [6]; expected int64 [N] = [6]" in p[0] and "astype('int64')" in p[0]


def test_regression_labels_need_target_axis(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros(6, np.float32)), REG)
    assert "expected float32 [N, K] = [6, K]" in p[0] and "[N] -> [N, 1]" in p[0]


def test_data_not_3d_float32(tmp_path):
    p = problems(write(tmp_path / "f.h5", data=lambda s: np.zeros((6, 4), np.float64)), CLS)
    assert "key `data` is float64 [6, 4]; expected float32 [N, T, D]" in p[0]


def test_nan_in_data(tmp_path):
    def data(s):
        x = np.zeros((6, 4, 2), np.float32)
        x[0, 0, 0] = np.nan
        return x

    p = problems(write(tmp_path / "f.h5", data=data), CLS)
    assert "[train]: key `data` holds 1 NaN or Inf values" in p[0]


def test_class_out_of_range(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.array([0, 1, 2, 3, 4, 5], np.int64), attrs={"class_names": ["a", "b", "c"]}), CLS)
    assert "class ids 0..5; expected ids in [0, 3)" in p[0]


def test_empty_split(tmp_path):
    p = problems(write(tmp_path / "f.h5", data=lambda s: np.zeros((0 if s == "val" else 6, 4, 2), np.float32),
                       labels=lambda s: np.zeros(0 if s == "val" else 6, np.int64)), CLS)
    assert any("[val]: key `data` has no samples" in m for m in p)


def test_n_mismatch(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros(5, np.int64)), CLS)
    assert "key `labels` has N=5 but `data` has N=6" in p[0]


def test_leakage_across_splits(tmp_path):
    p = problems(write(tmp_path / "f.h5", item_ids=lambda s: ["song1"] * 3 + [f"{s}{i}" for i in range(3)]), CLS)
    assert any("1 source item(s) are in both train and val" in m for m in p)


def test_missing_split_group(tmp_path):
    p = problems(write(tmp_path / "f.h5", splits=("train", "val")), CLS)
    assert "has group(s) ['train', 'val'] but not all of" in p[0]


def test_target_seq_len_mismatch(tmp_path):
    task = {**REG, "mapping": "seq2seq", "target_seq_len": 3}
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros((6, 5, 1), np.float32)), task)
    assert "T'=5; expected target_seq_len=3" in p[0]


def test_not_hdf5(tmp_path):
    (tmp_path / "x.h5").write_bytes(b"not hdf5")
    assert "not a readable HDF5 file" in problems(tmp_path / "x.h5", CLS)[0]
