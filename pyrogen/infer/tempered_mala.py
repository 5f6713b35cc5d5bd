r"""Replica-exchange MALA for a batch of independent continuous posteriors.

Many latent-variable questions are a *batch* of small posteriors that share a model but not
their data: the latent code of each of ``n`` images to inpaint or super-resolve, each with
its own observed pixels,

.. math:: \pi_b(z) \propto p(z)\, L_b(z), \qquad z \in \mathbb R^d,\ b = 1, \dots, B.

These posteriors are often multimodal (several digits fit half an image), and one MALA
chain per image stays in the mode it starts in. :func:`replica_exchange_mala` runs, for every
target ``b``, replicas at the inverse temperatures :math:`1 = \beta_0 > \dots > \beta_R`
of the tempered targets :math:`\pi_{b,\beta}(z) \propto p(z)\, L_b(z)^{\beta}` (the prior
kept, the likelihood tempered, as in :class:`~pyrogen.infer.ReplicaExchange`). Each step

1. moves every replica by one MALA step (Roberts & Tweedie 1996) on its tempered target,
   with its own step size adapted by dual averaging during warm-up
   (:mod:`pyrogen.infer.adaptation`), and
2. proposes exchanges between neighbouring temperatures with the deterministic even-odd
   scheme (:func:`~pyrogen.infer.replica_exchange.swap_pairs`), accepted with probability
   :math:`\min\{1, \exp[(\beta_r - \beta_{r+1})(\log L_b(z_{r+1}) - \log L_b(z_r))]\}`,

both of which leave :math:`\prod_r \pi_{b,\beta_r}` invariant, so the :math:`\beta = 1`
replicas are draws from :math:`\pi_b`. The ladder is shared by the batch and adapted during
warm-up by Syed et al.'s rule (:func:`~pyrogen.infer.replica_exchange.equalised_ladder`),
then frozen. The batch is one tensor: the targets are independent, so each target's MALA
step and swaps are accepted on their own (a joint Metropolis step over all images would be
accepted with the product of their probabilities).

The gradient of a tempered target is :math:`\nabla \log p + \beta \nabla \log L`, so the
two gradients are kept apart and a state that changes temperature in a swap needs no new
model evaluation.

**Preconditioning** (``precondition=True``, the default). Each replica slot of each target
moves by MALA with a diagonal inverse mass matrix :math:`M^{-1} = \operatorname{diag}(m)`,

.. math:: z' = z + \tfrac{\epsilon^2}{2}\, m \odot \nabla \log\pi(z)
          + \epsilon \sqrt{m} \odot \xi, \qquad \xi \sim \mathcal N(0, I),

whose proposal density :math:`\mathcal N(z';\, z + \tfrac{\epsilon^2}{2} m \odot \nabla,\,
\epsilon^2 \operatorname{diag}(m))` enters the Hastings ratio. :math:`m` is the variance
of the states that sat in that slot during two warm-up windows (from 15% to 40% and from
40% to 85% of the adaptation steps; Welford sums, shrunk towards :math:`10^{-3}` as Stan
does: :math:`\frac{n}{n + 5}\hat\sigma^2 + 10^{-3}\frac{5}{n + 5}`); dual averaging restarts
after each update. A posterior whose coordinates have very different scales (the latent code
given half an image: some directions pinned by the observed pixels, others left to the
prior) then needs no step size small enough for its narrowest direction. Like the step sizes,
the metric belongs to the slot (its temperature), not to the state that moves through it,
and it is frozen before warm-up ends, so the kept steps use one fixed, exact kernel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from pyrogen._validation import check_positive_float, check_positive_int, check_probability
from pyrogen.infer.adaptation import (
    adaptation_steps,
    dual_averaging_init,
    dual_averaging_update,
    step_size,
)
from pyrogen.infer.mala import log_proposal_density
from pyrogen.infer.proposal import log_accept_ratio, metropolis_accept
from pyrogen.infer.replica_exchange import (
    FIRST_ROUND_LENGTH,
    equalised_ladder,
    geometric_ladder,
    swap_index,
    swap_log_accept_ratio,
    swap_pairs,
    update_round_trips,
)

__all__ = [
    "METRIC_WINDOWS",
    "TemperedMALAResult",
    "metric_schedule",
    "regularised_variance",
    "replica_exchange_mala",
]

LogDensity = Callable[[torch.Tensor], torch.Tensor]


class TemperedMALAResult(NamedTuple):
    """What :func:`replica_exchange_mala` returns (``B`` targets, ``R + 1`` replicas).

    Attributes:
        samples: the :math:`\\beta = 1` draws, shape ``(num_samples, B, d)``.
        accept_rate: mean MALA acceptance probability of the :math:`\\beta = 1` replicas over
            the kept steps, shape ``(B,)``.
        swap_accept_rate: mean acceptance probability of each neighbouring pair's exchanges
            over the kept steps, shape ``(R,)`` (averaged over the batch).
        round_trips: round trips of replica labels between :math:`\\beta_0` and
            :math:`\\beta_R` completed during the kept steps, per target, shape ``(B,)``.
        betas: the ladder after warm-up, shape ``(R + 1,)``.
        step_size: the frozen MALA step size of every replica, shape ``(R + 1, B)``.
        inverse_mass: the frozen diagonal inverse mass matrix of every replica, shape
            ``(R + 1, B, d)`` (ones without preconditioning).
    """

    samples: torch.Tensor
    accept_rate: torch.Tensor
    swap_accept_rate: torch.Tensor
    round_trips: torch.Tensor
    betas: torch.Tensor
    step_size: torch.Tensor
    inverse_mass: torch.Tensor | None = None


#: Metric windows of the preconditioned sampler, as fractions of the adaptation steps: the
#: slot variances are collected over ``[0.15, 0.4)`` and ``[0.4, 0.85)`` and installed at
#: each window's end; the last 15% adapt the step size to the final metric alone.
METRIC_WINDOWS = ((0.15, 0.4), (0.4, 0.85))


def metric_schedule(adapting: int) -> tuple[tuple[int, int], ...]:
    """The step windows ``[start, end)`` over which the inverse mass matrix is estimated,
    for ``adapting`` adaptation steps (windows shorter than 10 steps are dropped).

    Example:
        >>> metric_schedule(800)
        ((120, 320), (320, 680))
        >>> metric_schedule(20)
        ()
    """
    windows = tuple((int(a * adapting), int(b * adapting)) for a, b in METRIC_WINDOWS)
    return tuple((a, b) for a, b in windows if b - a >= 10)


def regularised_variance(m2: torch.Tensor, count: int) -> torch.Tensor:
    r"""Stan's shrunk variance estimate from Welford's sum of squares ``m2`` over ``count``
    draws: :math:`\frac{n}{n + 5}\hat\sigma^2 + 10^{-3}\frac{5}{n + 5}`, same shape.

    Example:
        >>> round(float(regularised_variance(torch.tensor([9.0]), 10)), 6)  # variance 1
        0.667
    """
    n = float(count)
    variance = m2 / max(n - 1.0, 1.0)
    return (n / (n + 5.0)) * variance + 1e-3 * (5.0 / (n + 5.0))


class _Evaluation(NamedTuple):
    log_prior: torch.Tensor  # (S, B)
    log_likelihood: torch.Tensor  # (S, B)
    grad_prior: torch.Tensor  # (S, B, d)
    grad_likelihood: torch.Tensor  # (S, B, d)


def _evaluate(log_prior: LogDensity, log_likelihood: LogDensity, z: torch.Tensor) -> _Evaluation:
    """Both log densities and their gradients at ``z`` ``(S, B, d)``, detached."""
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        prior = log_prior(z)
        likelihood = log_likelihood(z)
        expected = z.shape[:-1]
        for name, value in (("log_prior", prior), ("log_likelihood", likelihood)):
            if value.shape != expected:
                raise ValueError(
                    f"{name} must map z of shape (..., B, d) to shape (..., B); for z of shape "
                    f"{tuple(z.shape)} it returned {tuple(value.shape)}"
                )
        grad_prior = torch.autograd.grad(prior.sum(), z, retain_graph=True)[0]
        grad_likelihood = torch.autograd.grad(likelihood.sum(), z)[0]
    return _Evaluation(prior.detach(), likelihood.detach(), grad_prior, grad_likelihood)


def _tempered(e: _Evaluation, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tempered log density ``(S, B)`` and gradient ``(S, B, d)`` at the slots' betas."""
    b = betas.unsqueeze(-1)
    return e.log_prior + b * e.log_likelihood, e.grad_prior + b.unsqueeze(-1) * e.grad_likelihood


def _gather(index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value[index[s, b], b]`` for ``value`` of shape ``(S, B, ...)``."""
    expanded = index.reshape(index.shape + (1,) * (value.dim() - 2)).expand_as(value)
    return value.gather(0, expanded)


def replica_exchange_mala(
    log_prior: LogDensity,
    log_likelihood: LogDensity,
    initial: torch.Tensor,
    *,
    num_samples: int,
    warmup_steps: int,
    betas: torch.Tensor | int = 8,
    min_beta: float = 0.01,
    initial_step_size: float = 0.1,
    target_accept: float = 0.574,
    adapt_ladder: bool = True,
    precondition: bool = True,
    generator: torch.Generator,
) -> TemperedMALAResult:
    r"""Sample ``B`` independent posteriors :math:`\pi_b \propto p\, L_b` by replica-exchange MALA.

    Args:
        log_prior: :math:`\log p(z)` (untempered), mapping ``z`` of shape ``(..., B, d)`` to
            ``(..., B)``; differentiable.
        log_likelihood: :math:`\log L_b(z)` (tempered), same shapes; entry ``b`` of the batch
            is target ``b``'s likelihood.
        initial: starting points of the :math:`\beta = 1` replicas, shape ``(B, d)``; every
            replica of a target starts there.
        num_samples: kept steps (each gives one draw per target).
        warmup_steps: discarded steps first; step sizes and the ladder adapt in the first
            :func:`~pyrogen.infer.adaptation.adaptation_steps` of them.
        betas: a decreasing ladder starting at 1, shape ``(R + 1,)``, or a number of
            replicas (a geometric ladder down to ``min_beta``). ``1`` gives plain MALA.
        min_beta: the hottest inverse temperature of a geometric ladder.
        initial_step_size: MALA step size every replica starts adapting from.
        target_accept: the acceptance probability dual averaging aims at (0.574, optimal
            for MALA, Roberts & Rosenthal 1998).
        adapt_ladder: equalise the pairs' rejection rates during warm-up.
        precondition: adapt a diagonal inverse mass matrix per replica during warm-up
            (module docstring); ``False``: plain MALA, :math:`m = 1`.
        generator: drives every random choice.

    Returns:
        :class:`TemperedMALAResult`.

    Example (one bimodal target: the likelihood has modes at -3 and +3):
        >>> g = torch.Generator().manual_seed(0)
        >>> prior = lambda z: -0.5 * (z**2 / 25).sum(-1)
        >>> lik = lambda z: torch.logaddexp(-8 * (z - 3) ** 2, -8 * (z + 3) ** 2).sum(-1)
        >>> out = replica_exchange_mala(prior, lik, torch.full((1, 1), 3.0), num_samples=2000,
        ...                             warmup_steps=500, betas=6, generator=g)
        >>> share_left = float((out.samples < 0).double().mean())
        >>> 0.35 < share_left < 0.65, int(out.round_trips) > 0
        (True, True)
    """
    check_positive_int(num_samples, "num_samples")
    check_positive_int(warmup_steps, "warmup_steps", minimum=0)
    check_positive_float(initial_step_size, "initial_step_size")
    check_positive_float(min_beta, "min_beta")
    check_probability(target_accept, "target_accept")
    if not isinstance(initial, torch.Tensor) or initial.dim() != 2:
        raise ValueError("initial must be a tensor of shape (B, d)")
    if not initial.is_floating_point():
        raise TypeError(f"initial must be floating point, got {initial.dtype}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not isinstance(precondition, bool):
        raise TypeError(f"precondition must be a bool, got {type(precondition).__name__}")
    dtype, device = initial.dtype, initial.device
    if isinstance(betas, int) and not isinstance(betas, bool):
        check_positive_int(betas, "betas")
        if not min_beta < 1:
            raise ValueError(f"min_beta must be in (0, 1), got {min_beta}")
        ladder = geometric_ladder(betas, min_beta, dtype=dtype, device=device)
    elif isinstance(betas, torch.Tensor) and betas.dim() == 1 and betas.numel() >= 1:
        ladder = betas.to(dtype=dtype, device=device)
        if ladder[0] != 1 or not bool((ladder > 0).all()) or not bool((ladder.diff() < 0).all()):
            raise ValueError(
                f"betas must decrease strictly from 1 and stay positive, got {betas.tolist()}"
            )
    else:
        raise TypeError("betas must be a 1-D tensor (the ladder) or an int (replicas)")

    num_slots, (batch, _) = ladder.numel(), initial.shape
    z = initial.detach().unsqueeze(0).expand(num_slots, *initial.shape).clone()
    e = _evaluate(log_prior, log_likelihood, z)
    adaptation = dual_averaging_init(
        torch.full((num_slots * batch,), initial_step_size, dtype=dtype, device=device)
    )
    labels = torch.arange(num_slots, device=initial.device).unsqueeze(-1).expand(-1, batch)
    direction = torch.full((num_slots, batch), -1, dtype=torch.long, device=initial.device)
    direction[0] = 0
    round_trips = torch.zeros(batch, dtype=torch.long, device=initial.device)
    adapting = adaptation_steps(warmup_steps)
    round_length, round_step = FIRST_ROUND_LENGTH, 0
    rejection_sum = torch.zeros(num_slots - 1, dtype=dtype, device=device)
    attempts = torch.zeros(num_slots - 1, dtype=dtype, device=device)
    draws, accept_sum = [], torch.zeros(batch, dtype=dtype, device=device)
    swap_sum = torch.zeros(num_slots - 1, dtype=dtype, device=device)
    swap_count = torch.zeros(num_slots - 1, dtype=dtype, device=device)
    # The diagonal inverse mass matrix of every slot and its Welford sums over a window.
    inverse_mass = torch.ones_like(z)
    windows = metric_schedule(adapting) if precondition else ()
    window_mean, window_m2, window_count = torch.zeros_like(z), torch.zeros_like(z), 0
    for t in range(warmup_steps + num_samples):
        adapt = t < adapting
        # 1. MALA on every replica (preconditioned by the slot's inverse mass matrix)
        log_density, grad = _tempered(e, ladder)
        eps = step_size(adaptation, adapt).reshape(num_slots, batch)
        noise = torch.randn(z.shape, generator=generator, dtype=dtype, device=device)
        eps_col = eps.unsqueeze(-1)
        proposed = (
            z + 0.5 * eps_col**2 * inverse_mass * grad + eps_col * inverse_mass.sqrt() * noise
        )
        e_new = _evaluate(log_prior, log_likelihood, proposed)
        log_density_new, grad_new = _tempered(e_new, ladder)
        log_q_forward = log_proposal_density(proposed, z, grad, eps, inverse_mass)
        log_q_backward = log_proposal_density(z, proposed, grad_new, eps, inverse_mass)
        ratio = log_accept_ratio(log_density_new, log_density, log_q_forward, log_q_backward)
        accepted, prob = metropolis_accept(ratio, generator)
        keep = accepted.unsqueeze(-1)
        z = torch.where(keep, proposed, z)
        e = _Evaluation(
            *(
                torch.where(keep if a.dim() == 3 else accepted, a, b)
                for a, b in zip(e_new, e, strict=True)
            )
        )
        if adapt:
            adaptation = dual_averaging_update(adaptation, prob.reshape(-1), target_accept)
        # 2. exchanges between neighbouring temperatures (deterministic even-odd)
        if num_slots > 1:
            pairs = swap_pairs(t, num_slots - 1, batch, "deo", generator, initial.device)
            swap_ratio = swap_log_accept_ratio(ladder, e.log_likelihood)
            swapped, swap_prob = metropolis_accept(swap_ratio, generator)
            swapped = swapped & pairs
            index = swap_index(swapped)
            z = _gather(index, z)
            e = _Evaluation(*(_gather(index, a) for a in e))
            labels, direction = _gather(index, labels), _gather(index, direction)
            direction, trips = update_round_trips(direction, round_trips)
            attempted = pairs.to(dtype)
            if t >= warmup_steps:
                round_trips = trips
                swap_sum += (swap_prob * attempted).sum(-1)
                swap_count += attempted.sum(-1)
            else:
                round_trips = torch.zeros_like(trips)
            if adapt and adapt_ladder and num_slots > 2:
                rejection_sum += ((1 - swap_prob) * attempted).sum(-1)
                attempts += attempted.sum(-1)
                round_step += 1
                if round_step == round_length:
                    ladder = equalised_ladder(ladder, rejection_sum / attempts.clamp(min=1))
                    rejection_sum.zero_(), attempts.zero_()
                    round_step, round_length = 0, 2 * round_length
        # 3. the metric: Welford sums of the slots' states over each window
        for start, end in windows:
            if start <= t < end:
                window_count += 1
                delta = z - window_mean
                window_mean = window_mean + delta / window_count
                window_m2 = window_m2 + delta * (z - window_mean)
            if t == end - 1:
                inverse_mass = regularised_variance(window_m2, window_count)
                window_mean, window_m2, window_count = (
                    torch.zeros_like(z), torch.zeros_like(z), 0,
                )  # fmt: skip
                # The step size suits the old metric: restart dual averaging from it.
                adaptation = dual_averaging_init(step_size(adaptation, True))
        if t >= warmup_steps:
            draws.append(z[0].clone())
            accept_sum += prob[0]
    return TemperedMALAResult(
        samples=torch.stack(draws),
        accept_rate=accept_sum / num_samples,
        swap_accept_rate=swap_sum / swap_count.clamp(min=1),
        round_trips=round_trips,
        betas=ladder,
        step_size=step_size(adaptation, False).reshape(num_slots, batch),
        inverse_mass=inverse_mass,
    )
