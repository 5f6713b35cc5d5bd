"""SSVAE (M2): exact enumeration identity, contract, and the semi-supervised gain on digits."""

from __future__ import annotations

import inspect
import math

import pyro
import pytest
import torch
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO

from pyrogen.data import load_digits
from pyrogen.vae import SSVAE, fit_classifier, fit_semisupervised
from pyrogen.vae.functional import class_logits, decode_logits
from pyrogen.vae.ssvae import DEFAULT_ALPHA_PER_EXAMPLE, DEFAULT_LR


def _small(seed: int = 0, dtype: torch.dtype = torch.float32) -> SSVAE:
    torch.manual_seed(seed)
    return SSVAE(6, 2, 3, hidden=(8,), dtype=dtype)


def _data(n: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.full((n, 6), 0.4), generator=g)
    return x, torch.randint(3, (n,), generator=g)


def test_enumerated_elbo_equals_closed_form_when_q_z_is_the_prior():
    """With q(z|x,y) = N(0, I) exactly, log p(z) - log q(z) = 0 for every draw, and the
    decoder ignores z, the ELBOs have closed forms:
    labelled L(x, y) = log p(x|y) + log(1/K); unlabelled U(x) = sum_y q(y|x) L(x,y) + H(q)."""
    ssvae = _small(dtype=torch.float64)
    with torch.no_grad():
        last = ssvae.encoder[-2]  # the last linear layer (then the MLP's output Identity)
        last.weight.zero_()
        last.bias[:2] = 0.0
        last.bias[2:] = math.log(math.expm1(1.0 - 1e-5))  # softplus(b) + 1e-5 == 1
        ssvae.decoder[0].weight[:, :2] = 0.0  # decoder input = [z, onehot(y)]: drop z
    x, y = _data(7)
    x = x.double()
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    K = ssvae.num_classes
    labels = torch.arange(K)
    zeros = torch.zeros(x.shape[0], 2, dtype=torch.float64)
    with torch.no_grad():
        # log p(x | y) for every class: (K, n)
        log_px = torch.stack(
            [
                -F.binary_cross_entropy_with_logits(
                    decode_logits(ssvae, zeros, labels[k].expand(x.shape[0])), x, reduction="none"
                ).sum(-1)
                for k in range(K)
            ]
        )
        labelled = log_px.gather(0, y.unsqueeze(0)).squeeze(0) - math.log(K)
        q = torch.softmax(class_logits(ssvae, x), -1).T  # (K, n)
        unlabelled = (q * (log_px - math.log(K))).sum(0) - (q * q.log()).sum(0)
        got_l = -Trace_ELBO().loss(ssvae.model, ssvae.guide, x, y)
        got_u = -elbo.loss(ssvae.model, ssvae.guide, x)
    assert got_l == pytest.approx(float(labelled.sum()), rel=1e-10, abs=1e-8)
    assert got_u == pytest.approx(float(unlabelled.sum()), rel=1e-10, abs=1e-8)


def test_every_parameter_gets_a_gradient_and_svi_runs():
    ssvae = _small()
    x, y = _data()
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.differentiable_loss(ssvae.model, ssvae.guide, x) + Trace_ELBO().differentiable_loss(
        ssvae.model, ssvae.guide, x, y
    )
    loss.backward()
    for name, p in ssvae.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    optim = pyro.optim.Adam({"lr": 1e-2})
    svi_u = SVI(ssvae.model, ssvae.guide, optim, elbo)
    svi_l = SVI(ssvae.model, ssvae.guide, optim, Trace_ELBO())
    losses = [svi_u.step(x) + svi_l.step(x, y) for _ in range(40)]
    assert sum(losses[-5:]) < sum(losses[:5])


def test_save_load_round_trip(tmp_path):
    ssvae = _small()
    x, _ = _data()
    ssvae.save(tmp_path / "m.safetensors")
    loaded = SSVAE.load(tmp_path / "m.safetensors")
    assert loaded.config() == ssvae.config()
    torch.testing.assert_close(loaded.class_probs(x), ssvae.class_probs(x), rtol=0, atol=0)
    assert torch.equal(loaded.predict(x), ssvae.predict(x))


def test_fit_semisupervised_history_and_checks():
    ssvae = _small()
    x, y = _data(30)
    h = fit_semisupervised(
        ssvae,
        (x[:6], y[:6]),
        x[6:],
        epochs=2,
        batch_size=8,
        seed=0,
        validation=(x[:6], y[:6]),
        progress=False,
    )
    assert len(h) == 2 and all(math.isfinite(v) for v in h["loss"])
    assert 0 <= h.last("validation_accuracy") <= 1
    with pytest.raises(ValueError, match="labelled\\[1\\]"):
        fit_semisupervised(ssvae, (x[:6], y[:5]), x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="must lie in"):
        fit_semisupervised(ssvae, (x[:6], y[:6] + 3), x, epochs=1, progress=False)
    with pytest.raises(TypeError, match="int64"):
        fit_semisupervised(ssvae, (x[:6], y[:6].float()), x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="binary"):
        fit_semisupervised(ssvae, (x[:6], y[:6]), x * 0.5, epochs=1, progress=False)
    with pytest.raises(ValueError, match="num_classes"):
        SSVAE(6, 2, 1)


@pytest.mark.slow
def test_ssvae_with_100_labels_beats_labelled_only_mlp():
    train, test, y_train, y_test = load_digits(return_labels=True)
    order = torch.randperm(train.shape[0], generator=torch.Generator().manual_seed(0))
    lab, unl = order[:100], order[100:]
    mlp = fit_classifier(train[lab], y_train[lab], 10, seed=0)
    with torch.no_grad():
        mlp_accuracy = float((mlp(test).argmax(-1) == y_test).double().mean())
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ssvae = SSVAE(64, 8, 10)
    fit_semisupervised(
        ssvae, (train[lab], y_train[lab]), train[unl], epochs=50, seed=0, progress=False
    )
    ssvae_accuracy = float((ssvae.predict(test) == y_test).double().mean())
    assert ssvae_accuracy > mlp_accuracy


def test_default_alpha_and_lr_are_the_documented_ones():
    """alpha=None means DEFAULT_ALPHA_PER_EXAMPLE * (n_l + n_u); lr defaults to DEFAULT_LR."""
    assert DEFAULT_ALPHA_PER_EXAMPLE == 1.0 and DEFAULT_LR == 3e-3
    assert inspect.signature(fit_semisupervised).parameters["lr"].default == DEFAULT_LR
    x, y = _data(30)
    trained = []
    for alpha in (None, DEFAULT_ALPHA_PER_EXAMPLE * 30, 0.1 * 30):
        ssvae = _small()
        fit_semisupervised(
            ssvae,
            (x[:6], y[:6]),
            x[6:],
            epochs=2,
            batch_size=8,
            alpha=alpha,
            seed=0,
            progress=False,
        )
        trained.append(torch.cat([p.detach().flatten() for p in ssvae.parameters()]))
    assert torch.equal(trained[0], trained[1])
    assert not torch.equal(trained[0], trained[2])


def _balanced(y: torch.Tensor, per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` random labelled examples of each digit; the rest unlabelled."""
    g = torch.Generator().manual_seed(seed)
    lab = torch.cat(
        [
            (y == c)
            .nonzero()
            .squeeze(1)[torch.randperm(int((y == c).sum()), generator=g)][:per_class]
            for c in range(10)
        ]
    )
    mask = torch.ones(y.numel(), dtype=torch.bool)
    mask[lab] = False
    return lab, mask.nonzero().squeeze(1)


def test_m2_with_20_labels_beats_the_best_labels_only_mlp():
    """Issue 10: with 20 labels (2 per digit) M2 at its defaults beats the labels-only MLP.

    Seed policy: one fixed seed (0) for the labelled subset, both initialisations and M2's
    minibatches; the MLP gets the better of two weight decays (its best on the *test* set,
    which favours it). M2 must win by 0.03 (11 of 360 test digits). Measured when written
    (20 epochs, seeds 0/1/2 of benchmarks/ssvae_labels.py's split): M2 0.842/0.767/0.769 vs
    the MLP's best 0.756/0.689/0.686, so the margin leaves room for numeric drift.
    """
    torch.set_num_threads(1)
    train, test, y_train, y_test = load_digits(return_labels=True, seed=0)
    lab, unl = _balanced(y_train, 2, seed=0)
    mlp_accuracy = 0.0
    for weight_decay in (1e-4, 1e-2):
        mlp = fit_classifier(train[lab], y_train[lab], 10, weight_decay=weight_decay, seed=0)
        with torch.no_grad():
            accuracy = float((mlp(test).argmax(-1) == y_test).double().mean())
        mlp_accuracy = max(mlp_accuracy, accuracy)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ssvae = SSVAE(64, 8, 10)
    fit_semisupervised(
        ssvae, (train[lab], y_train[lab]), train[unl], epochs=20, seed=0, progress=False
    )
    ssvae_accuracy = float((ssvae.predict(test) == y_test).double().mean())
    assert ssvae_accuracy > mlp_accuracy + 0.03, (ssvae_accuracy, mlp_accuracy)
