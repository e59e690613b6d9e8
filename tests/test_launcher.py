"""The rules call the seqpipe of the environment that runs Snakemake, however it was started (issue 20 item 1):
`.venv/bin/snakemake` typed without activating the environment, and the job environment's own seqpipe under
`--sdm conda`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seqpipe.launcher import environment_bin, shell_prefix
from projects import copy_workflow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def without_environment() -> dict[str, str]:
    """The environment of a shell where the project's environment was never activated: its bin folder off PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "CONDA_PREFIX")}
    keep = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != BIN.resolve()]
    env["PATH"] = os.pathsep.join(keep) or "/usr/bin:/bin"
    return env


def test_the_environment_comes_first_on_the_jobs_path():
    assert environment_bin((), "/opt/my env/bin/python") == "/opt/my env/bin"
    assert environment_bin() == str(BIN)
    assert shell_prefix((), "/opt/my env/bin/python") == "set -euo pipefail; export PATH='/opt/my env/bin':\"$PATH\"; "
    assert shell_prefix((), "/opt/{x}/bin/python").count("{{x}}") == 1  # Snakemake formats the prefix
    from snakemake_interface_executor_plugins.settings import DeploymentMethod

    for own in (DeploymentMethod.CONDA, DeploymentMethod.APPTAINER):  # the job's environment brings its seqpipe
        assert environment_bin({own}, "/x/python") is None and shell_prefix({own}) == "set -euo pipefail; "
    assert environment_bin({DeploymentMethod.ENV_MODULES}, "/x/bin/python") == "/x/bin"


def run_unactivated(work: Path, *args: str) -> subprocess.CompletedProcess:
    """`.venv/bin/snakemake ARGS` from a shell where .venv was never activated."""
    env = without_environment()
    found = shutil.which("seqpipe", path=env["PATH"])
    assert found is None or Path(found).parent != BIN
    proc = subprocess.run([str(BIN / "snakemake"), *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def test_venv_snakemake_without_activation_runs_a_job(tmp_path):
    """The code stamp and the MLflow set-up run (each failed with `seqpipe: command not found`, exit 127)."""
    work = copy_workflow(tmp_path)
    run_unactivated(work, "--cores", "1", "results/mlflow/tracking.json")
    assert (work / "results/mlflow/tracking.json").is_file()


@pytest.mark.slow
def test_venv_snakemake_without_activation_runs_the_jobs(tmp_path):
    """`.venv/bin/snakemake` with a PATH that does not hold .venv/bin: the jobs (demo data, code stamps, the run
    cache wrapping the features job) run and write their outputs; before, each failed with `seqpipe: command not
    found` (exit 127)."""
    work = copy_workflow(tmp_path)
    (work / "small.yaml").write_text(yaml.safe_dump({"demo": {"groove": {"n_items": 24}}}))
    target = "results/features/groove/groove_grid.h5"
    run_unactivated(work, "--cores", "2", target, "--configfile", "small.yaml")
    assert (work / target).is_file() and (work / "resources/raw/groove.manifest.json").is_file()


