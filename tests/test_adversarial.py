"""Adversarial examples: hand computations, side-effect freedom, the eps-ball, training."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pyrogen.adversarial import accuracy, adversarial_loss, fgsm, fit_classifier, pgd
from pyrogen.history import History


def _softmax_regression(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(5, 3).double()


def _batch(n: int = 8, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    # Inside [0.2, 0.8] so that a perturbation of 0.05 is never clipped.
    x = 0.2 + 0.6 * torch.rand(n, 5, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def _mlp(dropout: float = 0.0) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(5, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 3)
    ).double()


def test_fgsm_matches_softmax_regression_by_hand():
    model = _softmax_regression()
    x, y = _batch()
    eps = 0.05
    p = torch.softmax(x @ model.weight.detach().T + model.bias.detach(), dim=-1)
    # d CE / d x = W^T (p - onehot(y)) for logits W x + b.
    grad = (p - F.one_hot(y, 3).double()) @ model.weight.detach()
    expected = x + eps * grad.sign()
    torch.testing.assert_close(fgsm(model, x, y, eps=eps), expected, rtol=0, atol=0)


def test_fgsm_custom_loss_by_hand_and_predicted_labels():
    model = _softmax_regression()
    x, y = _batch()

    def negative_logit(logits, labels):
        return -logits.gather(1, labels.unsqueeze(1))

    # d(-logit_y)/dx = -W_y, so the attack lowers the true logit.
    expected = x - 0.05 * model.weight.detach()[y].sign()
    actual = fgsm(model, x, y, eps=0.05, loss_fn=negative_logit)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    predicted = model(x).argmax(-1)
    torch.testing.assert_close(fgsm(model, x, eps=0.05), fgsm(model, x, predicted, eps=0.05))


def test_attacks_leave_parameter_grads_alone():
    model = _mlp()
    x, y = _batch()
    params = list(model.parameters())
    fgsm(model, x, y, eps=0.1)
    pgd(model, x, y, eps=0.1, steps=3, seed=0)
    assert all(p.grad is None for p in params)
    for p in params:
        p.grad = torch.randn_like(p)
    before = [p.grad.clone() for p in params]
    fgsm(model, x, y, eps=0.1)
    pgd(model, x, y, eps=0.1, steps=3, seed=0)
    adversarial_loss(model, x, y, 0.1)  # no backward: grads must still be untouched
    for p, g in zip(params, before, strict=True):
        assert torch.equal(p.grad, g)


def test_attacks_run_in_eval_mode_and_restore_every_flag():
    model = _mlp(dropout=0.5)
    x, y = _batch()
    model.train()
    model[2].eval()  # a deliberately mixed state must survive
    flags = [m.training for m in model.modules()]
    first = fgsm(model, x, y, eps=0.1)
    assert [m.training for m in model.modules()] == flags
    # Dropout active would make two calls differ; in eval mode they agree with an eval model.
    torch.testing.assert_close(first, fgsm(model, x, y, eps=0.1), rtol=0, atol=0)
    pgd(model, x, y, eps=0.1, steps=2, seed=0)
    assert [m.training for m in model.modules()] == flags
    model.eval()
    torch.testing.assert_close(first, fgsm(model, x, y, eps=0.1), rtol=0, atol=0)


def test_clamp_is_honoured_and_refuses_inputs_outside_it():
    model = _mlp()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 5, generator=g, dtype=torch.float64)
    y = torch.zeros(16, dtype=torch.int64)
    x_adv = fgsm(model, x, y, eps=0.3)
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float((x_adv - x).abs().max()) <= 0.3 + 1e-12
    x_pgd = pgd(model, x, y, eps=0.3, steps=5, seed=0)
    assert float(x_pgd.min()) >= 0.0 and float(x_pgd.max()) <= 1.0
    with pytest.raises(ValueError, match="clamp"):
        fgsm(model, x + 1.5, y, eps=0.1)
    unclamped = fgsm(model, x, y, eps=0.3, clamp=None)
    assert float(unclamped.max()) > 1.0 or float(unclamped.min()) < 0.0


def test_pgd_increases_the_loss_and_stays_in_the_ball():
    model = _mlp()
    x, y = _batch(n=64)
    eps = 0.1
    x_adv = pgd(model, x, y, eps=eps, steps=10, seed=3)
    assert float((x_adv - x).abs().max()) <= eps + 1e-12
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y)
        attacked = F.cross_entropy(model(x_adv), y)
        one_step = F.cross_entropy(model(fgsm(model, x, y, eps=eps)), y)
    assert attacked > clean
    assert attacked >= one_step - 1e-9
    torch.testing.assert_close(x_adv, pgd(model, x, y, eps=eps, steps=10, seed=3))
    assert not torch.equal(x_adv, pgd(model, x, y, eps=eps, steps=10, seed=4))
    torch.testing.assert_close(pgd(model, x, y, eps=0.0, steps=3), x, rtol=0, atol=0)


def test_adversarial_loss_is_goodfellows_objective():
    model = _mlp()
    x, y = _batch()
    eps, alpha = 0.05, 0.3
    x_req = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x_req), y), x_req)
    x_adv = (x + eps * grad.sign()).detach()  # a constant, as in Goodfellow et al.
    expected = alpha * F.cross_entropy(model(x), y) + (1 - alpha) * F.cross_entropy(model(x_adv), y)
    expected_grads = torch.autograd.grad(expected, list(model.parameters()))
    loss = adversarial_loss(model, x, y, eps, alpha)
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
    for actual, wanted in zip(
        torch.autograd.grad(loss, list(model.parameters())), expected_grads, strict=True
    ):
        torch.testing.assert_close(actual, wanted, rtol=1e-12, atol=1e-12)
    clean = adversarial_loss(model, x, y, eps, alpha=1.0)
    torch.testing.assert_close(clean, F.cross_entropy(model(x), y))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, x, y: fgsm(m, x, y, eps=-0.1), "eps"),
        (lambda m, x, y: pgd(m, x, y, eps=-0.1), "eps"),
        (lambda m, x, y: adversarial_loss(m, x, y, -0.1), "eps"),
        (lambda m, x, y: adversarial_loss(m, x, y, 0.1, alpha=1.5), "alpha"),
        (lambda m, x, y: adversarial_loss(m, x, y, 0.1, alpha=-0.1), "alpha"),
        (lambda m, x, y: fgsm(m, x, y[:-1], eps=0.1), "y must have shape"),
        (lambda m, x, y: fgsm(m, x[0], eps=0.1), "batch"),
        (lambda m, x, y: pgd(m, x, y, eps=0.1, steps=0), "steps"),
        (lambda m, x, y: fgsm(m, x, y, eps=0.1, clamp=(1, 0)), "clamp"),
        (lambda m, x, y: adversarial_loss(m, x, None, 0.1), "y"),
    ],
)
def test_bad_input_raises_value_error(call, match):
    x, y = _batch()
    with pytest.raises(ValueError, match=match):
        call(_mlp(), x, y)


def test_bad_types_raise_type_error():
    x, y = _batch()
    with pytest.raises(TypeError, match="int64"):
        fgsm(_mlp(), x, y.double(), eps=0.1)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        fgsm(lambda t: t, x, y, eps=0.1)


def _blobs(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centres = torch.tensor([[0.2] * 5, [0.5] * 5, [0.8] * 5], dtype=torch.float64)
    x = (centres[y] + 0.05 * torch.randn(n, 5, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize("adversarial_eps", [None, 0.05])
def test_fit_classifier_learns_and_restores_modes(adversarial_eps):
    x, y = _blobs()
    model = _mlp(dropout=0.1)
    model.eval()
    history = fit_classifier(
        model, x, y, epochs=15, lr=1e-2, adversarial_eps=adversarial_eps, validation=(x, y)
    )
    assert isinstance(history, History) and len(history) == 15
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history.last("train_accuracy") > 0.9
    assert history.last("val_accuracy") == pytest.approx(accuracy(model, x, y))
    assert not any(m.training for m in model.modules())


def test_fit_classifier_same_seed_same_model():
    x, y = _blobs()
    weights = []
    for _ in range(2):
        model = _mlp()
        fit_classifier(model, x, y, epochs=2, seed=5)
        weights.append(model[0].weight.detach().clone())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_fit_classifier_is_interruptible():
    x, y = _blobs()

    class Stop(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = _mlp()
            self.calls = 0

        def forward(self, t):
            self.calls += 1
            if self.calls > 10:  # 4 batches per epoch + 1 accuracy pass: stop in epoch 3
                raise KeyboardInterrupt
            return self.inner(t)

    history = fit_classifier(Stop(), x, y, epochs=5)
    assert history.interrupted and len(history) == 2
