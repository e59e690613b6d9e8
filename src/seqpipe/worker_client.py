"""The job's side of the preloaded worker (seqpipe.worker): hand `seqpipe train ...` to it, wait, exit as it did.

`seqpipe <command>` asks the worker named by `SEQPIPE_WORKER` (a Unix socket the workflow's main
process started for this `snakemake` call) to run the command in a fork of a process that has
already imported torch; the job's own process stays a small client. It sends its argv, working
folder, environment and its standard input, output and error (the job's log file) over the
socket, forwards the signals Snakemake sends it to the forked job, and exits with the job's status
(or dies of the job's signal). Where there is no worker, or it cannot be reached, the command runs
in this process as always: the worker only ever saves time.

The worker is started by the first job that asks for it (so a call that trains nothing pays nothing
for it), from the `SEQPIPE_WORKER*` variables the workflow's main process sets (seqpipe.worker.prepare).

Stdlib only: this runs before every job, and its start-up is the point.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct

ENV_VAR = "SEQPIPE_WORKER"  # the worker's socket
PARENT_VAR = "SEQPIPE_WORKER_PARENT"  # the Snakemake process it serves (it exits when that is gone)
LOG_VAR = "SEQPIPE_WORKER_LOG"
# The commands that import torch (the rest start in well under a second on their own).
COMMANDS = frozenset({"train", "evaluate", "baseline", "predict"})
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def request(argv: list[str]) -> bytes:
    """The message a job sends: its length (4 bytes), then its argv, folder and environment as JSON."""
    payload = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
    return struct.pack("!I", len(payload)) + payload


def connect(path: str) -> socket.socket | None:
    """A connection to the worker at `path`, or None when there is none (not started yet, gone, elsewhere)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    return sock


def delegate(argv: list[str]) -> int | None:
    """Run `seqpipe <argv>` in the worker; its exit status, or None to run it here (no worker for it)."""
    path = os.environ.get(ENV_VAR)
    if not path or not argv or argv[0] not in COMMANDS:
        return None
    sock = connect(path)
    if sock is None:
        launch(path)  # the first job that needs it starts it, and runs in its own process meanwhile
        return None
    with sock, sock.makefile("rb") as replies:
        try:
            socket.send_fds(sock, [request(argv)], [0, 1, 2])
            started = replies.readline().split()
        except OSError:
            return None
        if len(started) != 2 or started[0] != b"pid":  # the worker stopped before it started the job: run it here
            return None
        job = int(started[1])
        for sig in FORWARDED:
            signal.signal(sig, lambda number, frame: _forward(job, number))
        return _outcome(replies.readline().split())


def launch(path: str) -> bool:
    """Start the worker for `path` unless it is started (a marker beside the socket, made once); whether this did."""
    parent, log = os.environ.get(PARENT_VAR), os.environ.get(LOG_VAR)
    if not parent or not log:
        return False
    try:
        os.close(os.open(path + ".started", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:  # started already (or its folder is gone with its Snakemake)
        return False
    import subprocess
    import sys

    with open(log, "ab") as out:
        subprocess.Popen([sys.executable, "-m", "seqpipe.worker", "--socket", path, "--parent", parent],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return True


def _forward(job: int, number: int) -> None:
    try:
        os.kill(job, number)
    except ProcessLookupError:
        pass


def _outcome(reply: list[bytes]) -> int:
    """The job's exit status from the worker's reply; a job killed by a signal kills this process the same way."""
    if len(reply) == 2 and reply[0] == b"exit":
        return int(reply[1])
    if len(reply) == 2 and reply[0] == b"signal":
        number = int(reply[1])
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        return 128 + number
    os.write(2, b"seqpipe: the preload worker stopped while it ran this job (its log: .snakemake/log/seqpipe-worker.log); "
                b"rerun the job, or set preload: false\n")
    return 1
