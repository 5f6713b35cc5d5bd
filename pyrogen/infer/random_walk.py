r"""Gaussian random-walk Metropolis on an unconstrained continuous block, as a pure kernel.

For a target :math:`\pi(z)` on :math:`\mathbb{R}^{D}` (for a constrained model, the density
of the unconstrained coordinates, Jacobian included), one step of every chain is

.. math:: z' = z + \epsilon \xi, \quad \xi \sim N(0, I_D), \qquad
          \alpha = \min\Bigl(1, \frac{\pi(z')}{\pi(z)}\Bigr),

(Metropolis et al., 1953). The proposal is symmetric, :math:`q(z' | z) = q(z | z')`, so no
Hastings term appears. Each chain has its own step size :math:`\epsilon`; choosing it
(:class:`~pyrogen.infer.MetropolisHastings` adapts it during warm-up towards an acceptance
of 0.234, Roberts, Gelman & Gilks, 1997) is the caller's business: :class:`RandomWalkParams`
are fixed within a step.

Shapes: ``C`` chains (the leading dimension of every tensor), ``D`` dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from pyrogen.infer.proposal import log_accept_ratio, metropolis_accept, select

__all__ = [
    "RandomWalkInfo",
    "RandomWalkParams",
    "RandomWalkState",
    "init",
    "random_walk_proposal",
    "step",
]

#: ``log_density_fn(position (C, D)) -> (C,)``: the log target, up to a constant.
LogDensityFn = Callable[[torch.Tensor], torch.Tensor]


class RandomWalkParams(NamedTuple):
    """Immutable within a step."""

    step_size: torch.Tensor  # (C,): epsilon, one per chain


class RandomWalkState(NamedTuple):
    """State of ``C`` chains: only what the next step needs."""

    position: torch.Tensor  # (C, D)
    log_density: torch.Tensor  # (C,): log target at position


class RandomWalkInfo(NamedTuple):
    """Diagnostics of one step."""

    accept_prob: torch.Tensor  # (C,)
    accepted: torch.Tensor  # (C,) bool
    proposal: torch.Tensor  # (C, D)


def random_walk_proposal(
    continuous: torch.Tensor, step: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``z + step * xi`` with ``xi ~ N(0, I)``: ``continuous`` ``(C, D)``, ``step`` ``(C,)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> random_walk_proposal(torch.zeros(3, 2), torch.tensor([0.0, 1.0, 2.0]), g).shape
        torch.Size([3, 2])
    """
    noise = torch.randn(
        continuous.shape, generator=generator, dtype=continuous.dtype, device=continuous.device
    )
    return continuous + step.unsqueeze(-1) * noise


def init(position: torch.Tensor, log_density_fn: LogDensityFn) -> RandomWalkState:
    """Chains at ``position`` ``(C, D)``."""
    with torch.no_grad():
        return RandomWalkState(position, log_density_fn(position))


def step(
    generator: torch.Generator,
    state: RandomWalkState,
    log_density_fn: LogDensityFn,
    params: RandomWalkParams,
) -> tuple[RandomWalkState, RandomWalkInfo]:
    r"""One random-walk move per chain, accepted with :math:`\min(1, \pi(z') / \pi(z))`.

    Example:
        >>> def log_density_fn(z):  # N(0, I_2): (C, 2) -> (C,)
        ...     return -0.5 * (z**2).sum(-1)
        >>> g = torch.Generator().manual_seed(0)
        >>> state = init(torch.zeros(2000, 2, dtype=torch.float64), log_density_fn)
        >>> params = RandomWalkParams(torch.full((2000,), 1.5, dtype=torch.float64))
        >>> for _ in range(100):
        ...     state, info = step(g, state, log_density_fn, params)
        >>> bool((state.position.var(0) - 1).abs().max() < 0.1)  # N(0, 1) marginals
        True
    """
    with torch.no_grad():
        proposed = random_walk_proposal(state.position, params.step_size, generator)
        log_p = log_density_fn(proposed)
    accepted, prob = metropolis_accept(log_accept_ratio(log_p, state.log_density), generator)
    new = RandomWalkState(
        position=select(accepted, proposed, state.position),
        log_density=torch.where(accepted, log_p, state.log_density),
    )
    return new, RandomWalkInfo(prob, accepted, proposed)
