"""How the rules find seqpipe: the environment that runs Snakemake comes first on the jobs' PATH.

A rule's shell runs with whatever PATH the user had: `.venv/bin/snakemake` typed without
activating the environment leaves `seqpipe` off the PATH, and every job failed with
`seqpipe: command not found`. The Snakefile therefore gives every rule's shell one prefix
(`shell.prefix`) that puts the folder of the Python running Snakemake first on the PATH, which is
what activating that environment does. That is the project's environment however Snakemake was
started: activated, by its full path, or as `python -m snakemake` in a cluster job (SLURM and
HTCondor jobs re-parse the Snakefile with their own interpreter: the shared environment's, or the
container's where there is no shared file system). Commands that seqpipe itself starts
(`seqpipe run-cache ... -- seqpipe train ...`) inherit the PATH.

Where Snakemake deploys the job's software itself (`--sdm conda`, `--sdm apptainer`) the job runs
in that environment (its own `seqpipe`, first on its PATH once activated), so the PATH is left as
the deployment sets it. The rules' shell text is the same either way (Snakemake's code trigger
compares it), so a moved copy or another environment reruns nothing.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

# Deployment methods whose jobs run in an environment of their own (Snakemake's DeploymentMethod names).
OWN_ENVIRONMENT = frozenset({"CONDA", "APPTAINER"})
# Snakemake's own prefix for bash, which a shell.prefix() call replaces.
STRICT = "set -euo pipefail; "


def environment_bin(deployment: Iterable[object] = (), executable: str | None = None) -> str | None:
    """The folder the jobs' shell must search first for `seqpipe`: that of the Python running
    Snakemake (`executable`, default sys.executable), or None when the jobs run in an environment
    Snakemake deploys (`deployment`: `workflow.deployment_settings.deployment_method`)."""
    names = {getattr(method, "name", str(method)).upper() for method in deployment}
    if names & OWN_ENVIRONMENT:
        return None
    return str(Path(executable or sys.executable).parent)


def shell_prefix(deployment: Iterable[object] = (), executable: str | None = None) -> str:
    """The prefix of every rule's shell command: strict bash, then the environment's folder first on
    the PATH (unless the deployment brings its own environment). Braces are doubled, since
    Snakemake formats the prefix."""
    folder = environment_bin(deployment, executable)
    path = "" if folder is None else f'export PATH={shlex.quote(folder)}:"$PATH"; '
    return (STRICT + path).replace("{", "{{").replace("}", "}}")
