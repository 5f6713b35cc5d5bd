r"""Training a :class:`~pyrogen.vae.VAE` by stochastic variational inference.

Each step is the SVI update on a minibatch: the negative ELBO of ``vae.model`` / ``vae.guide``
from a Pyro ELBO object, differentiated and fed to Adam,

.. math:: \mathcal L(\theta, \phi) = \frac{N}{B} \sum_{n \in \text{batch}}
          E_{q_\phi(z|x_n)}[\log p_\theta(x_n|z)] - \operatorname{KL}(q_\phi(z|x_n) \,\|\, p(z)),

with the KL term in closed form under ``TraceMeanField_ELBO`` (the default) or estimated
by Monte Carlo under ``Trace_ELBO``.

Why not ``pyro.infer.SVI.step``: it computes exactly this update but also traces the model a
second time to collect parameters, keeps one optimizer per parameter and converts the loss
to a Python float (a device sync) every step. Here the ELBO's ``differentiable_loss`` feeds a
single (fused where available) ``torch.optim.Adam`` over ``vae.parameters()``, the minibatch
is an index into one on-device tensor passed as the plate's ``subsample``, and the loss is
read once per epoch. This is the pattern of Pyro's "custom SVI objectives" tutorial; the
model and guide are unchanged and still train under plain ``SVI`` (see the tests).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterator
from typing import Literal, Protocol

import pyro
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyrogen import distributed as _dist
from pyrogen._validation import (
    check_choice,
    check_positive_float,
    check_positive_int,
)
from pyrogen.history import History
from pyrogen.seeding import draw_seed, forked_global_rng, make_generator
from pyrogen.training_loop import Callback, EpochResult, check_callback, keyword_only, run_epochs
from pyrogen.vae.model import VAE

__all__ = ["fit", "make_elbo", "make_adam", "seeded", "unregistered"]


def make_elbo(kind: str, num_particles: int = 1) -> Trace_ELBO:
    """The Pyro ELBO for ``kind`` ``"meanfield"`` (analytic KL) or ``"trace"`` (Monte Carlo).

    Particles are vectorised (one batched pass) when ``num_particles > 1``; with one particle
    the extra plate would only add overhead.
    """
    kind = check_choice(kind, "elbo", ("meanfield", "trace"))
    check_positive_int(num_particles, "num_particles")
    cls = TraceMeanField_ELBO if kind == "meanfield" else Trace_ELBO
    return cls(
        num_particles=num_particles,
        vectorize_particles=num_particles > 1,
        max_plate_nesting=1,
    )


def make_adam(params: list[torch.nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """Adam over ``params``; the fused kernel when every parameter supports it."""
    fused = all(p.dtype in (torch.float32, torch.float64) for p in params) and all(
        p.device.type in ("cpu", "cuda") for p in params
    )
    try:
        return torch.optim.Adam(params, lr=lr, fused=fused)
    except (RuntimeError, TypeError):  # older builds without a fused kernel for this device
        return torch.optim.Adam(params, lr=lr, foreach=True)


#: Kept for code written against earlier versions: :func:`pyrogen.seeding.forked_global_rng`.
seeded = forked_global_rng


class _RegistersParams(Protocol):
    """A model whose Pyro methods call ``pyro.module`` only while ``register_params`` is on."""

    register_params: bool


@contextlib.contextmanager
def unregistered(module: _RegistersParams) -> Iterator[None]:
    """Switch off the per-call ``pyro.module`` registration of ``module`` inside the block."""
    old = module.register_params
    module.register_params = False
    try:
        yield
    finally:
        module.register_params = old


def _check_dataset(vae: VAE, x: object, name: str) -> torch.Tensor:
    x = vae.check_data(x, name)
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n, {vae.x_dim}), got {tuple(x.shape)}")
    return x.to(vae.device)


class _ShardedElbo(torch.nn.Module):
    """A rank's share of the minibatch loss, as a module so that DDP can wrap it.

    Pyro's model and guide call the VAE's networks directly, never ``vae.forward``; DDP only
    averages gradients of a backward pass that follows a call of the module it wraps, so the
    ELBO itself is the forward. ``forward(index, total)`` returns
    :math:`W B_r / B` times the loss of this rank's rows ``index`` (``B_r`` of the
    global batch's ``B = total``): DDP's average over the :math:`W` ranks is then the
    gradient of the one-process loss.
    """

    def __init__(self, vae: VAE, loss_fn: Trace_ELBO, data: torch.Tensor) -> None:
        super().__init__()
        self.vae = vae
        self.loss_fn = loss_fn
        self.data = data

    def forward(self, index: torch.Tensor, total: int) -> torch.Tensor:
        part = _dist.shard(total)
        with _dist.GlobalBatchNoise(part):
            loss = self.loss_fn.differentiable_loss(
                self.vae.model, self.vae.guide, self.data, subsample=index
            )
        return loss * (part.world_size * part.size / part.total)


@keyword_only(
    "epochs",
    "batch_size",
    "lr",
    "elbo",
    "num_particles",
    "seed",
    "validation",
    "progress",
    "distributed",
)
def fit(
    vae: VAE,
    data: torch.Tensor,
    *,
    epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int | None = None,
    validation: torch.Tensor | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    elbo: Literal["meanfield", "trace"] = "meanfield",
    num_particles: int = 1,
    distributed: bool | None = None,
) -> History:
    """Train ``vae`` in place by SVI with Adam; return the per-epoch :class:`History`.

    ``vae`` and ``data`` are positional, everything else keyword-only (the old positional
    form still works, with a ``FutureWarning``, until the next release).

    Args:
        vae: the model; training runs on its device.
        data: training set, shape ``(N, x_dim)`` (binary for the Bernoulli decoder).
        epochs: passes over the data (the last minibatch of an epoch may be smaller).
        batch_size: examples per step.
        lr: Adam learning rate.
        seed: seeds the minibatch order and every sample; the global RNG state is restored
            afterwards. ``None``: a fresh seed drawn from torch's global generator
            (:mod:`pyrogen.seeding`).
        validation: held-out data; adds a ``validation_elbo`` series.
        progress: show a tqdm bar.
        callback: ``callback(epoch, vae, history)`` after every epoch's record (``epoch``
            from 0); ``True`` stops training (:func:`pyrogen.training_loop.run_epochs`).
            Distributed, it is called on every rank and any rank's ``True`` stops them all.
        elbo: ``"meanfield"`` (``TraceMeanField_ELBO``: analytic KL, the fast default) or
            ``"trace"`` (``Trace_ELBO``: Monte Carlo KL).
        num_particles: samples of z per example per step (vectorised).
        distributed: ``None`` (default): train across the ranks of the open
            ``torch.distributed`` group, if there is one of more than one process;
            ``False``: train alone; ``True``: require a group. Each global minibatch is split
            between the ranks, gradients are averaged by ``DistributedDataParallel`` (each
            rank's loss weighted by its share of the batch), and each example's
            noise :math:`\\epsilon` is the one a single process would draw
            (:class:`pyrogen.distributed.GlobalBatchNoise`), so every rank ends with the
            one-process parameters and history, to rounding. Write files from rank 0 only.

    Returns:
        :class:`~pyrogen.history.History` with ``elbo`` (mean training ELBO per example over
        the epoch's steps, nats), ``epoch_time``, ``wall_time`` and, with ``validation``,
        ``validation_elbo`` (ELBO per example at the end of the epoch). Ctrl-C stops training
        cleanly and sets ``history.interrupted``.

    Example:
        >>> from pyrogen.data import load_digits
        >>> train, test = load_digits()
        >>> vae = VAE(64, 8)
        >>> history = fit(vae, train, epochs=2, seed=0, progress=False)
        >>> len(history["elbo"])
        2
    """
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be a pyrogen.vae.VAE, got {type(vae).__name__}")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    callback = check_callback(callback)
    loss_fn = make_elbo(elbo, num_particles)
    data = _check_dataset(vae, data, "data")
    if validation is not None:
        validation = _check_dataset(vae, validation, "validation")

    n = data.shape[0]
    sharded = _dist.resolve_distributed(distributed)
    step_loss: torch.nn.Module | None = None  # the DDP-wrapped loss; set iff sharded
    if sharded:  # one seed and rank 0's parameters everywhere (DDP broadcasts them)
        _dist.check_batches(n, batch_size)
        seed = _dist.shared_seed(seed)
        step_loss = _dist.make_ddp(_ShardedElbo(vae, loss_fn, data))
        progress = progress and _dist.is_main_process()
    optimizer = make_adam(list(vae.parameters()), lr)
    # Data were validated above; Pyro's per-step checks would only repeat that.
    # Pyro's sample statements draw from the global generator, so the run uses that stream,
    # forked, seeded (None: with a seed drawn from it) and restored after. The minibatch order
    # gets a generator seeded from the same stream.
    with forked_global_rng(seed, vae.device), pyro.validation_enabled(False), unregistered(vae):
        generator = make_generator(draw_seed())

        def train_epoch(epoch: int) -> EpochResult:
            vae.train()
            order = torch.randperm(n, generator=generator).to(vae.device)
            total = torch.zeros((), dtype=vae.dtype, device=vae.device)
            for index in order.split(batch_size):
                if step_loss is not None:  # sharded
                    part = _dist.shard(index.shape[0])
                    loss = step_loss(index[part.slice()], part.total)
                else:
                    loss = loss_fn.differentiable_loss(vae.model, vae.guide, data, subsample=index)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                # ``loss`` estimates the whole set's negative ELBO (the plate scales by
                # N / B); weight each step by its share of the epoch. Distributed, the
                # rank's loss is W times its share of the global one.
                weight = index.shape[0] / n / (_dist.get_world_size() if sharded else 1)
                total = total + loss.detach() * weight
            if sharded:
                (total,) = _dist.all_reduce_sum([total.reshape(1)])
            return EpochResult({"elbo": -float(total.sum()) / n})

        def evaluate(epoch: int, last: bool) -> dict[str, float]:
            if validation is None:
                return {}
            with torch.no_grad():
                vloss = loss_fn.differentiable_loss(vae.model, vae.guide, validation)
            return {"validation_elbo": -float(vloss) / validation.shape[0]}

        history = run_epochs(
            vae,
            epochs,
            train_epoch,
            evaluate=evaluate,
            callback=callback,
            progress=progress,
            desc="VAE",
            postfix=lambda record: {"elbo": f"{record['elbo']:.3f}"},
            device=vae.device,
            sharded=sharded and callback is not None,
        )
    if len(history) and not math.isfinite(history.last("elbo")):
        # fit's caller, past the keyword_only wrapper
        warnings.warn("training diverged: the ELBO is not finite; try a lower lr", stacklevel=3)
    return history
