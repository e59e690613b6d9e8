"""`seqpipe <command>`: the entry point every Snakemake rule calls, one command per stage.

Each command is the `main()` of one module, imported only when used (so `seqpipe demo` does not
pay for importing torch or MLflow).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

from seqpipe.worker_client import delegate

COMMANDS = {
    "run": ("seqpipe.launch", "run the workflow: snakemake with dotted overrides (seqpipe run training.epochs=5 -n)"),
    "code-stamp": ("seqpipe.codedeps", "checksum the source files a rule runs (its code dependency)"),
    "demo": ("seqpipe.raw.demo", "generate offline demo data in a real dataset layout"),
    "download": ("seqpipe.raw.download", "download a dataset's archives (resumable, size + SHA-256) and extract them safely"),
    "manifest": ("seqpipe.raw.manifest", "list an existing dataset copy's files and checksums"),
    "features": ("seqpipe.features.build", "extract one feature set into HDF5"),
    "assemble-task": ("seqpipe.taskfile.assemble", "join several feature sets into one task file, with a domain id per sample"),
    "validate": ("seqpipe.taskfile.validate", "check a task's HDF5 file against its task type"),
    "tracking-setup": ("seqpipe.tracking.setup", "create the MLflow store and experiment"),
    "train": ("seqpipe.training.train", "train one (task, model, seed)"),
    "evaluate": ("seqpipe.evaluation.evaluate", "evaluate a checkpoint on the test split"),
    "baseline": ("seqpipe.evaluation.baseline", "score a task's trivial baseline"),
    "report": ("seqpipe.evaluation.report", "write the leaderboard"),
    "run-cache": ("seqpipe.runcache", "restore a job's outputs from the run cache, or run it and store them"),
    "sync-mlflow": ("seqpipe.tracking.sync", "log runs trained while MLflow was unreachable"),
    "predict": ("seqpipe.predict.command", "label new audio, MIDI or HDF5 files with a trained run (window and item tables)"),
    "pack-record": ("seqpipe.training.packing", "record when each training cell of a pack ran, and their overlap"),
    "relocate-mlflow": ("seqpipe.tracking.relocate", "point a moved SQLite MLflow store at its artifacts' new folder"),
}


def is_own_error(err: BaseException) -> bool:
    """An error seqpipe raised on purpose (its message says what was found, what was expected and the fix): a
    seqpipe exception class, or a built-in one raised by a `raise` in seqpipe's own code (not deep in a library,
    where a traceback is what a bug report needs)."""
    if type(err).__module__.startswith("seqpipe"):
        return True
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    package = os.path.dirname(os.path.abspath(__file__))
    return tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(package + os.sep) and isinstance(
        err, (ValueError, KeyError, FileNotFoundError, TypeError, RuntimeError))


def one_paragraph(command: str, err: BaseException) -> str:
    """The error as one paragraph for the log: no traceback (set SEQPIPE_DEBUG=1 for one)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return f"seqpipe {command}: error: {text}"


def usage() -> str:
    """The command list."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return ("usage: seqpipe <command> [options]\n       seqpipe --version\n\ncommands:\n" + "\n".join(lines)
            + "\n\n`seqpipe <command> --help` for a command's options. Errors print as one paragraph; "
            "SEQPIPE_DEBUG=1 shows the traceback.")


def main(argv: list[str] | None = None) -> None:
    """Dispatch `seqpipe <command> ...` to the command's module."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage())
        return
    if argv[0] in {"-V", "--version"}:
        from seqpipe import __version__

        print(f"seqpipe {__version__}")
        return
    if argv[0] not in COMMANDS:
        print(f"seqpipe: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    code = delegate(argv)  # a training or evaluation job of a local run: in the preloaded worker (seqpipe.worker)
    if code is not None:
        sys.exit(code)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # MLflow 3 sends usage telemetry from every process (a network request of up to ~1 s per job on
    # a closed network); off unless the user asks for it.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        result = importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])
    except Exception as err:
        if not is_own_error(err) or os.environ.get("SEQPIPE_DEBUG"):
            raise
        print(one_paragraph(argv[0], err), file=sys.stderr)
        sys.exit(1)
    if isinstance(result, int) and result:
        sys.exit(result)


if __name__ == "__main__":
    main()
