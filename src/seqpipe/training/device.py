"""The device a run trains on, its random seeds, and what a GPU job sets up before its first kernel."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

from seqpipe.training import backends, gpus

log = logging.getLogger("seqpipe.train")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (every device); returns the generator that shuffles the training split.

    The kernel switches that make a GPU run deterministic are `backends.configure`'s job.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def select_device(preference: str) -> torch.device:
    """auto: cuda, then mps, then cpu; `cuda` is the first GPU this process sees (CUDA_VISIBLE_DEVICES), `cuda:N` the N-th.

    A GPU that is asked for but not there is an error, not a silent CPU run.
    """
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        warn_unused_gpus()
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if not torch.cuda.is_available():
            raise ValueError(f"training.device: {preference}, but torch sees no GPU (CUDA_VISIBLE_DEVICES={visible!r}, torch "
                             f"{torch.__version__}); run on a GPU node, or set training.device to auto or cpu")
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"training.device: {preference}, but this process sees {torch.cuda.device_count()} GPU(s) "
                             f"(CUDA_VISIBLE_DEVICES={visible!r}); use cuda:0..cuda:{torch.cuda.device_count() - 1} or plain cuda")
        device = torch.device("cuda", index)
    return device


def warn_unused_gpus() -> None:
    """`device: auto` training on the CPU of a machine with GPUs (unless CUDA_VISIBLE_DEVICES hides them): say so."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
        return  # GPUs hidden on purpose
    found = gpus.visible_gpus()
    if found:
        log.warning("training.device: auto, and this machine has %d GPU(s), but torch sees none (torch %s, built for CUDA "
                    "%s): training on the CPU. A CPU-only torch, or a driver older than torch's CUDA, does this: install a "
                    "torch built for this driver's CUDA (nvidia-smi shows its version), or set training.device: cuda to "
                    "make this an error, or cpu to train on the CPU without this warning", len(found), torch.__version__,
                    torch.version.cuda or "none (a CPU-only build)")


def gpu_name(device: torch.device) -> str | None:
    """The GPU's name, for events.jsonl (None off CUDA)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else None


def set_up_device(preference: str, deterministic: bool, gpu_share: int = 1) -> torch.device:
    """The device chosen, its kernels configured (before the first cuBLAS call) and, on a GPU shared by
    `gpu_share` packed jobs, this process's share of its memory."""
    device = select_device(preference)
    switches = backends.configure(deterministic, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # the default for anything that names no device
        if gpu_share > 1:
            torch.cuda.set_per_process_memory_fraction(0.95 / gpu_share, device)
            gpus.warn_about_compute_mode(gpu_share)
    log.info("device %s, kernels %s", device, switches)
    return device


def data_budget_mb(budget: float, device: torch.device, gpu_share: int = 1) -> float:
    """The memory budget of the in-memory splits: on a GPU, within this job's share of its free memory."""
    if device.type != "cuda":
        return budget
    free, total = torch.cuda.mem_get_info(device)
    return gpus.data_budget_mb(budget, free / 2**20, total / 2**20, gpu_share)
