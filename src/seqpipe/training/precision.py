"""Mixed precision: which autocast dtype a run uses and whether it needs a gradient scaler.

`training.amp` is `bf16` (the default), `fp16` or `off` (YAML reads a bare `off` as false, so false
means off too). Autocast runs only on CUDA; CPU and MPS train in float32 whatever the setting, so
CPU results stay byte-identical. bf16 has float32's exponent range, so it needs no loss scaling; a
GPU without native bf16 (before Ampere: V100, T4, which torch would emulate slowly) falls back to fp16. fp16 trains with a `torch.amp.GradScaler`:
a step whose gradients overflow is skipped (and the scale lowered) instead of aborting the run.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Precision:
    """The autocast dtype of the forward pass (None: float32) and whether gradients are scaled."""

    device_type: str
    dtype: torch.dtype | None = None
    scaler: bool = False
    note: str = ""

    def autocast(self):
        """The context the forward pass and the losses run in."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def make_scaler(self) -> torch.amp.GradScaler:
        """A GradScaler, enabled only for fp16."""
        return torch.amp.GradScaler(self.device_type, enabled=self.scaler)

    def describe(self) -> dict:
        """What events.jsonl records about the run's precision."""
        name = {None: "float32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]
        return {"autocast": name, "grad_scaler": self.scaler, **({"note": self.note} if self.note else {})}


def amp_setting(value: str | bool) -> str:
    """`training.amp` as one of bf16, fp16, off (false -> off, true -> bf16)."""
    if value is False or value == "off":
        return "off"
    if value is True:
        return "bf16"
    if value not in DTYPES:
        raise ValueError(f"training.amp: {value!r}; expected bf16, fp16 or off")
    return value


def choose_precision(amp: str | bool, device: torch.device, bf16_supported: bool | None = None) -> Precision:
    """The precision a run uses for `training.amp` on `device` (`bf16_supported`: None asks the GPU)."""
    setting = amp_setting(amp)
    if device.type != "cuda" or setting == "off":
        why = f"amp {setting} has no effect on {device.type}" if setting != "off" else ""
        return Precision(device.type, note=why)
    if setting == "bf16":
        # native bf16 only (Ampere on): an emulated bf16 (V100, T4) is slower than fp16 with a scaler
        supported = torch.cuda.is_bf16_supported(including_emulation=False) if bf16_supported is None else bf16_supported
        if supported:
            return Precision("cuda", torch.bfloat16)
        return Precision("cuda", torch.float16, scaler=True, note="this GPU has no bf16: fp16 with a gradient scaler instead")
    return Precision("cuda", torch.float16, scaler=True)
