r"""Adversarial examples and adversarial training for classifiers on [0, 1] inputs.

* :func:`fgsm`: the fast gradient sign method (Goodfellow, Shlens and Szegedy, 2014),
  :math:`\tilde x = \operatorname{clip}(x + \epsilon \operatorname{sign} \nabla_x J(x, y))`.
* :func:`pgd`: projected gradient ascent inside the :math:`L_\infty` ball of radius
  :math:`\epsilon` (Madry et al., 2018), the stronger attack to quote robustness against;
  FGSM alone overstates the robustness of adversarially trained models.
* :func:`adversarial_loss`: Goodfellow et al.'s objective
  :math:`\alpha J(x, y) + (1 - \alpha) J(x + \epsilon \operatorname{sign} \nabla_x J(x, y), y)`.
* :func:`fit_classifier`: a small Adam loop, plain or adversarial, returning a
  :class:`~pyrogen.history.History`.

``model`` maps inputs ``(n, ...)`` to logits ``(n, num_classes)``. The attacks differentiate
with ``torch.autograd.grad`` with respect to the *input only*: no parameter's ``.grad`` is
created or changed, and the model's train/eval flags are restored afterwards.

References:
    I. J. Goodfellow, J. Shlens, C. Szegedy, "Explaining and harnessing adversarial
    examples", arXiv:1412.6572 (2014). A. Madry et al., "Towards deep learning models
    resistant to adversarial attacks", ICLR 2018. A. Kurakin, I. Goodfellow, S. Bengio,
    "Adversarial machine learning at scale", ICLR 2017 (label leaking, hence ``y=None``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from pyrogen._validation import (
    check_finite,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_tensor,
)
from pyrogen.history import History
from pyrogen.seeding import check_seed, make_generator

__all__ = ["fgsm", "pgd", "adversarial_loss", "fit_classifier", "accuracy"]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and restore each one's own flag afterwards.

    Restoring per submodule (not ``model.train(was_training)``) keeps deliberately mixed
    states, such as a frozen batch-norm inside a training model, as the caller left them.
    """
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _check_clamp(clamp: object, x: torch.Tensor) -> tuple[float, float] | None:
    if clamp is None:
        return None
    if not (
        isinstance(clamp, (tuple, list))
        and len(clamp) == 2
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in clamp)
        and clamp[0] < clamp[1]
    ):
        raise ValueError(f"clamp must be None or a pair (low, high) with low < high, got {clamp!r}")
    low, high = float(clamp[0]), float(clamp[1])
    # Clamping an input that already lies outside the box would change the clean point too,
    # silently; refuse instead.
    if bool((x < low).any() or (x > high).any()):
        raise ValueError(
            f"x has values in [{float(x.min()):.4g}, {float(x.max()):.4g}], outside "
            f"clamp={clamp!r}; rescale x or pass clamp=None for unbounded inputs"
        )
    return low, high


@overload
def _check_inputs(
    model: object, x: object, y: object, eps: object, y_required: Literal[True]
) -> tuple[nn.Module, torch.Tensor, torch.Tensor, float]: ...
@overload
def _check_inputs(
    model: object, x: object, y: object, eps: object, y_required: bool = False
) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None, float]: ...
def _check_inputs(
    model: object, x: object, y: object, eps: object, y_required: bool = False
) -> tuple[nn.Module, torch.Tensor, torch.Tensor | None, float]:
    """Checked ``(model, x, y, eps)``; with ``y_required`` the labels ``y`` are never None."""
    model = _check_model(model)
    x = check_tensor(x, "x")
    check_finite(x, "x")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch of shape (n, ...), got shape {tuple(x.shape)}")
    if y is None:
        if y_required:
            raise ValueError("y (the labels) is required")
    else:
        if not isinstance(y, torch.Tensor) or y.dtype != torch.int64:
            raise TypeError(
                "y must be an int64 tensor of class labels, got "
                f"{y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}"
            )
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
    eps = check_nonnegative_float(eps, "eps")
    return model, x, y, eps


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None):
    output = model(x)
    if loss_fn is None:
        # Summed, not averaged: each example's input gradient then does not shrink with the
        # batch size (the sign is the same, but tiny averaged gradients can underflow to 0).
        return F.cross_entropy(output, y, reduction="sum")
    return loss_fn(output, y).sum()


def _input_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None
) -> torch.Tensor:
    """:math:`\\nabla_x J(x, y)` without touching any parameter's ``.grad``."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(_loss(model, x, y, loss_fn), x)
    return grad


def _predicted_labels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x).argmax(-1)


def fgsm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    eps: float,
    loss_fn: LossFn | None = None,
    clamp: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    r"""Fast gradient sign method: :math:`\operatorname{clip}(x + \epsilon\,\operatorname{sign}
    \nabla_x J(x, y))`.

    Args:
        model: classifier mapping ``x`` to logits ``(n, num_classes)``. Evaluated in eval mode;
            every submodule's mode is restored afterwards.
        x: clean inputs ``(n, ...)``, inside ``clamp`` when one is given.
        y: int64 labels ``(n,)``. None uses the model's own predictions, which avoids the
            "label leaking" of attacks built on the true label (Kurakin et al., 2017).
        eps: :math:`L_\infty` size of the perturbation, >= 0 (keyword-only).
        loss_fn: ``loss_fn(logits, y)``; non-scalar results are summed. Default: the summed
            cross-entropy of the logits.
        clamp: ``(low, high)`` box the adversarial input is clipped to, or None.

    Returns:
        Detached adversarial inputs, the shape, dtype and device of ``x``. For softmax
        regression (logits :math:`Wx + b`) this is :math:`x + \epsilon\,
        \operatorname{sign}(W^\top (p - e_y))` before clipping.

    Example:
        >>> net = torch.nn.Linear(4, 3)
        >>> x_adv = fgsm(net, torch.rand(5, 4), eps=0.1)
        >>> tuple(x_adv.shape)
        (5, 4)
    """
    model, x, y, eps = _check_inputs(model, x, y, eps)
    box = _check_clamp(clamp, x)
    with _eval_mode(model):
        if y is None:
            y = _predicted_labels(model, x)
        grad = _input_gradient(model, x, y, loss_fn)
    x_adv = x.detach() + eps * grad.sign()
    if box is not None:
        x_adv = x_adv.clamp(*box)
    return x_adv


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    eps: float,
    alpha: float | None = None,
    steps: int = 20,
    random_start: bool = True,
    seed: int | None = None,
    loss_fn: LossFn | None = None,
    clamp: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    r"""Projected gradient descent on the loss inside the :math:`L_\infty` ball (Madry et al.).

    Starting from :math:`x^0 = x + \delta`, :math:`\delta \sim U[-\epsilon, \epsilon]` (or
    :math:`x` when ``random_start`` is False), repeat ``steps`` times

    .. math:: x^{t+1} = \Pi\big(x^t + \alpha\, \operatorname{sign} \nabla_x J(x^t, y)\big)

    where :math:`\Pi` projects onto :math:`\{\lVert x' - x\rVert_\infty \le \epsilon\}`
    intersected with the ``clamp`` box. The result never leaves that set.

    Args:
        model, x, y, eps, loss_fn, clamp: as in :func:`fgsm`.
        alpha: step size; default ``2.5 * eps / steps`` (Madry et al.), so that the iterates
            can cross the ball and back.
        steps: number of gradient steps.
        random_start: start from a uniform point in the ball.
        seed: seeds the random start (a ``torch.Generator`` on ``x``'s device); the global
            RNG is left untouched. ``None``: a fresh seed drawn from torch's global generator
            (:mod:`pyrogen.seeding`).

    Returns:
        Detached adversarial inputs, the shape, dtype and device of ``x``.
    """
    model, x, y, eps = _check_inputs(model, x, y, eps)
    box = _check_clamp(clamp, x)
    check_positive_int(steps, "steps")
    seed = check_seed(seed)
    alpha = 2.5 * eps / steps if alpha is None else check_nonnegative_float(alpha, "alpha")
    x = x.detach()
    low, high = x - eps, x + eps
    if box is not None:
        low, high = low.clamp(min=box[0]), high.clamp(max=box[1])
    x_adv = x.clone()
    if random_start and eps > 0:
        generator = make_generator(seed, x.device)
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x_adv = torch.max(torch.min(x + eps * (2 * noise - 1), high), low)
    with _eval_mode(model):
        if y is None:
            y = _predicted_labels(model, x)
        for _ in range(steps):
            grad = _input_gradient(model, x_adv, y, loss_fn)
            x_adv = torch.max(torch.min(x_adv + alpha * grad.sign(), high), low)
    return x_adv


def adversarial_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    alpha: float = 0.5,
    *,
    loss_fn: LossFn | None = None,
    clamp: tuple[float, float] | None = (0.0, 1.0),
) -> torch.Tensor:
    r"""Goodfellow et al.'s adversarial objective, a differentiable scalar.

    .. math:: \tilde J(\theta; x, y) = \alpha J(\theta; x, y)
              + (1 - \alpha) J(\theta; x + \epsilon \operatorname{sign}
              \nabla_x J(\theta; x, y), y)

    The perturbed input is **detached**: as in the paper it is a constant of the parameter
    update. This changes no gradient value, since :math:`\operatorname{sign}` has zero
    derivative almost everywhere, and it spares a second-order backward pass. The model
    runs in whatever mode the caller set (train mode during training), and the input
    gradient is taken with ``torch.autograd.grad``, so parameters' ``.grad`` are untouched
    until the caller calls ``backward`` on the result.

    Args:
        model: classifier mapping ``x`` to logits.
        x: inputs ``(n, ...)``; y: int64 labels ``(n,)``.
        eps: perturbation size, >= 0. alpha: weight of the clean loss, in [0, 1].
        loss_fn: ``loss_fn(logits, y)`` returning the mean loss; default cross-entropy.
        clamp: box for the perturbed input, or None (see :func:`fgsm`).

    Returns:
        Scalar tensor with a graph to the parameters.
    """
    model, x, y, eps = _check_inputs(model, x, y, eps, y_required=True)
    alpha = check_probability(alpha, "alpha")
    box = _check_clamp(clamp, x)
    loss_fn = F.cross_entropy if loss_fn is None else loss_fn
    x_input = x.detach().requires_grad_(True)
    clean = loss_fn(model(x_input), y)
    if clean.dim() != 0:
        raise ValueError(f"loss_fn must return a scalar, got shape {tuple(clean.shape)}")
    if alpha == 1.0:
        return clean
    # Scaling by n turns a mean into a sum before differentiating: same sign, no underflow.
    (grad,) = torch.autograd.grad(clean * x.shape[0], x_input, retain_graph=True)
    x_adv = x.detach() + eps * grad.sign()
    if box is not None:
        x_adv = x_adv.clamp(*box)
    perturbed = loss_fn(model(x_adv), y)
    return alpha * clean + (1.0 - alpha) * perturbed


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    """Fraction of ``x`` whose arg-max logit equals ``y``, computed in eval mode."""
    model, x, y, _ = _check_inputs(model, x, y, 0.0, y_required=True)
    check_positive_int(batch_size, "batch_size")
    correct = 0
    with _eval_mode(model), torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            logits = model(x[start : start + batch_size])
            correct += int((logits.argmax(-1) == y[start : start + batch_size]).sum())
    return correct / x.shape[0]


def fit_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 30,
    adversarial_eps: float | None = None,
    alpha: float = 0.5,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    clamp: tuple[float, float] | None = (0.0, 1.0),
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    seed: int | None = 0,
    progress: bool = False,
) -> History:
    """Train ``model`` with Adam on cross-entropy, or on :func:`adversarial_loss`.

    Each epoch visits a seeded random permutation of ``x`` in mini-batches. The model is
    trained in train mode and its modes are restored afterwards; parameters stay where they
    are (``x`` and ``y`` must be on the model's device). Ctrl-C ends training early, with
    ``history.interrupted`` set.

    Args:
        model: classifier mapping ``x`` to logits.
        x: inputs ``(n, ...)``; y: int64 labels ``(n,)``.
        epochs: passes over the data.
        adversarial_eps: None for plain training; else the ``eps`` of
            :func:`adversarial_loss` (Goodfellow et al. use the attack's eps).
        alpha: weight of the clean loss in the adversarial objective.
        lr, weight_decay: Adam's settings.
        batch_size: mini-batch size.
        clamp: input box for the adversarial examples.
        validation: optional ``(x_val, y_val)`` whose clean accuracy is recorded each epoch.
        seed: seeds the mini-batch order (initialise the model's weights yourself); the
            global RNG is left untouched. ``None``: a fresh seed drawn from torch's global
            generator (:mod:`pyrogen.seeding`).
        progress: show a tqdm bar over epochs.

    Returns:
        :class:`~pyrogen.history.History` with ``loss`` (mean training objective),
        ``train_accuracy`` (clean, in eval mode), ``val_accuracy`` (with ``validation``),
        ``epoch_time`` and ``wall_time`` per epoch.
    """
    model, x, y, _ = _check_inputs(model, x, y, 0.0, y_required=True)
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_float(lr, "lr")
    check_nonnegative_float(weight_decay, "weight_decay")
    if adversarial_eps is not None:
        check_nonnegative_float(adversarial_eps, "adversarial_eps")
        check_probability(alpha, "alpha")
        _check_clamp(clamp, x)
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise ValueError("validation must be a pair (x_val, y_val)")
        _check_inputs(model, validation[0], validation[1], 0.0, y_required=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    generator = make_generator(seed)
    history = History()
    n = x.shape[0]
    flags = [(m, m.training) for m in model.modules()]
    start = time.perf_counter()
    bar = tqdm(range(epochs), disable=not progress, desc="classifier", unit="epoch")
    try:
        for _ in bar:
            tic = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=generator).to(x.device)
            total = 0.0
            for begin in range(0, n, batch_size):
                index = order[begin : begin + batch_size]
                xb, yb = x[index], y[index]
                if adversarial_eps is None:
                    loss = F.cross_entropy(model(xb), yb)
                else:
                    loss = adversarial_loss(model, xb, yb, adversarial_eps, alpha, clamp=clamp)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * xb.shape[0]
            record = {"loss": total / n, "train_accuracy": accuracy(model, x, y)}
            if validation is not None:
                record["val_accuracy"] = accuracy(model, *validation)
            now = time.perf_counter()
            history.record(**record, epoch_time=now - tic, wall_time=now - start)
            bar.set_postfix(loss=f"{record['loss']:.4f}")
    except KeyboardInterrupt:
        history.interrupted = True
    finally:
        bar.close()
        for module, flag in flags:
            module.training = flag
    return history
