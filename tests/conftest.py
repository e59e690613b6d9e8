"""Shared fixtures: the repository paths and a validated default configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqpipe.config.load import load_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture()
def config() -> dict:
    return load_config(REPO / "config.yaml")
