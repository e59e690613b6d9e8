"""PyTorch's kernel settings for a run: deterministic where promised, fast where not.

`training.deterministic: true` on a GPU: cuBLAS gets a fixed workspace (CUBLAS_WORKSPACE_CONFIG,
set before the first cuBLAS call), cuDNN picks deterministic algorithms without benchmarking,
attention runs on the math kernel (the flash and memory-efficient kernels' backward passes
accumulate in a run-dependent order), matmuls and convolutions run in full float32 (TF32 off: its
results differ between GPU generations), and `torch.use_deterministic_algorithms(True)` turns every
remaining non-deterministic kernel into an error. Before training starts, `nondeterministic_ops`
runs one step in warn-only mode and collects the name of every such kernel the model uses, so a run
that cannot be deterministic fails at once with the full list instead of at the first one, hours in.

`deterministic: false`: cuDNN benchmarks its algorithms, float32 matmuls and convolutions use TF32,
and freshly allocated memory is not filled (torch fills it with NaN in deterministic mode).

CPU kernels are deterministic at a fixed thread count already, and `use_deterministic_algorithms`
costs about a second of imports per job, so CPU runs leave the switches alone.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Callable

import torch
import torch.utils.deterministic  # noqa: F401 - its switch is set below
from torch.nn.attention import SDPBackend, sdpa_kernel

CUBLAS_WORKSPACE = ":4096:8"
# torch's text: "<op> does not have a deterministic implementation, but you set ...", where <op> may have
# spaces ("kthvalue CUDA", "median CUDA with indices output", "adaptive_max_pool2d_backward_cuda")
NONDETERMINISTIC = re.compile(r"^(?P<op>.+?) does not have a deterministic implementation")


def configure(deterministic: bool, device: torch.device) -> dict:
    """Set the process's kernel switches for a run on `device`; returns what was set (for events.jsonl)."""
    if device.type == "cpu":
        return {"deterministic": deterministic, "note": "cpu: deterministic at a fixed thread count"}
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        # full float32: TF32 results repeat on one GPU model only (and cuDNN's switch is on by default)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.utils.deterministic.fill_uninitialized_memory = True
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.utils.deterministic.fill_uninitialized_memory = False
    return {"deterministic": deterministic, "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32, "cublas_workspace": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
            "fill_uninitialized_memory": torch.utils.deterministic.fill_uninitialized_memory}


def attention_kernels(deterministic: bool, device: torch.device):
    """The context a forward runs in: the math attention kernel when a GPU run must be deterministic."""
    if deterministic and device.type != "cpu":
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def cudnn_off():
    """cuDNN disabled (its RNNs have no double backward: gradient penalties need the native kernels);
    the other cuDNN switches keep their values (`cudnn.flags` would reset them)."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=False, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic, allow_tf32=cudnn.allow_tf32)


def nondeterministic_ops(step: Callable[[], object]) -> list[str]:
    """Run `step` with deterministic algorithms in warn-only mode; the sorted names of the kernels that warned.

    The process's deterministic-algorithms switch is restored afterwards.
    """
    enabled, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step()
    finally:
        torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    found = (NONDETERMINISTIC.match(str(w.message)) for w in caught)
    return sorted({m["op"] for m in found if m})
