"""One pass over a split: the training step, top to bottom (forward, loss + the model's aux losses and the
regularizers, backward, clip, step), and the epoch's means, read from the device once per epoch.

`check_deterministic` runs one such step in warn-only mode before a deterministic GPU run.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from dataclasses import dataclass, field

import torch

from seqpipe.config.types import Task, Training, TrainJob
from seqpipe.taskfile.reader import epoch_order
from seqpipe.models import Normalised
from seqpipe.training import backends, losses
from seqpipe.training.losses import total_loss
from seqpipe.training.precision import Precision, choose_precision
from seqpipe.training.schedule import make_optimizer

log = logging.getLogger("seqpipe.train")


def regularizers_fn(specs):
    """`losses.total_regularization`, after checking (now, not mid-training) that every configured regularizer exists."""
    if not specs:
        return None
    losses.check_regularizers(specs)
    return losses.total_regularization


def model_terms(model: Normalised) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor | float]]:
    """The network's extra losses of the last forward (`net.aux_losses`, already weighted; consumed, so
    none is counted twice) as `aux_<name>`, and what it reports (`net.aux_metrics`: 0-dim tensors, left
    on the device, or Python numbers) as `model_<name>`."""
    net = model.net
    terms, info = getattr(net, "aux_losses", None), getattr(net, "aux_metrics", None)
    if terms:
        net.aux_losses = {}
        terms = {f"aux_{name}": value for name, value in terms.items()}
    return terms or {}, {f"model_{name}": value for name, value in info.items()} if info else {}


def add_to(sums: dict, name: str, value, weight: int) -> None:
    """sums[name] += value * weight, a device tensor for tensors (no host sync), a float otherwise."""
    if isinstance(value, torch.Tensor):
        value = value.detach().float() * weight
    else:
        value = float(value) * weight
    sums[name] = sums[name] + value if name in sums else value


def unless(overflow: torch.Tensor | None, value):
    """`value`, or 0 where `overflow` (a step whose fp16 loss overflowed; None: no check). Python numbers pass."""
    if overflow is None or not isinstance(value, torch.Tensor):
        return value
    return torch.where(overflow, torch.zeros((), device=value.device), value.detach().float())


def batch_metric(classify: bool, out: torch.Tensor, target: torch.Tensor, model: Normalised) -> torch.Tensor:
    """Sum over the batch of the monitoring metric (a device tensor): accuracy, or per-sample mean squared error."""
    if classify:
        correct = out.argmax(-1) == target
        return correct.sum() if correct.ndim == 1 else correct.reshape(len(correct), -1).float().mean(1).sum()
    squared = (model.denormalise(out.float()) - target) ** 2
    return squared.reshape(len(squared), -1).mean(1).sum()


def optimizer_step(optimizer, scaler: torch.amp.GradScaler, loss: torch.Tensor, params: list, clip: float | None) -> torch.Tensor | None:
    """Backward, clip and step through `scaler`; with an enabled scaler a 0-dim device tensor, True where it skipped the step.

    The scaler skips a step exactly when it finds an inf or nan in the scaled gradients, and then
    lowers its scale (by `backoff_factor` < 1); growing it or keeping it means the step ran. So a lower
    scale after `update()` is the scaler's own found-inf, read on the device without a sync (`scale(one)`
    is the public way to get the scale as a tensor). A disabled scaler: None.
    """
    enabled = scaler.is_enabled()
    one = torch.ones((), device=loss.device) if enabled else None
    before = scaler.scale(one) if enabled else None
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if clip:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, clip)
    scaler.step(optimizer)  # fused optimizers skip an overflowed step on the device, without a sync
    scaler.update()
    return scaler.scale(one) < before if enabled else None


@dataclass
class Pass:
    """What one pass over a split does (from the task and training settings) and its running sums on the device."""

    model: Normalised
    task: Task
    training: Training
    device: torch.device
    precision: Precision
    optimizer: object = None
    scaler: torch.amp.GradScaler | None = None
    sums: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.train = self.optimizer is not None
        self.scaling = self.train and self.scaler is not None and self.scaler.is_enabled()
        self.noise_std, self.clip = (self.training.noise_std, self.training.grad_clip) if self.train else (0.0, None)
        self.regularize = regularizers_fn(self.training.regularizers) if self.train else None
        self.input_grad = self.regularize is not None and losses.needs_input_grad(self.training.regularizers)
        # cuDNN's RNN kernels have no double backward: a gradient penalty runs the network on native kernels
        self.kernels = backends.cudnn_off if self.input_grad else contextlib.nullcontext
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        zero = torch.zeros((), device=self.device)
        self.loss_sum, self.metric_sum, self.skipped_steps, self.skipped_samples = (zero.clone() for _ in range(4))
        self.term_sums, self.info_sums, self.host_sums = {}, {}, {}

    def forward(self, xb: torch.Tensor, target: torch.Tensor) -> tuple:
        """The output, the loss with every extra term added, the extra terms and the logged-only values."""
        model = self.model
        with self.kernels():
            with self.precision.autocast():
                out = model(xb)
                loss, terms = total_loss(self.task.losses, out, target)
                parts = {f"loss_{name}": value for name, value in terms.items()} if len(terms) > 1 else {}
                terms, info = model_terms(model)
            if self.regularize is not None:  # float32, outside autocast; input gradients scaled like the loss under fp16
                grad_scale = self.scaler.scale(torch.ones((), device=self.device)) if self.scaling else None
                terms["reg"], reg_parts = self.regularize(self.training.regularizers, model, xb, out, grad_scale=grad_scale)
                info.update({f"reg_{name}": value for name, value in reg_parts.items()})
        if terms:
            loss = loss + sum(terms.values())
        return out, loss, terms | parts if parts else terms, info

    def step(self, batch) -> None:
        """One batch: inputs to the device, forward, (train) backward and step, and the sums."""
        model, device = self.model, self.device
        xb, yb = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if self.train and len(batch) > 2 and batch[2] is not None:
            model.set_domains(batch[2].to(device, non_blocking=True))  # tcn_vae's domain adversary; others ignore it
        if self.noise_std:
            xb = xb + self.noise_std * model.x_std * torch.randn_like(xb)  # N(0, noise_std) on the normalised inputs
        if self.input_grad:
            xb.requires_grad_(True)
        classify = self.task.is_classification
        out, loss, terms, info = self.forward(xb, yb if classify else model.normalise_target(yb))
        skipped = optimizer_step(self.optimizer, self.scaler, loss, self.params, self.clip) if self.train else None
        self.add(len(xb), loss.detach().float(), batch_metric(classify, out.detach(), yb, model), skipped, terms, info)

    def add(self, b: int, loss: torch.Tensor, metric: torch.Tensor, skipped, terms: dict, info: dict) -> None:
        """Add one batch's values (of `b` samples) to the sums, leaving out a step the scaler skipped."""
        overflow = None
        if self.scaling:  # a step the scaler skipped (its gradients overflowed in fp16): left out of the means
            overflow = skipped | ~torch.isfinite(loss)
            self.skipped_steps.add_(overflow.float())
            self.skipped_samples.add_(overflow.float() * b)
        self.loss_sum.add_(unless(overflow, loss), alpha=b)
        self.metric_sum.add_(unless(overflow, metric))
        for name, value in terms.items():
            add_to(self.term_sums, name, unless(overflow, value), b)
        for name, value in info.items():
            add_to(self.info_sums if isinstance(value, torch.Tensor) else self.host_sums, name, unless(overflow, value), b)

    def result(self, n: int) -> dict:
        """The epoch's means, read from the device in one sync; a non-finite loss is an error naming the fix."""
        totals = torch.stack([self.loss_sum, self.metric_sum, self.skipped_steps, self.skipped_samples,
                              *self.term_sums.values(), *self.info_sums.values()]).tolist()  # the epoch's one device sync
        skipped, kept = int(totals[2]), n - int(totals[3])
        if not math.isfinite(totals[0]) or kept <= 0:
            what = totals[0] if kept > 0 else "inf or nan, or its fp16 gradients overflowed, in every step"
            raise FloatingPointError(f"loss became {what} during an epoch on split "
                                     f"{'train' if self.train else 'val'}; lower training.optimizer.lr or set training.grad_clip"
                                     f"{'' if self.train else ', or set training.amp: bf16 or off (the forward pass overflows in fp16)'}")
        metric = totals[1] / kept if self.task.is_classification else math.sqrt(totals[1] / kept)  # RMSE in the targets' units
        values = totals[4:]
        terms = {**dict(zip(self.term_sums, values)), **dict(zip(self.info_sums, values[len(self.term_sums):]))}
        if skipped:
            log.warning("%d training steps overflowed in fp16 and were skipped by the gradient scaler", skipped)
        out = {"loss": totals[0] / kept, "metric": metric,
               "terms": {**{k: v / kept for k, v in terms.items()}, **{k: v / n for k, v in self.host_sums.items()}}, "n": n}
        if self.scaling:
            out["terms"]["skipped_steps"] = float(skipped)
        return out


def run_epoch(model: Normalised, source, task: Task, training: Training, device: torch.device, optimizer=None, scaler=None,
              generator=None, precision: Precision | None = None) -> dict:
    """One pass over a split; trains when an optimizer is given.

    Returns the mean loss, the metric (accuracy, or RMSE in the targets' units), the means of the
    extra terms (`aux_<name>` and `reg` losses added to the loss; `loss_<name>` parts of the task loss,
    `model_<name>` and `reg_<name>` values, logged only) and the sample count. Nothing is read back
    from the device until the epoch ends (one sync per epoch). With an enabled (fp16) `scaler`, a step
    whose loss overflowed is skipped by the scaler and counted (`skipped_steps`) instead of ending the run.
    """
    precision = precision or choose_precision(training.amp, device)
    state = Pass(model, task, training, device, precision, optimizer, scaler)
    block = training.shuffle_block or source.default_block(training.batch_size)
    order = epoch_order(len(source), block, generator) if state.train else None
    model.train(state.train)
    with torch.set_grad_enabled(state.train), backends.attention_kernels(training.deterministic, device):
        for batch in source.batches(training.batch_size, order):
            state.step(batch)
    return state.result(len(source))


class FirstBatch:
    """The first batch of a split, as a one-batch split (for the determinism probe)."""

    def __init__(self, source, batch_size: int):
        self.source, self.size = source, min(batch_size, len(source))

    def __len__(self) -> int:
        return self.size

    def default_block(self, batch_size: int) -> int:
        return 1

    def batches(self, batch_size: int, order=None):
        yield next(iter(self.source.batches(self.size, None)))


def check_deterministic(model: Normalised, source, job: TrainJob, device: torch.device, precision: Precision) -> None:
    """Before training: one training step (with the configured optimizer) and one validation step on a copy of the
    model, in warn-only mode; raise naming every kernel that has no deterministic implementation (none: the run is
    deterministic)."""
    task, training = job.task, job.training

    def step() -> None:
        probe = copy.deepcopy(model)
        params = [p for p in probe.parameters() if p.requires_grad]  # the optimizer training builds: its kernels count too
        optimizer = make_optimizer(training.optimizer, params, fused=device.type == "cuda")
        batch = FirstBatch(source, training.batch_size)
        run_epoch(probe, batch, task, training, device, optimizer, precision.make_scaler(), None, precision)
        run_epoch(probe, batch, task, training, device, precision=precision)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        broken = backends.nondeterministic_ops(step)
    if broken:
        raise ValueError(f"training.deterministic is true, but model {job.model.name!r} ({job.model.arch}) runs kernels "
                         f"without a deterministic implementation on {device}: {', '.join(broken)}. Set training.deterministic: "
                         "false for this model (results then vary slightly from run to run), or choose settings that avoid these kernels")
