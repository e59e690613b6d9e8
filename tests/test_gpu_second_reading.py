"""The GPU path's second reading (issue 23), checked on the CPU: a CPU-saved optimizer state resumed
fused with a gradient scaler, skipped fp16 steps counted from the scaler, the batch order independent
of the memory budget, the determinism probe's kernel names, sync-free models, the bf16 check, TF32
in deterministic mode, a GPU that NVML sees but torch cannot use, the packed GPU memory share, the
compute mode and the NVML GPU count."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace
import warnings

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from seqpipe.config.types import Model, Task
from seqpipe.taskfile.reader import MemorySplit
from seqpipe.models import Normalised, build_model
from seqpipe.training import backends, checkpoint, gpus, precision
from seqpipe.training import device as device_module, epoch as epoch_module, loop as loop_module, train as train_module
from seqpipe.training.schedule import make_optimizer
from seqpipe.training.epoch import run_epoch
from seqpipe.training.train import training_settings
from tests.test_gpu_path import BATCH, CLASSES, MODELS, D, N, T, setup, task_for
from tests.test_resume import Killed, die_in_epoch, make_data, resume_job

ADAM = {"name": "adam", "lr": 1e-3}


# -- 1: a CPU-saved optimizer state resumed fused, with fp16's scaler -----------------------------------

def stepped_state(fused: bool) -> dict:
    """The optimizer state of one step, as a run on a CPU (unfused) or a GPU (fused) saves it."""
    param = nn.Parameter(torch.ones(4))
    optimizer = make_optimizer(ADAM, [param], fused=fused)
    param.sum().backward()
    optimizer.step()
    return optimizer.state_dict()


def test_a_cpu_saved_optimizer_state_loads_with_this_runs_kernel_choice():
    param = nn.Parameter(torch.ones(4))
    optimizer = make_optimizer(ADAM, [param], fused=True)
    checkpoint.restore_optimizer(optimizer, stepped_state(fused=False))
    assert [g["fused"] for g in optimizer.param_groups] == [True]
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4)
    scaler.scale(param.sum()).backward()
    scaler.step(optimizer)  # the scaler hands its scale to the fused kernel: an unfused Adam asserts here
    scaler.update()
    assert optimizer.state[param]["step"].item() == 2.0
    unfused = make_optimizer(ADAM, [nn.Parameter(torch.ones(4))], fused=False)  # and back: a GPU state resumed on a CPU
    checkpoint.restore_optimizer(unfused, stepped_state(fused=True))
    assert [g["fused"] for g in unfused.param_groups] == [None]


def test_a_run_saved_unfused_resumes_fused_with_fp16(tmp_path, monkeypatch):
    """The README's case: a `device: auto` job saved on a CPU node, resumed on a GPU node (fused optimizer, fp16 scaler)."""
    data = make_data(tmp_path / "d.h5", n_train=48)
    j = resume_job(epochs=3)
    die_in_epoch(monkeypatch, 1)
    with pytest.raises(Killed):
        train_module.train(j, data, tmp_path / "run")
    assert checkpoint.load(tmp_path / "run" / "last.pt")["optimizer"]["param_groups"][0]["fused"] is None
    real = loop_module.make_optimizer
    monkeypatch.setattr(loop_module, "make_optimizer", lambda cfg, params, fused=False: real(cfg, params, fused=True))
    monkeypatch.setattr(loop_module, "choose_precision", lambda amp, device: precision.Precision(device.type, None, scaler=True))
    run = train_module.train(j, data, tmp_path / "run")
    assert run["resumed_at_epoch"] == 1 and run["epochs_run"] == 3
    assert checkpoint.load(tmp_path / "run" / "last.pt")["optimizer"]["param_groups"][0]["fused"] is True


# -- 3: skipped fp16 steps counted from the scaler ---------------------------------------------------

class Steep(nn.Module):
    """A linear classifier with logits a million times its weights': large, finite losses and gradients."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(T * D, CLASSES)

    def forward(self, x):
        return self.linear(x.flatten(1)) * 1e6


def test_steps_whose_gradients_overflow_with_a_finite_loss_are_counted_and_left_out():
    """A scale of 2^110 makes the scaled gradients overflow float32 while every loss stays finite: the scaler
    skips those steps (halving the scale each time) until the gradients fit; each is counted."""
    torch.manual_seed(0)
    x, y = torch.randn(N, T, D), torch.randint(0, CLASSES, (N,))
    model = Normalised(Steep(), D, None)
    job = SimpleNamespace(task=Task.from_dict(task_for("mlp")), training=training_settings({"batch_size": BATCH, "device": "cpu"}))
    optimizer = make_optimizer(job.training.optimizer, model.parameters(), fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**110, growth_interval=10**6)
    stats = run_epoch(model, MemorySplit(x, y), job.task, job.training, torch.device("cpu"), optimizer, scaler, torch.Generator().manual_seed(0))
    skipped = round(math.log2(2.0**110 / scaler.get_scale()))
    assert 0 < skipped < N // BATCH  # some steps overflowed, later ones trained
    assert stats["terms"]["skipped_steps"] == skipped
    assert math.isfinite(stats["loss"])


def test_no_step_is_counted_as_skipped_when_none_overflows():
    model, split, job = setup("mlp")
    optimizer = make_optimizer(job.training.optimizer, model.parameters(), fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**4, growth_interval=1)  # the scale grows every step
    stats = run_epoch(model, split, job.task, job.training, torch.device("cpu"), optimizer, scaler, torch.Generator().manual_seed(0))
    assert stats["terms"]["skipped_steps"] == 0.0 and scaler.get_scale() == 2.0 ** (4 + N // BATCH)


# -- 6: memory_budget_mb is result-neutral ------------------------------------------------------------

def test_the_memory_budget_changes_no_weight(tmp_path):
    """Shuffled batches of 16 from memory (huge budget) and from the file (tiny budget): the same model."""
    data = make_data(tmp_path / "d.h5", n_train=96)
    weights = {}
    for budget in (0.001, 10**6):
        job = resume_job(epochs=2, batch_size=16, memory_budget_mb=budget)
        train_module.train(job, data, tmp_path / f"run{budget}")
        weights[budget] = checkpoint.load(tmp_path / f"run{budget}" / "last.pt")["model"]
    streamed = [line for line in (tmp_path / "run0.001" / "events.jsonl").read_text().splitlines() if '"on_start"' in line]
    assert '"streaming": true' in streamed[0]
    tiny, huge = weights.values()
    assert tiny.keys() == huge.keys() and all(torch.equal(tiny[k], huge[k]) for k in tiny)


# -- 10: the determinism probe --------------------------------------------------------------------------

@pytest.mark.parametrize("text, op", [
    ("kthvalue CUDA does not have a deterministic implementation, but you set 'torch.use_deterministic_algorithms(True, "
     "warn_only=True)'. You can file an issue at https://github.com/pytorch/pytorch/issues to help us prioritize adding "
     "deterministic support for this operation.", "kthvalue CUDA"),
    ("median CUDA with indices output does not have a deterministic implementation, but you set "
     "'torch.use_deterministic_algorithms(True, warn_only=True)'.", "median CUDA with indices output"),
    ("scatter_add_cuda_kernel does not have a deterministic implementation, but you set "
     "'torch.use_deterministic_algorithms(True, warn_only=True)'.", "scatter_add_cuda_kernel"),
    ("put_ does not have a deterministic implementation, but you set 'torch.use_deterministic_algorithms(True, warn_only=True)'.",
     "put_"),
])
def test_the_probe_names_kernels_whose_names_have_spaces(text, op):
    def step():
        warnings.warn(text, UserWarning, stacklevel=1)
    assert backends.nondeterministic_ops(step) == [op]


class SgdOnly(nn.Module):
    """A classifier with a kernel that only an Adam step runs (found by its optimizer hook)."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(T * D, CLASSES)

    def forward(self, x):
        return self.linear(x.flatten(1))


def test_the_probe_steps_the_configured_optimizer(monkeypatch):
    """The probe builds the optimizer `fit` builds (here AdamW), not a plain SGD."""
    _, split, job = setup("mlp", optimizer={"name": "adamw", "lr": 0.01})
    job = replace(job, model=Model.from_dict({"name": "m", "arch": "custom"}))
    model = Normalised(SgdOnly(), D, None)
    built = []
    real = epoch_module.make_optimizer
    monkeypatch.setattr(epoch_module, "make_optimizer", lambda cfg, params, fused=False: built.append(cfg["name"]) or real(cfg, params, fused))
    epoch_module.check_deterministic(model, split, job, torch.device("cpu"), precision.Precision("cpu"))
    assert built == ["adamw"]


# -- 2: no tensor made on the host inside forward ---------------------------------------------------------

class HostTensors(TorchDispatchMode):
    """Records every op that returns a CPU tensor. With the model and its input on the `meta` device, each
    is a tensor built on the host inside forward, which on a GPU is a host-to-device copy every step."""

    def __init__(self):
        super().__init__()
        self.made: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.made += [str(func) for t in tree_leaves(out) if isinstance(t, torch.Tensor) and t.device.type == "cpu"]
        return out


def host_tensors_in_forward(model: nn.Module, x: torch.Tensor) -> list[str]:
    """The host tensors a forward of `model` on another device (meta) builds, after a first forward (caches filled)."""
    model.train()
    model(x)  # VQ: the codebook's first initialisation (on the CPU)
    model.to("meta")
    x = x.to("meta")
    model(x)  # fills what a forward may cache on its device
    with HostTensors() as mode:
        model(x)
    return mode.made


@pytest.mark.parametrize("name, out_len, steps", [("vq", None, T), ("transformer", None, 2 * T), ("gru", 2 * T, T)],
                         ids=["vq-code-usage", "transformer-longer-input", "gru-resampled-head"])
def test_forward_builds_no_tensor_on_the_host(name, out_len, steps):
    """bincount has no fixed output size (it reads the ids back: no meta kernel either); positions beyond the
    table and the resampling weights of a per-step head were built on the host and copied in every forward."""
    torch.manual_seed(0)
    cfg = {"name": name, **MODELS[name], **({"head": "per_step"} if out_len else {})}
    mapping = "seq2seq" if out_len else "seq2static"
    model = build_model(cfg, in_dim=D, seq_len=T, out_dim=CLASSES, mapping=mapping, out_len=out_len, target_dim=None)
    assert host_tensors_in_forward(model, torch.randn(BATCH, steps, D)) == []


def test_codebook_usage_counts_without_bincount():
    from seqpipe.models.autoencoder import code_usage

    ids = torch.tensor([0, 2, 2, 5])
    assert torch.equal(code_usage(ids, 6), torch.tensor([0.25, 0.0, 0.5, 0.0, 0.0, 0.25]))


# -- 4, 5: bf16 without emulation, TF32 off when deterministic -----------------------------------------

def test_bf16_support_is_asked_without_emulation(monkeypatch):
    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: asked.append(including_emulation) or False)
    chosen = precision.choose_precision("bf16", torch.device("cuda"))
    assert asked == [False] and chosen.dtype == torch.float16 and chosen.scaler


@pytest.fixture()
def restore_switches():
    keep = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32, torch.utils.deterministic.fill_uninitialized_memory, torch.get_float32_matmul_precision())
    yield
    torch.use_deterministic_algorithms(keep[0], warn_only=keep[1])
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32, torch.utils.deterministic.fill_uninitialized_memory) = keep[2:7]
    torch.set_float32_matmul_precision(keep[7])


def test_a_deterministic_gpu_run_turns_tf32_off_after_a_fast_one(restore_switches):
    backends.configure(False, torch.device("cuda"))
    switches = backends.configure(True, torch.device("cuda"))
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert switches["tf32_matmul"] is False and switches["tf32_cudnn"] is False


# -- 7: a GPU that NVML sees and torch cannot use ---------------------------------------------------------

def test_auto_on_a_gpu_node_where_torch_sees_no_gpu_says_so(monkeypatch, caplog):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpus, "visible_gpus", lambda env=None: ["0", "1"])
    with caplog.at_level("WARNING", logger="seqpipe.train"):
        assert device_module.select_device("auto") == torch.device("cpu")
    assert "2 GPU(s)" in caplog.text and "torch sees none" in caplog.text
    monkeypatch.setattr(gpus, "visible_gpus", lambda env=None: [])
    caplog.clear()
    with caplog.at_level("WARNING", logger="seqpipe.train"):
        assert device_module.select_device("auto") == torch.device("cpu")
    assert caplog.text == ""
    monkeypatch.setattr(gpus, "visible_gpus", lambda env=None: ["0"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # GPUs hidden on purpose: no warning
    with caplog.at_level("WARNING", logger="seqpipe.train"):
        assert device_module.select_device("auto") == torch.device("cpu")
    assert caplog.text == ""


# -- 8: the GPU memory share of a packed job --------------------------------------------------------------

def test_splits_go_on_the_gpu_only_within_the_jobs_share():
    """Pack 8 on a 24 GB card: 1.4 GB of splits per job, not the host's 2 GB budget (an out-of-memory at data load)."""
    assert gpus.data_budget_mb(2048, free_mb=24_000, total_mb=24_000, share=1) == 2048
    assert gpus.data_budget_mb(2048, free_mb=24_000, total_mb=24_000, share=8) == pytest.approx(24_000 * 0.95 / 8 / 2)
    assert gpus.data_budget_mb(2048, free_mb=1_000, total_mb=24_000, share=1) == pytest.approx(500)


# -- 9, 12: compute mode and the GPU count without private torch APIs --------------------------------

def test_exclusive_compute_mode_is_explained(tmp_path):
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(tmp_path / "no-mps")}
    message = gpus.compute_mode_problem({"0": "default", "1": "exclusive_process"}, jobs_per_gpu=2, env=env)
    assert "GPU(s) 1 are in exclusive-process" in message and "MPS" in message and "nvidia-cuda-mps-control -d" in message
    assert gpus.compute_mode_problem({"0": "default"}, jobs_per_gpu=2, env=env) is None
    assert gpus.compute_mode_problem({"0": "exclusive_process"}, jobs_per_gpu=1, env=env) is None
    (tmp_path / "no-mps").mkdir()  # an MPS daemon's pipes: sharing works
    assert gpus.compute_mode_problem({"0": "exclusive_process"}, jobs_per_gpu=2, env=env) is None


def test_gpus_are_counted_without_a_private_torch_api(monkeypatch):
    import inspect

    assert "_raw_device_count_nvml" not in inspect.getsource(gpus)
    monkeypatch.delenv("SEQPIPE_GPUS", raising=False)
    assert isinstance(gpus.visible_gpus({}), list)  # no GPU here: NVML absent or failing, the device files count


# -- 11: the training benchmark ---------------------------------------------------------------------------

def load_benchmark():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("benchmark_train", Path(__file__).parents[1] / "benchmarks" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_benchmark_sweep_fails_at_once_when_a_cell_dies():
    import multiprocessing
    import os

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=os._exit, args=(3,))]
    procs[0].start()
    with pytest.raises(RuntimeError, match="cell process exited with 3; 0 of 1 cells finished"):
        load_benchmark().collect(procs, ctx.Queue(), timeout_s=600)


@pytest.mark.slow
def test_the_benchmark_runs_in_the_configured_kernel_mode():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parents[1] / "benchmarks" / "train.py"
    args = ["--models", "mlp", "--n", "64", "--repeats", "1", "--sweep", "2", "--sweep-epochs", "1", "--no-stream"]
    for flag, shown in (([], "deterministic=True"), (["--deterministic", "false"], "deterministic=False")):
        done = subprocess.run([sys.executable, str(script), *args, *flag], capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        assert shown in done.stdout and "packed / alone" in done.stdout
