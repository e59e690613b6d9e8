"""Every loss and regularizer against a value worked out by hand on a tiny tensor, with a finite gradient."""

import math

import pytest
import torch
from torch import nn

from seqpipe.models.vae import kl_divergence
from seqpipe.training.losses import (
    LOSSES,
    REGULARIZERS,
    check_regularizers,
    gradient_penalty,
    needs_input_grad,
    regularizer,
    total_aux,
    total_loss,
    total_regularization,
)

LOGITS = [[2.0, 1.0, 0.5], [0.0, 1.5, 1.0]]  # two samples, three classes
IDS = [0, 2]
ERRORS = [0.5, -2.0, 6.0]  # pred - target for the robust losses (target 0)


def lse(values):
    return math.log(sum(math.exp(v) for v in values))


def softmax(values):
    total = sum(math.exp(v) for v in values)
    return [math.exp(v) / total for v in values]


# name -> (pred, target, params, the value by hand)
P1, P2 = softmax(LOGITS[0]), softmax(LOGITS[1])
CASES = {
    # -log softmax of the true class, averaged: sample 1 class 0, sample 2 class 2
    "cross_entropy": (LOGITS, IDS, {}, ((lse(LOGITS[0]) - 2.0) + (lse(LOGITS[1]) - 1.0)) / 2),
    # sample 1: true 2.0, best other 1.0, gap 1.0 -> max(0, 0.2 - 1.0) = 0; sample 2: true 1.0, best other 1.5 -> 0.2 + 0.5 = 0.7
    "gap_loss": (LOGITS, IDS, {"margin": 0.2}, (0.0 + 0.7) / 2),
    # the same hinge on probabilities: sample 1 p0 - p1 > 0.2 (0.629 - 0.231) -> 0; sample 2: 0.2 - (p2 - p1)
    "top_gap_loss": (LOGITS, IDS, {"margin": 0.2}, (max(0.0, 0.2 - (P1[0] - P1[1])) + max(0.0, 0.2 - (P2[2] - P2[1]))) / 2),
    # cross-entropy after subtracting margin 0.5 from the true logit, logits scaled by 2
    "rich_margin_loss": (LOGITS, IDS, {"margin": 0.5, "scale": 2.0},
                         ((lse([3.0, 2.0, 1.0]) - 3.0) + (lse([0.0, 3.0, 1.0]) - 1.0)) / 2),
    # logits at steps 0 and 1 score the ids at steps 1 and 2: ids 1 then 0
    "autoregressive_cross_entropy": ([[[1.0, 3.0], [2.0, 0.0], [5.0, 5.0]]], [[0, 1, 0]], {},
                                     ((lse([1.0, 3.0]) - 3.0) + (lse([2.0, 0.0]) - 2.0)) / 2),
    "mse": ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, 4.0]], {}, (0 + 4 + 9 + 0) / 4),
    "mae": ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 0.0], [0.0, 5.0]], {}, (0 + 2 + 3 + 1) / 4),
    # |e| = 0.5 below delta 1: 0.5 * 0.25; |e| = 3 above: 1 * (3 - 0.5)
    "huber": ([0.5, 3.0], [0.0, 0.0], {"delta": 1.0}, (0.125 + 2.5) / 2),
    # the value is the plain MSE (only the gradient is clipped, checked below)
    "mse_gradient_cutoff": ([0.5, 3.0], [0.0, 0.0], {"cutoff": 1.0}, (0.25 + 9.0) / 2),
    # last step [3, -1]: (9 + 1) / 2; the target is ignored
    "final_timestep_zero_mse": ([[[1.0, 2.0], [3.0, -1.0]]], [[[9.0, 9.0], [9.0, 9.0]]], {}, (9 + 1) / 2),
    # pred at steps 0, 1 = [1, 2] against target at steps 1, 2 = [1, 5]: (0 + 9) / 2
    "autoregressive_loss": ([[[1.0], [2.0], [3.0]]], [[[0.0], [1.0], [5.0]]], {}, (0 + 9) / 2),
    # c = 2: c^2 / 2 = 2; u = e / 2 = 0.25, -1, 3
    "cauchy": (ERRORS, [0.0] * 3, {"c": 2.0}, 2 * (math.log(1 + 0.0625) + math.log(2) + math.log(10)) / 3),
    "welsch": (ERRORS, [0.0] * 3, {"c": 2.0}, 2 * ((1 - math.exp(-0.0625)) + (1 - math.exp(-1)) + (1 - math.exp(-9))) / 3),
    "geman_mcclure": (ERRORS, [0.0] * 3, {"c": 2.0}, 2 * (0.0625 / 1.0625 + 1 / 2 + 9 / 10) / 3),
    # c = 4: c^2 / 6 = 8 / 3; u^2 = 1/64, 1/4, and 36/16 > 1 (saturated)
    "tukey": (ERRORS, [0.0] * 3, {"c": 4.0}, 8 / 3 * ((1 - (1 - 1 / 64) ** 3) + (1 - (3 / 4) ** 3) + 1) / 3),
}


def tensors(pred, target):
    pred = torch.tensor(pred, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(target)
    return pred, target.double() if target.is_floating_point() else target


def test_every_registered_loss_has_a_hand_worked_case():
    assert set(CASES) == set(LOSSES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_matches_hand_value_and_has_finite_gradient(name):
    pred, target, params, expected = CASES[name]
    pred, target = tensors(pred, target)
    value = LOSSES[name](pred, target, **params)
    assert value.shape == ()
    assert value.item() == pytest.approx(expected, rel=1e-9)
    value.backward()
    assert torch.isfinite(pred.grad).all()


def test_mse_gradient_cutoff_clips_each_elements_gradient():
    pred, target = tensors([0.5, 3.0, -4.0], [0.0, 0.0, 0.0])
    LOSSES["mse_gradient_cutoff"](pred, target, cutoff=1.0).backward()
    # d/dpred of mean(e^2) with e clipped to [-1, 1] in the gradient: 2 * [0.5, 1, -1] / 3
    assert pred.grad.tolist() == pytest.approx([1 / 3, 2 / 3, -2 / 3])


def test_robust_losses_are_half_squared_error_for_small_errors():
    pred, target = tensors([1e-3], [0.0])
    for name in ("cauchy", "welsch", "geman_mcclure", "tukey"):
        assert LOSSES[name](pred, target).item() == pytest.approx(0.5e-6, rel=1e-4), name


def test_autoregressive_cross_entropy_takes_one_hot_targets():
    logits = torch.tensor([[[1.0, 3.0], [2.0, 0.0], [5.0, 5.0]]])
    ids = torch.tensor([[0, 1, 0]])
    one_hot = torch.eye(2)[ids]
    assert LOSSES["autoregressive_cross_entropy"](logits, one_hot).item() == pytest.approx(LOSSES["autoregressive_cross_entropy"](logits, ids).item())


@pytest.mark.parametrize("name", ["final_timestep_zero_mse", "autoregressive_loss", "autoregressive_cross_entropy"])
def test_sequence_losses_refuse_static_predictions(name):
    with pytest.raises(ValueError, match="expected a sequence"):
        LOSSES[name](torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))


def test_total_loss_weights_and_parts():
    pred, target = tensors([[1.0, 2.0]], [[0.0, 0.0]])
    specs = [{"name": "mse", "weight": 2.0, "params": {}}, {"name": "mae", "weight": 0.5}]
    total, parts = total_loss(specs, pred, target)
    # mse (1 + 4) / 2 = 2.5, mae (1 + 2) / 2 = 1.5 -> 2 * 2.5 + 0.5 * 1.5
    assert total.item() == pytest.approx(5.75) and {k: v.item() for k, v in parts.items()} == {"mse": 2.5, "mae": 1.5}
    assert all(not v.requires_grad for v in parts.values())  # detached tensors: no sync per batch


def test_kl_divergence_by_hand():
    mu, logvar = torch.tensor([[1.0, 0.0], [0.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # sample 1: -1/2 [(1 + 0 - 1 - 1) + (1 + ln 2 - 0 - 2)] = 1 - ln(2) / 2; sample 2 is N(0, I): 0
    assert kl_divergence(mu, logvar).item() == pytest.approx((1 - math.log(2) / 2) / 2)


def test_total_aux_sums_and_reports_terms():
    total, parts = total_aux({"kl": torch.tensor(0.5), "vq": torch.tensor(0.25)}, torch.zeros(3))
    assert total.item() == 0.75 and parts == {"kl": 0.5, "vq": 0.25}
    assert total_aux({}, torch.zeros(3))[0].item() == 0.0


# --- regularizers ------------------------------------------------------------------------------


def linear(weight, bias):
    layer = nn.Linear(len(weight[0]), len(weight)).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))
    return layer


def test_l1_and_l2_by_hand_with_and_without_bias():
    model = linear([[3.0, -4.0]], [2.0])
    x = torch.ones(1, 2, dtype=torch.float64)
    out = model(x)
    assert regularizer("l1", model, x, out).item() == 7.0  # |3| + |-4|
    assert regularizer("l1", model, x, out, {"include_bias": True}).item() == 9.0  # + |2|
    assert regularizer("l2", model, x, out).item() == 25.0  # 9 + 16
    assert regularizer("l2", model, x, out, {"include_bias": True}).item() == 29.0  # + 4
    value = regularizer("l2", model, x, out)
    value.backward()
    assert model.weight.grad.tolist() == [[6.0, -8.0]] and torch.isfinite(model.weight.grad).all()


def test_gradient_penalty_is_the_squared_jacobian_norm():
    model = linear([[3.0, 4.0], [1.0, 0.0]], [0.0, 0.0])  # J = W for every sample: ||W||_F^2 = 9 + 16 + 1 = 26
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    value = gradient_penalty(model, x, model(x))
    assert value.item() == pytest.approx(26.0)
    value.backward()  # create_graph: the penalty trains the weights, d/dW ||W||^2 = 2 W
    assert model.weight.grad.flatten().tolist() == pytest.approx([6.0, 8.0, 2.0, 0.0])


class Square(nn.Module):
    """out = sum_j x_j^2, so d out / d x = 2 x."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))
        self.aux_losses = {"kept": torch.tensor(1.0)}

    def forward(self, x):
        self.aux_losses = {"overwritten": torch.tensor(2.0)}
        return self.scale * (x**2).sum(dim=1, keepdim=True)


def test_gradient_penalty_recomputes_when_the_input_has_no_grad_and_keeps_aux_losses():
    model, x = Square(), torch.tensor([[1.0, 2.0], [0.0, 3.0]], dtype=torch.float64)
    model.aux_losses = {"kept": torch.tensor(1.0)}
    with torch.no_grad():
        out = model(x)
    model.aux_losses = {"kept": torch.tensor(1.0)}
    # per sample ||2 x||^2 = 4 (1 + 4) = 20 and 4 * 9 = 36 -> mean 28
    assert gradient_penalty(model, x, out).item() == pytest.approx(28.0)
    assert set(model.aux_losses) == {"kept"}


def test_gradient_penalty_projection_estimate_is_unbiased():
    model = linear([[3.0, 4.0], [1.0, 0.0]], [0.0, 0.0])
    x = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    out = model(x)
    torch.manual_seed(0)
    draws = [gradient_penalty(model, x, out, max_exact=0).item() for _ in range(2000)]
    assert sum(draws) / len(draws) == pytest.approx(26.0, rel=0.1)


def test_total_regularization_weights_parts_and_checks():
    model = linear([[3.0, -4.0]], [2.0])
    x = torch.ones(3, 2, dtype=torch.float64, requires_grad=True)
    out = model(x)
    specs = [{"name": "l1", "weight": 0.1, "params": {}}, {"name": "l2", "weight": 0.01}, {"name": "gradient_penalty", "weight": 1.0}]
    total, parts = total_regularization(specs, model, x, out)
    assert parts == {"l1": 7.0, "l2": 25.0, "gradient_penalty": pytest.approx(25.0)}
    assert total.item() == pytest.approx(0.7 + 0.25 + 25.0)
    assert total_regularization(None, model, x, out)[0].item() == 0.0
    assert needs_input_grad(specs) and not needs_input_grad(specs[:2]) and not needs_input_grad(None)
    assert set(REGULARIZERS) == {"l1", "l2", "gradient_penalty"}
    with pytest.raises(KeyError, match="unknown regularizer 'l3'"):
        check_regularizers([{"name": "l3"}])
