"""`seqpipe run training.epochs=5 models.gru.hidden_size=128 [snakemake args...]`: Snakemake with dotted overrides.

Snakemake 9 refuses a `--config` key that is not an identifier ("Config entry must start with a valid
identifier"), so `snakemake --config training.epochs=5` stops before the workflow is read. This command
takes the leading `key.path=value` words, hands them to Snakemake as the one entry it accepts,
`--config set='training.epochs=5 models.gru.hidden_size=128'` (the workflow splits and nests it:
`seqpipe.config.overrides.nest_dotted`), and replaces itself with this environment's `snakemake` and the
remaining arguments. Plain `snakemake --config set='...'` does the same without this command.

On a machine without an HTCondor pool (no condor_config file), it also sets CONDOR_CONFIG=/dev/null for
Snakemake, which is what the installed HTCondor executor plugin falls back to anyway, without its warning.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

SET_KEY = "set"
OVERRIDE = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)*=")
CONDOR_CONFIG_FILES = ("~/.condor/condor_config", "/etc/condor/condor_config", "/usr/local/etc/condor_config",
                       "~condor/condor_config")


class LaunchError(ValueError):
    """`seqpipe run` cannot start Snakemake; the message says why and what to do."""


def split_overrides(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the leading `key.path=value` words, the rest): overrides come before any Snakemake argument."""
    n = 0
    while n < len(argv) and OVERRIDE.match(argv[n]):
        n += 1
    return argv[:n], argv[n:]


def snakemake_args(overrides: list[str], rest: list[str]) -> list[str]:
    """Snakemake's arguments: `rest` with the overrides added as one `set=...` entry of `--config`.

    An existing `--config` keeps its entries (ours joins them; a `set=` entry there is merged with ours,
    which come last and so win), and no second `--config` is added (Snakemake would keep only one).
    """
    if not overrides:
        return list(rest)
    rest = list(rest)
    if "--config" not in rest:
        return [*rest, "--config", f"{SET_KEY}={' '.join(overrides)}"]
    start = rest.index("--config") + 1
    end = next((i for i in range(start, len(rest)) if rest[i].startswith("-")), len(rest))
    entries = rest[start:end]
    earlier = [e.partition("=")[2] for e in entries if e.startswith(f"{SET_KEY}=")]
    kept = [e for e in entries if not e.startswith(f"{SET_KEY}=")]
    return [*rest[:start], *kept, f"{SET_KEY}={' '.join([*earlier, *overrides])}", *rest[end:]]


def snakemake_executable() -> str:
    """This environment's `snakemake` (beside the running Python), else the one on PATH."""
    beside = Path(sys.executable).with_name("snakemake")
    found = str(beside) if beside.is_file() else shutil.which("snakemake")
    if not found:
        raise LaunchError(f"seqpipe run: no `snakemake` beside {sys.executable} nor on PATH; install the project "
                          "(`make install`) and run .venv/bin/seqpipe run ...")
    return found


def snakemake_environment(env: dict[str, str]) -> dict[str, str]:
    """`env` with CONDOR_CONFIG=/dev/null where it is unset and no HTCondor configuration file exists."""
    env = dict(env)
    if "CONDOR_CONFIG" not in env and not any(os.path.isfile(os.path.expanduser(p)) for p in CONDOR_CONFIG_FILES):
        env["CONDOR_CONFIG"] = "/dev/null"
    return env


def parser() -> argparse.ArgumentParser:
    """The command's help: the overrides are its own arguments, everything after them goes to Snakemake."""
    p = argparse.ArgumentParser(
        prog="seqpipe run", usage="seqpipe run [key.path=value ...] [snakemake arguments ...]", description="Run the workflow with Snakemake, taking dotted configuration overrides "
        "(which plain `snakemake --config` refuses).",
        epilog="Example: seqpipe run training.epochs=5 models.gru.hidden_size=128 --cores 4 -n. Plain snakemake "
        "takes the same as --config set='training.epochs=5 models.gru.hidden_size=128'.")
    p.add_argument("overrides", nargs="*", metavar="key.path=value",
                   help="configuration overrides, before any Snakemake argument; values are read as YAML")
    return p


def main(argv: list[str] | None = None) -> None:
    """Replace this process with `snakemake <args> --config set='<overrides>'`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    overrides, rest = split_overrides(argv)
    parser().parse_args(overrides + (rest[:1] if rest[:1] in (["-h"], ["--help"]) else []))
    executable = snakemake_executable()
    sys.stdout.flush()
    os.execve(executable, [executable, *snakemake_args(overrides, rest)], snakemake_environment(dict(os.environ)))
