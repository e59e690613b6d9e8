"""The preloaded worker: torch imported once per local `snakemake` call, a fork of it per training or evaluation job.

A training or evaluation job of a small model spends most of its time starting: importing torch
(and `torch._dynamo`, which an optimizer's first use pulls in) costs a bare process 2-3 s of CPU,
more than the training of a tiny cell. With `preload: true` (the default) the workflow's main
process, on one machine, names one worker for its jobs (`prepare`, from the Snakefile's `onstart`),
and the first job that needs it starts it (seqpipe.worker_client.launch). The worker imports the
heavy libraries and nothing of seqpipe, then waits on a Unix socket. Each job's `seqpipe train|evaluate|baseline|predict` (seqpipe.worker_client) hands it its
argv, folder, environment and standard streams; the worker forks, and the fork becomes that job:
it takes the job's streams, folder and environment, imports seqpipe's modules from disk (an edit
to the code is seen by the next job) and runs the command. The job's process waits, forwards the
signals it gets, and exits with the fork's status. So a job is still one Snakemake job with its
log, exit status, kill and resume; only its start-up is shared.

What stays as it was: every output byte (the fork runs the same code on the same inputs and seeds
its generators itself); a job started before the worker is ready, a job on a cluster node, under
`--sdm conda`/`apptainer` or in a dry run runs in its own process as before. The worker exits when
the Snakemake process that started it is gone, or after `IDLE_S` without a job; a job whose process
is killed (Snakemake's kill) is killed too, since the fork stops when its process's connection closes.
What changes: a job's `benchmark:` file measures its small waiting process, not the fork; set
`preload: false` to measure a job's own memory and CPU (docs/running.md).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import selectors
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

from seqpipe.worker_client import ENV_VAR, LOG_VAR, PARENT_VAR

PRELOAD = ("numpy", "h5py", "torch", "torch.optim", "torch._dynamo", "PIL.Image", "PIL.ImageDraw")
IDLE_S = 600.0  # a worker without a job for this long exits
POLL_S = 0.02  # how often the worker looks for finished jobs and for its Snakemake process
STATS_PREFIX = "seqpipe worker: done: "  # the log's last line: jobs served and CPU seconds, as JSON


def prepare(parent: int, log: str | Path, deployment: tuple = ()) -> str | None:
    """Name the worker of the Snakemake process `parent` for its jobs (the `SEQPIPE_WORKER*` variables; the first
    job that needs it starts it, seqpipe.worker_client.launch); its socket path, or None where jobs must not use one.

    Not under a deployment that brings its own environment (`--sdm conda`/`apptainer`: the jobs must
    run that environment's seqpipe, not this one's)."""
    if {getattr(method, "name", str(method)).upper() for method in deployment} & {"CONDA", "APPTAINER"}:
        return None
    path = os.path.join(tempfile.mkdtemp(prefix="seqpipe-worker-"), "socket")  # short: a socket path has ~100 bytes
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    os.environ.update({ENV_VAR: path, PARENT_VAR: str(parent), LOG_VAR: str(Path(log).resolve())})
    return path


def preload() -> None:
    """Import the heavy libraries the jobs use (none of seqpipe's own modules: a fork imports those from disk)."""
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass


def serve(path: str, parent: int, idle_s: float = IDLE_S) -> None:
    """Accept jobs on `path` until `parent` is gone or no job came for `idle_s`; each job runs in a fork."""
    preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    events = selectors.DefaultSelector()
    events.register(listener, selectors.EVENT_READ)
    jobs: dict[int, socket.socket] = {}
    last, served = time.monotonic(), 0
    while _alive(parent) and (jobs or time.monotonic() - last < idle_s):
        if events.select(POLL_S):
            conn, _ = listener.accept()
            pid = _fork_job(conn, listener, jobs)  # in the fork, this call never returns
            if pid is not None:
                jobs[pid] = conn
                served += 1
        last = _reap(jobs) or last
    for pid in jobs:  # Snakemake is gone: so are its jobs
        _signal(pid, signal.SIGTERM)
    listener.close()
    os.unlink(path)
    Path(path + ".started").unlink(missing_ok=True)
    try:
        os.rmdir(os.path.dirname(path))  # the folder `start` made for it (another folder with files stays)
    except OSError:
        pass
    print(STATS_PREFIX + json.dumps({"jobs": served, "cpu_s": round(cpu_seconds(), 3), "parent": parent}), flush=True)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and its finished forks: the jobs' CPU, which Snakemake,
    whose child the worker is not when it exits, never counts (benchmarks/overhead.py adds it)."""
    own, forks = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + forks.ru_utime + forks.ru_stime


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs (a zombie, dead but not yet waited for, does not)."""
    if pid == os.getppid():
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(pid: int, number: int) -> None:
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        pass


def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
    """A job's request (argv, cwd, env) and its three standard file descriptors."""
    data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
    size = struct.unpack("!I", data[:4])[0]
    while len(data) < 4 + size:
        more = conn.recv(4 + size - len(data))
        if not more:
            raise ConnectionError("the job's process closed the connection before its request was complete")
        data += more
    if len(fds) != 3:
        raise ConnectionError(f"expected the job's 3 standard streams, got {len(fds)} file descriptors")
    return json.loads(data[4 : 4 + size]), fds


def _fork_job(conn: socket.socket, listener: socket.socket, jobs: dict[int, socket.socket]) -> int | None:
    """Fork the job of the request on `conn`; in the parent, its pid (None if the request was broken)."""
    try:
        job, fds = _receive(conn)
    except (OSError, ValueError, struct.error) as err:
        print(f"seqpipe worker: a broken request ({err}); the job runs in its own process", flush=True)
        conn.close()
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        for other in (listener, *jobs.values()):  # the fork keeps only its own job's connection
            other.close()
        _become(job, fds, conn)  # never returns: the fork runs the command and exits with its status
    for fd in fds:
        os.close(fd)
    conn.sendall(f"pid {pid}\n".encode())
    return pid


def _reap(jobs: dict[int, socket.socket]) -> float | None:
    """Tell each finished job's process how its fork ended; the time if any finished."""
    finished = None
    while jobs:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        conn = jobs.pop(pid, None)
        if conn is None:
            continue
        reply = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.waitstatus_to_exitcode(status)}"
        try:
            conn.sendall(f"{reply}\n".encode())
        except OSError:
            pass
        conn.close()
        finished = time.monotonic()
    return finished


def _become(job: dict, fds: list[int], conn: socket.socket) -> None:
    """In the fork: take the job's streams, folder and environment, and run its command as `seqpipe` would."""
    for target, fd in zip((0, 1, 2), fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    for name in (ENV_VAR, PARENT_VAR, LOG_VAR):
        os.environ.pop(name, None)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.argv = ["seqpipe", *job["argv"]]
    threading.Thread(target=_stop_with, args=(conn,), daemon=True).start()
    os._exit(_run_command(job["argv"]))


def _run_command(argv: list[str]) -> int:
    """Run `seqpipe <argv>` as the `seqpipe` script would; its exit status, its output flushed.

    The fork then leaves with os._exit: tearing down an interpreter that holds torch takes about a
    second, and the command's own files and logs are closed and flushed here."""
    import logging
    import traceback

    from seqpipe import cli

    try:
        cli.main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
        if not isinstance(stop.code, (int, type(None))):
            print(stop.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - as the interpreter would: the traceback to stderr, status 1
        traceback.print_exc()
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return code


def _stop_with(conn: socket.socket) -> None:
    """End the fork when its job's process is gone (killed): the connection closes, as a killed process's pipes do."""
    try:
        while conn.recv(1):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    """`python -m seqpipe.worker --socket PATH --parent PID [--idle-s S]` (started by `start`)."""
    parser = argparse.ArgumentParser(prog="python -m seqpipe.worker", description=__doc__.split("\n")[0])
    parser.add_argument("--socket", required=True, help="the Unix socket to listen on")
    parser.add_argument("--parent", type=int, required=True, help="the Snakemake process: the worker exits when it is gone")
    parser.add_argument("--idle-s", type=float, default=IDLE_S, help=f"exit after this long without a job (default: {IDLE_S:g})")
    args = parser.parse_args(argv)
    serve(args.socket, args.parent, args.idle_s)


if __name__ == "__main__":
    main()
