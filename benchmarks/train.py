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

A last line times the first model's training pass when its batches are read from an HDF5 file
(the path a task larger than `training.memory_budget_mb` takes).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, as the train rule runs by default: before torch loads

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from seqpipe.models import build_model
from seqpipe.training.loader import MemorySplit
from seqpipe.training.schedule import make_optimizer
from seqpipe.training.train import run_epoch, training_settings

MODELS = {
    "mlp": {"arch": "mlp", "hidden": [128, 64], "activation": "relu", "residual": False, "dropout": 0.1},
    "gru": {"arch": "gru", "hidden_size": 64, "num_layers": 1, "dropout": 0.0, "pooling": {"name": "mean", "params": {"scale": 1.0}}},
    "tcn": {"arch": "tcn", "hidden_size": 64, "num_layers": 2, "kernel_size": 3, "dropout": 0.0,
            "pooling": {"name": "mean", "params": {"scale": 1.0}}},
}


def synthetic(n: int, steps: int, dim: int, classes: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs like the demo groove grid (T=32, D=27) with a learnable class signal."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randn(n, steps, dim, generator=g) * 0.5
    x[torch.arange(n), :, y % dim] += 1.0
    return x, y


def bare_epoch(model, x, y, batch_size, optimizer, generator, grad_clip=None) -> None:
    model.train()
    for idx in torch.randperm(len(x), generator=generator).split(batch_size):
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()


def bench(name: str, args) -> None:
    x, y = synthetic(args.n, args.steps, args.dim, args.classes)
    cfg = {"name": name, **MODELS[name]}
    dims = {"in_dim": args.dim, "seq_len": args.steps, "out_dim": args.classes, "mapping": "seq2static", "out_len": None, "target_dim": None}
    torch.manual_seed(0)
    first = build_model(cfg, **dims)
    for grad_clip in (None, 1.0):
        training = training_settings({"batch_size": args.batch_size, "grad_clip": grad_clip, "device": "cpu"})
        job = {"task": {"type": "classification", "losses": [{"name": "cross_entropy", "weight": 1.0, "params": {}}]}, "training": training}
        ours_model, bare_model = copy.deepcopy(first), copy.deepcopy(first)
        ours_opt = make_optimizer(training["optimizer"], ours_model.parameters())
        bare_opt = make_optimizer(training["optimizer"], bare_model.parameters())
        ours_gen, bare_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        split = MemorySplit(x, y)
        ours_t, bare_t = [], []
        for _ in range(args.repeats + 1):  # the first pair warms up
            t0 = time.perf_counter()
            run_epoch(ours_model, split, job, torch.device("cpu"), ours_opt, scaler, ours_gen)
            t1 = time.perf_counter()
            bare_epoch(bare_model, x, y, args.batch_size, bare_opt, bare_gen, grad_clip)
            t2 = time.perf_counter()
            ours_t.append(t1 - t0)
            bare_t.append(t2 - t1)
        ours_s, bare_s = statistics.median(ours_t[1:]), statistics.median(bare_t[1:])
        ratio = statistics.median(b / o for o, b in zip(ours_t[1:], bare_t[1:]))  # pairs of neighbouring epochs share the machine's state
        print(f"{name:4s} grad_clip={str(grad_clip):4s} batch {args.batch_size}: seqpipe {args.n / ours_s:9.0f} samples/s | "
              f"bare loop {args.n / bare_s:9.0f} samples/s | ratio {ratio:5.3f} (goal >= 0.9)")


def stream_bench(name: str, args) -> None:
    """The same training pass reading its batches from an HDF5 file (training.memory_budget_mb exceeded)."""
    import tempfile

    import numpy as np

    from seqpipe.data.hdf5 import write_splits
    from seqpipe.training.loader import stream_task_data

    x, y = synthetic(args.n, args.steps, args.dim, args.classes)
    task = {"name": "bench", "type": "classification", "mapping": "seq2static", "paradigm": "supervised",
            "losses": [{"name": "cross_entropy", "weight": 1.0, "params": {}}]}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        small = {"data": x[:64].numpy(), "labels": y[:64].numpy().astype(np.int64)}
        write_splits(path, {"train": {"data": x.numpy(), "labels": y.numpy().astype(np.int64)}, "val": small, "test": small}, {})
        data = stream_task_data(path, task)
        training = training_settings({"batch_size": args.batch_size, "grad_clip": None, "device": "cpu"})
        job = {"task": task, "training": training}
        torch.manual_seed(0)
        model = build_model({"name": name, **MODELS[name]}, **data.dims)
        opt = make_optimizer(training["optimizer"], model.parameters())
        gen, scaler = torch.Generator().manual_seed(1), torch.amp.GradScaler("cpu", enabled=False)
        split = data.splits["train"]
        times = []
        for _ in range(min(args.repeats, 5) + 1):
            t0 = time.perf_counter()
            run_epoch(model, split, job, torch.device("cpu"), opt, scaler, gen)
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
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.n} samples [{args.steps}, {args.dim}], "
          f"{args.n // args.batch_size} steps per epoch, {args.repeats} epochs each")
    for name in args.models:
        bench(name, args)
    if args.stream:
        stream_bench(args.models[0], args)


if __name__ == "__main__":
    main()
