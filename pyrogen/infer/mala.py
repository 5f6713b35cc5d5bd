r"""Metropolis-adjusted Langevin (MALA) on an unconstrained continuous block, as a pure kernel.

For a differentiable target :math:`\pi(z)` on :math:`\mathbb{R}^{D}` (Roberts & Tweedie,
1996), one step of every chain proposes a discretised Langevin move

.. math:: z' = z + \tfrac{\epsilon^2}{2} \nabla \log \pi(z) + \epsilon \xi,
          \qquad \xi \sim N(0, I_D),

that is :math:`q(z' | z) = N\bigl(z';\, z + \tfrac{\epsilon^2}{2} \nabla \log \pi(z),\,
\epsilon^2 I\bigr)`, and accepts it with the Metropolis-Hastings probability

.. math:: \alpha = \min\Bigl(1, \frac{\pi(z')\, q(z | z')}{\pi(z)\, q(z' | z)}\Bigr),
          \qquad \log q(z' | z) = -\frac{\lVert z' - z - \tfrac{\epsilon^2}{2}
          \nabla \log \pi(z) \rVert^2}{2 \epsilon^2} + \text{const}.

The drift is not symmetric, so the Hastings term matters: without it the chain samples a
biased density. The state keeps :math:`\nabla \log \pi(z)`, so a step costs one density and
gradient evaluation (at :math:`z'`). Each chain has its own :math:`\epsilon`, fixed within a
step (:class:`MALAParams`); :class:`~pyrogen.infer.MetropolisHastings` adapts it during
warm-up towards an acceptance of 0.574 (Roberts & Rosenthal, 1998).

Shapes: ``C`` chains (the leading dimension of every tensor), ``D`` dimensions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from pyrogen.infer.proposal import log_accept_ratio, metropolis_accept, select

__all__ = [
    "MALAInfo",
    "MALAParams",
    "MALAState",
    "init",
    "log_density_and_grad",
    "log_proposal_density",
    "step",
]

#: ``log_density_fn(position (C, D)) -> (C,)``: the log target, differentiable in position.
LogDensityFn = Callable[[torch.Tensor], torch.Tensor]


class MALAParams(NamedTuple):
    """Immutable within a step."""

    step_size: torch.Tensor  # (C,): epsilon, one per chain


class MALAState(NamedTuple):
    """State of ``C`` chains: only what the next step needs."""

    position: torch.Tensor  # (C, D)
    log_density: torch.Tensor  # (C,): log target at position
    grad: torch.Tensor  # (C, D): gradient of log_density at position


class MALAInfo(NamedTuple):
    """Diagnostics of one step."""

    accept_prob: torch.Tensor  # (C,)
    accepted: torch.Tensor  # (C,) bool
    proposal: torch.Tensor  # (C, D)


def log_density_and_grad(
    log_density_fn: LogDensityFn, position: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log density ``(C,)`` and its gradient ``(C, D)`` with respect to ``position``.

    Chains are independent, so the gradient of the sum is every chain's own gradient.

    Example:
        >>> log_density_and_grad(lambda z: -0.5 * (z**2).sum(-1), torch.ones(2, 3))[1]
        tensor([[-1., -1., -1.],
                [-1., -1., -1.]])
    """
    with torch.enable_grad():
        z = position.detach().requires_grad_(True)
        log_p = log_density_fn(z)
        (grad,) = torch.autograd.grad(log_p.sum(), z)
    return log_p.detach(), grad


def log_proposal_density(
    z_to: torch.Tensor,
    z_from: torch.Tensor,
    grad_from: torch.Tensor,
    step: torch.Tensor,
    inverse_mass: torch.Tensor | None = None,
) -> torch.Tensor:
    r""":math:`\log q(z_{to} | z_{from})` of MALA, shape ``(C,)``, up to a constant that is
    the same both ways (the step size and the metric are); ``z_to``, ``z_from``,
    ``grad_from`` ``(C, D)``, ``step`` ``(C,)`` (any leading batch shape in place of ``C``).

    With a diagonal inverse mass matrix ``inverse_mass`` :math:`m` (same shape as ``z_to``)
    the proposal is :math:`\mathcal N(z + \tfrac{\epsilon^2}{2} m \odot \nabla,\,
    \epsilon^2 \operatorname{diag}(m))` (preconditioned MALA,
    :func:`~pyrogen.infer.replica_exchange_mala`); ``None`` is :math:`m = 1`.

    Example:
        >>> z, grad = torch.zeros(1, 2), torch.ones(1, 2)
        >>> log_proposal_density(torch.full((1, 2), 0.5), z, grad, torch.ones(1))  # at the mean
        tensor([-0.])
        >>> m = torch.full((1, 2), 4.0)
        >>> log_proposal_density(torch.full((1, 2), 2.0), z, grad, torch.ones(1), m)
        tensor([-0.])
    """
    eps = step.unsqueeze(-1)
    if inverse_mass is None:
        mean = z_from + 0.5 * eps**2 * grad_from
        return -((z_to - mean) ** 2).sum(-1) / (2 * step**2)
    mean = z_from + 0.5 * eps**2 * inverse_mass * grad_from
    return -((z_to - mean) ** 2 / inverse_mass).sum(-1) / (2 * step**2)


def init(position: torch.Tensor, log_density_fn: LogDensityFn) -> MALAState:
    """Chains at ``position`` ``(C, D)``, with the log density and its gradient there."""
    return MALAState(position, *log_density_and_grad(log_density_fn, position))


def step(
    generator: torch.Generator,
    state: MALAState,
    log_density_fn: LogDensityFn,
    params: MALAParams,
) -> tuple[MALAState, MALAInfo]:
    """One MALA move per chain, accepted or rejected (the module docstring's equations).

    Example:
        >>> def log_density_fn(z):  # N(1, I_2): (C, 2) -> (C,)
        ...     return -0.5 * ((z - 1) ** 2).sum(-1)
        >>> g = torch.Generator().manual_seed(0)
        >>> state = init(torch.zeros(2000, 2, dtype=torch.float64), log_density_fn)
        >>> params = MALAParams(torch.full((2000,), 1.0, dtype=torch.float64))
        >>> for _ in range(50):
        ...     state, info = step(g, state, log_density_fn, params)
        >>> z = state.position
        >>> bool((z.mean(0) - 1).abs().max() < 0.1), bool((z.var(0) - 1).abs().max() < 0.1)
        (True, True)
    """
    z, grad_z, eps = state.position, state.grad, params.step_size
    noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
    e = eps.unsqueeze(-1)
    proposed = z + 0.5 * e**2 * grad_z + e * noise
    log_p, grad = log_density_and_grad(log_density_fn, proposed)
    log_q_forward = log_proposal_density(proposed, z, grad_z, eps)
    log_q_backward = log_proposal_density(z, proposed, grad, eps)
    log_ratio = log_accept_ratio(log_p, state.log_density, log_q_forward, log_q_backward)
    accepted, prob = metropolis_accept(log_ratio, generator)
    new = MALAState(
        position=select(accepted, proposed, z),
        log_density=torch.where(accepted, log_p, state.log_density),
        grad=select(accepted, grad, grad_z),
    )
    return new, MALAInfo(prob, accepted, proposed)
