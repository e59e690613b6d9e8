"""`seqpipe predict`, the MLflow pyfunc model and the `predict` rule, on runs of the demo (issue 22).

The slow tests share one build: a copy of the workflow with the demo's Groove and DEAM tasks only
(fewer epochs), run through a real `snakemake` up to each run's predictions.h5. Predicting the demo's
raw files with those runs must reproduce the evaluation's predictions (to 1e-6).
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from seqpipe.config.types import Task
from seqpipe.evaluation import pieces, predictions
from seqpipe.predict.choose import best_run
from seqpipe.tracking.prediction_columns import item_columns, window_columns
from seqpipe.predict.inputs import Source, expand, wrong_kind
from tests.test_pipeline import copy_workflow, snakemake

BIN = Path(sys.executable).parent
TASKS = {"groove_style": "groove", "deam_emotion": "deam"}  # task -> dataset of its raw files
BUILD_TARGETS = [f"results/runs/{t}/{m}/0/predictions.h5" for t, m in [("groove_style", "mlp"), ("groove_style", "gru"), ("deam_emotion", "mlp")]]
BUILD_TARGETS.append("results/mlflow/logged.json")  # the runs logged to MLflow (the track_runs rule), their models with them


def seqpipe(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "seqpipe"), *args], cwd=workdir, capture_output=True, text=True, timeout=900)


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"item_id": str, "reason": str})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A workflow copy with groove_style (mlp, gru) and deam_emotion (mlp), trained and evaluated.

    SEQPIPE_TEST_PREDICT_BUILD=<folder> keeps the build in that folder and reuses it (snakemake
    then only brings it up to date), for working on these tests."""
    keep = os.environ.get("SEQPIPE_TEST_PREDICT_BUILD")
    if keep and (Path(keep) / "Snakefile").exists():
        snakemake(Path(keep), "--profile", "profiles/local", "--cores", "2", "--", *BUILD_TARGETS, timeout=2400)
        return Path(keep)
    workdir = copy_workflow(Path(keep) if keep else tmp_path_factory.mktemp("predict"))
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["tasks"] = {"groove_style": config["tasks"]["groove_style"], "deam_emotion": {**config["tasks"]["deam_emotion"], "models": ["mlp"]}}
    config["training"]["epochs"] = 3
    config["demo"]["groove"]["n_items"], config["demo"]["deam"]["n_items"] = 100, 50
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    snakemake(workdir, "--profile", "profiles/local", "--cores", "2", "--", *BUILD_TARGETS, timeout=2400)
    return workdir


def dataset_root(workdir: Path, dataset: str) -> Path:
    return workdir / "resources/raw" / dataset


# -- fast: no trained run needed ---------------------------------------------------------------------------------


def test_columns_per_task_type():
    cls = Task.from_dict({"name": "t", "type": "classification", "mapping": "seq2static"})
    assert window_columns(cls, {"class_names": ["funk", "jazz"]}) == ["item_id", "window", "start_s", "predicted", "funk", "jazz"]
    assert item_columns(cls, {"class_names": ["funk"]})[:6] == ["item_id", "path", "status", "reason", "n_windows", "predicted"]
    seq = Task.from_dict({"name": "t", "type": "regression", "mapping": "seq2seq"})
    assert window_columns(seq, {"target_names": ["valence", "arousal"]}) == ["item_id", "window", "step", "start_s", "valence", "arousal"]
    assert window_columns(Task.from_dict({"name": "t", "type": "reconstruction", "mapping": "seq2seq"}), {})[-1] == "mse"


def test_inputs_expand_folders_and_say_why_a_file_cannot_go(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.mid", "sub/b.MP3", "notes.txt", ".hidden.mid", "c.h5"):
        (tmp_path / name).write_bytes(b"x")
    sources = list(expand([tmp_path, tmp_path / "notes.txt"]))
    assert [(s.item_id, s.kind) for s in sources] == [("a.mid", "midi"), ("c.h5", "hdf5"), ("sub/b.MP3", "audio"), ("notes.txt", "unknown")]
    assert wrong_kind(sources[0], "drum_grid") is None and wrong_kind(sources[1], "logmel") is None
    assert "an audio file, but this run's features (drum_grid) are computed from midi files" in wrong_kind(sources[2], "drum_grid")
    assert "not an audio" in wrong_kind(Source(Path("x.txt"), "x.txt", "unknown"), "logmel")


def test_best_run_follows_the_leaderboard_ranking(tmp_path):
    def metrics(model, seed, rmse):
        path = tmp_path / model / str(seed) / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(pd.Series({"task": "t", "model": model, "seed": seed, "task_type": "regression", "primary": "rmse",
                                   "higher_is_better": False, "metrics": {"rmse": rmse}}).to_json())
        return path

    paths = [metrics("mlp", 0, 0.5), metrics("mlp", 1, 0.1), metrics("gru", 0, 0.3), metrics("gru", 1, 0.2)]
    run, choice = best_run(paths)  # mlp's mean 0.3 ties gru's 0.25? no: gru 0.25 < mlp 0.3, and gru's best seed is 1
    assert run == tmp_path / "gru" / "1" and (choice["model"], choice["seed"]) == ("gru", 1)
    assert choice["model_mean"] == pytest.approx(0.25)


def test_config_predict_block_is_checked(config, tmp_path):
    from seqpipe.config.load import problems

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())
    raw["predict"] = {"new": {"folder": str(tmp_path / "missing"), "tasks": ["groove_styel"]}}
    lines = problems(raw, files=True)
    assert any("predict.new.tasks: task 'groove_styel' is not defined (did you mean 'groove_style'?)" in line for line in lines), lines
    raw["predict"]["new"]["tasks"] = ["groove_style"]
    assert any(line.startswith("predict.new.folder: ") and "is not a folder" in line for line in problems(raw, files=True))
    raw["predict"]["new"]["folder"] = str(tmp_path)
    assert problems(raw, files=True) == []


def test_hdf5_inputs_stream_per_item_and_a_wrong_shape_is_reported(tmp_path):
    """An untrained model on HDF5 inputs: rows per window, one item row per item id (the mean of its windows)."""
    import torch

    from seqpipe.models import build_model
    from seqpipe.predict.command import write_tables
    from seqpipe.predict.run import Predictor
    from tests.test_training import MODEL_DEFAULTS, make_file

    torch.manual_seed(0)
    dims = {"in_dim": 3, "seq_len": 12, "out_dim": 2, "mapping": "seq2static", "out_len": None, "target_dim": 2}
    model = build_model({"name": "mlp", "arch": "mlp", **MODEL_DEFAULTS}, **dims).eval()
    p = Predictor(model, Task.from_dict({"name": "t", "type": "regression", "mapping": "seq2static"}), {"target_names": ["level", "slope"]}, dims, [], "t/mlp/0")
    good = make_file(tmp_path / "good.h5", "regression")
    import h5py

    with h5py.File(tmp_path / "bad.h5", "w") as fh:
        fh["data"] = np.zeros((4, 10, 3), dtype=np.float32)
    counts = write_tables(p, expand([good, tmp_path / "bad.h5"]), tmp_path / "out.csv", batch=7)
    windows, items = read_table(tmp_path / "out.csv"), read_table(tmp_path / "out.items.csv")
    assert counts == {"items": 361, "skipped": 1, "windows": 360} and len(windows) == 360
    with h5py.File(good) as fh:
        x = torch.from_numpy(fh["test/data"][()])
    with torch.no_grad():
        expected = model.denormalise(model(x)).numpy()
    assert np.abs(windows[["level", "slope"]].to_numpy()[-60:] - expected).max() < 1e-6
    bad = items[items["status"] == "skipped"].iloc[0]
    assert bad["item_id"] == "bad.h5" and "shape (10, 3), the run's model takes (12, 3)" in bad["reason"]
    row = items[items["item_id"] == "test5"].iloc[0]
    assert row["n_windows"] == 1 and row["level"] == pytest.approx(expected[5, 0], abs=1e-6)


# -- slow: real runs ------------------------------------------------------------------------------------------------


def predict_cli(workdir: Path, run: str, out: Path, *inputs: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    proc = seqpipe(workdir, "predict", "--run", run, "--out", str(out), *map(str, inputs))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_table(out), read_table(out.with_name(out.stem + ".items.csv")), proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_raw_files_reproduce_the_evaluation(built, task, tmp_path):
    windows, items, _ = predict_cli(built, f"results/runs/{task}/mlp/0", tmp_path / "p.csv", dataset_root(built, TASKS[task]))
    pred = predictions.load(built / f"results/runs/{task}/mlp/0/predictions.h5")
    assert (items["status"] == "ok").all(), items[items["status"] != "ok"]
    # the evaluation's windows are the test items' windows in the file's order: the same rows here
    test_ids = list(dict.fromkeys(pred.item_ids))
    rows = pd.concat([windows[windows["item_id"] == i] for i in test_ids])
    assert list(rows["item_id"]) == list(pred.item_ids)
    piece = pieces.piece_predictions(pred)
    by_item = items.set_index("item_id").loc[list(piece.item_ids)]
    if pred.task_type == "classification":
        names = list(pred.class_names)
        assert np.abs(rows[names].to_numpy() - pred.arrays["probabilities"]).max() < 1e-6
        assert list(rows["predicted"]) == [names[i] for i in pred.arrays["y_pred"]]
        assert np.abs(by_item[names].to_numpy() - piece.arrays["probabilities"]).max() < 1e-6
        assert list(by_item["predicted"]) == [names[i] for i in piece.arrays["y_pred"]]
    else:
        targets = ["valence_mean", "arousal_mean"]
        assert list(rows.columns[-2:]) == targets
        # float32 values up to 9 (DEAM's scale): equal to 1e-6 relative (a few float32 steps: batches differ in size)
        np.testing.assert_allclose(rows[targets].to_numpy(), pred.arrays["y_pred"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(by_item[targets].to_numpy(), piece.arrays["y_pred"], rtol=1e-6, atol=1e-6)
    assert (rows.groupby("item_id")["window"].apply(lambda w: list(w) == list(range(len(w))))).all()
    assert (rows["start_s"] >= 0).all() and rows["start_s"].notna().all()


@pytest.mark.slow
def test_the_task_file_gives_the_same_predictions(built, tmp_path):
    """An HDF5 input in the task's layout: its test split's rows equal the evaluation's."""
    h5 = built / "results/features/groove/groove_grid.h5"
    windows, items, _ = predict_cli(built, "results/runs/groove_style/gru/0", tmp_path / "h.csv", h5)
    pred = predictions.load(built / "results/runs/groove_style/gru/0/predictions.h5")
    names = list(pred.class_names)
    tail = windows.iloc[-len(pred):]  # train, val, then test: the test split comes last
    assert list(tail["item_id"]) == list(pred.item_ids)
    assert np.abs(tail[names].to_numpy() - pred.arrays["probabilities"]).max() < 1e-6
    assert (items["status"] == "ok").all()


@pytest.fixture(scope="module")
def mixed_folder(built, tmp_path_factory) -> Path:
    """Two good Groove takes, one corrupt MIDI file and one audio file (the wrong kind for a drum model)."""
    folder = tmp_path_factory.mktemp("mixed")
    takes = sorted(dataset_root(built, "groove").rglob("*.mid"))[:2]
    for i, take in enumerate(takes):
        shutil.copy(take, folder / f"take_{i}.mid")
    (folder / "broken.mid").write_bytes(b"MThd\x00\x00\x00\x06 this is not a MIDI file")
    shutil.copy(next(dataset_root(built, "deam").rglob("*.mp3")), folder / "song.mp3")
    return folder


@pytest.mark.slow
def test_a_corrupt_file_and_a_file_of_the_wrong_kind_are_reported(built, mixed_folder, tmp_path):
    windows, items, stderr = predict_cli(built, "results/runs/groove_style/mlp/0", tmp_path / "m.csv", mixed_folder)
    status = dict(zip(items["item_id"], items["status"]))
    assert status == {"broken.mid": "skipped", "song.mp3": "skipped", "take_0.mid": "ok", "take_1.mid": "ok"}
    reasons = dict(zip(items["item_id"], items["reason"]))
    assert reasons["song.mp3"] == "an audio file, but this run's features (drum_grid) are computed from midi files"
    assert reasons["broken.mid"] and "\n" not in reasons["broken.mid"]
    assert set(windows["item_id"]) == {"take_0.mid", "take_1.mid"}
    assert "song.mp3: skipped: an audio file" in stderr and "broken.mid: skipped: " in stderr
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_the_mlflow_pyfunc_gives_the_command_s_numbers(built, mixed_folder, tmp_path):
    import mlflow.pyfunc
    from mlflow.tracking import MlflowClient

    windows, items, _ = predict_cli(built, "results/runs/groove_style/mlp/0", tmp_path / "m.csv", mixed_folder)
    from seqpipe.tracking.sync import logged_run_id

    # the run's MLflow id is in the ledger of logged runs (track_runs writes no training output, run.json included)
    run_id = logged_run_id(built / "results/runs", built / "results/runs/groove_style/mlp/0", built / "results/mlflow/logged_runs.json")
    client = MlflowClient(f"sqlite:///{built}/results/mlflow/mlflow.db")
    [output] = client.get_run(run_id).outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    stored = Path(logged.artifact_location.removeprefix("file://"))
    assert not list(stored.rglob("*.pkl")) and (stored / "artifacts/weights.pt").is_file()  # no pickle anywhere
    model = mlflow.pyfunc.load_model(logged.artifact_location)
    assert model.metadata.signature.inputs.input_names() == ["path"]
    assert model.metadata.signature.outputs.input_names() == list(windows.columns)
    got = model.predict(pd.DataFrame({"path": [str(mixed_folder)]}))
    assert list(got.columns) == list(windows.columns) and list(got["item_id"]) == list(windows["item_id"])
    numeric = windows.columns[windows.columns.get_loc("start_s"):].drop("predicted")
    assert np.abs(got[numeric].to_numpy(float) - windows[numeric].to_numpy(float)).max() < 1e-6
    got_items = model.predict(pd.DataFrame({"path": [str(mixed_folder)]}), params={"table": "items"})
    assert list(got_items["status"]) == list(items["status"]) and list(got_items["reason"].fillna("")) == list(items["reason"].fillna(""))

    # `mlflow models predict` runs the same model from the command line
    (tmp_path / "in.csv").write_text(f"path\n{mixed_folder}\n")
    proc = subprocess.run([str(BIN / "mlflow"), "models", "predict", "-m", logged.artifact_location, "-i", str(tmp_path / "in.csv"),
                           "-t", "csv", "-o", str(tmp_path / "out.json"), "--env-manager", "local"],
                          capture_output=True, text=True, timeout=600, cwd=built)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = pd.read_json(tmp_path / "out.json", orient="records") if (tmp_path / "out.json").read_text().startswith("[") else \
        pd.DataFrame(yaml.safe_load((tmp_path / "out.json").read_text())["predictions"])
    assert list(out["item_id"]) == list(windows["item_id"])


@pytest.mark.slow
def test_the_predict_rule_uses_the_best_run_and_reruns_when_the_folder_changes(built, mixed_folder, tmp_path_factory):
    import torch

    folder = tmp_path_factory.mktemp("incoming")
    for take in ("take_0.mid", "take_1.mid"):
        shutil.copy(mixed_folder / take, folder / take)
    block = f"predict={{incoming: {{folder: {folder}, tasks: [groove_style]}}}}"
    snakemake(built, "--profile", "profiles/local", "--cores", "2", "--config", block, "--", "results/predictions/incoming/groove_style.csv")
    out = built / "results/predictions/incoming"
    choice = yaml.safe_load((out / "groove_style.run.json").read_text())
    metrics = [built / f"results/runs/groove_style/{m}/0/metrics.json" for m in ("mlp", "gru")]
    run, expected = best_run(metrics)
    assert choice["run"].endswith(f"runs/groove_style/{expected['model']}/0") and choice["model"] == expected["model"]
    windows, _, _ = predict_cli(built, str(run), Path(out) / "direct.csv", folder)
    assert (out / "groove_style.csv").read_text() == (Path(out) / "direct.csv").read_text()
    with open(out / "groove_style.items.csv", newline="") as fh:
        assert [r["item_id"] for r in csv.DictReader(fh)] == ["take_0.mid", "take_1.mid"]
    plan = snakemake(built, "-n", "--cores", "2", "--config", block, "--", "results/predictions/incoming/groove_style.csv")
    assert "Nothing to be done" in plan or "predict" not in plan.split("Job stats")[-1]
    state = torch.load(run / "model.pt", weights_only=True)  # the chosen model changes (as retraining would change it)
    first = next(iter(state["model"]))
    state["model"][first] = state["model"][first] + 0.01
    torch.save(state, run / "model.pt")
    plan = snakemake(built, "-n", "--cores", "2", "--config", block, "--", "results/predictions/incoming/groove_style.csv")
    assert "rule predict:" in plan
    snakemake(built, "--cores", "2", "--config", block, "--", "results/predictions/incoming/groove_style.csv")
    shutil.copy(mixed_folder / "take_0.mid", folder / "take_2.mid")  # a new file in the folder: predict again
    plan = snakemake(built, "-n", "--cores", "2", "--config", block, "--", "results/predictions/incoming/groove_style.csv")
    assert "rule predict:" in plan


def test_hdf5_inputs_are_predicted_in_batches_across_items_and_read_in_bounded_blocks(tmp_path):
    """A task file whose every row is its own item (no item_ids) takes one forward pass per batch of rows,
    not one per item, and gives the same tables whatever the read block (a block smaller than an item's run)."""
    import h5py
    import torch

    from seqpipe.models import build_model
    from seqpipe.predict.command import write_tables
    from seqpipe.predict.run import Predictor
    from tests.test_training import MODEL_DEFAULTS

    torch.manual_seed(0)
    dims = {"in_dim": 3, "seq_len": 12, "out_dim": 4, "mapping": "seq2static", "out_len": None, "target_dim": 4}
    model = build_model({"name": "mlp", "arch": "mlp", **MODEL_DEFAULTS}, **dims).eval()
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    p = Predictor(model, Task.from_dict({"name": "t", "type": "classification", "mapping": "seq2static"}),
                  {"class_names": ["a", "b", "c", "d"]}, dims, [], "t/mlp/0")
    rng = np.random.default_rng(0)
    with h5py.File(tmp_path / "rows.h5", "w") as fh:
        fh["data"] = rng.normal(size=(50, 12, 3)).astype(np.float32)
    with h5py.File(tmp_path / "runs.h5", "w") as fh:  # items of 7 consecutive windows each
        fh["data"] = rng.normal(size=(50, 12, 3)).astype(np.float32)
        fh["item_ids"] = np.array([f"piece{i // 7}" for i in range(50)], dtype=object).astype("S")
    counts = write_tables(p, expand([tmp_path / "rows.h5"]), tmp_path / "big.csv", batch=16)
    assert counts == {"items": 50, "skipped": 0, "windows": 50}
    assert calls == [16, 16, 16, 2], calls  # today: 50 passes of one window each
    for name in ("rows.h5", "runs.h5"):
        write_tables(p, expand([tmp_path / name]), tmp_path / f"{name}.big.csv", batch=16)
        five_rows = 5 * 12 * 3 * 4  # one batch (16 rows) a block: items straddle blocks
        write_tables(p, expand([tmp_path / name]), tmp_path / f"{name}.small.csv", batch=16, block_bytes=five_rows)
        for table in ("", ".items"):
            big = (tmp_path / f"{name}.big{table}.csv").read_text()
            assert big == (tmp_path / f"{name}.small{table}.csv").read_text()
    items = read_table(tmp_path / "runs.h5.big.items.csv")
    assert items["item_id"].tolist() == [f"piece{i}" for i in range(8)] and items["n_windows"].tolist() == [7] * 7 + [1]
