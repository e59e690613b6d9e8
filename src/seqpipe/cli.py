"""`seqpipe <command>`: the entry point every Snakemake rule calls, one command per stage.

Each command is the `main()` of one module, imported only when used (so `seqpipe demo` does not
pay for importing torch or MLflow).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

COMMANDS = {
    "code-stamp": ("seqpipe.codedeps", "checksum the source files a rule runs (its code dependency)"),
    "demo": ("seqpipe.data.demo", "generate offline demo data in a real dataset layout"),
    "download": ("seqpipe.data.download", "download a dataset's archives (resumable, size + SHA-256) and extract them safely"),
    "manifest": ("seqpipe.data.manifest", "list an existing dataset copy's files and checksums"),
    "features": ("seqpipe.features.build", "extract one feature set into HDF5"),
    "assemble-task": ("seqpipe.data.assemble", "join several feature sets into one task file, with a domain id per sample"),
    "validate": ("seqpipe.data.validate", "check a task's HDF5 file against its task type"),
    "tracking-setup": ("seqpipe.tracking.setup", "create the MLflow store and experiment"),
    "train": ("seqpipe.training.train", "train one (task, model, seed)"),
    "evaluate": ("seqpipe.evaluation.evaluate", "evaluate a checkpoint on the test split"),
    "baseline": ("seqpipe.evaluation.baseline", "score a task's trivial baseline"),
    "report": ("seqpipe.evaluation.report", "write the leaderboard"),
    "sync-mlflow": ("seqpipe.tracking.sync", "log runs trained while MLflow was unreachable"),
}


def usage() -> str:
    """The command list."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: seqpipe <command> [options]\n\ncommands:\n" + "\n".join(lines) + "\n\n`seqpipe <command> --help` for a command's options."


def main(argv: list[str] | None = None) -> None:
    """Dispatch `seqpipe <command> ...` to the command's module."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return
    if argv[0] not in COMMANDS:
        print(f"seqpipe: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # MLflow 3 sends usage telemetry from every process (a network request of up to ~1 s per job on
    # a closed network); off unless the user asks for it.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    result = importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    if isinstance(result, int) and result:
        sys.exit(result)


if __name__ == "__main__":
    main()
