"""A run cache (like DVC's): a job whose exact settings and inputs were computed before gets its
outputs back from the cache instead of computing them again.

`seqpipe run-cache [--cache JSON] --kind KIND --params JSON --inputs FILE... --outputs FILE... -- COMMAND...`
wraps one job's command. The key is the SHA-256 of the job's parameters (canonical JSON) and of
the content of its inputs (data, code stamp, starting checkpoint), never their paths, so a moved
copy and a setting switched back to an earlier value both hit the cache. On a hit the outputs are
copied back (checked against their recorded SHA-256) and the command does not run; on a miss the
command runs and its outputs are stored under `<dir>/<kind>/<key>/` (written to a temporary
folder, then renamed: an entry is complete or absent). Every model ever trained therefore stays in
the cache after Snakemake deletes it to retrain that cell, under its usual path
(`<dir>/train/<key>/files/results/runs/...`): `seqpipe run-cache list` finds it.

Snakemake's own between-workflow cache (`cache: True`) needs single-output or `multiext` rules
and a `--cache` flag on every call; a training job writes six files in two folders.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from seqpipe.config.types import runtime_from_env
from seqpipe.raw.manifest import tree_state
from seqpipe.forced import is_forced

log = logging.getLogger("seqpipe.runcache")
CHUNK = 1 << 20
ENTRY = "entry.json"


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's content, read in 1 MiB chunks (memory flat in the file's size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def input_sha256(path: str | Path, memo_dir: str | Path | None = None) -> str:
    """SHA-256 of an input file, remembered in `memo_dir` by path, size, inode and modification
    time (as DVC does), so a 1,000-cell sweep hashes its HDF5 file once, not once per job."""
    if memo_dir is None:
        return file_sha256(path)
    info = os.stat(path)
    stat_key = [info.st_size, info.st_mtime_ns, info.st_ino]
    memo = Path(memo_dir) / f"{hashlib.sha256(os.path.abspath(path).encode()).hexdigest()}.json"
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
        if saved["stat"] == stat_key:
            return saved["sha256"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        pass
    digest = file_sha256(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=memo.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"path": os.path.abspath(path), "stat": stat_key, "sha256": digest}, fh)
    os.replace(tmp, memo)
    return digest


def cache_key(kind: str, params: str | dict, inputs: list[str | Path], memo_dir: str | Path | None = None,
              trees: list[str | Path] = ()) -> str:
    """The key of a job: its kind, its parameters (canonical JSON) and its inputs' content, in order;
    with `trees`, also the state of those folders (every file's path, size and modification time,
    `seqpipe.raw.manifest.tree_state`): raw files changed or removed since the manifest change the key."""
    params = json.loads(params) if isinstance(params, str) else params
    record = {"kind": kind, "params": params, "inputs": [input_sha256(path, memo_dir) for path in inputs]}
    if trees:
        record["trees"] = [tree_state(tree) for tree in trees]
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def entry_dir(cache_dir: str | Path, kind: str, key: str) -> Path:
    """Folder of one cache entry."""
    return Path(cache_dir) / kind / key[:2] / key


def _copy_checked(src: Path, dst: Path, sha256: str | None = None) -> str:
    """Copy `src` to `dst` atomically (a temporary file renamed into place); return the SHA-256 of
    what was copied and refuse (ValueError) when it differs from `sha256`."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    try:
        with open(src, "rb") as fin, os.fdopen(fd, "wb") as fout:
            while chunk := fin.read(CHUNK):
                digest.update(chunk)
                fout.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ValueError(f"{src}: SHA-256 {digest.hexdigest()} differs from the recorded {sha256}")
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def stored_name(name: str, index: int) -> str:
    """Where an output lives inside an entry: under `files/` by its own relative path, so an earlier
    model is found by its usual name (a path outside the project gets a numbered name)."""
    path = Path(name)
    if path.is_absolute() or ".." in path.parts:
        return f"files/{index}{path.suffix}"
    return f"files/{path.as_posix()}"


def restore(cache_dir: str | Path, kind: str, key: str, outputs: list[str], extra: list[str] = ()) -> bool:
    """Copy a cached entry's files to `outputs` (and the `extra` files it holds); False when there
    is no complete entry. A damaged entry is reported, removed and treated as a miss."""
    folder = entry_dir(cache_dir, kind, key)
    try:
        entry = json.loads((folder / ENTRY).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    files = {f["name"]: f for f in entry["files"]}
    if not all(name in files for name in outputs):
        log.warning("run cache: entry %s lacks outputs %s; computing them", folder, sorted(set(outputs) - set(files)))
        return False
    try:
        for name in [*outputs, *(e for e in extra if e in files)]:
            _copy_checked(folder / files[name]["stored"], Path(name), files[name]["sha256"])
    except (OSError, ValueError) as err:
        log.warning("run cache: entry %s is damaged (%s); removing it and computing the outputs", folder, err)
        shutil.rmtree(folder, ignore_errors=True)
        return False
    return True


def store(cache_dir: str | Path, kind: str, key: str, outputs: list[str], extra: list[str] = (), about: dict | None = None,
          replace: bool = False) -> Path:
    """Store a finished job's outputs (and those `extra` files that exist) as one entry; returns its folder.
    An existing entry is kept, or with `replace` (a forced job) swapped for the new one."""
    folder = entry_dir(cache_dir, kind, key)
    if (folder / ENTRY).exists():
        if not replace:
            return folder
        old = folder.with_name(f".{key}.replaced.{os.getpid()}")
        os.rename(folder, old)
        shutil.rmtree(old, ignore_errors=True)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{key}."))
    try:
        files = []
        for i, name in enumerate([*outputs, *(e for e in extra if Path(e).is_file())]):
            stored = stored_name(name, i)
            files.append({"name": name, "stored": stored, "sha256": _copy_checked(Path(name), tmp / stored)})
        entry = {"key": key, "kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files, **(about or {})}
        (tmp / ENTRY).write_text(json.dumps(entry, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        try:
            os.rename(tmp, folder)
        except OSError:  # another job stored the same key first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def entries(cache_dir: str | Path, under: str = "") -> list[dict]:
    """Every complete entry whose outputs lie under `under` (a path prefix), oldest first."""
    found = []
    for path in sorted(Path(cache_dir).glob(f"*/*/*/{ENTRY}")):
        entry = json.loads(path.read_text(encoding="utf-8"))
        if any(f["name"].startswith(under) for f in entry["files"]):
            found.append({**entry, "folder": str(path.parent)})
    return sorted(found, key=lambda e: (e["created"], e["key"]))


def run_command(command: list[str] | Callable[[], int]) -> int:
    """Run a job's command and return its exit status: a callable in this process, else a subprocess."""
    return command() if callable(command) else subprocess.call(command)


def in_process(command: list[str]) -> list[str] | Callable[[], int]:
    """A `seqpipe <command> ...` as a call in this process (one Python start per job instead of two: the
    wrapped command imports torch after the cache lookup, and a hit imports nothing); other commands unchanged."""
    if not command or Path(command[0]).name != "seqpipe":
        return command

    def call() -> int:
        from seqpipe.cli import main as seqpipe_main

        try:
            seqpipe_main(command[1:])
        except SystemExit as done:
            return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        return 0

    return call


def run_cached(settings: dict, kind: str, params: str, inputs: list[str], outputs: list[str], extra: list[str],
               command: list[str] | Callable[[], int], forced: bool = False, trees: list[str] = ()) -> int:
    """Restore the outputs from the cache, or run `command` (argv, or a callable returning an exit status) and
    store them; returns the exit status. A `forced` job (the user forced it: seqpipe.forced) runs without
    reading the cache, and its outputs are stored."""
    if not settings.get("enabled", True):
        return run_command(command)
    cache_dir = settings.get("dir") or "resources/cache"
    key = cache_key(kind, params, inputs, Path(cache_dir) / "hashes", trees)
    if forced:
        log.info("run cache: forced on the command line; computing %s again (the cache is not read)", ", ".join(outputs))
    elif restore(cache_dir, kind, key, outputs, extra):
        log.info("run cache: restored %s from %s (key %s); not computed again", ", ".join(outputs), entry_dir(cache_dir, kind, key), key)
        return 0
    else:
        log.info("run cache: no entry for key %s; running the job", key)
    status = run_command(command)
    if status == 0:
        try:
            folder = store(cache_dir, kind, key, outputs, extra, {"params": json.loads(params)}, replace=forced)
            log.info("run cache: stored the outputs in %s", folder)
        except (OSError, ValueError) as err:  # the outputs stand; only the cache entry is missing
            log.warning("run cache: could not store the outputs in %s: %s", cache_dir, err)
    return status


def main(argv: list[str] | None = None) -> int:
    """`seqpipe run-cache [list] ...`: run a job's command through the run cache, or list entries."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["list"]:
        parser = argparse.ArgumentParser(prog="seqpipe run-cache list", description="List the cached outputs, oldest first.")
        parser.add_argument("--dir", default="resources/cache", help="the cache folder (default: %(default)s)")
        parser.add_argument("under", nargs="?", default="", help="only outputs under this path, e.g. results/runs/groove_style/gru/0")
        args = parser.parse_args(argv[1:])
        for entry in entries(args.dir, args.under):
            names = ", ".join(f["name"] for f in entry["files"])
            print(f"{entry['created']}  {entry['folder']}  {names}")
        return 0
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(
        prog="seqpipe run-cache", epilog="`seqpipe run-cache list [UNDER]` lists the cached outputs.",
        usage="seqpipe run-cache --kind KIND --params JSON [--inputs F ...] --outputs F ... [--extra F ...] -- COMMAND ...",
        description="Run a job's command through the run cache: when a job with the same params and input contents ran "
        "before, restore its outputs instead of running it; otherwise run it and keep its outputs.")
    runtime = runtime_from_env()
    parser.add_argument("--cache", default=json.dumps(runtime.to_dict()["cache"] if runtime else {}, sort_keys=True),
                        help='the `cache` config section as JSON, {"enabled": true, "dir": "resources/cache"} '
                             "(default: the cache section of $SEQPIPE_RUNTIME, seqpipe.config.types.Runtime)")
    parser.add_argument("--kind", required=True, help="the job kind (rule name): train, features")
    parser.add_argument("--params", required=True, help="the job's parameters as JSON")
    parser.add_argument("--inputs", nargs="*", default=[], help="the input files whose content determines the outputs")
    parser.add_argument("--outputs", nargs="+", required=True, help="the job's declared outputs (restored or stored)")
    parser.add_argument("--extra", nargs="*", default=[], help="files kept with the outputs when they exist (not declared outputs)")
    parser.add_argument("--trees", nargs="*", default=[], help="folders whose files (path, size, modification time) are part of the key")
    parser.add_argument("--forced", action="store_true", help="compute again without reading the cache (default: when $SEQPIPE_FORCED names the job)")
    args = parser.parse_args(argv[:split])
    if split == len(argv):
        parser.error("give the command to run after `--`")
    forced = args.forced or is_forced(args.kind, args.outputs)
    command = in_process(argv[split + 1 :])
    return run_cached(json.loads(args.cache), args.kind, args.params, args.inputs, args.outputs, args.extra, command,
                      forced=forced, trees=args.trees)
