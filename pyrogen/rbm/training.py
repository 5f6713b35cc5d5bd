r"""Contrastive-divergence training of an RBM.

The log-likelihood gradient (the lecture's)

.. math::
    \nabla_\theta \ell = \sum_t \mathbb E_{P(h|v^t)}[-\nabla_\theta E(v^t, h)]
                        - n\,\mathbb E_{P(v,h)}[-\nabla_\theta E(v, h)]

equals :math:`-\nabla_\theta \big(\overline{F(v^t)} - \mathbb E_{P(v)} F(v)\big)` per example.
The second expectation is intractable; CD-k replaces it by :math:`F(\tilde v)` at the end of
k block-Gibbs sweeps started at the data (Hinton 2002), PCD by the state of persistent
chains that are never reset (Tieleman 2008). We form the surrogate loss
``mean F(v_data) - mean F(v_model.detach())`` whose autograd gradient is exactly that
estimate (with :math:`P(h|v)` summed out analytically) and hand it to SGD with momentum.

Default hyperparameters were chosen on the binarized digits (64 visible units) by sweeping
learning rate and batch size (three seeds with 16 and 64 hidden units, one with 256), after an
earlier sweep of CD against PCD and of a momentum warm-up: CD-1, batches of 100, learning rate
0.2 decaying linearly to zero, momentum 0.9 from the first step, L2 weight decay 1e-4 on the
weights, visible biases initialised to the data log-odds (Hinton 2010, "A practical guide to
training RBMs", sections 8-10). In 100 epochs
they reach a held-out log-likelihood of about -18.0 nats per image with 16 hidden units
(exact), -16.4 with 64 and -16.1 with 256 (AIS). Batches of 20 at rate 0.04 reach the same
values within 0.1 nat but need 3 times as many updates and 3 to 5 times the wall time: at
this size an update costs about the same whatever the batch, so larger batches are nearly
free. PCD is different: its persistent chains must keep up with the model, so it wants many
small updates, and its defaults are batches of 20 at rate 0.04 (-18.3 with 16 hidden units in
100 epochs; at CD's batch and rate it stalls near the independent-pixel baseline).

Gaussian visible units: standardise the data to zero mean and unit variance per unit and keep
``sigma=1``; use about a quarter of the binary learning rate (0.05 at batches of 100), since
the visible statistics are unbounded (Hinton 2010, section 13.2).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from pyrogen._validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)
from pyrogen.history import History
from pyrogen.rbm.ais import ais
from pyrogen.rbm.model import RBM
from pyrogen.seeding import make_generator, resolve_seed

__all__ = ["fit", "pseudo_log_likelihood", "reconstruction_error", "standardize"]

# Exact validation log-likelihood is computed every epoch while the enumerated layer has at
# most this many units (2**20 states: well under a second on a CPU).
_EXACT_EVERY_EPOCH_BITS = 20
# Defaults per algorithm (see the module docstring for how they were chosen).
_DEFAULT_BATCH_SIZE = {"cd": 100, "pcd": 20}
_DEFAULT_LR = {"cd": 0.2, "pcd": 0.04}
# Training-set reconstruction error and pseudo-log-likelihood are monitored on this many
# fixed, randomly chosen training examples.
_MONITOR_SIZE = 500


def standardize(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(z, mean, std)`` with ``z = (data - mean) / std`` per column (for Gaussian RBMs).

    Columns with zero spread keep ``std = 1``.
    """
    mean = data.mean(0)
    std = data.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (data - mean) / std, mean, std


@torch.no_grad()
def reconstruction_error(rbm: RBM, v: torch.Tensor) -> torch.Tensor:
    """Mean squared error per unit between ``v`` and ``E[v | E[h | v]]`` (a 0-dim tensor)."""
    mean_h = torch.sigmoid(rbm._hidden_logits(v))
    stat = rbm._visible_logits(mean_h)
    recon = stat if rbm.is_gaussian else torch.sigmoid(stat)
    return ((v - recon) ** 2).mean()


@torch.no_grad()
def pseudo_log_likelihood(rbm: RBM, v: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    r"""Full pseudo-log-likelihood :math:`\sum_i \log P(v_i | v_{-i})` per example (binary units).

    Every coordinate is flipped (not one random coordinate as in scikit-learn's estimate):
    :math:`\log P(v_i | v_{-i}) = -\operatorname{softplus}(F(v) - F(v^{(i)}))` where
    :math:`v^{(i)}` is :math:`v` with unit :math:`i` flipped. Shape ``(n,)``.
    """
    if rbm.is_gaussian:
        raise ValueError("pseudo_log_likelihood is defined here for Bernoulli visible units only")
    out = []
    eye = torch.eye(rbm.n_visible, dtype=v.dtype, device=v.device)
    for chunk in v.split(batch_size):
        flipped = (chunk.unsqueeze(1) - eye).abs()  # (b, n_v, n_v): row i has unit i flipped
        delta = rbm._free_energy(chunk).unsqueeze(1) - rbm._free_energy(flipped)
        out.append(-F.softplus(delta).sum(-1))
    return torch.cat(out)


def _check_data(rbm: RBM, data: torch.Tensor, name: str) -> torch.Tensor:
    rbm.check_visible(data, name)
    if data.dim() != 2:
        raise ValueError(f"{name} must have shape (n, {rbm.n_visible}), got {tuple(data.shape)}")
    if data.dtype != rbm.weight.dtype:
        raise TypeError(
            f"{name} has dtype {data.dtype} but the RBM's parameters are {rbm.weight.dtype}; "
            f"convert one of them explicitly"
        )
    return data.to(rbm.weight.device)


@torch.no_grad()
def _init_visible_bias(rbm: RBM, data: torch.Tensor) -> None:
    if rbm.is_gaussian:
        rbm.visible_bias.copy_(data.mean(0))
    else:
        p = (data.sum(0) + 0.5) / (data.shape[0] + 1.0)
        rbm.visible_bias.copy_(torch.log(p) - torch.log1p(-p))


def fit(
    rbm: RBM,
    data: torch.Tensor,
    algorithm: Literal["cd", "pcd"] = "cd",
    k: int = 1,
    epochs: int = 100,
    batch_size: int | None = None,
    lr: float | None = None,
    lr_schedule: Literal["constant", "linear"] = "linear",
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    num_persistent: int = 100,
    seed: int | None = None,
    validation: torch.Tensor | None = None,
    progress: bool = True,
    init_visible_bias: bool = True,
    ais_every: int | None = 10,
    callback: Callable[[int, RBM, float], bool | None] | None = None,
) -> History:
    """Train ``rbm`` in place by CD-k or persistent CD; return per-epoch :class:`History`.

    Args:
        rbm: the model; training runs on its device and dtype.
        data: training set, shape ``(n, n_visible)``; binary for Bernoulli units,
            standardised for Gaussian units (a warning is raised otherwise).
        algorithm: ``"cd"`` (chains restart at the batch) or ``"pcd"`` (persistent chains).
        k: Gibbs sweeps per update.
        epochs: passes over the data.
        batch_size: examples per update; ``None``: 100 for CD, 20 for PCD.
        lr: initial learning rate; ``None``: 0.2 for CD, 0.04 for PCD (persistent chains
            only track the model when each update moves it little).
        lr_schedule: ``"constant"`` or ``"linear"`` (decays to 0 at the last update).
        momentum: momentum of SGD (PyTorch's convention).
        weight_decay: L2 penalty on ``weight`` (not on the biases).
        num_persistent: number of persistent chains for PCD.
        seed: seeds the minibatch order, the Gibbs chains and the AIS runs; the global RNG
            is left untouched. ``None``: a fresh seed drawn from torch's global generator
            (:mod:`pyrogen.seeding`).
        validation: held-out data; adds ``validation_*`` series.
        progress: show a tqdm bar.
        init_visible_bias: set visible biases to the data log-odds (or means) first.
        ais_every: when the exact log-likelihood is too costly, estimate it by AIS every this
            many epochs (and at the last); ``None`` disables it.
        callback: called as ``callback(step, rbm, wall_time)`` after every parameter update
            (``step`` counts updates from 1; ``wall_time`` is the training time so far in
            seconds, on the clock of the history's ``wall_time``), off that clock and with
            gradients disabled, e.g. to monitor the model more finely than once per epoch;
            returning ``True`` stops training after that update (the epoch is recorded as far
            as it went).

    Returns:
        :class:`~pyrogen.history.History` with ``reconstruction_error`` and
        ``pseudo_log_likelihood`` (binary units) on a fixed subset of 500 training examples,
        ``epoch_time`` and ``wall_time`` (training only), and for
        ``validation`` also ``validation_reconstruction_error``,
        ``validation_pseudo_log_likelihood`` and ``validation_log_likelihood`` (mean nats per
        example: exact when the smaller layer has <= 20 units, else AIS, with
        ``validation_log_likelihood_stderr``). Ctrl-C stops training cleanly and sets
        ``history.interrupted``.
    """
    algorithm = check_choice(algorithm, "algorithm", ("cd", "pcd"))
    lr_schedule = check_choice(lr_schedule, "lr_schedule", ("constant", "linear"))
    if batch_size is None:
        batch_size = _DEFAULT_BATCH_SIZE[algorithm]
    if lr is None:
        lr = _DEFAULT_LR[algorithm]
    check_positive_int(k, "k")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_persistent, "num_persistent")
    check_positive_float(lr, "lr")
    check_nonnegative_float(momentum, "momentum")
    if momentum >= 1:
        raise ValueError(f"momentum must be < 1, got {momentum}")
    check_nonnegative_float(weight_decay, "weight_decay")
    if ais_every is not None:
        check_positive_int(ais_every, "ais_every")
    data = _check_data(rbm, data, "data")
    if validation is not None:
        validation = _check_data(rbm, validation, "validation")
    if rbm.is_gaussian:
        mean_dev = float(data.mean(0).abs().max())
        spread = data.std(0) if data.shape[0] > 1 else torch.ones_like(data[0])
        # Constant columns cannot be scaled to unit variance; only the others are checked.
        std_dev = float((spread[spread > 0] - 1).abs().max()) if bool((spread > 0).any()) else 0.0
        if mean_dev > 0.1 or std_dev > 0.1:
            warnings.warn(
                "Gaussian-visible RBM trained on data that is not standardised "
                "(per-unit mean 0, sd 1); see pyrogen.rbm.standardize",
                stacklevel=2,
            )

    device = rbm.weight.device
    # One seed for the chains (on the model's device), the minibatch order (on the CPU) and
    # the AIS runs; None draws it from torch's global generator (pyrogen.seeding's rule).
    seed = resolve_seed(seed)
    generator = make_generator(seed, device)
    cpu_generator = make_generator(seed)
    if init_visible_bias:
        _init_visible_bias(rbm, data)

    n = data.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    if algorithm == "pcd":
        with torch.no_grad():
            start = data[torch.randint(n, (num_persistent,), generator=cpu_generator).to(device)]
            persistent = rbm._sample_visible(rbm._sample_hidden(start, generator), generator)
    # Training-set monitors use a fixed subset: the full pseudo-likelihood flips every unit of
    # every example and would cost more than the epoch itself.
    monitor = data[torch.randperm(n, generator=cpu_generator)[:_MONITOR_SIZE].to(device)]

    velocity = [torch.zeros_like(p) for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias)]
    bits = rbm.n_hidden if rbm.is_gaussian else min(rbm.n_visible, rbm.n_hidden)
    exact = bits <= _EXACT_EVERY_EPOCH_BITS
    history = History()
    bar = tqdm(range(epochs), desc="RBM", disable=not progress, leave=False)
    step = 0
    wall = 0.0
    grad_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        stop = False
        for epoch in bar:
            tic = time.perf_counter()
            paused = 0.0  # time spent in the callback, kept off the training clock
            order = torch.randperm(n, generator=cpu_generator).to(device)
            for batch_index in order.split(batch_size):
                rate = lr * (1.0 - step / total_steps) if lr_schedule == "linear" else lr
                batch = data[batch_index]
                data_h = torch.sigmoid(rbm._hidden_logits(batch))
                if algorithm == "pcd":
                    chain = persistent
                    for _ in range(k):
                        chain, _h = rbm.gibbs_step(chain, generator)
                    persistent = chain
                else:
                    # CD's first sweep starts from the batch, whose P(h | v) is data_h already.
                    h = torch.bernoulli(data_h, generator=generator)
                    chain = rbm._sample_visible(h, generator)
                    for _ in range(k - 1):
                        chain, _h = rbm.gibbs_step(chain, generator)
                _sgd_step(rbm, batch, data_h, chain, velocity, rate, momentum, weight_decay)
                step += 1
                if callback is not None:
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    pause = time.perf_counter()
                    stop = bool(callback(step, rbm, wall + pause - tic - paused))
                    paused += time.perf_counter() - pause
                    if stop:
                        break
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            epoch_time = time.perf_counter() - tic - paused
            wall += epoch_time
            record = {
                "epoch_time": epoch_time,
                "wall_time": wall,
                "reconstruction_error": float(reconstruction_error(rbm, monitor)),
            }
            if not rbm.is_gaussian:
                record["pseudo_log_likelihood"] = float(pseudo_log_likelihood(rbm, monitor).mean())
            if validation is not None:
                record.update(
                    _validation_metrics(
                        rbm,
                        validation,
                        data,
                        exact,
                        epoch,
                        stop or epoch == epochs - 1,
                        ais_every,
                        seed,
                    )
                )
            history.record(**record)
            if progress and "validation_log_likelihood" in record:
                bar.set_postfix(ll=f"{record['validation_log_likelihood']:.3f}")
            if stop:
                break
    except KeyboardInterrupt:
        history.interrupted = True
    finally:
        torch.set_grad_enabled(grad_mode)
        bar.close()
    return history


@torch.no_grad()
def _sgd_step(
    rbm: RBM,
    batch: torch.Tensor,
    data_h: torch.Tensor,
    chain: torch.Tensor,
    velocity: list[torch.Tensor],
    lr: float,
    momentum: float,
    weight_decay: float,
) -> None:
    r"""One SGD-with-momentum step along the CD estimate of the log-likelihood gradient.

    ``data_h`` is :math:`P(h = 1 | v)` at the batch, shape ``(batch, n_hidden)``.

    Written out by hand rather than through autograd (3x fewer kernel launches per step):
    with :math:`p = P(h = 1 | v)` and :math:`\tilde v = v / \sigma`,
    :math:`-\partial F / \partial W = \tilde v^\top p`, :math:`-\partial F / \partial c = p`,
    :math:`-\partial F / \partial b = v` (Bernoulli) or :math:`(v - b) / \sigma^2` (Gaussian);
    the update ascends ``mean over batch - mean over chain`` of these. Momentum follows
    PyTorch's SGD convention ``u <- momentum * u + g``, ``theta <- theta + lr * u``.
    """
    model_h = torch.sigmoid(rbm._hidden_logits(chain))
    grad_w = torch.addmm(
        rbm._scaled(batch).T @ data_h,
        rbm._scaled(chain).T,
        model_h,
        beta=1.0 / batch.shape[0],
        alpha=-1.0 / chain.shape[0],
    )
    if weight_decay:
        grad_w.add_(rbm.weight, alpha=-weight_decay)
    grad_b = batch.mean(0) - chain.mean(0)
    if rbm.is_gaussian:
        grad_b.div_(rbm.sigma**2)
    grad_c = data_h.mean(0) - model_h.mean(0)
    for param, buf, grad in zip(
        (rbm.weight, rbm.visible_bias, rbm.hidden_bias),
        velocity,
        (grad_w, grad_b, grad_c),
        strict=True,
    ):
        buf.mul_(momentum).add_(grad)
        param.add_(buf, alpha=lr)


@torch.no_grad()
def _validation_metrics(
    rbm: RBM,
    validation: torch.Tensor,
    data: torch.Tensor,
    exact: bool,
    epoch: int,
    last: bool,
    ais_every: int | None,
    seed: int | None,
) -> dict[str, float]:
    out = {"validation_reconstruction_error": float(reconstruction_error(rbm, validation))}
    if not rbm.is_gaussian:
        out["validation_pseudo_log_likelihood"] = float(
            pseudo_log_likelihood(rbm, validation).mean()
        )
    if exact:
        log_z = rbm.log_partition()
        out["validation_log_likelihood"] = float((-rbm._free_energy(validation) - log_z).mean())
    elif ais_every is not None and ((epoch + 1) % ais_every == 0 or last):
        result = ais(rbm, num_chains=100, num_temperatures=1000, data=data, seed=seed)
        out["validation_log_likelihood"] = float(
            (-rbm._free_energy(validation) - result.log_z).mean()
        )
        out["validation_log_likelihood_stderr"] = float(result.stderr)
    return out
