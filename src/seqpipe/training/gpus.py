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
GPUs are counted without starting CUDA in this process (CUDA reads CUDA_VISIBLE_DEVICES once, when
it starts): through NVML (`pynvml`, from the optional nvidia-ml-py package) or a child process;
SEQPIPE_GPUS=0,2,3 names the GPUs to share out instead. A GPU in exclusive-process compute mode
admits one process: sharing it needs NVIDIA's MPS daemon (`compute_mode_problem` says so in the log).
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("seqpipe.train")


def visible_gpus(env: Mapping[str, str] | None = None) -> list[str]:
    """The GPU indices to share out: SEQPIPE_GPUS, else every GPU of the machine, counted without starting
    CUDA in this process (`gpu_count`)."""
    env = os.environ if env is None else env
    if env.get("SEQPIPE_GPUS", "").strip():
        return [g.strip() for g in env["SEQPIPE_GPUS"].split(",") if g.strip()]
    return [str(i) for i in range(gpu_count())]


def nvml_compute_modes() -> list[str] | None:
    """Each GPU's compute mode (`default`, `exclusive_process`, `prohibited`) from NVML, in NVML's order; None
    where NVML's Python bindings (the `nvidia-ml-py` package, module `pynvml`) or the driver are missing."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no NVML here
        return None
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        return [COMPUTE_MODES.get(pynvml.nvmlDeviceGetComputeMode(h), "unknown") for h in handles]
    except Exception:  # noqa: BLE001 - a GPU NVML cannot read: count it, mode unknown
        return None
    finally:
        pynvml.nvmlShutdown()


COMPUTE_MODES = {0: "default", 1: "exclusive_thread", 2: "prohibited", 3: "exclusive_process"}


def gpu_count() -> int:
    """How many GPUs this machine has, without starting CUDA here (CUDA reads CUDA_VISIBLE_DEVICES once, when
    it starts): NVML through `pynvml` where installed; else, where /dev/nvidia<N> device files exist,
    `torch.cuda.device_count()` in a child process; else 0."""
    modes = nvml_compute_modes()
    if modes is not None:
        return len(modes)
    files = sum(1 for p in Path("/dev").glob("nvidia[0-9]*") if p.name[6:].isdigit())
    if not files:
        return 0
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    try:
        done = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"], capture_output=True,
                              text=True, env=env, timeout=300, check=True)
        return int(done.stdout.split()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return files


def compute_mode_problem(modes: Mapping[str, str], jobs_per_gpu: int, env: Mapping[str, str] | None = None) -> str | None:
    """What to do when jobs share a GPU (`jobs_per_gpu` > 1) that lets one process in (`modes`: GPU -> NVML compute
    mode); None when sharing works (default mode, one job per GPU, or an MPS control daemon's pipe folder exists)."""
    env = os.environ if env is None else env
    exclusive = sorted(gpu for gpu, mode in modes.items() if mode in ("exclusive_process", "exclusive_thread"))
    if jobs_per_gpu <= 1 or not exclusive or Path(env.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps")).exists():
        return None
    return (f"GPU(s) {', '.join(exclusive)} are in exclusive-process compute mode (nvidia-smi -q -d COMPUTE), which lets one "
            f"process at a time use a GPU, but up to {jobs_per_gpu} training jobs are set to share each GPU: the second one "
            "fails with 'CUDA-capable device(s) is/are busy or unavailable'. Start NVIDIA's MPS daemon on the node "
            "(`nvidia-cuda-mps-control -d`; on SLURM often `--gres=mps` or the cluster's MPS option), which lets several "
            "processes share a GPU in this mode; or run one training job per GPU (profile resources: no packing, "
            "gpu_share 1); or ask the administrators for the default compute mode (nvidia-smi -c DEFAULT).")


def warn_about_compute_mode(jobs_per_gpu: int) -> None:
    """Log `compute_mode_problem` for this machine's GPUs (nothing where NVML is not available)."""
    modes = nvml_compute_modes()
    problem = compute_mode_problem({str(i): m for i, m in enumerate(modes or [])}, jobs_per_gpu)
    if problem:
        log.warning("%s", problem)


def data_budget_mb(budget_mb: float, free_mb: float, total_mb: float, share: int = 1) -> float:
    """The memory budget for a run's splits on its GPU: the host budget, capped at half of what this job may
    allocate there (its 0.95 / `share` of the GPU when packed, and no more than is free); the other half is
    for the model, optimizer and activations."""
    mine = min(free_mb, total_mb * 0.95 / share) if share > 1 else free_mb
    return min(budget_mb, mine / 2)


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
    if device not in ("cuda", "auto") or "CUDA_VISIBLE_DEVICES" in env:
        yield None
        return
    gpus = visible_gpus(env) if gpus is None else gpus
    if not gpus:
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
    if Path(handle.name).name != f"gpu{gpu}.slot0.lock":  # sharing a GPU: does its compute mode allow that?
        warn_about_compute_mode(jobs_per_gpu)
    env["CUDA_VISIBLE_DEVICES"] = gpu
    log.info("using GPU %s (lock %s)", gpu, handle.name)
    try:
        yield gpu
    finally:
        env.pop("CUDA_VISIBLE_DEVICES", None)
        handle.close()
