"""The models of issue 5: registry and schema, shapes, the aux-loss protocol, gradient reversal, VQ, and learning.

`fit` is a minimal loop that follows the model <-> loop protocol of seqpipe.models (set_progress each
epoch; task loss + sum of aux_losses), so these tests do not depend on train.py.
"""

import copy
import math

import pytest
import torch

from seqpipe.config.load import load_schema, train_job, validate_config
from seqpipe.models import MODELS, autoencoder, build_model, diffusion_ae, gan_ae, tcn_vae, transformer, vae
from seqpipe.models.grl import dann_alpha, grad_reverse
from seqpipe.taskfile.reader import standardisation
from seqpipe.training.losses import total_aux, total_loss, total_regularization
from taskfiles import load_task_data
from tests.test_training import MODEL_DEFAULTS, job, make_file

NEW = ["transformer", "autoencoder", "vae", "gan_ae", "diffusion_ae", "tcn_vae"]
DEFAULTS = {"transformer": transformer.DEFAULTS, "autoencoder": autoencoder.DEFAULTS, "vae": vae.DEFAULTS, "gan_ae": gan_ae.DEFAULTS,
            "diffusion_ae": diffusion_ae.DEFAULTS, "tcn_vae": tcn_vae.DEFAULTS}


def cfg(arch, **extra):
    return {"name": arch, "arch": arch, **MODEL_DEFAULTS, **extra}


def build(arch, mapping="seq2seq", in_dim=3, seq_len=12, out_dim=3, out_len=12, **extra):
    return build_model(cfg(arch, **extra), in_dim=in_dim, seq_len=seq_len, out_dim=out_dim, mapping=mapping,
                       out_len=out_len if mapping == "seq2seq" else None, target_dim=None)


# --- registry and configuration ----------------------------------------------------------------


def test_registry_and_schema_agree():
    model = load_schema()["$defs"]["model"]["properties"]
    assert set(model["arch"]["enum"]) == set(MODELS) and set(NEW) <= set(MODELS)
    for arch, defaults in DEFAULTS.items():
        for key, value in defaults.items():
            assert model[key]["default"] == value, (arch, key)


def test_schema_defaults_build_every_model():
    models = {arch: {"arch": arch} for arch in MODELS}
    config = validate_config({"tasks": {"t": {"data_path": "d.h5", "paradigm": "self_supervised", "mapping": "seq2seq", "type": "reconstruction"}},
                              "models": models})
    for arch in MODELS:
        model_cfg = train_job(config, "t", arch, 0)["model"]
        model = build_model(model_cfg, in_dim=3, seq_len=12, out_dim=3, mapping="seq2seq", out_len=12, target_dim=3)
        assert model(torch.randn(2, 12, 3)).shape == (2, 12, 3), arch


def test_state_dict_round_trip_rebuilds_the_same_model(tmp_path):
    x = torch.randn(4, 12, 3)
    for arch in [*NEW, "vq"]:
        extra = {"latent": "vq"} if arch == "vq" else {}
        name = "autoencoder" if arch == "vq" else arch
        model = build(name, **extra).train()
        model(x)  # a training forward (initialises the VQ codebook)
        torch.save(model.state_dict(), tmp_path / "m.pt")
        again = build(name, **extra)
        again.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
        assert torch.equal(model.eval()(x), again.eval()(x)), arch


# --- shapes and the aux-loss protocol ----------------------------------------------------------

SHAPES = [("seq2static", 4, None, (4,)), ("seq2seq", 3, 12, (12, 3)), ("seq2seq", 2, 6, (6, 2))]


@pytest.mark.parametrize("arch", NEW)
@pytest.mark.parametrize("mapping,out_dim,out_len,shape", SHAPES)
def test_output_shapes(arch, mapping, out_dim, out_len, shape):
    x = torch.randn(5, 12, 3)
    if arch == "diffusion_ae" and shape != (12, 3):
        with pytest.raises(ValueError, match="reconstruction task"):
            build(arch, mapping, out_dim=out_dim, out_len=out_len)
        return
    model = build(arch, mapping, out_dim=out_dim, out_len=out_len)
    for training in (True, False):
        model.train(training)
        assert model(x).shape == (5, *shape)


AUX = [  # (arch, mapping, extra config, the aux_losses a training forward sets)
    ("transformer", "seq2seq", {}, set()),
    ("autoencoder", "seq2seq", {"latent": "linear"}, set()),
    ("autoencoder", "seq2seq", {"latent": "vq"}, {"codebook", "commitment"}),
    ("vae", "seq2seq", {}, {"kl"}),
    ("gan_ae", "seq2seq", {}, {"adversarial"}),
    ("diffusion_ae", "seq2seq", {}, {"diffusion"}),
    ("tcn_vae", "seq2static", {}, {"kl", "reconstruction"}),
    ("tcn_vae", "seq2seq", {}, {"kl"}),  # the prediction is the reconstruction: the task loss is its loss
]


@pytest.mark.parametrize("arch,mapping,extra,expected", AUX, ids=[f"{a}-{m}-{'-'.join(e.values()) or 'default'}" for a, m, e, _ in AUX])
def test_aux_losses_while_training_only(arch, mapping, extra, expected):
    model, x = build(arch, mapping, **extra), torch.randn(8, 12, 3)
    model.train()
    out = model(x)
    assert set(model.aux_losses) == expected
    for value in model.aux_losses.values():
        assert value.shape == () and torch.isfinite(value) and value.requires_grad
    (out.sum() + total_aux(model.aux_losses, out)[0]).backward()
    model.eval()
    model(x)
    assert model.aux_losses == {}  # reset on every forward


def test_models_deep_copy_after_a_training_forward():
    x = torch.randn(4, 12, 3)
    for arch in NEW:
        model = build(arch, "seq2static", out_dim=3, n_domains=2) if arch == "tcn_vae" else build(arch, latent="vq")
        model.set_domains(torch.tensor([0, 1, 0, 1]))
        model.train()(x)
        assert model.aux_losses or arch == "transformer"
        copied = copy.deepcopy(model)  # graph tensors in aux_losses cannot be deep-copied: copies leave them out
        assert copied.aux_losses == {} and getattr(copied.net, "aux_losses", {}) == {}
        assert torch.equal(copied.eval()(x), model.eval()(x)), arch


def test_eval_predictions_are_deterministic():
    x = torch.randn(4, 12, 3)
    for arch in NEW:
        model = build(arch).eval()
        assert torch.equal(model(x), model(x)), arch


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_gradient_penalty_differentiates_twice_through_every_model(arch):
    model = build(arch, causal=True).train()
    x = torch.randn(4, 12, 3, requires_grad=True)
    out = model(x)
    total, parts = total_regularization([{"name": "gradient_penalty", "weight": 1.0, "params": {}}], model, x, out)
    total.backward()
    assert math.isfinite(parts["gradient_penalty"]) and parts["gradient_penalty"] > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# --- gradient reversal, schedules, VQ ------------------------------------------------------------


def test_dann_alpha_schedule():
    assert dann_alpha(0.0) == 0.0
    assert dann_alpha(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1) == pytest.approx(0.986614, abs=1e-6)
    assert dann_alpha(1.0) == pytest.approx(0.999909, abs=1e-6)
    values = [dann_alpha(p / 10) for p in range(11)]
    assert values == sorted(values)
    model = build("tcn_vae", "seq2static", out_dim=4, n_domains=2)
    for p in (0.0, 0.1, 0.5, 1.0):
        model.set_progress(p)
        assert model.net.reverse.alpha == pytest.approx(2 / (1 + math.exp(-10 * p)) - 1)


def test_gradient_reversal_flips_the_sign():
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    y = grad_reverse(x, 0.7)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w)


def test_kl_annealing_with_progress():
    model = build("vae", kl_anneal=0.5, beta=0.2).train()
    x = torch.randn(6, 12, 3)
    for p, beta in ((0.0, 0.0), (0.25, 0.1), (0.5, 0.2), (0.9, 0.2)):
        model.set_progress(p)
        model(x)
        assert model.aux_metrics["beta"] == pytest.approx(beta)
        assert model.aux_losses["kl"].item() == pytest.approx(beta * float(model.aux_metrics["kl"]), rel=1e-5)


def test_vq_straight_through_passes_gradients_to_the_encoder():
    model = build("autoencoder", latent="vq", codebook_size=8, code_dim=4, latent_dim=8).train()
    x = torch.randn(16, 12, 3)
    net = model.net
    z_e = net.project(net.encoder((x - model.x_mean) / model.x_std))
    out = model(x)
    codes = net.quantizer.codebook.detach()
    z_q = net.encode(x).view(-1, 4)
    assert (z_q[:, None] - codes[None]).abs().amax(dim=2).min(dim=1).values.max() < 1e-6  # forward: every vector is a code
    out.sum().backward()  # decoder loss only, no aux: reaches the encoder through the straight-through estimator
    first = net.encoder.mlp[0].weight.grad
    assert first is not None and first.abs().sum() > 0
    assert net.quantizer.codebook.grad is None  # the codebook learns from the codebook loss only
    assert z_e.shape == (16, 8)


def test_tcn_vae_domain_head_is_adversarial():
    x, domains = torch.randn(8, 12, 3), torch.tensor([0, 1] * 4)
    model = build("tcn_vae", "seq2static", out_dim=4, n_domains=2, lambda_dom=0.5, adversary="reversal").train()
    grads = {}
    for alpha in (0.5, -1.0):  # alpha -1 turns the reversal into the identity
        model.zero_grad()
        model.net.reverse.alpha = alpha
        model.set_domains(domains)
        torch.manual_seed(0)
        model(x)
        model.aux_losses["domain"].backward()
        grads[alpha] = (model.net.mu.weight.grad.clone(), model.net.domain_head[0].weight.grad.clone())
    encoder_rev, head_rev = grads[0.5]
    encoder_id, head_id = grads[-1.0]
    assert torch.allclose(encoder_rev, -0.5 * encoder_id, atol=1e-6) and encoder_id.abs().sum() > 0
    assert torch.allclose(head_rev, head_id)  # the domain head itself descends its loss
    model(x)
    assert "domain" not in model.aux_losses  # domains are consumed by one forward
    with pytest.raises(ValueError, match="one id per sample"):
        model.set_domains(domains[:3])
        model(x)


def test_tcn_vae_aux_losses_are_divided_by_lambda_act():
    x, domains = torch.randn(8, 12, 3), torch.tensor([0, 1] * 4)
    values = {}
    for lam in (1.0, 4.0):
        torch.manual_seed(0)
        model = build("tcn_vae", "seq2static", out_dim=4, n_domains=2, lambda_act=lam).train()
        model.set_domains(domains)
        torch.manual_seed(1)
        model(x)
        values[lam] = {k: v.item() for k, v in model.aux_losses.items()}
    assert set(values[1.0]) == {"kl", "reconstruction", "domain"}
    for key, value in values[1.0].items():
        assert values[4.0][key] == pytest.approx(value / 4, rel=1e-5), key


# --- learning the synthetic files ------------------------------------------------------------------


def fit(data, task, model_cfg, epochs, lr=0.01, batch_size=32, domains=None):
    """A minimal loop in the protocol: set_progress per epoch; set_domains per batch (when given);
    task loss + sum(aux_losses); Adam; clip 1."""
    torch.manual_seed(0)
    model = build_model(model_cfg, **data.dims)
    model.x_mean, model.x_std = standardisation(data.x["train"])
    if data.dims["target_dim"] is not None:
        model.y_mean, model.y_std = standardisation(data.y["train"])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    x, y = data.x["train"], data.y["train"]
    for epoch in range(epochs):
        model.train()
        model.set_progress(epoch / epochs)
        for idx in torch.randperm(len(x)).split(batch_size):
            target = y[idx] if task["type"] == "classification" else model.normalise_target(y[idx])
            if domains is not None:
                model.set_domains(domains[idx])
            out = model(x[idx])
            loss = total_loss(task["losses"], out, target)[0] + total_aux(model.aux_losses, out)[0]
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
    return model.eval()


def score(model, data, task_type):
    """Test accuracy vs the majority class, or RMSE (normalised units) vs the train-mean predictor."""
    with torch.no_grad():
        out = model(data.x["test"])
    y = data.y["test"]
    if task_type == "classification":
        majority = torch.bincount(data.y["train"]).argmax()
        return (out.argmax(-1) == y).float().mean().item(), (y == majority).float().mean().item()
    target = model.normalise_target(y)
    baseline = model.normalise_target(data.y["train"].mean(dim=0, keepdim=True)).expand_as(target)
    return ((out - target) ** 2).mean().sqrt().item(), ((baseline - target) ** 2).mean().sqrt().item()


LEARN = [
    ("transformer", "classification", {}),
    ("transformer", "regression", {"positions": "learned"}),
    ("transformer", "reconstruction", {}),
    ("autoencoder", "reconstruction", {"latent": "none"}),
    ("autoencoder", "reconstruction", {"latent": "linear"}),
    ("autoencoder", "reconstruction", {"latent": "vq"}),
    ("vae", "reconstruction", {"kl_anneal": 0.3}),
    ("gan_ae", "reconstruction", {}),
    ("diffusion_ae", "reconstruction", {}),
    ("tcn_vae", "classification", {}),
    ("tcn_vae", "reconstruction", {}),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {kind: make_file(root / f"{kind}.h5", kind) for kind in ("classification", "regression")}


@pytest.mark.parametrize("arch,task_type,extra", LEARN, ids=[f"{a}-{t}-{'-'.join(map(str, e.values())) or 'default'}" for a, t, e in LEARN])
def test_model_learns_and_beats_baseline(files, arch, task_type, extra):
    mapping = "seq2seq" if task_type == "reconstruction" else "seq2static"
    j = job(task_type, arch, mapping)
    data = load_task_data(files["regression" if task_type == "regression" else "classification"], j["task"])
    model = fit(data, j["task"], cfg(arch, **extra), epochs=12)
    got, base = score(model, data, task_type)
    if task_type == "classification":
        assert got > base + 0.2, (got, base)
    else:
        assert got < 0.8 * base, (got, base)


def test_tcn_vae_learns_with_a_domain_adversary(files):
    j = job("classification", "tcn_vae")
    data = load_task_data(files["classification"], j["task"])
    domains = torch.arange(len(data.x["train"])) % 3  # three "datasets" the encoder should not tell apart
    model = fit(data, j["task"], cfg("tcn_vae", n_domains=3, lambda_dom=0.5), epochs=12, domains=domains)
    got, base = score(model, data, "classification")
    assert got > base + 0.2, (got, base)
