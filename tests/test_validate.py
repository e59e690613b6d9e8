"""Each validation check has a file that fails it, and its message is asserted."""

import h5py
import numpy as np
import pytest

from seqpipe.config.types import Task
from seqpipe.taskfile.validate import ValidationError, validate

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
        validate(path, Task.from_dict(task))
    return err.value.problems


def test_clean_file_summary(tmp_path):
    summary = validate(write(tmp_path / "ok.h5", attrs={"class_names": ["a", "b", "c"]}), Task.from_dict(CLS))
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


# --- checks of the HDF5 dataset contract: one-hot inputs, task types, label shapes, names ----------------

TOK = {**CLS, "input_encoding": "one_hot", "vocab_size": 5}
SEQ_CLS = {**CLS, "mapping": "seq2seq"}
SUMMARY = {"name": "t", "paradigm": "self_supervised", "mapping": "seq2static", "type": "summary"}


def tokens(high=5, low=0, shape=(6, 4)):
    return lambda s: np.random.default_rng(1).integers(low, high, shape).astype(np.int64)


def has(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, (part, message)


def test_clean_one_hot_file(tmp_path):
    summary = validate(write(tmp_path / "ok.h5", data=tokens(shape=(6, 4, 1))), Task.from_dict(TOK))
    assert summary["vocab_size"] == 5 and summary["splits"]["train"]["data_dtype"] == "int64"


def test_token_id_at_or_above_vocab_size(tmp_path):
    p = problems(write(tmp_path / "f.h5", data=tokens(high=9)), TOK)
    has(p[0], "f.h5 [train]: key `data`", "holds token ids up to 8", "expected ids in [0, vocab_size=5)",
        "set tasks.<task>.vocab_size to at least 9")


def test_negative_token_id(tmp_path):
    p = problems(write(tmp_path / "f.h5", data=tokens(low=-2, high=3)), TOK)
    has(p[0], "f.h5 [train]: key `data`", "negative token id(s) (min -2)", "expected ids in [0, vocab_size=5)",
        "map padding or unknown tokens to a non-negative id")


def test_one_hot_data_not_integer(tmp_path):
    p = problems(write(tmp_path / "f.h5"), TOK)  # float32 [6, 4, 2]
    has(p[0], "f.h5 [train]: key `data` is float32 [6, 4, 2]", "expected int token ids [N, T] or [N, T, 1]",
        "data.astype('int64')", "input_encoding: dense")


def test_one_hot_without_vocab_size(tmp_path):
    p = problems(write(tmp_path / "f.h5", data=tokens()), {**CLS, "input_encoding": "one_hot"})
    has(p[0], "tasks.t.vocab_size: missing", "expected the number of token ids", "set vocab_size")


def test_seq2seq_classification_step_mismatch(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros((6, 3), np.int64)), SEQ_CLS)
    has(p[0], "f.h5 [train]: key `labels` has T=3 but `data` has T=4", "expected one label per step (int64 [N, T] = [6, 4])",
        "store one class id per input step", "target_seq_len")


def test_seq2seq_classification_labels_1d(tmp_path):
    p = problems(write(tmp_path / "f.h5"), SEQ_CLS)
    has(p[0], "key `labels` is int64 [6]; expected int64 [N, T] = [6, 4]", "astype('int64')")


def test_summary_labels_missing(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=False), SUMMARY)
    has(p[0], "f.h5 [train]: key `labels` is missing", "expected float32 [N, K] = [6, K]", "compute the summaries from the inputs")


def test_summary_labels_not_float(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros((6, 2), np.int64)), SUMMARY)
    has(p[0], "key `labels` is int64 [6, 2]; expected float32 [N, K] = [6, K]", "store the summaries (computed from the inputs)",
        "astype('float32')")


def test_regression_labels_without_targets(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros((6, 0), np.float32)), REG)
    has(p[0], "key `labels` has K=0 targets", "expected at least one target column")


def test_seq2seq_regression_labels_need_steps(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros((6, 2), np.float32)), {**REG, "mapping": "seq2seq"})
    has(p[0], "key `labels` is float32 [6, 2]; expected float32 [N, T', K] = [6, T', K]")


def test_unknown_task_type_combination(tmp_path):
    p = problems(write(tmp_path / "f.h5"), {**SUMMARY, "mapping": "seq2seq"})
    has(p[0], "config key tasks.t: paradigm/mapping/type is self_supervised/seq2seq/summary",
        "self_supervised/seq2static/summary", "fix tasks.<task>.paradigm, mapping or type")


def test_splits_disagree_on_shape(tmp_path):
    rng = np.random.default_rng(0)
    p = problems(write(tmp_path / "f.h5", data=lambda s: rng.normal(size=(6, 4, 3 if s == "test" else 2)).astype(np.float32)), CLS)
    has(p[0], "f.h5: key `data` has per-sample shape [4, 3] in test but [4, 2] in train", "expected the same T and D in every split")


def test_target_names_length(tmp_path):
    p = problems(write(tmp_path / "f.h5", labels=lambda s: np.zeros((6, 2), np.float32), attrs={"target_names": ["a", "b", "c"]}), REG)
    has(p[0], "f.h5: attribute `target_names` has 3 name(s); expected 2 (one per label column K)", "fix the attribute or remove it")


def test_class_names_disagree_with_num_classes(tmp_path):
    p = problems(write(tmp_path / "f.h5", attrs={"class_names": ["a", "b", "c"]}), {**CLS, "num_classes": 4})
    has(p[0], "attribute `class_names` has 3 name(s); expected 4 (tasks.<task>.num_classes)")


def test_root_file_too_small_for_auto_split(tmp_path):
    with h5py.File(tmp_path / "f.h5", "w") as fh:
        fh["data"], fh["labels"] = np.zeros((2, 4, 2), np.float32), np.zeros(2, np.int64)
    p = problems(tmp_path / "f.h5", CLS)
    has(p[0], "f.h5 [auto-split test]: key `data` has no samples", "every split needs at least one", "change split_fractions")


def test_split_group_named_valid_is_named_with_the_fix(tmp_path):
    p = problems(write(tmp_path / "f.h5", splits=("train", "valid", "test")), CLS)
    assert "`valid`" in p[0] and "rename it to `val`" in p[0]


def test_float64_3d_data_gets_the_dtype_hint_only(tmp_path):
    p = problems(write(tmp_path / "f.h5", data=lambda s: np.zeros((6, 4, 2), np.float64)), CLS)
    assert "key `data` is float64 [6, 4, 2]; expected float32 [N, T, D]" in p[0]
    assert "astype('float32')" in p[0] and "feature axis" not in p[0]


def test_2d_float32_data_gets_the_feature_axis_hint_only(tmp_path):
    p = problems(write(tmp_path / "f.h5", data=lambda s: np.zeros((6, 4), np.float32)), CLS)
    assert "[N, T] -> [N, T, 1]" in p[0] and "astype" not in p[0]


def test_extra_datasets_are_named_in_the_report(tmp_path):
    path = write(tmp_path / "f.h5")
    with h5py.File(path, "a") as fh:
        fh["train/mask"] = np.ones((6, 4), bool)
        fh["notes"] = np.zeros(3)
    summary = validate(path, Task.from_dict(CLS))
    assert summary["ignored"] == ["notes", "train/mask"]
    assert "not read by seqpipe" in summary["ignored_note"]
