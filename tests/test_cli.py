"""The command line explains itself: `--version`, a user-facing description and help on every option of every
command, errors as one paragraph, and a `seqpipe run` that uses this machine without HTCondor's warning."""

import argparse
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seqpipe import __version__
from seqpipe.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]


def test_version(capsys):
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"seqpipe {__version__}"


def captured_parser(command: str) -> argparse.ArgumentParser:
    """The parser a command's main() builds (stopped at parse_args)."""
    seen = {}

    class Stop(Exception):
        pass

    def grab(self, args=None, namespace=None):
        seen["parser"] = self
        raise Stop

    original = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = grab
    try:
        importlib.import_module(COMMANDS[command][0]).main([])
    except Stop:
        pass
    finally:
        argparse.ArgumentParser.parse_args = original
    return seen["parser"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_and_option_has_help(command):
    parser = captured_parser(command)
    assert parser.prog == f"seqpipe {command}", f"`seqpipe {command} --help` would say usage: {parser.prog}"
    assert parser.description and "`" not in parser.description.splitlines()[0][:12]
    undocumented = [a.option_strings or [a.dest] for a in parser._actions if not a.help and not isinstance(a, argparse._HelpAction)]
    assert not undocumented, f"seqpipe {command}: options without help: {undocumented}"


def test_own_errors_are_one_paragraph(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("SEQPIPE_DEBUG", None)
    out = subprocess.run([sys.executable, "-m", "seqpipe", "relocate-mlflow", "--store", str(tmp_path / "none.db")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    [line] = [line for line in out.stderr.splitlines() if line.strip()]
    assert line.startswith("seqpipe relocate-mlflow: error:") and "none.db" in line


def test_plain_snakemake_uses_the_machine_profile():
    env = {k: v for k, v in os.environ.items() if k != "CONDOR_CONFIG"}
    env["PYTHONPATH"] = str(REPO / "src")
    snakemake = Path(sys.executable).with_name("snakemake")
    out = subprocess.run([str(snakemake), "-n", "--quiet", "rules"], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert "workflow specific profile profiles/default" in text


def test_seqpipe_run_uses_the_machine_without_condor_warning():
    """Without a pool's condor_config, `seqpipe run` (and `make demo`) hush HTCondor's warning for Snakemake only."""
    env = {k: v for k, v in os.environ.items() if k != "CONDOR_CONFIG"}
    env["PYTHONPATH"] = str(REPO / "src")
    seqpipe = Path(sys.executable).with_name("seqpipe")
    out = subprocess.run([str(seqpipe), "run", "-n", "--quiet", "rules"], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout + out.stderr
    assert "workflow specific profile profiles/default" in text
    if not any(Path(p).expanduser().is_file() for p in ("~/.condor/condor_config", "/etc/condor/condor_config")):
        assert "CONDOR_CONFIG" not in text


def test_every_rule_has_a_docstring():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    snakemake = Path(sys.executable).with_name("snakemake")
    out = subprocess.run([str(snakemake), "--list-rules"], cwd=REPO, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rules = [line for line in out.stdout.splitlines() if line.strip() and not line.startswith("Using ")]
    assert len(rules) >= 10
    bare = [line for line in rules if not re.fullmatch(r"\w+ \(.{20,}\)", line)]
    assert not bare, f"rules without a docstring: {bare}"
