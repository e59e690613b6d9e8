"""A job the user forces computes again instead of being answered from the run cache, and raw files removed or
changed since the manifest reach the features job's cache key (issue 20 item 7)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from seqpipe import runcache
from seqpipe.forced import ENV_VAR, forced_setting, is_forced
from projects import copy_workflow

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def test_what_the_command_line_forced():
    env = lambda **kw: {ENV_VAR: json.dumps(forced_setting(**kw))}  # noqa: E731
    assert is_forced("features", ["a.h5"], env(forcerun={"features"}))
    assert not is_forced("train", ["a.h5"], env(forcerun={"features"}))
    assert is_forced("train", ["x/y.pt"], env(forceall=True))
    assert is_forced("train", ["results/x.pt", "b"], env(forcetargets=True, targets=["./results/x.pt"]))
    assert not is_forced("train", ["results/x.pt"], env(forcetargets=False, targets=["results/x.pt"]))
    assert not is_forced("train", ["x"], {}) and not is_forced("train", ["x"], {ENV_VAR: ""})


def test_a_forced_job_is_computed_again_and_still_stored(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write(tmp_path / "in.txt", "data")
    settings = {"enabled": True, "dir": "cache"}
    params = json.dumps({"x": 1})
    make = lambda text: [sys.executable, "-c", f"import pathlib; pathlib.Path('out.txt').write_text({text!r})"]  # noqa: E731
    assert runcache.run_cached(settings, "t", params, [data], ["out.txt"], [], make("first")) == 0
    assert runcache.run_cached(settings, "t", params, [data], ["out.txt"], [], make("second")) == 0
    assert Path("out.txt").read_text() == "first"  # not forced: restored, the command did not run
    assert runcache.run_cached(settings, "t", params, [data], ["out.txt"], [], make("third"), forced=True) == 0
    assert Path("out.txt").read_text() == "third"  # forced: computed again
    os.remove("out.txt")
    assert runcache.run_cached(settings, "t", params, [data], ["out.txt"], [], make("fourth")) == 0
    assert Path("out.txt").read_text() == "third"  # the forced result was stored in place of the old entry
    assert len(runcache.entries("cache")) == 1
    fail = [sys.executable, "-c", "raise SystemExit(3)"]
    assert runcache.run_cached(settings, "t", params, [data], ["out.txt"], [], fail, forced=True) == 3


def test_raw_files_reach_the_key(tmp_path):
    """A raw file removed or changed under a folder given as a tree changes the key; the same files elsewhere do not."""
    raw = tmp_path / "raw"
    for i in range(3):
        write(raw / f"take{i}.mid", f"midi {i}")
    manifest = write(tmp_path / "m.json", "{}")
    key = runcache.cache_key("features", "{}", [manifest], trees=[raw])
    assert key == runcache.cache_key("features", "{}", [manifest], trees=[raw])
    moved = tmp_path / "moved"
    shutil.copytree(raw, moved, copy_function=shutil.copy2)
    assert runcache.cache_key("features", "{}", [manifest], trees=[moved]) == key
    (raw / "take1.mid").unlink()
    removed = runcache.cache_key("features", "{}", [manifest], trees=[raw])
    assert removed != key
    write(raw / "take0.mid", "changed, and longer")
    assert runcache.cache_key("features", "{}", [manifest], trees=[raw]) not in (key, removed)
    assert runcache.cache_key("features", "{}", [manifest]) != key  # no tree: the key of a job without raw files


def snakemake(work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([str(BIN / "snakemake"), "--cores", "2", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_forcerun_features_is_not_answered_from_the_cache(tmp_path):
    """Half of the demo's Groove files deleted, then `--forcerun features` (or `-R features`): the features job runs
    and refuses, naming the missing files, as it does with the cache off; before, it exited 0 with the old HDF5."""
    work = copy_workflow(tmp_path)
    (work / "small.yaml").write_text(yaml.safe_dump({"demo": {"groove": {"n_items": 24}}}))
    target = "results/features/groove/groove_grid.h5"
    proc = snakemake(work, target, "--configfile", "small.yaml")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    built = (work / target).read_bytes()
    midi = sorted((work / "resources/raw/groove").rglob("*.mid"))
    assert len(midi) >= 10
    for path in midi[::2]:
        path.unlink()
    for force in (["--forcerun", "features"], ["-R", "features"]):
        proc = snakemake(work, target, "--configfile", "small.yaml", *force)
        log = (work / "logs/features/groove/groove_grid.log").read_text()
        assert proc.returncode != 0, log
        assert "forced on the command line" in log and "restored" not in log, log
        assert midi[0].name in log, log  # the features job names the missing files
    assert not (work / target).exists() or (work / target).read_bytes() == built
