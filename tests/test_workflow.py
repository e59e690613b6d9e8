"""The workflow itself: lint-clean, snakefmt-clean, every shell value quoted, envs agree with the lock."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RULES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_snakemake_lint_passes():
    proc = run(str(BIN / "snakemake"), "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


def test_snakefmt_is_clean():
    proc = run(str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def shell_commands(text: str) -> list[str]:
    """The string literals of every `shell:` directive."""
    blocks = re.findall(r"^\s+shell:\n((?:\s+\".*\"\n?)+)", text, flags=re.M)
    return ["".join(re.findall(r"\"(.*)\"", block)) for block in blocks]


def test_every_shell_value_is_quoted():
    """Config values, paths and wildcards reach the shell only through Snakemake's `:q` quoting."""
    commands = [cmd for path in RULES for cmd in shell_commands(path.read_text())]
    assert len(commands) >= 8
    for cmd in commands:
        for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", cmd):
            assert field == "threads" or field.endswith(":q"), f"unquoted {{{field}}} in: {cmd}"


def test_every_rule_has_log_threads_resources_conda():
    for path in RULES:
        text = path.read_text()
        for rule in re.split(r"^rule ", text, flags=re.M)[1:]:
            name = rule.split(":", 1)[0]
            for directive in ("log:", "threads:", "resources:", "conda:", "shell:"):
                assert f"\n    {directive}" in rule, f"{path.name}: rule {name} has no {directive}"
            assert "seqpipe " in rule, f"rule {name} does not call seqpipe"
    assert "gpu=1" in (REPO / "workflow/rules/train.smk").read_text()


def test_conda_envs_agree_with_the_lock():
    lock = dict(
        line.split("#")[0].strip().split("==")
        for line in (REPO / "requirements.lock").read_text().splitlines()
        if "==" in line
    )
    lock = {name.lower().replace("_", "-"): version for name, version in lock.items()}
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
        pinned = [p for p in pip if "==" in p]
        assert len(pinned) >= 5, env_file
        for requirement in pinned:
            name, version = requirement.split("==")
            assert lock.get(name.lower().replace("_", "-")) == version, f"{env_file.name}: {requirement} is not the locked version"


def test_lock_pins_everything_exactly_without_cuda():
    lines = [line.split("#")[0].strip() for line in (REPO / "requirements.lock").read_text().splitlines()]
    pins = [line for line in lines if line]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.\-]+", p) for p in pins), pins
    assert "torch==2.13.0" in pins
    assert not [p for p in pins if p.startswith(("nvidia-", "cuda-", "triton"))]
