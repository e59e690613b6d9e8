"""Leaderboard: loading, ranking in both metric directions, baseline comparison and byte-stable files."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqpipe.evaluation.report import leaderboard, load_metrics, main, write_leaderboard
from seqpipe.io import write_json, write_text
from seqpipe.config.types import Task

CLASSES = ["rock", "jazz"]


def _classification(model: str, seed: int, acc: float) -> dict:
    return {
        "task": "style", "model": model, "seed": seed, "task_type": "classification", "split": "test",
        "n_samples": 10, "primary": "accuracy", "higher_is_better": True,
        "metrics": {"accuracy": acc, "macro_f1": acc - 0.1, "loss": 1.0 - acc},
        "confusion_matrix": [[int(acc * 5), 5 - int(acc * 5)], [1, 4]], "class_names": CLASSES,
    }


def _regression(model: str, seed: int, rmse: float) -> dict:
    return {
        "task": "emotion", "model": model, "seed": seed, "task_type": "regression", "split": "test",
        "n_samples": 10, "primary": "rmse", "higher_is_better": False,
        "metrics": {"rmse": rmse, "ccc": 1.0 - rmse, "mae": rmse / 3},
        "per_target": {"valence": {"rmse": rmse}},
    }


RECORDS = [
    _classification("baseline", 0, 0.4),
    _classification("gru", 0, 0.8),
    _classification("gru", 1, 0.9),
    _classification("mlp", 0, 0.3),
    _regression("baseline", 0, 1.0),
    _regression("gru", 0, 0.5),
    _regression("gru", 1, 0.7),
    _regression("tcn", 0, 1.2),
]


def _scalars(n_epochs: int) -> str:
    lines = ["epoch,split,loss,lr,epoch_time_s,samples_per_s,max_memory_mib"]
    for epoch in range(n_epochs):
        for split, offset in (("train", 0.0), ("val", 0.1)):
            lines.append(f"{epoch},{split},{1.0 / (epoch + 1) + offset},0.001,1.5,100.0,0.0")
    return "\n".join(lines) + "\n"


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    """results/runs/<task>/<model>/<seed>/metrics.json for RECORDS; scalars.csv for the gru runs."""
    paths = []
    for rec in RECORDS:
        run_dir = tmp_path / "runs" / rec["task"] / rec["model"] / str(rec["seed"])
        write_json(run_dir / "metrics.json", rec)
        if rec["model"] == "gru":
            write_text(run_dir / "scalars.csv", _scalars(4))
        paths.append(run_dir / "metrics.json")
    return paths


def test_leaderboard_order_and_baseline_sign_both_directions() -> None:
    df = leaderboard(RECORDS)
    assert list(zip(df["task"], df["model"])) == [
        ("emotion", "gru"), ("emotion", "baseline"), ("emotion", "tcn"),  # rmse: lower first
        ("style", "gru"), ("style", "baseline"), ("style", "mlp"),  # accuracy: higher first
    ]
    by = df.set_index(["task", "model"])
    assert by.loc[("style", "gru"), "mean"] == pytest.approx(0.85)
    assert by.loc[("style", "gru"), "std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert np.isnan(by.loc[("style", "mlp"), "std"])  # one seed: the spread is unknown, not 0
    assert by.loc[("style", "gru"), "n_seeds"] == 2
    assert by.loc[("style", "gru"), "vs_baseline"] == pytest.approx(0.45)
    assert by.loc[("style", "mlp"), "vs_baseline"] == pytest.approx(-0.1)
    assert by.loc[("emotion", "gru"), "vs_baseline"] == pytest.approx(0.4)  # 1.0 - 0.6: lower rmse is better
    assert by.loc[("emotion", "tcn"), "vs_baseline"] == pytest.approx(-0.2)
    assert by.loc[("emotion", "baseline"), "vs_baseline"] == 0.0
    beats = {key: bool(v) for key, v in by["beats_baseline"].items()}
    assert beats == {
        ("emotion", "gru"): True, ("emotion", "baseline"): False, ("emotion", "tcn"): False,
        ("style", "gru"): True, ("style", "baseline"): False, ("style", "mlp"): False,
    }
    assert by.loc[("style", "gru"), "primary"] == "accuracy"
    assert by.loc[("style", "gru"), "loss_mean"] == pytest.approx(0.15)
    assert by.loc[("emotion", "gru"), "ccc_mean"] == pytest.approx(0.4)
    assert "accuracy_mean" not in df.columns and "rmse_mean" not in df.columns
    assert np.isnan(by.loc[("emotion", "gru"), "macro_f1_mean"])


def test_leaderboard_does_not_depend_on_input_order() -> None:
    shuffled = RECORDS.copy()
    random.Random(3).shuffle(shuffled)
    pd.testing.assert_frame_equal(leaderboard(shuffled), leaderboard(RECORDS))


def test_leaderboard_without_baseline_and_duplicates() -> None:
    df = leaderboard([r for r in RECORDS if not (r["task"] == "style" and r["model"] == "baseline")])
    style = df[df["task"] == "style"]
    assert style["vs_baseline"].isna().all() and not style["beats_baseline"].any()
    with pytest.raises(ValueError, match="two metrics records"):
        leaderboard(RECORDS + [_classification("gru", 1, 0.5)])
    mixed = _classification("mlp", 1, 0.5) | {"primary": "macro_f1"}
    with pytest.raises(ValueError, match="disagree"):
        leaderboard(RECORDS + [mixed])


def test_load_metrics_names_file_and_key(tmp_path: Path, runs: list[Path]) -> None:
    records = load_metrics(runs)
    assert len(records) == len(RECORDS)
    assert records[0]["metrics_path"] == str(runs[0])
    broken = tmp_path / "broken" / "metrics.json"
    write_json(broken, {k: v for k, v in RECORDS[0].items() if k != "primary"})
    with pytest.raises(ValueError, match=rf"{re.escape(str(broken))}.*'primary'"):
        load_metrics([broken])
    write_json(broken, RECORDS[0] | {"metrics": {"loss": 0.1}})
    with pytest.raises(ValueError, match=rf"{re.escape(str(broken))}.*metrics\.accuracy"):
        load_metrics([broken])


def _write(tmp_path: Path, runs: list[Path], name: str) -> tuple[dict[str, Path], list[Path]]:
    records = load_metrics(runs)
    out = {ext: tmp_path / name / f"leaderboard.{ext}" for ext in ("csv", "md", "html")}
    df = leaderboard(records)
    figures = write_leaderboard(df, records, out["csv"], out["md"], out["html"], tmp_path / name / "fig")
    return out, figures


def test_write_leaderboard_files_and_html(tmp_path: Path, runs: list[Path]) -> None:
    out, figures = _write(tmp_path, runs, "a")
    expected = {
        "style/comparison/all.png", "style/curves/gru.png", "style/confusion/baseline.png",
        "style/confusion/gru.png", "style/confusion/mlp.png", "emotion/comparison/all.png", "emotion/curves/gru.png",
    }
    fig_dir = tmp_path / "a" / "fig"
    assert {p.relative_to(fig_dir).as_posix() for p in figures} == expected
    assert {p.relative_to(fig_dir).as_posix() for p in fig_dir.rglob("*.png")} == expected
    for png in figures:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"Software" not in png.read_bytes()  # no version stamp: bytes survive upgrades
    page = out["html"].read_text(encoding="utf-8")
    assert page.count('<img src="data:image/png;base64,') == len(expected)
    without_images = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page)
    assert "http" not in without_images
    assert "<link" not in without_images and "<script" not in without_images
    assert "<h2>emotion</h2>" in page and "<h2>style</h2>" in page
    assert "Macro-F1" in page and "macro_f1" not in page  # readable names
    assert "0.8500 ± 0.07071" in page  # 4 significant digits
    assert "0.3000 (n=1)" in page and "± 0<" not in page and "± 0 " not in page  # one seed: n=1, never "± 0"

    csv = pd.read_csv(out["csv"])
    assert list(csv["model"]) == ["gru", "baseline", "tcn", "gru", "baseline", "mlp"]
    gru_row = [line for line in out["csv"].read_text().splitlines() if line.startswith("style,")][0]
    assert ",0.85,0.0707107," in gru_row  # mean 0.8500000000000001 and std of (0.8, 0.9), 6 digits
    md_lines = out["md"].read_text().splitlines()
    table = [line for line in md_lines if line.startswith("|")]
    assert len(table) == len(RECORDS) - 2 + 2  # 6 rows + header + rule
    assert table[0].startswith("| Task | Model | Seeds | Metric | Mean ± std | 95% interval |")
    assert "| style | gru | 2 | Accuracy ↑ | 0.8500 ± 0.07071 |" in "\n".join(table)
    assert "| style | mlp | 1 | Accuracy ↑ | 0.3000 (n=1) |" in "\n".join(table)


def test_per_song_and_domain_metrics_reach_the_leaderboard() -> None:
    """Per-step tasks' MediaEval per-song scores and an adversary's domain accuracy are columns, averaged over seeds."""
    records = [{**_regression("gru", seed, 0.5), "per_song": {"metrics": {"song_rmse": rmse, "song_pearson": 0.5}, "n_songs": 9}}
               for seed, rmse in ((0, 0.2), (1, 0.4))]
    records.append({**_regression("vae", 0, 0.6), "metrics": {"rmse": 0.6, "domain_accuracy": 0.55, "domain_majority": 0.6}})
    df = leaderboard(records).set_index("model")
    assert df.loc["gru", "song_rmse_mean"] == pytest.approx(0.3) and df.loc["gru", "song_pearson_mean"] == 0.5
    assert df.loc["vae", "domain_accuracy_mean"] == 0.55 and np.isnan(df.loc["vae", "song_rmse_mean"])


def test_rewrite_gives_identical_bytes(tmp_path: Path, runs: list[Path]) -> None:
    first, figs_a = _write(tmp_path, runs, "a")
    second, figs_b = _write(tmp_path, runs, "b")
    for ext in ("csv", "md", "html"):
        assert first[ext].read_bytes() == second[ext].read_bytes(), ext
    for a, b in zip(figs_a, figs_b, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    again, _ = _write(tmp_path, runs, "a")  # overwrite in place
    assert again["csv"].read_bytes() == second["csv"].read_bytes()


def test_main_writes_outputs(tmp_path: Path, runs: list[Path]) -> None:
    out = tmp_path / "report"
    rc = main(["--metrics", *map(str, runs), "--csv", str(out / "l.csv"), "--md", str(out / "l.md"),
               "--html", str(out / "l.html"), "--figures", str(out / "figures")])
    assert rc == 0
    assert (out / "l.csv").is_file() and (out / "l.md").is_file() and (out / "l.html").is_file()
    assert (out / "figures" / "style" / "comparison" / "all.png").is_file()
    assert not list(out.rglob("*.part"))


# ---------------------------------------------------------------------------------------------
# Paired bootstrap against the baseline, from the predictions.h5 files beside metrics.json
# ---------------------------------------------------------------------------------------------

TASK = {"name": "style", "type": "classification", "mapping": "seq2static", "paradigm": "supervised"}


def _run(root: Path, model: str, seed: int, y_true: np.ndarray, right: np.ndarray, ids: np.ndarray) -> Path:
    """metrics.json + predictions.h5 of a run that is right exactly where `right` is True."""
    from seqpipe.evaluation import predictions
    from seqpipe.evaluation.evaluate import record, score

    y_pred = np.where(right, y_true, 1 - y_true)
    probs = np.eye(2, dtype=np.float32)[y_pred] * 0.8 + 0.1
    pred = predictions.from_outputs("classification", y_true, probs, ids, ("a", "b"))
    run_dir = root / model / str(seed)
    predictions.save(run_dir / "predictions.h5", pred)
    write_json(run_dir / "metrics.json", record(Task.from_dict(TASK), model, seed, len(y_true),
                                                score(Task.from_dict(TASK), y_true, y_pred, {"class_names": ["a", "b"]}, pred)))
    return run_dir / "metrics.json"


def test_beats_baseline_is_a_paired_bootstrap_decision(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ids = np.repeat([f"piece{i:03d}" for i in range(100)], 4)
    y_true = np.repeat(rng.integers(0, 2, 100), 4)
    base_right = y_true == 0  # the majority-class baseline
    paths = [_run(tmp_path, "baseline", 0, y_true, base_right, ids)]
    # 'lucky' is right where the baseline is, plus 2 pieces: a better point estimate, not a clear gain
    lucky = base_right | np.isin(ids, ["piece001", "piece002"]) & (y_true == 1)
    paths.append(_run(tmp_path, "lucky", 0, y_true, lucky, ids))
    for seed in (0, 1):  # 'good' is right on 90% of the pieces
        good = np.repeat(rng.random(100) < 0.9, 4)
        paths.append(_run(tmp_path, "good", seed, y_true, good, ids))
    df = leaderboard(load_metrics(paths)).set_index("model")

    assert df.loc["lucky", "vs_baseline"] > 0  # the old point comparison called this a win
    assert not df.loc["lucky", "beats_baseline"] and df.loc["lucky", "vs_baseline_low"] <= 0.0
    assert df.loc["good", "beats_baseline"] and df.loc["good", "vs_baseline_low"] > 0.1
    assert (df.loc[["lucky", "good"], "baseline_test"] == "paired bootstrap").all()
    for model in ("lucky", "good", "baseline"):
        row = df.loc[model]
        assert row["ci_low"] <= row["mean"] <= row["ci_high"] and row["ci_high"] - row["ci_low"] > 0.02
        assert row["piece_ci_low"] <= row["piece_mean"] <= row["piece_ci_high"]
        assert row["n_items"] == 100
    assert df.loc["good", "n_seeds"] == 2 and np.isfinite(df.loc["good", "std"])
    for metric in ("balanced_accuracy", "macro_f1"):  # every metric gets its interval of the seed mean
        assert df.loc["good", f"{metric}_ci_low"] <= df.loc["good", f"{metric}_mean"] <= df.loc["good", f"{metric}_ci_high"]

    out = {ext: tmp_path / "report" / f"leaderboard.{ext}" for ext in ("csv", "md", "html")}
    records = load_metrics(paths)
    write_leaderboard(leaderboard(records), records, out["csv"], out["md"], out["html"], tmp_path / "report" / "fig")
    md = out["md"].read_text()
    assert "| style | lucky | 1 | Accuracy ↑ |" in md and "| no |" in md and "| yes |" in md
    page = out["html"].read_text()
    assert "Piece-level Accuracy" in page and "400 test samples from 100 source items" in page


def test_predictions_of_different_test_splits_are_refused(tmp_path: Path) -> None:
    ids = np.repeat([f"p{i}" for i in range(10)], 2)
    y_true = np.tile([0, 1], 10)
    paths = [_run(tmp_path, "baseline", 0, y_true, y_true == 0, ids),
             _run(tmp_path, "gru", 0, y_true[::-1].copy(), np.ones(20, bool), ids)]
    with pytest.raises(ValueError, match=r"gru/0/predictions\.h5: key `y_true` differs from .*baseline.*rerun"):
        leaderboard(load_metrics(paths))


def test_figures_log_axis_and_best_epoch() -> None:
    from seqpipe.evaluation.figures import best_epoch, spans_decades

    assert spans_decades([0.0002, 0.03, 0.009]) and not spans_decades([0.2, 0.9]) and not spans_decades([-1.0, 100.0])
    table = pd.DataFrame({"epoch": [0, 0, 1, 1, 2, 2], "split": ["train", "val"] * 3, "loss": [1, 0.9, 0.5, 0.4, 0.3, 0.6]})
    assert best_epoch(table, None) == 1
    assert best_epoch(table, {"best_epoch": 2}) == 2  # the checkpoint training kept wins


def test_readable_numbers_and_names() -> None:
    from seqpipe.evaluation import formatting as fmt

    assert [fmt.number(v) for v in (0.85, 0.00019, 1234.5678, 0.0, float("nan"), 3e-7)] == [
        "0.8500", "0.0001900", "1235", "0", "–", "3.000e-07"]
    assert fmt.mean_std(0.5, float("nan"), 1) == "0.5000 (n=1)"
    assert fmt.mean_std(0.5, 0.0, 3) == "0.5000 ± 0"  # three seeds that agree exactly do say so
    assert fmt.interval([0.1, 0.25]) == "[0.1000, 0.2500]" and fmt.signed(-0.05) == "−0.05000"
    assert [fmt.metric_name(k) for k in ("macro_f1", "rmse", "r2", "balanced_accuracy", "new_thing")] == [
        "Macro-F1", "RMSE", "R²", "Balanced accuracy", "New thing"]


@pytest.mark.slow
def test_snakemake_report_groups_figures_by_task_without_code_stamps(tmp_path: Path) -> None:
    """A tiny workflow end to end, then `snakemake --report`: figures under a subcategory per task with
    model/figure labels and their own captions, each run's loss figure, no code_stamp in the rule graph."""
    import yaml

    from seqpipe.taskfile.hdf5 import write_splits
    from tests.test_pipeline import copy_workflow, snakemake

    rng = np.random.default_rng(0)
    splits = {}
    for split, n_items in (("train", 30), ("val", 8), ("test", 12)):
        y = np.repeat(rng.integers(0, 3, n_items), 4)
        x = rng.normal(0.0, 1.0, (len(y), 8, 3)).astype(np.float32)
        x[:, :, 0] += 2.0 * y[:, None]
        splits[split] = {"data": x, "labels": y.astype(np.int64), "item_ids": np.repeat([f"{split}{i}" for i in range(n_items)], 4)}
    write_splits(tmp_path / "toy.h5", splits, {"class_names": ["a", "b", "c"]})
    (tmp_path / "wf").mkdir()
    workdir = copy_workflow(tmp_path / "wf")
    config = {"tasks": {"toy": {"data_path": str(tmp_path / "toy.h5"), "paradigm": "supervised", "mapping": "seq2static",
                                "type": "classification"}},
              "models": {"mlp": {"arch": "mlp", "hidden": [16]}}, "training": {"epochs": 3, "seeds": [0, 1]}}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, "--cores", "2")
    for run in ("results/runs/toy/mlp/0", "results/runs/toy/mlp/1", "results/baselines/toy"):
        assert (workdir / run / "predictions.h5").is_file(), run
    row = pd.read_csv(workdir / "results/report/leaderboard.csv").set_index("model").loc["mlp"]
    assert row["baseline_test"] == "paired bootstrap" and row["n_items"] == 12
    assert row["ci_low"] <= row["mean"] <= row["ci_high"] and row["piece_ci_low"] <= row["piece_mean"] <= row["piece_ci_high"]

    snakemake(workdir, "--cores", "1", "--report", "report.html")
    page = (workdir / "report.html").read_text(encoding="utf-8")
    nodes = re.findall(r'\\?"rule\\?":\s*\\?"(\w+)\\?"', page)
    assert "report" in nodes and "evaluate" in nodes and "code_stamp" not in nodes
    for text in ("Results per task", "Training runs", "toy", "comparison", "curves", "confusion",
                 "a circle marks the best epoch", "rows are the true", "/ seed 1", '"seed": "1"'):
        assert text in page, text
