"""One GPU per concurrent training job on one machine: a lock-file allocator.

Snakemake's `gpu` resource caps how many training jobs run at once but does not say which GPU a
job gets, so without help every job lands on GPU 0 while the others idle. Before CUDA starts,
`seqpipe train --gpu-locks DIR` (device cuda or auto, CUDA_VISIBLE_DEVICES unset) claims a slot: an
exclusive, non-blocking `fcntl` lock on `DIR/gpu<i>.slot<k>.lock`, trying slot 0 of every GPU before
slot 1 of any. So concurrent jobs spread over the GPUs, and share one only when there are more jobs
than GPUs (the profile's `gpu` resource caps how many run at once). The job then sees only its GPU
(CUDA_VISIBLE_DEVICES=i). The kernel drops the lock when the process
ends, however it ends, so a killed job never leaves a GPU taken.

A cluster scheduler (SLURM, HTCondor) sets CUDA_VISIBLE_DEVICES itself: then nothing is claimed.
GPUs are counted with NVML, which does not start CUDA (CUDA reads CUDA_VISIBLE_DEVICES once, when
it starts); SEQPIPE_GPUS=0,2,3 names the GPUs to share out instead.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("seqpipe.train")


def visible_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """The GPU indices to share out: SEQPIPE_GPUS, else every GPU NVML (or /dev/nvidia<N>) shows."""
    env = os.environ if env is None else env
    if env.get("SEQPIPE_GPUS", "").strip():
        return [g.strip() for g in env["SEQPIPE_GPUS"].split(",") if g.strip()]
    try:
        import torch

        count = torch.cuda._raw_device_count_nvml()  # no CUDA start: CUDA_VISIBLE_DEVICES can still be set
    except Exception:  # noqa: BLE001 - NVML missing or failing: count device files instead
        count = -1
    if count < 0:
        count = sum(1 for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit())
    return [str(i) for i in range(max(count, 0))]


def slot_order(gpus: list[str], jobs_per_gpu: int) -> list[tuple[str, int]]:
    """(gpu, slot) pairs in claiming order: slot 0 of every GPU, then slot 1, ..."""
    return [(gpu, slot) for slot in range(jobs_per_gpu) for gpu in gpus]


def try_claim(lock_dir: Path, gpus: list[str], jobs_per_gpu: int):
    """Lock the first free slot; (gpu, open lock file) or None when every slot is taken."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    for gpu, slot in slot_order(gpus, jobs_per_gpu):
        handle = open(lock_dir / f"gpu{gpu}.slot{slot}.lock", "a+")  # noqa: SIM115 - held for the job's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        return gpu, handle
    return None


@contextmanager
def claimed_gpu(lock_dir: str | Path, device: str, jobs_per_gpu: int = 64, env: dict | None = None,
                gpus: list[str] | None = None, poll_s: float = 1.0) -> Iterator[str | None]:
    """Hold one GPU (the least shared) for the block, with CUDA_VISIBLE_DEVICES set in `env` (os.environ by default).

    Yields the GPU index, or None when nothing is claimed: device cpu/mps/cuda:N, CUDA_VISIBLE_DEVICES
    already set (a scheduler chose), or no GPU. Waits while all `jobs_per_gpu` slots of every GPU are taken.
    """
    env = os.environ if env is None else env
    gpus = visible_gpus(env) if gpus is None else gpus
    if device not in ("cuda", "auto") or "CUDA_VISIBLE_DEVICES" in env or not gpus:
        yield None
        return
    if jobs_per_gpu < 1:
        raise ValueError(f"jobs per GPU is {jobs_per_gpu}; expected 1 or more")
    claim, waited = try_claim(Path(lock_dir), gpus, jobs_per_gpu), 0.0
    while claim is None:
        if waited % 60 == 0:
            log.info("all %d GPU slots under %s are taken; waiting for one", len(gpus) * jobs_per_gpu, lock_dir)
        time.sleep(poll_s)
        waited += poll_s
        claim = try_claim(Path(lock_dir), gpus, jobs_per_gpu)
    gpu, handle = claim
    env["CUDA_VISIBLE_DEVICES"] = gpu
    log.info("using GPU %s (lock %s)", gpu, handle.name)
    try:
        yield gpu
    finally:
        env.pop("CUDA_VISIBLE_DEVICES", None)
        handle.close()
