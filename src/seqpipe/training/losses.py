"""Losses as weighted lists of `{name, weight, params}`; `LOSSES` maps a name to its function.

Every loss takes `(pred, target, **params)` in the normalised target space and returns a scalar;
classification losses take logits [..., C] and class ids [...]. Regression losses average over
every element. Sequence losses (`final_timestep_zero_mse`, `autoregressive_*`) need a time axis:
pred [B, T, ...].

Robust losses (cauchy, welsch, geman_mcclure, tukey) are written in the error e = pred - target and
the scale `c`, with u = e / c; each is about e^2 / 2 for |e| << c and grows slowly (cauchy) or not at
all (the others) for |e| >> c, so outliers pull less. Default `c` is the 95%-efficiency constant for
unit-variance Gaussian errors, the right scale for standardised targets.

Regularizers (`REGULARIZERS`: l1, l2, gradient_penalty) take `(model, x, out, **params)`;
`total_regularization(specs, model, x, out)` sums a configured list of `{name, weight, params}`.
`kl_divergence` is the VAE's KL term (defined beside the VAEs, seqpipe.models.vae); `total_aux` sums a model's `aux_losses` (see seqpipe.models).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

LOSSES: dict[str, Callable[..., torch.Tensor]] = {}
REGULARIZERS: dict[str, Callable[..., torch.Tensor]] = {}


def register_loss(name: str) -> Callable:
    """Register a loss function under `name`."""

    def deco(fn: Callable) -> Callable:
        LOSSES[name] = fn
        return fn

    return deco


def register_regularizer(name: str) -> Callable:
    """Register a regularizer `fn(model, x, out, **params) -> scalar` under `name`."""

    def deco(fn: Callable) -> Callable:
        REGULARIZERS[name] = fn
        return fn

    return deco


def _classes(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [N, C] and class ids [N] from [..., C] and [...]."""
    return pred.reshape(-1, pred.shape[-1]), target.reshape(-1).long()


def _true_and_best_other(values: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the true class's value, and the largest value among the other classes."""
    true = values.gather(1, ids[:, None])[:, 0]
    other = values.masked_fill(F.one_hot(ids, values.shape[1]).bool(), float("-inf")).amax(dim=1)
    return true, other


def _sequence(pred: torch.Tensor, name: str) -> None:
    if pred.ndim < 3 or pred.shape[1] < 2:
        raise ValueError(f"loss {name}: prediction has shape {list(pred.shape)}; expected a sequence [B, T>=2, ...] (a seq2seq task)")


# --- classification ---------------------------------------------------------------------------


@register_loss("cross_entropy")
def cross_entropy(pred: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy over the last axis (seq2static [B, C] or seq2seq [B, T, C])."""
    return F.cross_entropy(pred.reshape(-1, pred.shape[-1]), target.reshape(-1), label_smoothing=label_smoothing)


@register_loss("gap_loss")
def gap_loss(pred: torch.Tensor, target: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """Multi-class hinge on logits: mean of max(0, margin - (z_true - max_{j != true} z_j)).

    Zero once the true class's logit leads the best other logit by `margin`; a companion of
    cross_entropy that pushes for class separation (e.g. weight 0.3, margin 0.2).
    """
    true, other = _true_and_best_other(*_classes(pred, target))
    return F.relu(margin - (true - other)).mean()


@register_loss("top_gap_loss")
def top_gap_loss(pred: torch.Tensor, target: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """The gap hinge on softmax probabilities: mean of max(0, margin - (p_true - max_{j != true} p_j)).

    Unlike gap_loss it is bounded (in [0, 1 + margin]) and cannot be met by inflating the logits'
    scale: a sample stops contributing once its true class is the top prediction by `margin` in
    probability.
    """
    logits, ids = _classes(pred, target)
    true, other = _true_and_best_other(logits.softmax(dim=1), ids)
    return F.relu(margin - (true - other)).mean()


@register_loss("rich_margin_loss")
def rich_margin_loss(pred: torch.Tensor, target: torch.Tensor, margin: float = 0.2, scale: float = 1.0) -> torch.Tensor:
    """Additive-margin softmax: cross_entropy(scale * (z - margin * onehot(true)), true).

    The true logit must beat *every* other class (softly, through the softmax) by `margin`, not
    only the best one as in gap_loss; `scale` sharpens the softmax.
    """
    logits, ids = _classes(pred, target)
    return F.cross_entropy(scale * (logits - margin * F.one_hot(ids, logits.shape[1]).to(logits.dtype)), ids)


@register_loss("autoregressive_cross_entropy")
def autoregressive_cross_entropy(pred: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Next-step cross-entropy: logits at step t (pred[:, :-1]) score the class at step t+1 (target[:, 1:]).

    target is class ids [B, T] or, as in a reconstruction task on one-hot inputs, class
    probabilities [B, T, C] (then a soft-target cross-entropy).
    """
    _sequence(pred, "autoregressive_cross_entropy")
    logits = pred[:, :-1].reshape(-1, pred.shape[-1])
    nxt = target[:, 1:]
    nxt = nxt.reshape(-1, nxt.shape[-1]) if nxt.is_floating_point() else nxt.reshape(-1)
    return F.cross_entropy(logits, nxt, label_smoothing=label_smoothing)


# --- regression and reconstruction -------------------------------------------------------------


@register_loss("mse")
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(pred, target)


@register_loss("mae")
def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(pred, target)


@register_loss("huber")
def huber(pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss: quadratic below `delta`, linear above."""
    return F.huber_loss(pred, target, delta=delta)


@register_loss("mse_gradient_cutoff")
def mse_gradient_cutoff(pred: torch.Tensor, target: torch.Tensor, cutoff: float = 1.0) -> torch.Tensor:
    """MSE whose gradient is clipped per element: the value is the plain MSE, mean(e^2), but the
    gradient with respect to each prediction is 2 * clamp(e, -cutoff, cutoff) / n instead of 2 e / n.

    So one outlier can push no harder than an error of size `cutoff` (stability), while the logged
    value stays comparable with `mse`. (Huber clips the gradient the same way but changes the value.)
    """
    err = pred - target
    clipped = err.detach().clamp(-cutoff, cutoff)
    return (err.detach() ** 2).mean() + (2.0 * clipped * (err - err.detach())).mean()


@register_loss("final_timestep_zero_mse")
def final_timestep_zero_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean of pred[:, -1]^2: the last step's outputs are pulled to zero (a sequence that must end at rest).

    The target is not used; combine with a loss that fits the target, e.g. mse with weight 1 and this
    with a small weight.
    """
    _sequence(pred, "final_timestep_zero_mse")
    return (pred[:, -1] ** 2).mean()


@register_loss("autoregressive_loss")
def autoregressive_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Next-step MSE: the output at step t (pred[:, :-1]) predicts the target at step t+1 (target[:, 1:]).

    Meaningful with a causal model (tcn, gru, lstm, transformer with causal: true) on a
    reconstruction task, where the target is the input: the model learns to forecast one step.
    """
    _sequence(pred, "autoregressive_loss")
    return F.mse_loss(pred[:, :-1], target[:, 1:])


@register_loss("cauchy")
def cauchy(pred: torch.Tensor, target: torch.Tensor, c: float = 2.3849) -> torch.Tensor:
    """Cauchy (Lorentzian): mean of c^2 / 2 * log(1 + u^2), u = (pred - target) / c."""
    u = (pred - target) / c
    return (c**2 / 2 * torch.log1p(u**2)).mean()


@register_loss("welsch")
def welsch(pred: torch.Tensor, target: torch.Tensor, c: float = 2.9846) -> torch.Tensor:
    """Welsch (Leclerc): mean of c^2 / 2 * (1 - exp(-u^2)); bounded by c^2 / 2."""
    u = (pred - target) / c
    return (c**2 / 2 * (1 - torch.exp(-(u**2)))).mean()


@register_loss("geman_mcclure")
def geman_mcclure(pred: torch.Tensor, target: torch.Tensor, c: float = 1.0) -> torch.Tensor:
    """Geman-McClure: mean of c^2 / 2 * u^2 / (1 + u^2) (= (e^2 / 2) / (1 + e^2) at c = 1); bounded by c^2 / 2."""
    u2 = ((pred - target) / c) ** 2
    return (c**2 / 2 * u2 / (1 + u2)).mean()


@register_loss("tukey")
def tukey(pred: torch.Tensor, target: torch.Tensor, c: float = 4.6851) -> torch.Tensor:
    """Tukey's biweight: mean of c^2 / 6 * (1 - (1 - u^2)^3) for |u| <= 1, c^2 / 6 beyond (zero gradient there)."""
    u2 = (((pred - target) / c) ** 2).clamp(max=1.0)
    return (c**2 / 6 * (1 - (1 - u2) ** 3)).mean()


# --- helpers for models and the loop ---------------------------------------------------------


def total_aux(aux_losses: dict[str, torch.Tensor], like: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of a model's (already weighted) auxiliary losses, and each term for logging."""
    total = like.new_zeros(())
    for value in aux_losses.values():
        total = total + value
    return total, {name: float(value.detach()) for name, value in aux_losses.items()}


def check_losses(specs: list[dict]) -> None:
    """Fail early, naming the loss, when a configured loss does not exist."""
    for spec in specs:
        if spec["name"] not in LOSSES:
            raise KeyError(f"tasks.<task>.losses: unknown loss {spec['name']!r}; known: {', '.join(sorted(LOSSES))}")


def total_loss(specs: list[dict], pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum of the configured losses, and each (unweighted) term, detached for logging.

    The terms stay tensors: reading them with float() here would force a device sync on every
    batch; the training loop reads them once per epoch.
    """
    total, parts = None, {}
    for spec in specs:
        value = LOSSES[spec["name"]](pred, target, **spec.get("params", {}))
        parts[spec["name"]] = value.detach()
        weight = spec.get("weight", 1.0)
        weighted = value if weight == 1.0 else weight * value
        total = weighted if total is None else total + weighted
    return total, parts


# --- regularizers ------------------------------------------------------------------------------


def _weights(model: nn.Module, include_bias: bool) -> list[torch.Tensor]:
    """Trainable parameters; only matrices and kernels (ndim >= 2) unless include_bias."""
    return [p for p in model.parameters() if p.requires_grad and (include_bias or p.ndim >= 2)]


@register_regularizer("l1")
def l1(model: nn.Module, x: torch.Tensor, out: torch.Tensor, include_bias: bool = False) -> torch.Tensor:
    """Sum of |w| over the weights (biases and norm scales too with include_bias): sparsity."""
    return sum((p.abs().sum() for p in _weights(model, include_bias)), out.new_zeros(()))


@register_regularizer("l2")
def l2(model: nn.Module, x: torch.Tensor, out: torch.Tensor, include_bias: bool = False) -> torch.Tensor:
    """Sum of w^2 over the weights (biases and norm scales too with include_bias): weight decay in the loss."""
    return sum(((p**2).sum() for p in _weights(model, include_bias)), out.new_zeros(()))


@register_regularizer("gradient_penalty")
def gradient_penalty(model: nn.Module, x: torch.Tensor, out: torch.Tensor, max_exact: int = 16,
                     grad_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over samples of ||d out_i / d x_i||_F^2, the squared Frobenius norm of each sample's Jacobian
    (create_graph=True, so the penalty itself is trained): smooth predictions.

    Exact (one backward per output component) when a sample has at most `max_exact` outputs; beyond,
    the unbiased one-projection estimate ||d (v . out_i) / d x_i||^2 with v ~ N(0, I).
    The loop should call `x.requires_grad_(True)` before the forward (see `needs_input_grad`);
    otherwise this runs one more forward on a copy of x (the model's aux_losses are kept).

    Mixed precision: call it outside autocast; the penalty is computed in float32. Under fp16 pass the
    gradient scaler's scale as `grad_scale` (a tensor, e.g. `scaler.scale(torch.ones(()))`): the
    input gradients are taken of the scaled outputs (so they do not underflow in fp16) and divided
    by the scale before they are squared. GRU/LSTM: run the forward with cuDNN disabled
    (`backends.cudnn_off`), since cuDNN's RNN backward cannot be differentiated again.
    """
    if not (x.requires_grad and out.requires_grad):
        x = x.detach().requires_grad_(True)
        saved = {k: getattr(model, k) for k in ("aux_losses", "aux_metrics") if hasattr(model, k)}
        out = model(x)
        for k, v in saved.items():
            setattr(model, k, v)
    flat = out.reshape(len(out), -1).float()
    if flat.shape[1] <= max_exact:
        rows = [flat[:, k].sum() for k in range(flat.shape[1])]
    else:
        rows = [(flat * torch.randn_like(flat)).sum()]
    total = flat.new_zeros(())
    for row in rows:
        if grad_scale is None:
            (grad,) = torch.autograd.grad(row, x, create_graph=True)
        else:
            (grad,) = torch.autograd.grad(row * grad_scale, x, create_graph=True)
            grad = grad.float() / grad_scale
        total = total + grad.float().pow(2).reshape(len(grad), -1).sum(dim=1).mean()
    return total


INPUT_GRADIENT = {"gradient_penalty"}  # regularizers that differentiate the output with respect to the input


def needs_input_grad(specs: list[dict] | None) -> bool:
    """True when a configured regularizer differentiates the output with respect to the input."""
    return any(spec["name"] in INPUT_GRADIENT for spec in specs or [])


def check_regularizers(specs: list[dict] | None) -> None:
    """Fail early, naming the regularizer, when a configured one does not exist."""
    for spec in specs or []:
        if spec["name"] not in REGULARIZERS:
            raise KeyError(f"training.regularizers: unknown regularizer {spec['name']!r}; known: {', '.join(sorted(REGULARIZERS))}")


def regularizer(name: str, model: nn.Module, x: torch.Tensor, out: torch.Tensor, params: dict | None = None,
                grad_scale: torch.Tensor | None = None) -> torch.Tensor:
    """The value of one regularizer (`grad_scale` goes to those that differentiate with respect to the input)."""
    extra = {"grad_scale": grad_scale} if grad_scale is not None and name in INPUT_GRADIENT else {}
    return REGULARIZERS[name](model, x, out, **(params or {}), **extra)


def total_regularization(specs: list[dict] | None, model: nn.Module, x: torch.Tensor, out: torch.Tensor,
                         grad_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Weighted sum (float32) of the configured regularizers `{name, weight, params}`, and each term's value for
    logging, as detached tensors (reading them here would force a device sync on every batch)."""
    total, parts = out.new_zeros((), dtype=torch.float32), {}
    for spec in specs or []:
        value = regularizer(spec["name"], model, x, out, spec.get("params"), grad_scale)
        total = total + spec.get("weight", 1.0) * value.float()
        parts[spec["name"]] = value.detach()
    return total, parts
