r"""Metropolis-Hastings with a proposal the user supplies, as a pure kernel.

The user's proposal makes one joint move of the whole state and reports both proposal
densities; the step accepts it with

.. math:: \alpha = \min\Bigl(1, \frac{\pi(x')\, q(x | x')}{\pi(x)\, q(x' | x)}\Bigr)

(Hastings, 1970). The state is a tuple of tensors, each with the chain dimension first
(:class:`~pyrogen.infer.MetropolisHastings` uses ``(discrete (C, D), continuous (C, D_c))``
and wraps the user's function on site values, checked by :func:`check_proposal_output`).

Shapes: ``C`` chains (the leading dimension of every tensor).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from pyrogen.infer.proposal import log_accept_ratio, metropolis_accept, select

__all__ = ["UserProposalInfo", "UserProposalState", "check_proposal_output", "init", "step"]

Position = tuple[torch.Tensor, ...]

#: ``log_density_fn(*position) -> (C,)``: the log target, up to a constant.
LogDensityFn = Callable[..., torch.Tensor]

#: ``proposal(position, generator) -> (new_position, log_q_forward, log_q_backward)``;
#: ``log_q_forward`` :math:`= \log q(x' | x)`, ``log_q_backward`` :math:`= \log q(x | x')`,
#: shape ``(C,)`` (zeros, or ``0.0``, for a symmetric proposal).
ProposalFn = Callable[
    [Position, torch.Generator], tuple[Position, torch.Tensor | float, torch.Tensor | float]
]


class UserProposalState(NamedTuple):
    """State of ``C`` chains: only what the next step needs."""

    position: Position  # tensors of shape (C, ...)
    log_density: torch.Tensor  # (C,): log target at position


class UserProposalInfo(NamedTuple):
    """Diagnostics of one step."""

    accept_prob: torch.Tensor  # (C,)
    accepted: torch.Tensor  # (C,) bool


def check_proposal_output(
    out: Any, sites: set[str] | list[str], num_chains: int
) -> tuple[dict[str, torch.Tensor], Any, Any]:
    """Check what a user proposal on site values returned and give it back as
    ``(new_values, log_q_forward, log_q_backward)``.

    ``new_values`` must map exactly the ``sites`` to values; both log densities must be
    scalars or have shape ``(num_chains,)``. Raises ``TypeError``/``ValueError`` otherwise.

    Example:
        >>> check_proposal_output(({"mu": torch.zeros(2)}, 0.0, 0.0), {"mu"}, 2)[1]
        0.0
        >>> check_proposal_output(({"mu": torch.zeros(2)}, torch.zeros(3), 0.0), {"mu"}, 2)
        Traceback (most recent call last):
        ...
        ValueError: log_q_forward must have shape (2,), got (3,)
    """
    if not (isinstance(out, tuple) and len(out) == 3):
        raise TypeError(
            "a proposal callable must return (new_values, log_q_forward, log_q_backward)"
        )
    new_values, log_q_forward, log_q_backward = out
    if not isinstance(new_values, dict) or set(new_values) != set(sites):
        raise ValueError(f"the proposal must return values for exactly the sites {sorted(sites)}")
    for name, q in (("log_q_forward", log_q_forward), ("log_q_backward", log_q_backward)):
        q = torch.as_tensor(q)
        if q.dim() > 1 or (q.dim() == 1 and q.shape[0] != num_chains):
            raise ValueError(f"{name} must have shape ({num_chains},), got {tuple(q.shape)}")
    return new_values, log_q_forward, log_q_backward


def init(position: Position, log_density_fn: LogDensityFn) -> UserProposalState:
    """Chains at ``position`` (a tuple of ``(C, ...)`` tensors)."""
    with torch.no_grad():
        return UserProposalState(tuple(position), log_density_fn(*position))


def step(
    generator: torch.Generator,
    state: UserProposalState,
    log_density_fn: LogDensityFn,
    proposal: ProposalFn,
) -> tuple[UserProposalState, UserProposalInfo]:
    """One move of ``proposal`` per chain, accepted with the Metropolis-Hastings probability.

    Example: an independence proposal :math:`N(0, 2^2)` for a :math:`N(0, 1)` target.

        >>> normal = torch.distributions.Normal(0.0, 2.0)
        >>> def proposal(position, generator):
        ...     (z,) = position
        ...     new = 2.0 * torch.randn(z.shape, generator=generator)
        ...     return (new,), normal.log_prob(new).sum(-1), normal.log_prob(z).sum(-1)
        >>> def log_density_fn(z):
        ...     return -0.5 * (z**2).sum(-1)
        >>> g = torch.Generator().manual_seed(0)
        >>> state = init((torch.zeros(4000, 1),), log_density_fn)
        >>> for _ in range(20):
        ...     state, info = step(g, state, log_density_fn, proposal)
        >>> bool(abs(state.position[0].var() - 1) < 0.1)
        True
    """
    proposed, log_q_forward, log_q_backward = proposal(state.position, generator)
    with torch.no_grad():
        log_p = log_density_fn(*proposed)
        log_ratio = log_accept_ratio(log_p, state.log_density, log_q_forward, log_q_backward)
        accepted, prob = metropolis_accept(log_ratio, generator)
    new = UserProposalState(
        position=tuple(
            select(accepted, n, o) for n, o in zip(proposed, state.position, strict=True)
        ),
        log_density=torch.where(accepted, log_p, state.log_density),
    )
    return new, UserProposalInfo(prob, accepted)
