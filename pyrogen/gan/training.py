r"""Training a :class:`~pyrogen.gan.GAN`: the losses of the adversarial game and :func:`fit`.

A discriminator :math:`D(x) = \sigma(d(x))` (``d`` its logit) and a generator :math:`G` play

.. math:: \min_G \max_D V(G, D) = \mathbb E_{x\sim p_{data}} \log D(x)
          + \mathbb E_{z\sim p(z)} \log(1 - D(G(z))).

In logits, :math:`\log D = \operatorname{logsigmoid}(d)` and :math:`\log(1 - D) =
\operatorname{logsigmoid}(-d)`, which stay finite when :math:`D` saturates at 0 or 1; every
loss here is computed that way. The discriminator ascends :math:`V`; the generator either
descends it (``loss="minimax"``, the game as written) or ascends
:math:`\mathbb E \log D(G(z))` (``loss="nonsaturating"``, the variant the paper recommends
because :math:`\log(1 - D(G(z)))` has vanishing gradient when :math:`D` rejects fakes
confidently). For the optimal discriminator, :math:`V = -\log 4 + 2\,\mathrm{JSD}(p_{data}
\Vert p_g)` (see :mod:`pyrogen.gan.theory`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from pyrogen import distributed as _dist
from pyrogen._validation import (
    check_choice,
    check_finite,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
    check_tensor,
)
from pyrogen.gan.implicit import ImplicitModel, module_dtype_device
from pyrogen.gan.model import GAN
from pyrogen.history import History
from pyrogen.seeding import make_generator
from pyrogen.training_loop import Callback, EpochResult, check_callback, keyword_only, run_epochs

__all__ = ["fit"]


def _check_betas(betas: object) -> tuple[float, float]:
    if (
        not isinstance(betas, (tuple, list))
        or len(betas) != 2
        or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas)
    ):
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
    return float(betas[0]), float(betas[1])


def _check_lr(lr: object) -> tuple[float, float]:
    if isinstance(lr, (tuple, list)):
        if len(lr) != 2:
            raise ValueError(
                f"lr must be a number or a pair (discriminator, generator), got {lr!r}"
            )
        return check_positive_float(lr[0], "lr[0]"), check_positive_float(lr[1], "lr[1]")
    value = check_positive_float(lr, "lr")
    return value, value


def _discriminator_objective(
    gan: GAN, real: torch.Tensor, fake: torch.Tensor, r1_penalty: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(objective, value, real logits, fake logits)`` of one discriminator update."""
    if r1_penalty > 0.0:
        real = real.detach().requires_grad_(True)
    l_real, l_fake = gan.logits(real), gan.logits(fake)
    value = F.logsigmoid(l_real).mean() + F.logsigmoid(-l_fake).mean()
    objective = value
    if r1_penalty > 0.0:
        # R1: gradient of the logit w.r.t. the real inputs, kept in the graph so that the
        # penalty itself is differentiated w.r.t. D's weights.
        (grad,) = torch.autograd.grad(l_real.sum(), real, create_graph=True)
        objective = value - 0.5 * r1_penalty * grad.square().sum(-1).mean()
    return objective, value, l_real, l_fake


def _generator_loss(gan: GAN, z: torch.Tensor, loss: str) -> torch.Tensor:
    l_fake = gan.logits(gan.generator.generator(z))
    if loss == "nonsaturating":
        return -F.logsigmoid(l_fake).mean()
    return F.logsigmoid(-l_fake).mean()


class _DiscriminatorStep(nn.Module):
    """A rank's weighted discriminator loss, as a module for DDP (which syncs ``D`` only)."""

    def __init__(self, gan: GAN, r1_penalty: float) -> None:
        super().__init__()
        self.discriminator = gan.discriminator
        self._gan = (gan,)  # a tuple: not registered, so the generator is not DDP's concern
        self.r1_penalty = r1_penalty

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor, weight: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        objective, value, l_real, l_fake = _discriminator_objective(
            self._gan[0], real, fake, self.r1_penalty
        )
        return -objective * weight, value, l_real, l_fake


class _GeneratorStep(nn.Module):
    """A rank's weighted generator loss, as a module for DDP (which syncs ``G`` only)."""

    def __init__(self, gan: GAN, loss: str) -> None:
        super().__init__()
        self.generator = gan.generator
        self._gan = (gan,)
        self.loss = loss

    def forward(self, z: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        g_loss = _generator_loss(self._gan[0], z, self.loss)
        return g_loss * weight, g_loss


@keyword_only(
    "loss",
    "d_steps",
    "steps",
    "epochs",
    "lr",
    "betas",
    "batch_size",
    "seed",
    "progress",
    "train_generator",
    "record_every",
    "r1_penalty",
    "distributed",
)
def fit(
    gan: GAN,
    data: torch.Tensor,
    *,
    epochs: int | None = None,
    batch_size: int = 128,
    lr: float | tuple[float, float] = 2e-4,
    seed: int | None = None,
    validation: torch.Tensor | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    steps: int | None = None,
    loss: str = "nonsaturating",
    d_steps: int = 1,
    betas: tuple[float, float] = (0.5, 0.999),
    train_generator: bool = True,
    record_every: int | None = None,
    r1_penalty: float = 0.0,
    distributed: bool | None = None,
) -> History:
    r"""Train ``gan`` on ``data`` by alternating Adam steps on the two players.

    One *step* is ``d_steps`` discriminator updates (each on a fresh real batch and a fresh
    fake batch, ascending :math:`\hat V`) followed by one generator update (see the module
    docstring for ``loss``). Give exactly one of ``steps`` or ``epochs``; an epoch is one
    pass of the discriminator over ``data`` (``len(data) // batch_size`` real batches).
    ``gan`` and ``data`` are positional, everything else keyword-only (the old positional
    form still works, with a ``FutureWarning``, until the next release).

    Args:
        gan: the model; trained in place.
        data: real samples, shape ``(n, out_dim)``, same dtype as the networks; moved to
            their device once.
        epochs: passes of the discriminator over ``data`` (or give ``steps``).
        batch_size: real and fake samples per update (at most ``len(data)``).
        lr: Adam learning rate, or a pair ``(discriminator, generator)``.
        seed: seeds the batch order and latent draws; the global RNG is left untouched.
            ``None``: a fresh seed drawn from torch's global generator
            (:mod:`pyrogen.seeding`).
        validation: held-out real samples, shape ``(m, out_dim)``; adds
            ``validation_d_real``, the discriminator's mean :math:`D(x)` on them at each
            record. Next to ``d_real`` (on the training batches) it shows the discriminator
            memorising the training set: the two drift apart when :math:`D` overfits. It draws no
            random numbers, so the training run is the same with or without it.
        progress: show a tqdm bar (one tick per history record).
        callback: ``callback(epoch, gan, history)`` after every history record (one per
            epoch by default; ``epoch`` is the record's index from 0); ``True`` stops training
            (:func:`pyrogen.training_loop.run_epochs`). Distributed, any rank's ``True``
            stops them all.
        steps: number of steps, instead of ``epochs``.
        loss: generator loss, ``"nonsaturating"`` (:math:`-\log D(G(z))`) or ``"minimax"``
            (:math:`\log(1 - D(G(z)))`).
        d_steps: discriminator updates per generator update.
        betas: Adam moment decays (``(0.5, 0.999)`` as in DCGAN, Radford et al. 2016).
        train_generator: ``False`` trains the discriminator alone (e.g. to calibrate it
            against a fixed generator before :func:`pyrogen.gan.discriminator_energy`).
        record_every: steps per history record; default one epoch, or ``steps // 100``.
        r1_penalty: weight :math:`\gamma \ge 0` of the R1 regulariser of Mescheder et al.
            (2018), :math:`\frac\gamma2 \mathbb E_{x\sim p_{data}} \lVert\nabla_x
            d(x)\rVert^2`, subtracted from the discriminator's objective (the recorded
            ``value`` stays the plain :math:`\hat V`). ``0`` (default) is the unregularised
            game. See the note below.
        distributed: ``None`` (default): train across the ranks of the open
            ``torch.distributed`` group, if there is one of more than one process;
            ``False``: train alone; ``True``: require a group. Every rank draws the same
            global real batch and latent vectors (one seed), keeps its rows
            (:func:`pyrogen.distributed.shard`), and ``DistributedDataParallel`` averages
            each player's gradients, each rank's loss weighted by its share of the batch:
            every rank ends with the one-process parameters and history, to rounding, as
            long as the networks treat examples independently (no batch normalisation).
            ``batch_size`` must be at least the number of ranks.

    Note:
        When the data are point masses (a finite training set, and above all discrete
        data such as binarized images), the unregularised game has no equilibrium that
        gradient play converges to: :math:`D` keeps sharpening around the real points, its
        logit grows without bound, and the generator is pushed from one configuration to the
        next (mode collapse; Mescheder et al. 2018, "Which training methods for GANs actually
        converge?", the Dirac-GAN). The R1 penalty vanishes at the equilibrium
        :math:`p_g = p_{data}`, :math:`d = \text{const}`, so it does not bias it, and it makes
        that equilibrium locally convergent by flattening :math:`d` on the data.
        :math:`\gamma` has the units of :math:`x^2`: data scaled by :math:`s` need
        :math:`\gamma s^2` for the same effect.
        It costs one double-backward pass through :math:`D` per discriminator update.

    Returns:
        :class:`pyrogen.history.History` with, averaged over each record's steps:
        ``discriminator_loss`` (:math:`-\hat V`), ``generator_loss`` (NaN when the generator is
        not trained), ``value`` (:math:`\hat V`, on the discriminator's batches before each
        update), ``d_real`` and ``d_fake`` (mean :math:`D` on real / fake), plus ``step``
        (the last step of the record), ``epoch_time`` (training seconds of the record),
        ``wall_time`` and, with ``validation``, ``validation_d_real``. Ctrl-C stops training
        and returns the history so far (the part record included) with
        ``interrupted = True``.

    Example:
        >>> from pyrogen.data.toy import ring
        >>> from pyrogen.gan import GAN, ImplicitModel, mlp_discriminator, mlp_generator
        >>> data, centers = ring(2048, seed=0)
        >>> gan = GAN(ImplicitModel(mlp_generator(2, 2), 2), mlp_discriminator(2))
        >>> history = fit(gan, data, steps=20, batch_size=256, seed=0, progress=False)
        >>> len(history["value"]) > 0
        True
    """
    if not isinstance(gan, GAN):
        raise TypeError(f"gan must be a pyrogen.gan.GAN, got {type(gan).__name__}")
    check_choice(loss, "loss", ("nonsaturating", "minimax"))
    check_tensor(data, "data", ndim=2)
    if data.shape[1] != gan.generator.out_dim:
        raise ValueError(
            f"data has width {data.shape[1]} (shape {tuple(data.shape)}) but the generator "
            f"outputs width {gan.generator.out_dim}"
        )
    check_finite(data, "data")
    dtype, device = module_dtype_device(gan.discriminator, gan.generator)
    if data.dtype != dtype:
        raise TypeError(f"data has dtype {data.dtype} but the networks use {dtype}; convert it")
    if validation is not None:
        check_tensor(validation, "validation", ndim=2, last_dim=gan.generator.out_dim)
        check_finite(validation, "validation")
        if validation.dtype != dtype:
            raise TypeError(
                f"validation has dtype {validation.dtype} but the networks use {dtype}; convert it"
            )
        validation = validation.to(device)
    callback = check_callback(callback)
    if (steps is None) == (epochs is None):
        raise ValueError(f"give exactly one of steps or epochs, got steps={steps}, epochs={epochs}")
    d_steps = check_positive_int(d_steps, "d_steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    n = data.shape[0]
    if batch_size > n:
        raise ValueError(f"batch_size ({batch_size}) exceeds the number of samples ({n})")
    batches_per_epoch = n // batch_size
    steps_per_epoch = max(1, math.ceil(batches_per_epoch / d_steps))
    if epochs is not None:
        total = check_positive_int(epochs, "epochs") * steps_per_epoch
        default_every = steps_per_epoch
    else:
        total = check_positive_int(steps, "steps")
        default_every = max(1, total // 100)
    every = (
        default_every if record_every is None else check_positive_int(record_every, "record_every")
    )
    d_lr, g_lr = _check_lr(lr)
    betas = _check_betas(betas)
    r1_penalty = check_nonnegative_float(r1_penalty, "r1_penalty")

    data = data.to(device)
    sharded = _dist.resolve_distributed(distributed)
    d_step = g_step = None
    rows, weight = slice(None), 1.0
    if sharded:
        _dist.check_batches(batch_size, batch_size)
        seed = _dist.shared_seed(seed)
        progress = progress and _dist.is_main_process()
        part = _dist.shard(batch_size)
        weight = part.world_size * part.size / part.total  # DDP averages over the ranks
        rows = part.slice()
    rng = make_generator(seed, device)
    d_opt = torch.optim.Adam(gan.discriminator.parameters(), lr=d_lr, betas=betas)
    g_params = list(gan.generator.parameters())
    g_opt = None
    if train_generator and g_params:
        g_opt = torch.optim.Adam(g_params, lr=g_lr, betas=betas)
    latent = gan.generator
    if sharded:  # the wrappers broadcast rank 0's parameters
        d_step = _dist.make_ddp(_DiscriminatorStep(gan, r1_penalty))
        g_step = _dist.make_ddp(_GeneratorStep(gan, loss)) if g_opt is not None else None

    order = torch.randperm(n, generator=rng, device=device)
    cursor = 0

    def next_real() -> torch.Tensor:
        nonlocal order, cursor
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=rng, device=device), 0
        batch = data[order[cursor : cursor + batch_size]]
        cursor += batch_size
        return batch

    sums = torch.zeros(4, dtype=torch.float64, device=device)  # value, d_real, d_fake, g_loss
    counts = [0, 0]  # discriminator updates, generator updates in the current window
    modes = (gan.generator.training, gan.discriminator.training)
    gan.train()
    step = 0

    def flush() -> dict[str, float]:
        """The window's means, then a fresh window."""
        nonlocal sums
        if sharded:  # each rank summed its share of every batch mean
            (sums,) = _dist.all_reduce_sum([sums])
        s = sums.tolist()
        k = max(counts[0], 1)
        g_loss = s[3] / counts[1] if counts[1] else math.nan
        sums = torch.zeros_like(sums)
        counts[0] = counts[1] = 0
        return {
            "step": step,
            "discriminator_loss": -s[0] / k,
            "generator_loss": g_loss,
            "value": s[0] / k,
            "d_real": s[1] / k,
            "d_fake": s[2] / k,
        }

    def train_window(window: int) -> EpochResult:
        """Steps ``window * every + 1`` to ``(window + 1) * every`` (at most ``total``)."""
        nonlocal step
        for current in range(window * every + 1, min((window + 1) * every, total) + 1):
            step = current  # read by flush, also after an interrupt
            if d_step is not None:  # sharded: the DDP-wrapped steps exist
                _sharded_step(
                    latent,
                    next_real,
                    rng,
                    batch_size,
                    d_steps,
                    (d_step, d_opt),
                    (g_step, g_opt),
                    rows,
                    weight,
                    sums,
                    counts,
                )
            for _ in range(0 if sharded else d_steps):  # one process: the loop as it was
                real = next_real()
                with torch.no_grad():
                    fake = latent.generator(latent.sample_latent(batch_size, rng))
                objective, value, l_real, l_fake = _discriminator_objective(
                    gan, real, fake, r1_penalty
                )
                d_opt.zero_grad(set_to_none=True)
                (-objective).backward()
                d_opt.step()
                with torch.no_grad():
                    sums[0] += value.detach()
                    sums[1] += torch.sigmoid(l_real).mean()
                    sums[2] += torch.sigmoid(l_fake).mean()
                counts[0] += 1
            if g_opt is not None and not sharded:
                g_loss = _generator_loss(gan, latent.sample_latent(batch_size, rng), loss)
                g_opt.zero_grad(set_to_none=True)
                g_loss.backward()
                g_opt.step()
                sums[3] += g_loss.detach()
                counts[1] += 1
        return EpochResult(flush())

    @torch.no_grad()
    def evaluate(window: int, last: bool) -> dict[str, float]:
        if validation is None:
            return {}
        return {"validation_d_real": float(torch.sigmoid(gan.logits(validation)).mean())}

    def postfix(record: Mapping[str, float]) -> dict[str, str]:
        return {
            "value": f"{record['value']:.3f}",
            "d_real": f"{record['d_real']:.2f}",
            "d_fake": f"{record['d_fake']:.2f}",
        }

    try:
        return run_epochs(
            gan,
            math.ceil(total / every),
            train_window,
            evaluate=evaluate,
            callback=callback,
            progress=progress,
            desc="GAN",
            postfix=postfix,
            device=device,
            sharded=sharded and callback is not None,
            on_interrupt=lambda: flush() if counts[0] else None,
        )
    finally:
        # The generator's backward pass also fills the discriminator's .grad; leave none behind.
        gan.zero_grad(set_to_none=True)
        gan.generator.train(modes[0])
        gan.discriminator.train(modes[1])


def _sharded_step(
    latent: ImplicitModel,
    next_real: Callable[[], torch.Tensor],
    rng: torch.Generator,
    batch_size: int,
    d_steps: int,
    discriminator: tuple[nn.Module, torch.optim.Optimizer],
    generator: tuple[nn.Module | None, torch.optim.Optimizer | None],
    rows: slice,
    weight: float,
    sums: torch.Tensor,
    counts: list[int],
) -> None:
    """One step of :func:`fit` on this rank's rows of every global batch.

    The real batch and the latent vectors are drawn at the global batch size from the shared
    stream (so they match one process) and cut to ``rows``; ``weight`` is
    :math:`W B_r / B`. ``discriminator`` and ``generator`` are ``(DDP-wrapped step,
    optimizer)`` pairs (the generator's is ``(None, None)`` when it is not trained);
    ``sums`` collects this rank's ``B_r / B`` share of each batch mean.
    """
    share = weight / _dist.get_world_size()
    d_step, d_opt = discriminator
    for _ in range(d_steps):
        real = next_real()[rows]
        with torch.no_grad():
            fake = latent.generator(latent.sample_latent(batch_size, rng)[rows])
        scaled_loss, value, l_real, l_fake = d_step(real, fake, weight)
        d_opt.zero_grad(set_to_none=True)
        scaled_loss.backward()
        d_opt.step()
        with torch.no_grad():
            sums[0] += value.detach() * share
            sums[1] += torch.sigmoid(l_real).mean() * share
            sums[2] += torch.sigmoid(l_fake).mean() * share
        counts[0] += 1
    g_step, g_opt = generator
    if g_step is not None and g_opt is not None:  # both None when not trained
        scaled_loss, g_loss = g_step(latent.sample_latent(batch_size, rng)[rows], weight)
        g_opt.zero_grad(set_to_none=True)
        scaled_loss.backward()
        g_opt.step()
        sums[3] += g_loss.detach() * share
        counts[1] += 1
