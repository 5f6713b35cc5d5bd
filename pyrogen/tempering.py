r"""The bookkeeping of tempering shared by every replica-exchange sampler in pyrogen.

Pure functions over a ladder of inverse temperatures :math:`1 = \beta_0 > \dots > \beta_R`
and per-chain tensors with the temperature index first, shape ``(R + 1, C)``: the exchange
ratio of neighbouring temperatures, which pairs are proposed (deterministic even-odd or
stochastic), how the states move, the round trips of replica labels, and Syed et al.'s
ladder update that equalises the pairs' rejection rates (Syed, Bouchard-Côté, Deligiannidis
& Doucet 2022, JRSS-B). :class:`pyrogen.infer.ReplicaExchange`,
:func:`pyrogen.infer.replica_exchange_mala` and parallel-tempering PCD
(:func:`pyrogen.rbm.fit` with ``algorithm="pt"``) are built on them; this module depends on
torch only, so the RBM's training can use it without reaching into :mod:`pyrogen.infer`.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = [
    "MIN_REJECTION",
    "equalised_ladder",
    "geometric_ladder",
    "swap_index",
    "swap_log_accept_ratio",
    "swap_pairs",
    "update_round_trips",
]

#: Floor of the estimated rejection rates, so that the barrier is strictly increasing and the
#: new ladder strictly decreasing even for pairs that never reject.
MIN_REJECTION = 1e-3


def geometric_ladder(num_replicas: int, min_beta: float = 0.01, **like: Any) -> torch.Tensor:
    """:math:`\\beta_r = \\beta_{\\min}^{r / R}`, ``r = 0..R``, shape ``(num_replicas,)``.

    Example:
        >>> geometric_ladder(3, 0.25)
        tensor([1.0000, 0.5000, 0.2500])
    """
    if num_replicas == 1:
        return torch.ones(1, **like)
    exponent = torch.arange(num_replicas, **like) / (num_replicas - 1)
    return min_beta**exponent


def swap_log_accept_ratio(betas: torch.Tensor, log_likelihood: torch.Tensor) -> torch.Tensor:
    r""":math:`\log\alpha_r = (\beta_r - \beta_{r+1})(\log L_{r+1} - \log L_r)` of exchanging
    the states of slots ``r`` and ``r + 1``; ``betas`` ``(R + 1,)``, ``log_likelihood``
    ``(R + 1, C)``; shape ``(R, C)``. NaN (``inf - inf``) becomes ``-inf`` (rejected)."""
    gap = (betas[:-1] - betas[1:]).unsqueeze(-1)
    ratio = gap * (log_likelihood[1:] - log_likelihood[:-1])
    return torch.nan_to_num(ratio, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)


def swap_pairs(
    step: int,
    num_pairs: int,
    num_chains: int,
    scheme: str,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """Which pairs ``(r, r + 1)`` are proposed, boolean ``(R, C)``: those with ``r`` of the
    parity of ``step`` (``"deo"``) or of a fair coin per chain (``"stochastic"``)."""
    r = torch.arange(num_pairs, device=device).unsqueeze(-1)
    if scheme == "deo":
        return (r % 2 == step % 2).expand(num_pairs, num_chains)
    coin = torch.rand(num_chains, generator=generator, device=device) < 0.5
    return r % 2 == coin.long()


def swap_index(swapped: torch.Tensor) -> torch.Tensor:
    """For accepted exchanges ``swapped`` ``(R, C)`` of non-overlapping pairs, the slot each
    slot takes its new state from, shape ``(R + 1, C)`` (long)."""
    num_pairs, num_chains = swapped.shape
    zero = swapped.new_zeros(1, num_chains)
    up = torch.cat([swapped, zero]).long()  # slot r takes r + 1
    down = torch.cat([zero, swapped]).long()  # slot r takes r - 1
    slots = torch.arange(num_pairs + 1, device=swapped.device).unsqueeze(-1)
    return slots + up - down


def update_round_trips(
    direction: torch.Tensor, round_trips: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Directions ``(R + 1, C)`` and round-trip counts ``(C,)`` after the labels moved: a
    label arriving at :math:`\\beta_0` on its way back completes a round trip; one arriving
    at :math:`\\beta_R` turns back."""
    direction = direction.clone()
    round_trips = round_trips + (direction[0] == 1).to(round_trips.dtype)
    direction[0] = 0
    direction[-1] = torch.where(direction[-1] == 0, 1, direction[-1])
    return direction, round_trips


def equalised_ladder(betas: torch.Tensor, rejection: torch.Tensor) -> torch.Tensor:
    """Syed et al.'s schedule update (module docstring): ``betas`` ``(R + 1,)`` decreasing,
    mean rejection rates ``rejection`` ``(R,)`` of its pairs; returns the new ladder, with
    the same end points, whose pairs share the estimated barrier equally.

    Example (the hottest gap rejects most: the ladder moves towards it):
        >>> equalised_ladder(torch.tensor([1.0, 0.5, 0.1]), torch.tensor([0.1, 0.3]))
        tensor([1.0000, 0.3667, 0.1000])
    """
    num_pairs = rejection.shape[0]
    r = rejection.to(betas.dtype).clamp(min=MIN_REJECTION)
    xs = betas.flip(0)  # increasing, from beta_R to 1
    ys = torch.cat([r.new_zeros(1), r.flip(0).cumsum(0)])  # Lambda at xs, increasing
    levels = ys[-1] * torch.arange(num_pairs + 1, dtype=betas.dtype, device=betas.device)
    levels = levels / num_pairs
    segment = (torch.searchsorted(ys, levels, right=True) - 1).clamp(0, num_pairs - 1)
    lo, hi = ys[segment], ys[segment + 1]
    fraction = (levels - lo) / (hi - lo)
    new = xs[segment] + fraction * (xs[segment + 1] - xs[segment])
    new[0], new[-1] = xs[0], xs[-1]
    return new.flip(0)
