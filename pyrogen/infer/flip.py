r"""Single-coordinate flip moves on a block of discrete coordinates, as a pure MH kernel.

Each chain holds :math:`D` discrete coordinates, coordinate :math:`d` taking the value
indices :math:`\{0, \dots, k_d - 1\}`. One step, for every chain at once:

1. choose a coordinate :math:`d` uniformly among the :math:`D`;
2. propose a new value for it uniformly among its :math:`k_d - 1` *other* values (a bit flip
   for a binary coordinate), all other coordinates unchanged;
3. accept with the Metropolis probability :math:`\min(1, \pi(x') / \pi(x))`
   (:mod:`pyrogen.infer.proposal`).

The proposal is symmetric: :math:`q(x' | x) = q(x | x') = 1 / (D (k_d - 1))` for the two
states that differ in coordinate :math:`d` only, so the Hastings term cancels and the step
is reversible with respect to :math:`\pi`. Used for the discrete sites of
:class:`~pyrogen.infer.MetropolisHastings`.

Shapes: ``C`` chains (the leading dimension of every tensor), ``D`` coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from pyrogen.infer.proposal import log_accept_ratio, metropolis_accept, select

__all__ = ["FlipInfo", "FlipState", "flip_proposal", "init", "step"]

#: ``log_density_fn(position (C, D) long) -> (C,)``: the log target, up to a constant.
LogDensityFn = Callable[[torch.Tensor], torch.Tensor]


class FlipState(NamedTuple):
    """State of ``C`` chains: only what the next step needs."""

    position: torch.Tensor  # (C, D) long: value indices
    log_density: torch.Tensor  # (C,): log target at position


class FlipInfo(NamedTuple):
    """Diagnostics of one step."""

    accept_prob: torch.Tensor  # (C,): min(1, pi(x') / pi(x))
    accepted: torch.Tensor  # (C,) bool
    proposal: torch.Tensor  # (C, D) long: the proposed states


def flip_proposal(
    discrete: torch.Tensor, cardinalities: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Change one uniformly chosen coordinate per chain to a uniformly chosen *other* value.

    ``discrete`` ``(C, D)`` value indices, ``cardinalities`` ``(D,)``; returns a new
    ``(C, D)`` tensor. Symmetric: the probability of proposing a given neighbour is
    :math:`1 / (D (k_d - 1))` both ways.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.zeros(5, 3, dtype=torch.long)
        >>> (flip_proposal(x, torch.tensor([2, 3, 2]), g) != x).sum(-1).tolist()
        [1, 1, 1, 1, 1]
    """
    num_chains, num_coords = discrete.shape
    coordinate = torch.randint(
        num_coords, (num_chains,), generator=generator, device=discrete.device
    )
    k = cardinalities[coordinate]
    u = torch.rand(num_chains, generator=generator, device=discrete.device, dtype=torch.float64)
    shift = 1 + (u * (k - 1)).long().clamp(max=k - 2)  # uniform on {1, ..., k - 1}
    old = discrete.gather(1, coordinate.unsqueeze(-1)).squeeze(-1)
    new = (old + shift) % k
    return discrete.scatter(1, coordinate.unsqueeze(-1), new.unsqueeze(-1))


def init(position: torch.Tensor, log_density_fn: LogDensityFn) -> FlipState:
    """Chains at ``position`` ``(C, D)`` (long value indices)."""
    with torch.no_grad():
        return FlipState(position, log_density_fn(position))


def step(
    generator: torch.Generator,
    state: FlipState,
    log_density_fn: LogDensityFn,
    cardinalities: torch.Tensor,
) -> tuple[FlipState, FlipInfo]:
    r"""One :func:`flip_proposal` move per chain, accepted with
    :math:`\min(1, \pi(x') / \pi(x))`; ``cardinalities`` ``(D,)`` are the :math:`k_d`.

    Example:
        >>> weights = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
        >>> def log_density_fn(x):  # independent bits: (C, 3) -> (C,)
        ...     return (x.to(weights.dtype) * weights).sum(-1)
        >>> g = torch.Generator().manual_seed(0)
        >>> state = init(torch.zeros(4000, 3, dtype=torch.long), log_density_fn)
        >>> for _ in range(30):
        ...     state, info = step(g, state, log_density_fn, torch.tensor([2, 2, 2]))
        >>> mean = state.position.float().mean(0)  # sigmoid(weights) = 0.73, 0.38, 0.88
        >>> bool(torch.allclose(mean, torch.sigmoid(weights).float(), atol=0.03))
        True
    """
    with torch.no_grad():
        proposed = flip_proposal(state.position, cardinalities, generator)
        log_p = log_density_fn(proposed)
        accepted, prob = metropolis_accept(log_accept_ratio(log_p, state.log_density), generator)
    new = FlipState(
        position=select(accepted, proposed, state.position),
        log_density=torch.where(accepted, log_p, state.log_density),
    )
    return new, FlipInfo(prob, accepted, proposed)
