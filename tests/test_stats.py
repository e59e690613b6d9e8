"""Evaluation statistics: bootstrap intervals on known data, item resampling, paired differences,
piece-level votes, and the predictions file."""

from __future__ import annotations

import numpy as np
import pytest

from seqpipe.evaluation import pieces, predictions, stats
from seqpipe.evaluation.metrics import classification_metrics, reconstruction_metrics, regression_metrics


def test_interval_of_a_mean_covers_it_with_the_expected_width() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(5.0, 2.0, size=(400, 1))
    mae = stats.regression_statistics(x, np.zeros_like(x))["mae"]  # mean |x - 0| = mean of x here
    lo, hi = stats.interval(stats.bootstrap([mae], n_resamples=2000)[0])
    assert lo < 5.0 < hi
    expected = 2 * 1.96 * 2.0 / np.sqrt(400)  # normal theory: 2·z·σ/√n = 0.392
    assert hi - lo == pytest.approx(expected, rel=0.15)


def test_bootstrap_is_deterministic_and_seeded() -> None:
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    stat = stats.classification_statistics(t, p, 3)["accuracy"]
    a, b = stats.bootstrap([stat], seed=0), stats.bootstrap([stat], seed=0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, stats.bootstrap([stat], seed=1))


def test_item_resampling_widens_the_interval_of_correlated_windows() -> None:
    # 20 pieces of 10 identical windows: really 20 observations, not 200
    rng = np.random.default_rng(2)
    piece_value = rng.normal(0.0, 1.0, 20)
    x = np.repeat(piece_value, 10)[:, None]
    ids = np.repeat([f"piece{i:02d}" for i in range(20)], 10)
    mae = stats.regression_statistics(x + 10.0, np.zeros_like(x))["mae"]
    by_sample = np.diff(stats.interval(stats.bootstrap([mae])[0]))[0]
    by_item = np.diff(stats.interval(stats.bootstrap([mae], groups=ids)[0]))[0]
    assert by_item > 2.5 * by_sample  # √10 ≈ 3.2 wider
    weights = next(stats.resample_weights(200, ids, n_resamples=5))
    assert weights.shape == (5, 200)
    assert np.all(weights.reshape(5, 20, 10) == weights.reshape(5, 20, 10)[:, :, :1])  # a piece's windows move together
    assert np.all(weights.sum(1) == 200)


def test_full_sample_values_match_metrics_module() -> None:
    rng = np.random.default_rng(3)
    t, p = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    p[:5] = 3  # class 3 predicted, maybe absent
    expected = classification_metrics(t, p, ["a", "b", "c", "d", "e"])["metrics"]  # 'e' never seen
    got = {k: s.value() for k, s in stats.classification_statistics(t, p, 5).items()}
    assert got == pytest.approx(expected)

    yt = rng.normal(5.0, 1.0, (300, 2))
    yp = yt + rng.normal(0.3, 0.5, (300, 2))
    yp[:, 1] = 4.0  # a constant prediction: pearson and ccc are 0
    expected = regression_metrics(yt, yp, ["valence", "arousal"])["metrics"]
    got = {k: s.value() for k, s in stats.regression_statistics(yt, yp).items()}
    assert got == pytest.approx(expected)

    x = rng.normal(size=(50, 4, 3))
    x_hat = x + rng.normal(0, 0.1, x.shape)
    pred = predictions.from_outputs("reconstruction", x, x_hat)
    expected = reconstruction_metrics(x, x_hat)["metrics"]
    assert {k: s.value() for k, s in predictions.statistics(pred).items()} == pytest.approx(expected)


def test_paired_bootstrap_sees_a_small_consistent_gain() -> None:
    # the model is right on every sample the baseline is right on, and on 2% more: unpaired
    # intervals overlap, the paired difference excludes 0
    rng = np.random.default_rng(4)
    t = rng.integers(0, 2, 500)
    base_right = rng.random(500) < 0.6
    model_right = base_right | (rng.random(500) < 0.05)
    base_pred = np.where(base_right, t, 1 - t)
    model_pred = np.where(model_right, t, 1 - t)
    model = stats.classification_statistics(t, model_pred, 2)["accuracy"]
    base = stats.classification_statistics(t, base_pred, 2)["accuracy"]
    values = stats.bootstrap([model, base])
    model_ci, base_ci = stats.interval(values[0]), stats.interval(values[1])
    assert model_ci[0] < base_ci[1]  # separate intervals overlap
    diff_lo, diff_hi = stats.interval(values[0] - values[1])
    assert 0.0 < diff_lo < model.value() - base.value() < diff_hi
    unpaired = stats.bootstrap([model], seed=0)[0] - stats.bootstrap([base], seed=1)[0]
    assert stats.interval(unpaired)[0] < 0.0  # without pairing the same gain is not significant


def test_piece_votes_on_a_hand_made_case() -> None:
    ids = np.array(["p1", "p1", "p1", "p2", "p2", "p3"])
    y_true = np.array([0, 0, 0, 1, 1, 2])
    probs = np.array([
        [0.4, 0.6, 0.0],  # p1: two windows wrong by a little,
        [0.4, 0.6, 0.0],
        [1.0, 0.0, 0.0],  # one right by a lot: mean (0.6, 0.4, 0) votes class 0
        [0.1, 0.5, 0.4],  # p2: mean (0.1, 0.45, 0.45): ties go to the first class, 1
        [0.1, 0.4, 0.5],
        [0.5, 0.0, 0.5],  # p3: tie between 0 and 2 -> 0 (argmax keeps the first)
    ], dtype=np.float32)
    pred = predictions.from_outputs("classification", y_true, probs, ids, ("a", "b", "c"))
    assert pred.arrays["y_pred"].tolist() == [1, 1, 0, 1, 2, 0]
    piece = pieces.piece_predictions(pred)
    assert piece.item_ids.tolist() == ["p1", "p2", "p3"]
    assert piece.arrays["y_true"].tolist() == [0, 1, 2]
    assert piece.arrays["y_pred"].tolist() == [0, 1, 0]
    np.testing.assert_allclose(piece.arrays["probabilities"][0], [0.6, 0.4, 0.0], rtol=1e-6)


def test_piece_means_for_regression_and_when_there_are_no_pieces() -> None:
    ids = np.array(["b", "a", "b"])
    y = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0]])
    out = np.array([[0.0, 0.0], [3.0, 5.0], [2.0, 2.0]])
    piece = pieces.piece_predictions(predictions.from_outputs("regression", y, out, ids))
    assert piece.item_ids.tolist() == ["a", "b"]
    np.testing.assert_allclose(piece.arrays["y_pred"], [[3.0, 5.0], [1.0, 1.0]])
    np.testing.assert_allclose(piece.arrays["y_true"], [[3.0, 4.0], [1.0, 2.0]])
    assert "no item_ids" in pieces.why_no_pieces(predictions.from_outputs("regression", y, out))
    mixed = predictions.from_outputs("classification", np.array([0, 1]), np.eye(2), np.array(["x", "x"]))
    assert "labels change within an item" in pieces.why_no_pieces(mixed)
    with pytest.raises(ValueError, match="labels change"):
        pieces.piece_predictions(mixed)


def test_predictions_file_round_trip_and_bytes(tmp_path) -> None:
    ids = np.array(["drummer1/s1/1", "drummer1/s1/1", "drummer2/s9/4"])
    pred = predictions.from_outputs("classification", np.array([0, 1, 1]), np.eye(3)[[0, 2, 1]], ids, ("a", "b", "c"))
    predictions.save(tmp_path / "a.h5", pred)
    predictions.save(tmp_path / "b.h5", pred)
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    back = predictions.load(tmp_path / "a.h5")
    assert back.task_type == "classification" and back.class_names == ("a", "b", "c")
    assert back.item_ids.tolist() == ids.tolist()
    for key, value in pred.arrays.items():
        np.testing.assert_array_equal(back.arrays[key], value)
    (tmp_path / "bad.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match=r"bad\.h5.*not a predictions file.*rerun"):
        predictions.load(tmp_path / "bad.h5")


def test_mean_std_over_one_seed_is_not_zero() -> None:
    assert stats.mean_std([0.5])[0] == 0.5 and np.isnan(stats.mean_std([0.5])[1])
    assert stats.mean_std([1.0, 3.0]) == pytest.approx((2.0, np.sqrt(2.0)))
