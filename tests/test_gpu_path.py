"""The CUDA training path, checked on the CPU wherever its logic does not need a GPU: no host sync in
the training step, fp16 overflow skipping, the empty scaler state and the CUDA generator on resume,
cuDNN off for gradient penalties, the determinism probe, kernel switches, precision choice, device
selection and the lock-file GPU allocator."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from types import SimpleNamespace
import json
import os
import subprocess
import sys
import time

import pytest
import torch
import yaml
from torch import nn

from seqpipe.config.load import ConfigError, section_with_defaults
from seqpipe.config.types import Model, Task, TrainJob
from seqpipe.models import Normalised, build_model
from seqpipe.models.diffusion_ae import build_diffusion_ae
from seqpipe.models import heads
from seqpipe.training import checkpoint
from seqpipe.training import epoch as epoch_module, loop as loop_module, train as train_module
from seqpipe.taskfile.reader import MemorySplit
from seqpipe.training.losses import gradient_penalty
from seqpipe.training.schedule import make_optimizer
from seqpipe.training.device import select_device
from seqpipe.training.epoch import run_epoch
from seqpipe.training.train import training_settings

try:  # modules of the GPU path; imported this way so that each test fails on its own where they are missing
    from seqpipe.training import backends, gpus, precision
except ImportError:
    backends = gpus = precision = None
from tests.test_resume import Killed, die_in_epoch, make_data, resume_job

N, T, D, CLASSES, BATCH = 64, 12, 3, 3, 8  # 8 steps per epoch: a per-step sync shows up 8 times

MODELS = {
    "mlp": {"arch": "mlp", "hidden": [16], "activation": "relu", "residual": False, "dropout": 0.0},
    "gru": {"arch": "gru", "hidden_size": 8, "num_layers": 1, "dropout": 0.0, "pooling": {"name": "mean", "params": {"scale": 1.0}}},
    "transformer": {"arch": "transformer", "hidden_size": 8, "n_heads": 2},
    "vae": {"arch": "vae", "hidden": [16], "latent_dim": 4},
    "gan_ae": {"arch": "gan_ae", "hidden": [16], "latent_dim": 4},
    "vq": {"arch": "autoencoder", "hidden": [16], "latent": "vq", "latent_dim": 8, "code_dim": 4, "codebook_size": 8},
    "tcn_vae": {"arch": "tcn_vae", "hidden_size": 8, "latent_dim": 4},
    "diffusion_ae": {"arch": "diffusion_ae", "hidden": [16], "latent_dim": 4, "diffusion_steps": 10, "sample_steps": 2},
}


def task_for(name: str) -> dict:
    kind = "reconstruction" if name == "diffusion_ae" else "classification"
    loss = "mse" if kind == "reconstruction" else "cross_entropy"
    return {"name": "t", "type": kind, "mapping": "seq2seq" if kind == "reconstruction" else "seq2static", "paradigm": "supervised",
            "losses": [{"name": loss, "weight": 1.0, "params": {}}]}


def setup(name: str, **training) -> tuple[Normalised, MemorySplit, TrainJob]:
    torch.manual_seed(0)
    task = task_for(name)
    x = torch.randn(N, T, D)
    y = x.clone() if task["type"] == "reconstruction" else torch.randint(0, CLASSES, (N,))
    out_dim = D if task["type"] == "reconstruction" else CLASSES
    model = build_model({"name": name, **MODELS[name]}, in_dim=D, seq_len=T, out_dim=out_dim, mapping=task["mapping"], out_len=None,
                        target_dim=None)
    settings = training_settings({"batch_size": BATCH, "device": "cpu", **training})
    job = TrainJob(Task.from_dict(task), Model.from_dict({"name": name, **MODELS[name]}), settings, 0)
    return model, MemorySplit(x, y), job


@contextlib.contextmanager
def counted_host_reads():
    """Count reads of tensor values into Python (`.item()`, `float()`, `int()`, `bool()`, `.tolist()`):
    each is a device sync on a GPU."""
    calls: list[str] = []
    patches = {}
    for attr in ("item", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, attr)

        def counting(self, *args, _original=original, _attr=attr, **kwargs):
            calls.append(_attr)
            return _original(self, *args, **kwargs)

        patches[attr] = original
        setattr(torch.Tensor, attr, counting)
    try:
        yield calls
    finally:
        for attr, original in patches.items():
            setattr(torch.Tensor, attr, original)


@pytest.mark.parametrize("scaled", [False, True], ids=["bf16-or-fp32", "fp16-scaler"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_no_host_sync_in_the_training_step(name, scaled):
    """One epoch of 8 steps reads the device once (the epoch's totals), with the optimizer and scaler
    built as `fit` builds them on a GPU (fused; GradScaler for fp16), a gradient penalty and clipping."""
    regularizers = [] if name == "diffusion_ae" else [{"name": "gradient_penalty", "weight": 0.1, "params": {}}]
    model, split, job = setup(name, regularizers=regularizers, grad_clip=1.0)
    optimizer = make_optimizer(job.training.optimizer, model.parameters(), fused=True)
    scaler = torch.amp.GradScaler("cpu", enabled=scaled)
    run_epoch(model, split, job.task, job.training, torch.device("cpu"), optimizer, scaler, torch.Generator().manual_seed(0))  # warm up (VQ init)
    with counted_host_reads() as calls:
        stats = run_epoch(model, split, job.task, job.training, torch.device("cpu"), optimizer, scaler, torch.Generator().manual_seed(1))
    assert len(calls) <= 1, f"{len(calls)} host reads in one epoch of {N // BATCH} steps: {calls}"
    assert all(isinstance(v, float) for v in stats["terms"].values())


class Blowup(nn.Module):
    """A linear classifier whose output is inf for the batch that contains a marked sample."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(T * D, CLASSES)

    def forward(self, x):
        out = self.linear(x.flatten(1))
        return out * torch.where((x[:, 0, 0] > 100).any(), float("inf"), 1.0)


def test_an_fp16_overflow_step_is_skipped_not_fatal():
    torch.manual_seed(0)
    x, y = torch.randn(N, T, D), torch.randint(0, CLASSES, (N,))
    x[BATCH * 3, 0, 0] = 1000.0  # the 4th batch overflows
    model = Normalised(Blowup(), D, None)
    job = SimpleNamespace(task=Task.from_dict(task_for("mlp")), training=training_settings({"batch_size": BATCH, "device": "cpu", "grad_clip": 1.0}))
    optimizer = make_optimizer(job.training.optimizer, model.parameters(), fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    stats = run_epoch(model, MemorySplit(x, y), job.task, job.training, torch.device("cpu"), optimizer, scaler, None)  # in order: no shuffle
    assert stats["terms"]["skipped_steps"] == 1.0
    assert torch.isfinite(torch.tensor(stats["loss"])) and all(torch.isfinite(p).all() for p in model.parameters())
    assert scaler.get_scale() < 2.0**8  # the scaler backed off


def test_without_a_scaler_a_non_finite_loss_still_stops_the_run():
    x, y = torch.randn(N, T, D), torch.randint(0, CLASSES, (N,))
    x[0, 0, 0] = 1000.0
    model = Normalised(Blowup(), D, None)
    job = SimpleNamespace(task=Task.from_dict(task_for("mlp")), training=training_settings({"batch_size": BATCH, "device": "cpu"}))
    optimizer = make_optimizer(job.training.optimizer, model.parameters())
    with pytest.raises(FloatingPointError, match="loss became"):
        run_epoch(model, MemorySplit(x, y), job.task, job.training, torch.device("cpu"), optimizer, torch.amp.GradScaler("cpu", enabled=False), None)


def test_gradient_penalty_runs_recurrent_models_without_cudnn():
    """cuDNN's RNN backward has no double backward: the penalised forward runs with cuDNN off,
    keeping the other cuDNN switches, and validation runs with it on."""
    model, split, job = setup("gru", regularizers=[{"name": "gradient_penalty", "weight": 0.1, "params": {}}])
    seen = []
    rnn_forward = model.net.rnn.forward

    def spy(*args, **kwargs):
        seen.append((model.training, torch.backends.cudnn.enabled, torch.backends.cudnn.deterministic))
        return rnn_forward(*args, **kwargs)

    model.net.rnn.forward = spy
    optimizer = make_optimizer(job.training.optimizer, model.parameters())
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        run_epoch(model, split, job.task, job.training, torch.device("cpu"), optimizer, torch.amp.GradScaler("cpu", enabled=False), torch.Generator())
        run_epoch(model, split, job.task, job.training, torch.device("cpu"))
    finally:
        torch.backends.cudnn.deterministic = before
    assert {s for s in seen if s[0]} == {(True, False, True)}  # training: cuDNN off, deterministic kept
    assert {s for s in seen if not s[0]} == {(False, True, True)}  # validation: cuDNN on
    assert torch.backends.cudnn.enabled


def test_gradient_penalty_with_a_loss_scale_is_the_unscaled_penalty_in_float32():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(T * D, 4), nn.Tanh(), nn.Linear(4, 2))
    x = torch.randn(5, T, D, requires_grad=True)
    plain = gradient_penalty(model, x, model(x))
    scaled = gradient_penalty(model, x, model(x), grad_scale=torch.tensor(2.0**16))
    torch.testing.assert_close(scaled, plain)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    assert out.dtype == torch.bfloat16
    penalty = gradient_penalty(model, x, out, grad_scale=torch.tensor(1024.0))
    assert penalty.dtype == torch.float32 and torch.isfinite(penalty)


def test_diffusion_sampling_stays_float32_under_autocast():
    model = build_diffusion_ae({"hidden": [16], "latent_dim": 4, "diffusion_steps": 10, "sample_steps": 3}, in_dim=D, seq_len=T,
                               out_dim=D, mapping="seq2seq", out_len=None)
    z = torch.randn(4, 4)
    dtypes = []
    model.denoiser.register_forward_hook(lambda module, args, out: dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.sample(z).dtype == torch.float32
    assert dtypes == [torch.float32] * 3  # every denoising step, not only the result
    torch.testing.assert_close(model.sample(z), model.sample(z, 3))


def test_linear_resampling_matches_interpolate_values_and_gradients():
    h = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    ours = heads.resample_linear(h, 12)
    ref = nn.functional.interpolate(h.transpose(1, 2), size=12, mode="linear", align_corners=False).transpose(1, 2)
    torch.testing.assert_close(ours, ref)
    g = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, h, g)[0], torch.autograd.grad(ref, h, g)[0])


# -- resume ----------------------------------------------------------------------------------------

def test_restore_scaler_accepts_the_empty_state_of_a_disabled_scaler():
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    enabled = torch.amp.GradScaler("cpu", enabled=True)
    assert disabled.state_dict() == {}
    checkpoint.restore_scaler(enabled, disabled.state_dict())
    assert enabled.get_scale() == 2.0**16
    saved = torch.amp.GradScaler("cpu", init_scale=8.0).state_dict()
    checkpoint.restore_scaler(enabled, saved)
    assert enabled.get_scale() == 8.0
    checkpoint.restore_scaler(disabled, saved)  # ignored


def test_a_run_saved_without_a_scaler_resumes_with_fp16(tmp_path, monkeypatch):
    """last.pt saved with the scaler off (`scaler == {}`), resumed where fp16 turns it on."""
    data = make_data(tmp_path / "d.h5")
    j = resume_job(epochs=4)
    die_in_epoch(monkeypatch, 2)
    with pytest.raises(Killed):
        train_module.train(j, data, tmp_path / "run")
    assert checkpoint.load(tmp_path / "run" / "last.pt")["scaler"] == {}
    monkeypatch.setattr(loop_module, "choose_precision", lambda amp, device: precision.Precision(device.type, None, scaler=True))
    run = train_module.train(j, data, tmp_path / "run")
    assert run["resumed_at_epoch"] == 2 and run["epochs_run"] == 4


class FakeCuda:
    """torch.cuda as a machine with `count` GPUs shows it, for the generator functions."""

    def __init__(self, monkeypatch, count: int):
        self.count, self.set_calls = count, []
        for module in (torch.cuda, torch.cuda.random):
            monkeypatch.setattr(module, "get_rng_state", self.get_rng_state)
            monkeypatch.setattr(module, "set_rng_state", self.set_rng_state)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [self.get_rng_state(i) for i in range(self.count)])
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)

    def get_rng_state(self, device=None):
        index = 0 if device is None or device == "cuda" else torch.device("cuda", device).index if isinstance(device, int) else device.index
        if index >= self.count:
            raise IndexError(f"GPU {index} of {self.count}")
        return torch.full((16,), index, dtype=torch.uint8)

    def set_rng_state(self, state, device="cuda"):
        index = device if isinstance(device, int) else (torch.device(device).index or 0)
        if index >= self.count:
            raise IndexError(f"GPU {index} of {self.count}")
        self.set_calls.append((index, int(state[0])))


def test_cuda_generator_state_restores_with_fewer_visible_gpus(monkeypatch):
    """Saved on a 4-GPU machine (training on GPU 2), resumed where one GPU is visible."""
    generator = torch.Generator().manual_seed(0)
    with monkeypatch.context() as m:
        FakeCuda(m, 4)
        state = checkpoint.rng_state(generator, torch.device("cuda", 2))
    assert len(state["cuda"]) == 1 and int(state["cuda"][0][0]) == 2  # only the training GPU's generator
    with monkeypatch.context() as m:
        fake = FakeCuda(m, 1)
        checkpoint.set_rng_state(state, generator, torch.device("cuda", 0))
    assert fake.set_calls == [(0, 2)]  # GPU 2's generator, restored to this job's GPU 0


def test_cuda_generator_state_of_an_old_checkpoint_uses_its_first_gpu(monkeypatch):
    generator = torch.Generator().manual_seed(0)
    state = checkpoint.rng_state(generator)
    state["cuda"] = [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]  # the old format: every visible GPU
    fake = FakeCuda(monkeypatch, 1)
    checkpoint.set_rng_state(state, generator, torch.device("cuda", 0))
    assert fake.set_calls == [(0, 0)]


def test_the_run_records_its_precision(tmp_path):
    data = make_data(tmp_path / "d.h5", n_train=48)
    train_module.train(resume_job(epochs=1, amp="fp16"), data, tmp_path / "run")
    start = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()][0]
    assert start["event"] == "on_start" and start["gpu"] is None
    assert start["precision"] == {"autocast": "float32", "grad_scaler": False, "note": "amp fp16 has no effect on cpu"}


# -- determinism and kernel switches ---------------------------------------------------------------

class Scatter(nn.Module):
    """A classifier that writes with `put_`, a kernel torch flags as non-deterministic."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(T * D, CLASSES)

    def forward(self, x):
        out = self.linear(x.flatten(1))
        return out + torch.zeros(out.numel()).put_(torch.tensor([0, 0]), torch.tensor([0.0, 0.0])).view_as(out)


def test_the_determinism_probe_names_the_kernels_that_break_it_before_training():
    _, split, job = setup("mlp")
    job = replace(job, model=Model.from_dict({"name": "scatter", "arch": "custom"}))
    model = Normalised(Scatter(), D, None)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with pytest.raises(ValueError, match=r"training.deterministic is true.*put_.*deterministic: false"):
        epoch_module.check_deterministic(model, split, job, torch.device("cpu"), precision.Precision("cpu"))
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())  # a copy was probed
    assert torch.equal(rng, torch.get_rng_state())  # and no random number was drawn
    assert not torch.are_deterministic_algorithms_enabled()  # the switch is back as it was


def test_the_determinism_probe_passes_models_with_deterministic_kernels():
    model, split, job = setup("transformer")
    job = replace(job, model=Model.from_dict({"name": "transformer", "arch": "transformer"}))
    epoch_module.check_deterministic(model, split, job, torch.device("cpu"), precision.Precision("cpu"))


@pytest.fixture()
def restore_switches():
    keep = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32, torch.utils.deterministic.fill_uninitialized_memory, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    yield
    torch.use_deterministic_algorithms(keep[0], warn_only=keep[1])
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.backends.cuda.matmul.allow_tf32,
     torch.backends.cudnn.allow_tf32, torch.utils.deterministic.fill_uninitialized_memory) = keep[2:7]
    if keep[7] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def test_kernel_switches_for_a_deterministic_gpu_run(restore_switches, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    backends.configure(True, torch.device("cuda"))
    assert torch.are_deterministic_algorithms_enabled() and not torch.is_deterministic_algorithms_warn_only_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark


def test_kernel_switches_for_a_fast_gpu_run(restore_switches):
    backends.configure(False, torch.device("cuda"))
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.utils.deterministic.fill_uninitialized_memory is False


def test_cpu_runs_leave_the_switches_alone(restore_switches):
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    backends.configure(False, torch.device("cpu"))
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before


# -- precision, settings, device ---------------------------------------------------------------------

def test_precision_choice():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert precision.choose_precision("bf16", cuda, bf16_supported=True) == precision.Precision("cuda", torch.bfloat16, scaler=False)
    older = precision.choose_precision("bf16", cuda, bf16_supported=False)
    assert (older.dtype, older.scaler) == (torch.float16, True) and "no bf16" in older.note
    assert (precision.choose_precision("fp16", cuda).dtype, precision.choose_precision("fp16", cuda).scaler) == (torch.float16, True)
    for off in ("off", False):
        assert precision.choose_precision(off, cuda).dtype is None and not precision.choose_precision(off, cuda).scaler
    assert precision.choose_precision("fp16", cpu).dtype is None and not precision.choose_precision("fp16", cpu).scaler  # cpu: float32 always
    assert precision.choose_precision(True, cuda, bf16_supported=True).dtype == torch.bfloat16


def test_amp_and_device_settings_in_the_schema():
    assert section_with_defaults("training", {})["amp"] == "bf16"
    assert section_with_defaults("training", yaml.safe_load("amp: off"))["amp"] is False  # YAML reads off as false
    for value in ("fp16", "bf16", "off"):
        section_with_defaults("training", {"amp": value})
    for device in ("cuda", "cuda:1", "cpu", "auto", "mps"):
        section_with_defaults("training", {"device": device})
    with pytest.raises(ConfigError, match="training.amp"):
        section_with_defaults("training", {"amp": "fp8"})
    with pytest.raises(ConfigError, match="training.device"):
        section_with_defaults("training", {"device": "gpu1"})


def test_device_selection(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="torch sees no GPU"):
        select_device("cuda")
    assert select_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert select_device("cuda") == torch.device("cuda", 0)
    assert select_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"sees 2 GPU\(s\).*cuda:0..cuda:1"):
        select_device("cuda:2")


# -- GPU allocation ----------------------------------------------------------------------------------

def test_concurrent_jobs_get_different_gpus_then_share(tmp_path):
    env_a, env_b, env_c, env_d = {}, {}, {}, {}
    with gpus.claimed_gpu(tmp_path, "cuda", env=env_a, gpus=["0", "1"]) as a, gpus.claimed_gpu(tmp_path, "auto", env=env_b, gpus=["0", "1"]) as b:
        assert {a, b} == {"0", "1"} and {env_a["CUDA_VISIBLE_DEVICES"], env_b["CUDA_VISIBLE_DEVICES"]} == {"0", "1"}
        with gpus.claimed_gpu(tmp_path, "cuda", env=env_c, gpus=["0", "1"]) as c:
            assert c == "0"  # more jobs than GPUs: they share, spread evenly
    assert "CUDA_VISIBLE_DEVICES" not in env_a
    with gpus.claimed_gpu(tmp_path, "cuda", env=env_d, gpus=["0", "1"]) as d:
        assert d == "0"  # released when the jobs ended


def test_nothing_is_claimed_when_the_gpu_is_chosen_already(tmp_path):
    for device, env in (("cuda", {"CUDA_VISIBLE_DEVICES": "3"}), ("cuda:1", {}), ("cpu", {})):
        with gpus.claimed_gpu(tmp_path, device, env=env, gpus=["0", "1"]) as got:
            assert got is None
    with gpus.claimed_gpu(tmp_path, "cuda", env={}, gpus=[]) as got:
        assert got is None  # no GPU on this machine


def test_a_killed_job_frees_its_gpu(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from seqpipe.training import gpus\n"
        f"with gpus.claimed_gpu({str(tmp_path)!r}, 'cuda', env={{}}, gpus=['0', '1']):\n"
        "    print('held', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with gpus.claimed_gpu(tmp_path, "cuda", env={}, gpus=["0", "1"]) as got:
            assert got == "1"
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    with gpus.claimed_gpu(tmp_path, "cuda", env={}, gpus=["0", "1"]) as got:
        assert got == "0"


def test_visible_gpus_from_seqpipe_gpus():
    assert gpus.visible_gpus({"SEQPIPE_GPUS": "0, 2,3"}) == ["0", "2", "3"]


def test_the_train_command_claims_a_gpu_before_cuda_starts(tmp_path, monkeypatch):
    seen = {}

    def fake_train(job, data, out_dir, tracking, threads, resume_dir, gpu_share, code_stamp=None):
        seen.update(visible=os.environ.get("CUDA_VISIBLE_DEVICES"), share=gpu_share)

    monkeypatch.setattr(train_module, "train", fake_train)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("SEQPIPE_GPUS", "0,1")
    job = TrainJob(Task.from_dict(task_for("mlp")), Model.from_dict({"name": "mlp", **MODELS["mlp"]}),
                   training_settings({"device": "cuda"}), 0).to_json()
    train_module.main(["--data", "d.h5", "--job", job, "--out-dir", str(tmp_path), "--gpu-locks", str(tmp_path / "locks"),
                       "--gpu-share", "4"])
    assert seen == {"visible": "0", "share": 4}
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


# -- packing training jobs into cluster jobs ------------------------------------------------------------

def test_packed_training_resources_ask_one_gpu_per_group_job():
    """Snakemake's own group arithmetic over `pack` training jobs: one GPU, pack x memory and threads."""
    from snakemake.resources import GroupResources, Resources

    from seqpipe.config.plan import job_resources

    settings = {"threads": 2, "mem_mb": 3000, "disk_mb": 1000, "runtime": 30, "pack": 4}
    resources = job_resources(settings, gpu=1)
    assert resources["gpu"] == resources["request_gpus"] == "1" and resources["gpu_share"] == 4
    assert job_resources({**settings, "pack": 1}, gpu=1)["gpu"] == 1  # unpacked: an ordinary count, capped by `gpu=` locally

    class Job:  # the part of a Snakemake job that group resources read
        pipe_group = None

        def __init__(self):
            self.resources = {"_cores": 2, "mem_mb": 3000, "runtime": 30, "gpu": resources["gpu"], "request_gpus": resources["request_gpus"]}

    group = GroupResources.basic_layered([[Job() for _ in range(4)]], Resources(), run_local=False)
    assert group["gpu"] == group["request_gpus"] == "1"
    assert group["_cores"] == 8 and group["mem_mb"] == 12000 and group["runtime"] == 30  # side by side, not one after another


@pytest.mark.parametrize("profile", ["condor", "slurm"])
def test_a_cluster_dry_run_packs_training_jobs_into_group_jobs(tmp_path, profile):
    """The demo config's training jobs, packed by 4: group jobs of four cells and their pack record (the last
    may hold fewer), with no --group-components (each pack's record joins its cells)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    extra = tmp_path / "pack.yaml"
    extra.write_text(yaml.safe_dump({"resources": {"train": {"pack": 4, "mem_mb": 4000}}}))
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([os.path.join(bin_dir, "snakemake"), "--profile", f"profiles/{profile}", "-n", "--forceall", "--configfile",
                           str(extra)], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    total = out.count("rule train:")
    sizes = sorted((group.split("\n[")[0].count("rule train:") for group in out.split("Group job train")[1:]), reverse=True)
    assert total >= 5 and sum(sizes) == total, out[-3000:]
    assert len(sizes) == -(-total // 4) and sizes[0] == 4 and all(size == 4 for size in sizes[:-1])
    assert out.count("rule train_pack:") == len(sizes)
