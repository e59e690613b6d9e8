"""Training-loop speed: seqpipe's `run_epoch` against a bare loop, timed in the same run, one core.

The bare loop is the least a PyTorch training loop does: shuffle, gather a batch, forward, loss,
zero_grad, backward, (clip, when the line says grad_clip=1.0), step, over the same in-memory tensors, with the same model (a copy of the
same initial weights), optimizer, batch size and step count. seqpipe's loop adds the metric and
loss sums (on the device, read once per epoch), the aux-loss protocol, the AMP switch (off on
CPU) and the NaN guard. Epochs of the two alternate, so machine noise hits both: samples/s are
medians over `--repeats` epochs, the ratio is the median of the bare/seqpipe time ratios of
neighbouring epochs. Goal: ratio >= 0.9 on CPU.

    .venv/bin/python benchmarks/train.py                       # mlp and gru on a groove-grid-sized task
    .venv/bin/python benchmarks/train.py --models gru --batch-size 64 --n 4096
    .venv/bin/python benchmarks/train.py --device cuda         # the same on a GPU (tensors on the device, bf16)
    .venv/bin/python benchmarks/train.py --device cuda --amp fp16 --deterministic false   # fp16, the fast kernels
    .venv/bin/python benchmarks/train.py --device cuda --sync-check --models mlp gru transformer vq   # syncs per epoch

Both loops run under the kernel switches a training job sets (`backends.configure`): by default
`training.deterministic`'s default (true: deterministic kernels, no TF32, math attention); the bare
loop gets the same attention kernel and gathers its batches on the device, as `run_epoch` does.

A further line times the first model's training pass when its batches are read from an HDF5 file
(the path a task larger than `training.memory_budget_mb` takes; CPU only).

The sweep lines (`--sweep K`, 0 to skip) time K small cells of a sweep (mlp, one seed each), as
separate processes like separate training jobs: one at a time, each alone on the device (what a
job holding a whole GPU gets), then all K at once on the same device (a packed cluster job,
`resources.train.pack: K`, each process limited to 1/K of the GPU's memory). It prints the samples/s
of the device in both cases; packed / alone is how much more work one GPU does when packed.
On the CPU each process has one thread, so the packed figure is bounded by the free cores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the train rule runs by default: before torch loads

import argparse
import contextlib
import copy
import multiprocessing
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from torch.nn import functional as F

from seqpipe.config.load import section_with_defaults
from seqpipe.config.types import Task
from seqpipe.models import build_model
from seqpipe.taskfile.reader import MemorySplit
from seqpipe.training import backends
from seqpipe.training.precision import choose_precision
from seqpipe.training.schedule import make_optimizer
from seqpipe.training.epoch import run_epoch
from seqpipe.training.train import training_settings

MODELS = {
    "mlp": {"arch": "mlp", "hidden": [128, 64], "activation": "relu", "residual": False, "dropout": 0.1},
    "gru": {"arch": "gru", "hidden_size": 64, "num_layers": 1, "dropout": 0.0, "pooling": {"name": "mean", "params": {"scale": 1.0}}},
    "tcn": {"arch": "tcn", "hidden_size": 64, "num_layers": 2, "kernel_size": 3, "dropout": 0.0,
            "pooling": {"name": "mean", "params": {"scale": 1.0}}},
    "transformer": {"arch": "transformer", "hidden_size": 64, "n_heads": 4},
    "vq": {"arch": "autoencoder", "hidden": [64], "latent": "vq", "latent_dim": 32, "code_dim": 8, "codebook_size": 64},
}


def synthetic(n: int, steps: int, dim: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs like the demo groove grid (T=32, D=27) with a learnable class signal."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randn(n, steps, dim, generator=g) * 0.5
    x[torch.arange(n), :, y % dim] += 1.0
    return x, y


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (timings on a GPU must include it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_epoch(model, x, y, batch_size, optimizer, generator, grad_clip=None, precision=None, deterministic=False) -> None:
    """The least a training loop does, with the same autocast, attention kernel and (for fp16) loss scaling as
    seqpipe; the permutation goes to the device once per epoch and batches are gathered there."""
    model.train()
    scaler = precision.make_scaler() if precision is not None and precision.scaler else None
    order = torch.randperm(len(x), generator=generator).to(x.device, non_blocking=True)
    for idx in order.split(batch_size):
        with precision.autocast() if precision is not None else contextlib.nullcontext(), \
                backends.attention_kernels(deterministic, x.device):
            loss = F.cross_entropy(model(x.index_select(0, idx)), y.index_select(0, idx))
        optimizer.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler else loss).backward()
        if grad_clip:
            if scaler:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()


def bench(name: str, args) -> None:
    device = torch.device(args.device)
    backends.configure(args.deterministic, device)  # the kernel switches of a training job, before any cuBLAS call
    x, y = synthetic(args.n, args.steps, args.dim, args.classes)
    x, y = x.to(device), y.to(device)  # in-memory splits live on the device
    cfg = {"name": name, **MODELS[name]}
    dims = {"in_dim": args.dim, "seq_len": args.steps, "out_dim": args.classes, "mapping": "seq2static", "out_len": None, "target_dim": None}
    torch.manual_seed(0)
    first = build_model(cfg, **dims).to(device)
    for grad_clip in (None, 1.0):
        training = training_settings({"batch_size": args.batch_size, "grad_clip": grad_clip, "device": args.device, "amp": args.amp,
                                      "deterministic": args.deterministic})
        job = SimpleNamespace(task=Task.from_dict({"name": "bench", "mapping": "seq2static", "type": "classification", "losses": [{"name": "cross_entropy", "weight": 1.0, "params": {}}]}), training=training)
        precision = choose_precision(args.amp, device)
        ours_model, bare_model = copy.deepcopy(first), copy.deepcopy(first)
        fused = device.type == "cuda"  # as `fit` builds it
        ours_opt = make_optimizer(training.optimizer, ours_model.parameters(), fused=fused)
        bare_opt = make_optimizer(training.optimizer, bare_model.parameters(), fused=fused)
        ours_gen, bare_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        scaler = precision.make_scaler()
        split = MemorySplit(x, y)
        ours_t, bare_t = [], []
        for _ in range(args.repeats + 1):  # the first pair warms up
            sync(device)
            t0 = time.perf_counter()
            run_epoch(ours_model, split, job.task, job.training, device, ours_opt, scaler, ours_gen, precision)
            sync(device)
            t1 = time.perf_counter()
            bare_epoch(bare_model, x, y, args.batch_size, bare_opt, bare_gen, grad_clip, precision, args.deterministic)
            sync(device)
            t2 = time.perf_counter()
            ours_t.append(t1 - t0)
            bare_t.append(t2 - t1)
        ours_s, bare_s = statistics.median(ours_t[1:]), statistics.median(bare_t[1:])
        ratio = statistics.median(b / o for o, b in zip(ours_t[1:], bare_t[1:]))  # pairs of neighbouring epochs share the machine's state
        print(f"{name:4s} grad_clip={str(grad_clip):4s} batch {args.batch_size} {args.device} {precision.describe()['autocast']} "
              f"deterministic={args.deterministic}: "
              f"seqpipe {args.n / ours_s:9.0f} samples/s | bare loop {args.n / bare_s:9.0f} samples/s | ratio {ratio:5.3f} (goal >= 0.9)")


def sync_check(name: str, args) -> None:
    """CUDA only: count the host syncs of one training epoch (torch's sync debug mode); 1 is the epoch's read of its totals."""
    import warnings

    device = torch.device(args.device)
    backends.configure(args.deterministic, device)
    x, y = synthetic(args.n, args.steps, args.dim, args.classes)
    dims = {"in_dim": args.dim, "seq_len": args.steps, "out_dim": args.classes, "mapping": "seq2static", "out_len": None, "target_dim": None}
    torch.manual_seed(0)
    model = build_model({"name": name, **MODELS[name]}, **dims).to(device)
    training = training_settings({"batch_size": args.batch_size, "device": args.device, "amp": args.amp, "deterministic": args.deterministic})
    job = SimpleNamespace(task=Task.from_dict({"name": "bench", "mapping": "seq2static", "type": "classification", "losses": [{"name": "cross_entropy", "weight": 1.0, "params": {}}]}), training=training)
    precision = choose_precision(args.amp, device)
    optimizer = make_optimizer(training.optimizer, model.parameters(), fused=True)
    scaler, generator, split = precision.make_scaler(), torch.Generator().manual_seed(1), MemorySplit(x.to(device), y.to(device))
    run_epoch(model, split, job.task, job.training, device, optimizer, scaler, generator, precision)  # warm-up (VQ's first initialisation)
    sync(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run_epoch(model, split, job.task, job.training, device, optimizer, scaler, generator, precision)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)]
    print(f"{name:4s} syncs in one training epoch of {args.n // args.batch_size} steps ({precision.describe()['autocast']}): "
          f"{len(syncs)} (expected 1: the epoch's totals){'' if len(syncs) <= 1 else ': ' + '; '.join(sorted(set(syncs)))[:400]}")


def sweep_cell(seed: int, args, barrier, results, share: int) -> None:
    """One small training job of a sweep, in its own process: warm up, wait for the others, time `--sweep-epochs` epochs."""
    torch.set_num_threads(1)
    device = torch.device(args.device)
    backends.configure(args.deterministic, device)
    if device.type == "cuda" and share > 1:
        torch.cuda.set_per_process_memory_fraction(0.95 / share, device)
    x, y = synthetic(args.n, args.steps, args.dim, args.classes, seed=seed)
    x, y = x.to(device), y.to(device)
    training = training_settings({"batch_size": args.batch_size, "device": args.device, "amp": args.amp,
                                  "deterministic": args.deterministic})
    job = SimpleNamespace(task=Task.from_dict({"name": "bench", "mapping": "seq2static", "type": "classification", "losses": [{"name": "cross_entropy", "weight": 1.0, "params": {}}]}), training=training)
    torch.manual_seed(seed)
    dims = {"in_dim": args.dim, "seq_len": args.steps, "out_dim": args.classes, "mapping": "seq2static", "out_len": None, "target_dim": None}
    model = build_model({"name": "mlp", **MODELS["mlp"]}, **dims).to(device)
    precision = choose_precision(args.amp, device)
    optimizer = make_optimizer(training.optimizer, model.parameters(), fused=device.type == "cuda")
    scaler, generator, split = precision.make_scaler(), torch.Generator().manual_seed(seed), MemorySplit(x, y)
    run_epoch(model, split, job.task, job.training, device, optimizer, scaler, generator, precision)  # warm-up
    sync(device)
    barrier.wait(timeout=args.cell_timeout)  # a cell that died breaks the barrier instead of hanging the others
    t0 = time.perf_counter()
    for _ in range(args.sweep_epochs):
        run_epoch(model, split, job.task, job.training, device, optimizer, scaler, generator, precision)
    sync(device)
    results.put((seed, args.n * args.sweep_epochs, t0, time.perf_counter()))


def collect(procs: list, results, timeout_s: float) -> list:
    """One result per process; fails at once, naming it, when a process ends without one (or after `timeout_s`)."""
    import queue

    got, began = [], time.perf_counter()
    while len(got) < len(procs):
        try:
            got.append(results.get(timeout=1.0))
            continue
        except queue.Empty:
            pass
        dead = [p for p in procs if p.exitcode not in (None, 0)]
        late = time.perf_counter() - began > timeout_s
        if dead or late:
            for proc in procs:
                proc.terminate()
            why = f"cell process exited with {dead[0].exitcode}" if dead else f"no result after {timeout_s:.0f} s (--cell-timeout)"
            raise RuntimeError(f"sweep: {why}; {len(got)} of {len(procs)} cells finished")
    return got


def run_cells(seeds: list[int], args, share: int) -> float:
    """Run the cells `seeds` at once, one process each; the device's samples/s over them."""
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    barrier, results = ctx.Barrier(len(seeds)), ctx.Queue()
    procs = [ctx.Process(target=sweep_cell, args=(seed, args, barrier, results, share)) for seed in seeds]
    for proc in procs:
        proc.start()
    got = collect(procs, results, args.cell_timeout)
    for proc in procs:
        proc.join()
    return sum(n for _, n, _, _ in got) / (max(end for *_, end in got) - min(start for *_, start, _ in got))


def sweep_bench(args) -> None:
    """K sweep cells one at a time, each alone on the device, against all K at once on it (packed)."""
    cells = list(range(args.sweep))
    alone = [run_cells([seed], args, share=1) for seed in cells]
    packed = run_cells(cells, args, share=args.sweep)
    per_gpu = statistics.median(alone)
    print(f"sweep of {args.sweep} mlp cells on {args.device}, batch {args.batch_size}, {args.sweep_epochs} epochs each: "
          f"one per device {per_gpu:9.0f} samples/s | packed {args.sweep} per device {packed:9.0f} samples/s | "
          f"packed / alone {packed / per_gpu:5.2f}x")


def stream_bench(name: str, args) -> None:
    """The same training pass reading its batches from an HDF5 file (training.memory_budget_mb exceeded)."""
    import tempfile

    import numpy as np

    from seqpipe.taskfile.hdf5 import write_splits
    from seqpipe.taskfile.reader import training_data

    x, y = synthetic(args.n, args.steps, args.dim, args.classes)
    task = Task.from_dict({"name": "bench", "type": "classification", "mapping": "seq2static", "paradigm": "supervised",
                           "losses": [{"name": "cross_entropy", "weight": 1.0, "params": {}}]})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        small = {"data": x[:64].numpy(), "labels": y[:64].numpy().astype(np.int64)}
        write_splits(path, {"train": {"data": x.numpy(), "labels": y.numpy().astype(np.int64)}, "val": small, "test": small}, {})
        data = training_data(path, task, 0.0)  # a budget of 0 MB: batches read from the file
        training = training_settings({"batch_size": args.batch_size, "grad_clip": None, "device": "cpu"})
        job = SimpleNamespace(task=task, training=training)
        torch.manual_seed(0)
        model = build_model({"name": name, **MODELS[name]}, **data.dims)
        opt = make_optimizer(training.optimizer, model.parameters())
        gen, scaler = torch.Generator().manual_seed(1), torch.amp.GradScaler("cpu", enabled=False)
        split = data.splits["train"]
        times = []
        for _ in range(min(args.repeats, 5) + 1):
            t0 = time.perf_counter()
            run_epoch(model, split, job.task, job.training, torch.device("cpu"), opt, scaler, gen)
            times.append(time.perf_counter() - t0)
    block = split.default_block(args.batch_size)
    print(f"{name:4s} reading batches from HDF5 (blocks of {block}, {args.batch_size // block} reads per batch): "
          f"{args.n / min(times[1:]):9.0f} samples/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["mlp", "gru"], choices=sorted(MODELS))
    parser.add_argument("--n", type=int, default=2048, help="training samples per epoch")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--dim", type=int, default=27)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="skip the HDF5 streaming line")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--amp", default="bf16", choices=["bf16", "fp16", "off"], help="training.amp (on cuda only)")
    parser.add_argument("--sweep", type=int, default=4, help="cells of the packed-vs-alone sweep line; 0 skips it")
    parser.add_argument("--sweep-epochs", type=int, default=3)
    parser.add_argument("--sync-check", action="store_true", help="cuda: count the host syncs of one epoch per model, then stop")
    parser.add_argument("--cell-timeout", type=float, default=600.0, help="seconds a sweep cell may take before the sweep fails")
    default = section_with_defaults("training", {})["deterministic"]
    parser.add_argument("--deterministic", type=lambda v: v.lower() in ("1", "true", "yes"), default=default,
                        help=f"training.deterministic for both loops (default: the config's default, {str(default).lower()})")
    args = parser.parse_args()
    torch.set_num_threads(1)
    gpu = f", {torch.cuda.get_device_name(torch.device(args.device))}" if args.device.startswith("cuda") else ""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s){gpu}, {args.n} samples [{args.steps}, {args.dim}], "
          f"{args.n // args.batch_size} steps per epoch, {args.repeats} epochs each")
    if args.sync_check:
        for name in args.models:
            sync_check(name, args)
        return
    for name in args.models:
        bench(name, args)
    if args.stream and args.device == "cpu":
        stream_bench(args.models[0], args)
    if args.sweep:
        sweep_bench(args)


if __name__ == "__main__":
    main()
