"""A copy of the project's workflow (Snakefile, config.yaml, workflow/, src/, profiles/, envs/) for tests that
run a real `snakemake` in a folder of their own."""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def copy_workflow(dst: Path) -> Path:
    """Copy the workflow into `dst` (no bytecode or build metadata) and return `dst`."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copy2(REPO / "Snakefile", dst / "Snakefile")
    shutil.copy2(REPO / "config.yaml", dst / "config.yaml")
    for folder in ("workflow", "src", "profiles", "envs"):
        shutil.copytree(REPO / folder, dst / folder, ignore=ignore)
    return dst
