"""What each change plans on one finished pipeline, and the run cache that makes switching back free.

The slow tests build one small but complete pipeline (two datasets read from copies in their real
layouts, three tasks, two models of which one is swept, two epochs) once per module, then dry-run
one change at a time and compare Snakemake's job counts with exactly the jobs that change needs.
The fast tests check the plan's parameters and the run cache directly.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from seqpipe import runcache
from seqpipe.config import plan
from seqpipe.config.load import validate_config
from seqpipe.config.sweep import apply_sweep

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GRU = "gru--hidden_size-8"  # the swept gru's one variant
CLASSIFY = {"paradigm": "supervised", "mapping": "seq2static", "type": "classification"}


def base_config(roots: dict[str, Path]) -> dict:
    return {
        "datasets": {name: {"source": "root", "root": str(root)} for name, root in roots.items()},
        "features": {
            "grid": {"dataset": "groove", "kind": "drum_grid", "target": "style"},
            "roll": {"dataset": "maestro", "kind": "piano_roll", "target": "composer", "window": 32, "hop": 32},
        },
        "tasks": {
            "style": {"features": "grid", **CLASSIFY},
            "recon": {"features": "grid", "paradigm": "self_supervised", "mapping": "seq2seq", "type": "reconstruction"},
            "composer": {"features": "roll", **CLASSIFY},
        },
        "models": {"mlp": {"arch": "mlp", "hidden": [16]}, "gru": {"arch": "gru", "hidden_size": 8}},
        "sweep": {"models": ["gru"], "grid": {"hidden_size": [8]}},
        "training": {"epochs": 2, "seeds": [0]},
        "mlflow": {"log_model": False},
    }


def run_snakemake(workdir: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(workdir / "src")}
    proc = subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    return output


def planned(workdir: Path, *args: str) -> Counter:
    """Jobs per rule that `snakemake -n` plans (its job-stats table), without `total`."""
    out = run_snakemake(workdir, "-n", *args, "--quiet", "rules")
    counts = Counter()
    for line in out.splitlines():
        if m := re.match(r"^(\w+)\s+(\d+)$", line.strip()):
            if m.group(1) != "total":
                counts[m.group(1)] = int(m.group(2))
    return counts


def planned_jobs(workdir: Path, *args: str) -> list[dict]:
    """Every planned job with its rule, wildcards and inputs (from the full dry-run listing)."""
    jobs = []
    for line in run_snakemake(workdir, "-n", *args).splitlines():
        if m := re.match(r"^(?:local)?rule (\w+):", line):
            jobs.append({"rule": m.group(1), "wildcards": {}, "input": []})
        elif jobs and (m := re.match(r"^\s+wildcards: (.*)", line)):
            jobs[-1]["wildcards"] = dict(kv.split("=", 1) for kv in m.group(1).split(", "))
        elif jobs and (m := re.match(r"^\s+input: (.*)", line)):
            jobs[-1]["input"] = m.group(1).split(", ")
    return jobs


class Project:
    """A finished pipeline in a folder, with its config changed for one dry run at a time."""

    def __init__(self, workdir: Path, config: dict):
        self.workdir, self.config = workdir, config

    def write(self, config: dict) -> None:
        (self.workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    def plan_with(self, change, *args: str) -> Counter:
        config = copy.deepcopy(self.config)
        change(config)
        self.write(config)
        try:
            return planned(self.workdir, *args)
        finally:
            self.write(self.config)


def cells(n: int) -> Counter:
    """The jobs of `n` new (task, model, seed) cells: training, evaluation, the report and the MLflow logging."""
    return Counter({"train": n, "evaluate": n, "report": 1, "track_runs": 1, "all": 1})


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    from seqpipe.raw.demo import generate

    copies = tmp_path_factory.mktemp("matrix_copies")
    roots = {"groove": generate("groove", copies / "groove", n_items=40, seed=3),
             "maestro": generate("maestro", copies / "maestro", n_items=12, seed=3)}
    workdir = tmp_path_factory.mktemp("matrix") / "project"
    workdir.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copy2(REPO / "Snakefile", workdir / "Snakefile")
    for folder in ("workflow", "src", "profiles", "envs"):
        shutil.copytree(REPO / folder, workdir / folder, ignore=ignore)
    project = Project(workdir, base_config(roots))
    project.write(project.config)
    run_snakemake(workdir)
    assert planned(workdir) == Counter()
    return project


# --- the matrix: one finished pipeline, one change at a time -------------------------------------


@pytest.mark.slow
def test_adding_a_model_plans_only_its_cells(project):
    def change(c):
        c["models"]["lstm"] = {"arch": "lstm", "hidden_size": 8}

    assert project.plan_with(change) == cells(3)


@pytest.mark.slow
def test_adding_a_seed_plans_only_its_cells(project):
    assert project.plan_with(lambda c: c["training"].update(seeds=[0, 1])) == cells(6)


@pytest.mark.slow
def test_a_models_own_seeds_are_planned(project):
    assert project.plan_with(lambda c: c["models"]["mlp"].update(training={"seeds": [0, 2]})) == cells(3)


@pytest.mark.slow
def test_adding_a_sweep_value_plans_only_its_cells(project):
    assert project.plan_with(lambda c: c["sweep"]["grid"].update(hidden_size=[8, 12])) == cells(3)


@pytest.mark.slow
def test_adding_a_task_plans_only_its_jobs(project):
    def change(c):
        c["tasks"]["style2"] = {"features": "grid", **CLASSIFY, "losses": [{"name": "cross_entropy", "weight": 2.0}]}

    assert project.plan_with(change) == cells(2) + Counter({"validate": 1, "baseline": 1})


@pytest.mark.slow
def test_result_neutral_settings_plan_nothing(project):
    def change(c):
        c["training"].update(checkpoint_every=3, progress=False, num_workers=1, memory_budget_mb=1)
        c["models"]["mlp"]["training"] = {"progress": True}
        c["resources"] = {"train": {"threads": 2, "mem_mb": 3000}}
        c["cache"] = {"dir": "elsewhere/cache"}
        c["tasks"]["style"]["models"] = ["mlp", "gru"]  # the same models, listed

    assert project.plan_with(change) == Counter()


@pytest.mark.slow
def test_command_line_overrides_plan_what_the_same_edit_of_config_yaml_plans(project):
    """The dotted form (`--config set='models.mlp.hidden=[12]'`, what `seqpipe run models.mlp.hidden=[12]` hands
    Snakemake), the nested form and the edited file plan the same jobs; result-neutral settings given on the command
    line plan nothing."""
    edited = project.plan_with(lambda c: c["models"]["mlp"].update(hidden=[12]))
    assert edited and set(edited) == {"train", "evaluate", "report", "track_runs", "all"}, edited
    assert planned(project.workdir, "--config", "models={mlp: {hidden: [12]}}") == edited
    assert planned(project.workdir, "--config", "set=models.mlp.hidden=[12]") == edited
    assert planned(project.workdir, "--config", "set=training.checkpoint_every=3 training.progress=false"
                   " training.memory_budget_mb=1 models.mlp.hidden=[16]") == Counter()  # [16]: its value in config.yaml


@pytest.mark.slow
def test_tracking_uri_change_retrains_nothing(project, tmp_path):
    def change(c):
        c["mlflow"] = {"tracking_uri": f"sqlite:///{tmp_path}/other.db", "log_model": True}

    # the new store is set up and the runs not yet logged go there; no retraining
    assert project.plan_with(change) == Counter({"tracking_setup": 1, "track_runs": 1, "all": 1})

    def live(c):
        c["mlflow"] = {"live": True}

    assert project.plan_with(live) == Counter({"tracking_setup": 1, "track_runs": 1, "all": 1})  # mlflow.live retrains nothing (issue 25)


@pytest.mark.slow
def test_a_moved_copy_plans_nothing(project, tmp_path):
    moved = tmp_path / "moved" / "elsewhere"
    shutil.copytree(project.workdir, moved, symlinks=True)  # results, resources and .snakemake with it
    assert planned(moved) == Counter()


@pytest.mark.slow
def test_init_from_is_an_input_and_retraining_the_encoder_reruns_the_fine_tuning(project):
    encoder = f"results/runs/recon/{GRU}/0/best.pt"

    def fine_tune(c):
        c["models"]["gru_ft"] = {"arch": "gru", "hidden_size": 8, "training": {"init_from": str(project.workdir / encoder)}}
        c["tasks"]["style"]["models"] = ["mlp", "gru", "gru_ft"]
        for task in ("recon", "composer"):
            c["tasks"][task]["models"] = ["mlp", "gru"]

    assert project.plan_with(fine_tune) == cells(1)

    def retrain_encoder(c):
        fine_tune(c)
        c["models"]["gru"]["dropout"] = 0.2

    config = copy.deepcopy(project.config)
    retrain_encoder(config)
    project.write(config)
    try:
        jobs = planned_jobs(project.workdir)
    finally:
        project.write(project.config)
    trains = {(j["wildcards"]["task"], j["wildcards"]["model"]): j for j in jobs if j["rule"] == "train"}
    assert set(trains) == {("style", GRU), ("recon", GRU), ("composer", GRU), ("style", "gru_ft")}
    assert encoder in trains[("style", "gru_ft")]["input"]  # relative to the project, and ordered after its producer


@pytest.mark.slow
def test_editing_a_dataset_module_reruns_that_datasets_index_and_what_follows(project):
    module = project.workdir / "src/seqpipe/datasets/groove.py"
    original = module.read_text()
    module.write_text(original + "\n# an edit to the Groove module\n")
    try:
        jobs = planned_jobs(project.workdir)
    finally:
        module.write_text(original)
    assert [j["wildcards"] for j in jobs if j["rule"] == "index_root"] == [{"dataset": "groove"}]
    assert not any("maestro" in j["wildcards"].values() or j["wildcards"].get("task") == "composer" for j in jobs)
    assert Counter(j["rule"] for j in jobs if j["rule"] in {"train", "features"}) == {"train": 4, "features": 1}


@pytest.mark.slow
def test_switching_a_setting_back_restores_from_the_run_cache(project):
    """Flip a hyperparameter, train that cell, flip it back: the earlier model comes back from the
    cache byte for byte, nothing trains, and both models stay listed in the cache."""
    run_dir = project.workdir / "results/runs/style/mlp/0"
    before = {name: (run_dir / name).read_bytes() for name in ("best.pt", "model.pt", "run.json", "scalars.csv")}
    target = "results/runs/style/mlp/0/best.pt"
    flipped = copy.deepcopy(project.config)
    flipped["models"]["mlp"]["hidden"] = [12]
    flipped["training"]["checkpoint_every"] = 7  # result-neutral: reaches the job, not its params
    project.write(flipped)
    try:
        run_snakemake(project.workdir, target)
        assert (run_dir / "best.pt").read_bytes() != before["best.pt"]
        import torch

        assert torch.load(run_dir / "last.pt", weights_only=True)["job"]["training"]["checkpoint_every"] == 7
    finally:
        project.write(project.config)
    run_snakemake(project.workdir, target)
    log = (project.workdir / "logs/train/style/mlp/0.log").read_text()
    assert "run cache: restored" in log and "epoch" not in log.lower().replace("run cache", ""), log[-2000:]
    # every file byte for byte, run.json included: track_runs writes no training output (its ledger keeps the ids)
    assert {name: (run_dir / name).read_bytes() for name in before} == before
    # evaluation sees the same checkpoint, and the restored run is the one already logged (same run.json): nothing to do
    assert planned(project.workdir) == Counter()
    listing = subprocess.run([str(BIN / "seqpipe"), "run-cache", "list", "results/runs/style/mlp/0"], cwd=project.workdir,
                             capture_output=True, text=True, check=True).stdout
    assert len(listing.splitlines()) == 2, listing  # the earlier model and the flipped one


@pytest.mark.slow
def test_switching_a_feature_setting_back_restores_the_features_from_the_run_cache(project):
    h5 = project.workdir / "results/features/groove/grid.h5"
    before = h5.read_bytes()
    target = "results/features/groove/grid.h5"
    flipped = copy.deepcopy(project.config)
    flipped["features"]["grid"]["hop"] = 8
    project.write(flipped)
    try:
        run_snakemake(project.workdir, target)
        assert h5.read_bytes() != before
    finally:
        project.write(project.config)
    run_snakemake(project.workdir, target)
    log = (project.workdir / "logs/features/groove/grid.log").read_text()
    assert "run cache: restored" in log, log[-2000:]
    assert h5.read_bytes() == before
    assert "features" not in planned(project.workdir)


# --- fast: the plan's parameters and the run cache ------------------------------------------------


def small_config(**training) -> dict:
    config = base_config({"groove": Path("/data/groove"), "maestro": Path("/data/maestro")})
    config["training"].update(training)
    return apply_sweep(validate_config(config))


def test_train_params_hold_no_model_list_and_no_runtime_settings():
    config = small_config(checkpoint_every=2, progress=False)
    job = plan.train_params(config, "style", "mlp", 0)
    assert "models" not in job["task"]
    assert not set(plan.RUNTIME_KEYS) & set(job["training"])
    more = copy.deepcopy(config)
    more["models"]["lstm"] = {**more["models"]["mlp"], "arch": "lstm"}
    more["training"].update(checkpoint_every=5, num_workers=2, memory_budget_mb=1, progress=True)
    assert plan.train_params(more, "style", "mlp", 0) == job
    runtime = plan.runtime_settings(config)
    assert plan.with_runtime(job, runtime)["training"]["checkpoint_every"] == 2


def test_data_jobs_params_leave_out_losses_and_models():
    config = small_config()
    params = plan.task_params(config, "style", data_only=True)
    assert params["name"] == "style" and "losses" not in params and "models" not in params


def test_per_model_seeds_and_init_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = small_config()
    config["models"]["mlp"]["training"] = {"seeds": [3, 4], "init_from": str(tmp_path / "results/x/best.pt")}
    assert sorted(c.seed for c in plan.cells(config) if c.model == "mlp") == [3, 3, 3, 4, 4, 4]
    assert plan.init_from(config, "mlp") == ["results/x/best.pt"]
    assert plan.train_params(config, "style", "mlp", 3)["training"]["init_from"] == "results/x/best.pt"
    assert plan.init_from(config, GRU) == []


def test_project_path(tmp_path):
    assert plan.project_path(tmp_path / "a" / "b.h5", tmp_path) == "a/b.h5"
    assert plan.project_path("/elsewhere/b.h5", tmp_path) == "/elsewhere/b.h5"
    assert plan.project_path("rel/b.h5", tmp_path) == "rel/b.h5"


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_run_cache_stores_restores_and_refuses_a_damaged_entry(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write(tmp_path / "in.txt", "data")
    settings = {"enabled": True, "dir": "cache"}
    make = [sys.executable, "-c", "import pathlib; pathlib.Path('out/a.txt').write_text('A'); pathlib.Path('out/b.txt').write_text('B')"]
    (tmp_path / "out").mkdir()
    params = json.dumps({"x": 1})
    assert runcache.run_cached(settings, "t", params, [data], ["out/a.txt", "out/b.txt"], [], make) == 0
    assert len(runcache.entries("cache")) == 1
    for name in ("out/a.txt", "out/b.txt"):
        os.remove(name)
    fail = [sys.executable, "-c", "raise SystemExit(3)"]  # a hit never runs the command
    assert runcache.run_cached(settings, "t", params, [data], ["out/a.txt", "out/b.txt"], [], fail) == 0
    assert Path("out/a.txt").read_text() == "A" and Path("out/b.txt").read_text() == "B"
    # a different parameter or input content is a miss
    assert runcache.run_cached(settings, "t", json.dumps({"x": 2}), [data], ["out/a.txt"], [], fail) == 3
    write(tmp_path / "in.txt", "other data")
    assert runcache.run_cached(settings, "t", params, [data], ["out/a.txt"], [], fail) == 3
    # a damaged entry is removed and the job computes again
    write(tmp_path / "in.txt", "data")
    key = runcache.cache_key("t", params, [data])
    stored = runcache.entry_dir("cache", "t", key) / "files/out/a.txt"
    stored.write_text("tampered")
    assert runcache.run_cached(settings, "t", params, [data], ["out/a.txt", "out/b.txt"], [], make) == 0
    assert Path("out/a.txt").read_text() == "A" and stored.read_text() == "A"
    # disabled: always runs, stores nothing
    assert runcache.run_cached({"enabled": False}, "t", params, [data], ["out/a.txt"], [], fail) == 3


def test_run_cache_key_ignores_paths(tmp_path):
    a, b = write(tmp_path / "a/in.h5", "same"), write(tmp_path / "b/other.h5", "same")
    assert runcache.cache_key("train", '{"a": 1, "b": 2}', [a]) == runcache.cache_key("train", '{"b": 2, "a": 1}', [b])


def test_input_hashes_are_remembered_until_the_file_changes(tmp_path, monkeypatch):
    data = write(tmp_path / "big.h5", "x" * 100)
    calls = []
    real = runcache.file_sha256
    monkeypatch.setattr(runcache, "file_sha256", lambda path: calls.append(path) or real(path))
    first = runcache.input_sha256(data, tmp_path / "memo")
    assert runcache.input_sha256(data, tmp_path / "memo") == first and len(calls) == 1
    write(tmp_path / "big.h5", "y" * 101)
    assert runcache.input_sha256(data, tmp_path / "memo") == real(data) != first and len(calls) == 2


def test_a_manifest_keeps_a_root_outside_the_project_absolute(tmp_path):
    """A moved project must still find a dataset copy that lives elsewhere (and its own demo data)."""
    from seqpipe.raw.manifest import read_manifest, write_manifest

    outside, project = tmp_path / "copies/groove", tmp_path / "project"
    for root, out in ((outside, project / "resources/raw/groove.manifest.json"),
                      (project / "resources/raw/groove", project / "resources/raw/groove.manifest.json")):
        out.parent.mkdir(parents=True, exist_ok=True)
        write_manifest({"dataset": "groove", "source": "root", "root": str(root), "files": {}}, out)
        moved = tmp_path / "moved" / out.relative_to(tmp_path)
        moved.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(out, moved)
        expected = root if root == outside else tmp_path / "moved" / root.relative_to(tmp_path)
        assert read_manifest(moved)["root"] == str(expected)


@pytest.mark.slow
def test_a_new_mlflow_experiment_plans_the_changed_cells_on_the_first_call(project):
    """A new experiment sets up its store and retrains nothing by itself, and with a changed model its cells are planned
    on the same first call (issue 20 item 2: before, only tracking_setup was planned; they trained on a second call)."""
    edited = project.plan_with(lambda c: c["models"]["mlp"].update(hidden=[12]))

    def both(c):
        c["mlflow"] = {"experiment": "another", "log_model": False}
        c["models"]["mlp"]["hidden"] = [12]

    # the new experiment's store is set up and the runs not yet logged go there; nothing retrains
    assert project.plan_with(lambda c: c["mlflow"].update(experiment="another")) == Counter(
        {"tracking_setup": 1, "track_runs": 1, "all": 1})
    assert project.plan_with(both) == edited + Counter({"tracking_setup": 1}), edited
