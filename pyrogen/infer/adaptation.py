r"""Per-chain step-size adaptation by dual averaging (Hoffman & Gelman, 2014, section 3.2).

Each chain keeps its own step size :math:`\epsilon`. After the :math:`t`-th warmup step with
acceptance probability :math:`\alpha_t`

.. math::
    \bar H_t = (1 - \tfrac{1}{t + t_0}) \bar H_{t-1} + \tfrac{1}{t + t_0} (\delta - \alpha_t),
    \qquad \log \epsilon_t = \mu - \tfrac{\sqrt t}{\gamma} \bar H_t,

    \log \bar\epsilon_t = t^{-\kappa} \log \epsilon_t + (1 - t^{-\kappa}) \log \bar\epsilon_{t-1},

with target acceptance :math:`\delta`, :math:`\mu = \log(10 \epsilon_0)` (explore step sizes
larger than the initial guess first), and the paper's constants :math:`\gamma = 0.05`,
:math:`t_0 = 10`, :math:`\kappa = 0.75`. During warmup the kernel moves with
:math:`\epsilon_t`; after it with the averaged :math:`\bar\epsilon`, which is far less noisy.
Warmup is signalled per step (``warmup=True``), because ``pyro.infer.MCMC`` never calls
``end_warmup``.

Adaptation stops before warm-up ends: the drivers (:func:`pyrogen.infer.sample` and the
``pyro.infer.MCMC`` adapter) pass ``warmup=True`` only for the first
:func:`adaptation_steps` warm-up steps and move with the frozen :math:`\bar\epsilon` for the
final fifth. A step size adapted per chain depends on where that chain has been, so a chain
that moved with it until the last warm-up step is not yet distributed as the target (the
first draws after warm-up have too small a variance); a final window with a fixed step size
lets every chain relax under one fixed, target-invariant kernel before the first draw.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = [
    "DualAveragingState",
    "FIXED_WINDOW_FRACTION",
    "adaptation_steps",
    "dual_averaging_init",
    "dual_averaging_update",
    "step_size",
]

#: Fraction of the warm-up steps, at its end, that move with the frozen step size.
FIXED_WINDOW_FRACTION = 0.2

# Constants recommended by Hoffman & Gelman (2014) and used by Stan, Pyro and NumPyro.
_GAMMA = 0.05  # shrinkage towards mu: larger = more cautious exploration of step sizes
_T0 = 10.0  # stabilises the first iterations, where 1/t would dominate
_KAPPA = 0.75  # decay of the averaging weights; in (0.5, 1] for convergence


class DualAveragingState(NamedTuple):
    """Adaptation state of ``C`` chains (all tensors shape ``(C,)``)."""

    log_step_size: torch.Tensor  # log eps_t: used while warming up
    log_step_size_avg: torch.Tensor  # log eps-bar_t: used after warmup
    error_avg: torch.Tensor  # H-bar_t: running mean of (target - accept_prob)
    mu: torch.Tensor  # log(10 eps_0)
    # t, number of updates so far (shared by all chains). The public field shadows
    # tuple.count, which mypy reports as an incompatible override.
    count: int  # type: ignore[assignment]


def adaptation_steps(warmup_steps: int) -> int:
    """How many of the first ``warmup_steps`` steps adapt; the remaining
    ``floor(0.2 * warmup_steps)`` move with the frozen step size.

    Example:
        >>> adaptation_steps(100), adaptation_steps(4), adaptation_steps(0)
        (80, 4, 0)
    """
    return warmup_steps - int(FIXED_WINDOW_FRACTION * warmup_steps)


def dual_averaging_init(initial_step_size: torch.Tensor) -> DualAveragingState:
    """Start adaptation from per-chain initial step sizes, shape ``(C,)``."""
    log_eps = initial_step_size.log()
    return DualAveragingState(
        log_step_size=log_eps,
        log_step_size_avg=log_eps.clone(),
        error_avg=torch.zeros_like(log_eps),
        mu=log_eps + math.log(10.0),
        count=0,
    )


def dual_averaging_update(
    state: DualAveragingState, accept_prob: torch.Tensor, target_accept: float
) -> DualAveragingState:
    """One dual-averaging update from the acceptance probabilities ``(C,)`` of a warmup step."""
    t = state.count + 1
    weight = 1.0 / (t + _T0)
    error_avg = (1.0 - weight) * state.error_avg + weight * (target_accept - accept_prob)
    log_eps = state.mu - math.sqrt(t) / _GAMMA * error_avg
    eta = t**-_KAPPA
    log_eps_avg = eta * log_eps + (1.0 - eta) * state.log_step_size_avg
    return DualAveragingState(log_eps, log_eps_avg, error_avg, state.mu, t)


def step_size(state: DualAveragingState, warmup: bool) -> torch.Tensor:
    """The step size to move with, shape ``(C,)``: the iterate in warmup, the average after."""
    return (state.log_step_size if warmup else state.log_step_size_avg).exp()
