"""Checkpoints as plain dicts, written atomically and loadable with `torch.load(..., weights_only=True)`.

A checkpoint holds everything a run needs to continue bit for bit: epoch, model, optimizer,
scheduler and grad-scaler state, early-stopping state, the history of facts, and the random
number generators (torch, CUDA, NumPy, Python and the shuffling generator) converted to tensors
and lists, since weights-only loading refuses NumPy objects. `resume_key` ties the state to the
job's config hash, the data file and the training code, so a changed job never continues an old
run.

Where the resume state lives: Snakemake deletes an incomplete job's declared outputs before it
reruns it (`--rerun-incomplete`, `--retries`, an evicted HTCondor job), so the train rule keeps it
outside them, under `results/resume/<task>/<model>/<seed>/` (`--resume-dir`), and training clears
it after a successful run. Without a resume folder the run folder's own last.pt is the state.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np
import torch

from seqpipe import codedeps
from seqpipe.io import atomic_path, config_hash, sha256_file

SRC = Path(__file__).resolve().parents[2]
STATE_FILES = ("last.pt", "best.pt", "model.pt")


def save(path: str | Path, state: dict) -> None:
    """torch.save a plain dict atomically, through an open file: torch names the zip's folder after a path it
    is given (the temporary file's random name), and `archive` for a file object, so the same state gives
    the same bytes."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(state, fh)


def load(path: str | Path) -> dict:
    """A checkpoint on the CPU, weights only (no pickled code runs)."""
    return torch.load(path, map_location="cpu", weights_only=True)


def cuda_index(device: torch.device | None) -> int | None:
    """The GPU index whose generator a run draws from: `device`'s, else the current one; None without CUDA in use."""
    if device is not None and device.type != "cuda":
        return None
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return None
    return device.index if device is not None and device.index is not None else torch.cuda.current_device()


def rng_state(generator: torch.Generator, device: torch.device | None = None) -> dict:
    """Every random number generator training draws from, as tensors and lists.

    CUDA: only the generator of the GPU the run trains on (`cuda` holds one state, or none), so the
    state restores on a machine that shows a different number of GPUs.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    index = cuda_index(device)
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(index)] if index is not None else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
        "shuffle": generator.get_state(),
    }


def set_rng_state(state: dict, generator: torch.Generator, device: torch.device | None = None) -> None:
    """Put every generator back where `rng_state` found it; the saved CUDA state goes to the GPU this run trains on.

    (Older checkpoints hold one state per GPU that was visible; the first, the GPU they trained on, is used.)
    """
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and (device is None or device.type == "cuda"):
        index = device.index if device is not None and device.index is not None else torch.cuda.current_device()
        torch.cuda.set_rng_state(state["cuda"][0], index)
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    generator.set_state(state["shuffle"])


def restore_scaler(scaler: torch.amp.GradScaler, state: dict | None) -> str:
    """Load a saved GradScaler state where there is one to load; returns what was done (for the log).

    A run saved with the scaler off (CPU, bf16 or amp off) has `{}`: an enabled scaler then starts
    from its initial scale instead of refusing the empty state; a disabled scaler ignores any state.
    """
    if not scaler.is_enabled():
        return "scaler off"
    if not state:
        return "scaler on, saved without one: initial scale"
    scaler.load_state_dict(state)
    return "scaler restored"


KERNEL_FLAGS = ("fused", "foreach", "capturable")


def restore_optimizer(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load a saved optimizer state, keeping this run's kernel choice (`fused`, `foreach`, `capturable`).

    `load_state_dict` would restore the saving machine's flags: a state saved on a CPU (fused None)
    resumed on a GPU would step unfused while the optimizer still tells the fp16 GradScaler it takes
    the scale on the device (torch then asserts on the first step). The flags are set in the saved
    groups before loading, so the per-parameter state (Adam's `step`) is cast for the kernel that runs.
    """
    groups = [{**saved, **{k: now[k] for k in KERNEL_FLAGS if k in now}}
              for saved, now in zip(state["param_groups"], optimizer.param_groups)]
    optimizer.load_state_dict({**state, "param_groups": groups})


def code_digest(code_stamp: str | Path | None = None) -> str:
    """Hash of the source files training runs (its seqpipe import closure). With `code_stamp` (the rule's
    `results/code/seqpipe.training.train.sha256`, the checksums of that same closure), the stamp's hash: the
    job then parses no source file."""
    if code_stamp is not None:
        return sha256_file(code_stamp)[:16]
    digest = hashlib.sha256()
    for path in codedeps.source_files(("seqpipe.training.train",), str(SRC)):
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def data_fingerprint(path: str | Path) -> str:
    """Size and modification time of the data file (a file too large to hash on every start)."""
    stat = Path(path).stat()
    if stat.st_size <= 64 * 2**20:
        return sha256_file(path)[:16]
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def resume_key(job: dict, data_path: str | Path, code_stamp: str | Path | None = None) -> dict:
    """What must match for a saved state to continue: the job, the data file and the code (code_digest)."""
    return {"config_hash": config_hash(job), "data": data_fingerprint(data_path), "code": code_digest(code_stamp)}


def find_resume_state(folder: Path, key: dict) -> tuple[dict | None, str]:
    """The unfinished state in `folder`/last.pt saved under `key`, or None and why not."""
    path = folder / "last.pt"
    if not path.exists():
        return None, "no saved state"
    try:
        state = load(path)
    except Exception as err:  # noqa: BLE001 - a damaged file must not stop a fresh start
        return None, f"{path} could not be read ({type(err).__name__}: {err})"
    if state.get("complete", False):
        return None, f"{path} is a finished run"
    saved = state.get("resume_key", {})
    changed = [k for k in key if saved.get(k) != key[k]]
    if changed:
        return None, f"{path} was saved for another {'/'.join(changed)} ({', '.join(changed)} changed)"
    return state, f"{path} (epoch {state['epoch']})"


def remove_partial(folder: Path) -> None:
    """Remove the temporary files of checkpoint writes that a kill cut short (`.<name>.*.part`)."""
    for name in STATE_FILES:
        for part in folder.glob(f".{name}.*.part"):
            part.unlink(missing_ok=True)


def clear(folder: Path) -> None:
    """Remove the resume state of a finished run (the files training wrote, then the folder if empty)."""
    remove_partial(folder)
    for name in ("last.pt", "best.pt"):
        (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass
