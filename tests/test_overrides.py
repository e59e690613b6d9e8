"""Command-line overrides typed by the schema, experiment files that replace the study, and the check before any job
(issue 13 items 3-4, issue 11 item 1 through a real `snakemake`); dotted overrides through `seqpipe run` without
patching Snakemake (issue 21 item 3)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import snakemake.cli
import yaml

from seqpipe.config.load import ConfigError, checked_config, load_config
from seqpipe.launch import snakemake_args, split_overrides
from seqpipe.config.plan import cells

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
parse_config = snakemake.cli.parse_config  # Snakemake's own, unpatched


def via_seqpipe_run(*words: str) -> list[str]:
    """The `--config` entries `seqpipe run <words>` hands to Snakemake."""
    args = snakemake_args(*split_overrides(list(words)))
    return args[args.index("--config") + 1:] if "--config" in args else []


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def as_snakemake(raw: dict, *entries: str, configfiles: tuple[dict, ...] = ()) -> dict:
    """What the Snakefile's check receives: config.yaml updated by --configfile files and --config entries, the way
    Snakemake merges them (snakemake.common.update_config), then seqpipe's check."""
    from snakemake.utils import update_config

    command_line = parse_config(list(entries))
    overwrite: dict = {}
    for extra in configfiles:
        update_config(overwrite, extra)
    update_config(overwrite, command_line)
    config = yaml.safe_load(yaml.safe_dump(raw))
    update_config(config, overwrite)
    return checked_config(config, command_line)


def test_what_snakemake_does_with_config_entries():
    """Nested values arrive as strings (YAML BaseLoader); Snakemake refuses dotted keys before the Snakefile, and
    the environment's Snakemake is not patched (no start-up .pth), so `seqpipe run` / `set=` are the two routes."""
    assert parse_config(["training={epochs: 5, optimizer: {lr: 0.01}}"]) == {"training": {"epochs": "5", "optimizer": {"lr": "0.01"}}}
    with pytest.raises(ValueError, match="valid identifier"):
        parse_config(["training.epochs=5"])
    assert parse_config(["set=training.epochs=5 models.gru.hidden_size=128"]) == {"set": "training.epochs=5 models.gru.hidden_size=128"}
    code = "from snakemake.cli import parse_config; parse_config(['training.epochs=5'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0 and "valid identifier" in out.stderr, "the environment's snakemake.cli is patched"


def test_seqpipe_run_turns_leading_overrides_into_one_set_entry():
    assert snakemake_args(*split_overrides(["training.epochs=5", "models.gru.hidden_size=128", "-n", "--cores", "2"])) == [
        "-n", "--cores", "2", "--config", "set=training.epochs=5 models.gru.hidden_size=128"]
    assert snakemake_args(*split_overrides(["-n", "training.epochs=5"])) == ["-n", "training.epochs=5"]  # only leading ones
    assert snakemake_args(*split_overrides(["training.epochs=5", "--config", "cache={enabled: false}", "set=training.seeds=[1]",
                                            "-n"])) == [
        "--config", "cache={enabled: false}", "set=training.seeds=[1] training.epochs=5", "-n"]  # one --config, one set=
    assert snakemake_args(*split_overrides(["--profile", "profiles/local"])) == ["--profile", "profiles/local"]


def test_nested_override_is_typed_by_the_schema(raw):
    config = as_snakemake(raw, "training={epochs: 5, optimizer: {lr: 0.01}, grad_clip: null}", "models={gru: {hidden_size: 128}}")
    assert config["training"]["epochs"] == 5 and config["training"]["optimizer"]["lr"] == 0.01
    assert config["training"]["grad_clip"] is None
    assert config["training"]["seeds"] == raw["training"]["seeds"] and config["training"]["early_stopping"]["patience"] == raw["training"]["early_stopping"]["patience"]  # the rest kept
    assert config["models"]["gru"]["hidden_size"] == 128 and config["models"]["gru"]["pooling"]["name"] == "mean"


@pytest.mark.parametrize("entries", [
    ["set=training.epochs=5 models.gru.hidden_size=128 training.freeze=[encoder, head] mlflow.tracking_uri=null"],
    via_seqpipe_run("training.epochs=5", "models.gru.hidden_size=128", "training.freeze=[encoder, head]", "mlflow.tracking_uri=null"),
], ids=["set", "seqpipe-run"])
def test_dotted_overrides(raw, entries):
    config = as_snakemake(raw, *entries)
    assert config["training"]["epochs"] == 5 and config["models"]["gru"]["hidden_size"] == 128
    assert config["training"]["freeze"] == ["encoder", "head"] and config["mlflow"]["tracking_uri"] is None


def test_dotted_keys_in_a_config_file(raw):
    config = as_snakemake(raw, configfiles=({"training.epochs": 7, "sweep.models": ["gru"], "sweep.grid.hidden_size": [16, 32]},))
    assert config["training"]["epochs"] == 7 and config["sweep"] == {"models": ["gru"], "grid": {"hidden_size": [16, 32]}}


def test_sweep_values_from_the_command_line_are_typed(raw):
    config = as_snakemake(raw, "sweep={models: [gru], grid: {hidden_size: [16, 32], training.optimizer.lr: [0.01]}}")
    assert config["sweep"]["grid"] == {"hidden_size": [16, 32], "training.optimizer.lr": [0.01]}


def test_override_problems_are_refused_with_the_key(raw):
    with pytest.raises(ConfigError) as err:
        as_snakemake(raw, "set=training.epochs=many models.gru.hiden_size=8", "training={batch_size: big}")
    message = str(err.value)
    assert "training.epochs: found str 'many'; expected integer" in message
    assert "training.batch_size: found str 'big'; expected integer" in message
    assert "models.gru.hiden_size: arch gru has no setting" in message
    with pytest.raises(ConfigError, match="is not key.path=value"):
        as_snakemake(raw, "set=epochs")


EXPERIMENT = REPO / "experiments" / "groove_rnns.yaml"


def test_experiment_replaces_tasks_models_and_sweep(raw):
    raw["sweep"] = {"grid": {"dropout": [0.1]}}  # config.yaml's own sweep does not leak in
    experiment = yaml.safe_load(EXPERIMENT.read_text())
    config = as_snakemake(raw, "set=models.lstm.num_layers=2", configfiles=(experiment,))
    assert set(config["tasks"]) == {"groove_style"} and set(config["models"]) == {"gru", "lstm"}
    assert config["models"]["lstm"]["num_layers"] == 2  # a command-line override reaches the experiment's models
    assert config["features"] == load_config(REPO / "config.yaml")["features"]  # everything else merges
    assert config["training"]["seeds"] == [0, 1] and config["experiment"]["name"] == "groove_rnns"
    from seqpipe.config.sweep import apply_sweep

    assert {(c.task, c.model) for c in cells(apply_sweep(config))} == {
        ("groove_style", f"{m}--hidden_size-{h}") for m in ("gru", "lstm") for h in (32, 64)}


def test_experiment_with_nested_model_override(raw):
    experiment = yaml.safe_load(EXPERIMENT.read_text())
    config = as_snakemake(raw, "models={gru: {num_layers: 3}}", configfiles=(experiment,))
    assert config["models"]["gru"]["num_layers"] == 3 and "mlp" not in config["models"]


def test_empty_experiment_is_refused(raw):
    with pytest.raises(ConfigError, match="experiment: the block defines neither"):
        as_snakemake(raw, configfiles=({"experiment": {"name": "x"}},))


# --- through a real snakemake --------------------------------------------------------------------------


def snakemake(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def planned_training(out: str) -> set[tuple[str, str]]:
    return set(re.findall(r"rule train:\n(?:.*\n)*?\s+wildcards: task=([^,\s]+), model=([^,\s]+), seed=\d+", out))


def test_readme_overrides_and_an_experiment_plan_through_snakemake(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    for entries in (["training={epochs: 5}", "models={gru: {hidden_size: 128}}"],
                    ["set=training.epochs=5 models.gru.hidden_size=128"]):
        proc = snakemake("-n", "--config", *entries, cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = snakemake("-n", "--config", "training.epochs=5", cwd=tmp_path)  # as the README says: refused by Snakemake
    assert proc.returncode != 0 and "valid identifier" in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    proc = snakemake("-n", "--configfile", str(EXPERIMENT), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert planned_training(proc.stdout) == {("groove_style", f"{m}--hidden_size-{h}") for m in ("gru", "lstm") for h in (32, 64)}


def test_seqpipe_run_overrides_reach_the_workflow_typed(tmp_path):
    """`seqpipe run training.epochs=5 models.gru.hidden_size=128 training.optimizer.lr=0.5 -n`: the real snakemake
    runs, the checked config holds the typed values, and no HTCondor warning is printed on a machine without a pool."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    (tmp_path / "Snakefile").write_text(
        "import json\nfrom seqpipe.config.load import checked_config\nconfigfile: 'config.yaml'\n"
        "c = checked_config(config, workflow.config_settings.config)\n"
        "print('CHECKED', json.dumps([c['training']['epochs'], c['models']['gru']['hidden_size'], c['training']['optimizer']['lr']]))\n"
        "rule all:\n    input: []\n")
    env = {k: v for k, v in os.environ.items() if k != "CONDOR_CONFIG"}
    env.update(PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run([str(BIN / "seqpipe"), "run", "training.epochs=5", "models.gru.hidden_size=128",
                           "training.optimizer.lr=0.5", "-n"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CHECKED [5, 128, 0.5]" in proc.stdout, proc.stdout + proc.stderr
    if not any(Path(p).expanduser().is_file() for p in ("~/.condor/condor_config", "/etc/condor/condor_config")):
        assert "CONDOR_CONFIG" not in proc.stdout + proc.stderr


def test_seqpipe_run_plans_the_real_workflow(tmp_path):
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([str(BIN / "seqpipe"), "run", "training.epochs=5", "models.gru.hidden_size=128", "-s",
                           str(REPO / "Snakefile"), "-n"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "rule train:" in proc.stdout


def test_bad_config_stops_snakemake_before_any_job_and_keeps_results(tmp_path):
    """Four problems at once: rc != 0, each on its own line, no schema dump, and the earlier results untouched."""
    (tmp_path / "config.yaml").write_text((REPO / "config.yaml").read_text())
    kept = [tmp_path / "results/report/leaderboard.md", tmp_path / "results/runs/groove_style/gru/0/best.pt"]
    for path in kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("an earlier result")
    bad = {"trainig": {"epochs": 3}, "models": {"gru": {"hiden_size": 8}, "baseline": {"arch": "mlp"}},
           "tasks": {"mine": {"data_path": "missing.h5", "paradigm": "supervised", "mapping": "seq2static", "type": "regression"}}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    proc = snakemake("--cores", "1", "--configfile", "bad.yaml", cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for line in ("trainig: unknown key (did you mean 'training'?)", "models.gru.hiden_size: arch gru has no setting",
                 "models.baseline: the name 'baseline' is reserved", "tasks.mine.data_path: the file missing.h5 does not exist"):
        assert line in out, out
    assert "the configuration has 4 problems" in out and len(out.splitlines()) < 20, out
    assert all(path.read_text() == "an earlier result" for path in kept)


def readme_config_entries() -> list[list[str]]:
    """The `--config` entries of every snakemake command in the README and docs/configuration.md (code blocks and
    inline code), and those `seqpipe run` hands Snakemake for every `seqpipe run` command there."""
    import shlex

    text = "\n".join(p.read_text() for p in (REPO / "README.md", REPO / "docs" / "configuration.md") if p.exists())
    found = []
    for command in re.findall(r"(?:^|`)(snakemake [^`\n#]*?--config [^`\n#]*)", text, flags=re.M):
        entries = shlex.split(command)
        entries = entries[entries.index("--config") + 1:]
        found.append(entries[: next((i for i, w in enumerate(entries) if w.startswith("-")), len(entries))])
    for command in re.findall(r"(?:^|`)seqpipe run ([^`\n#]*)", text, flags=re.M):
        found.append(via_seqpipe_run(*shlex.split(command)))
    return [entries for entries in found if entries]


def test_readme_override_examples_work(raw):
    examples = readme_config_entries()
    assert len(examples) >= 3, examples
    for entries in examples:
        as_snakemake(raw, *entries)
