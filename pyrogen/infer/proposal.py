r"""Metropolis-Hastings accept/reject in log space, shared by every pyrogen kernel.

A move from :math:`x` to :math:`x'` proposed with density :math:`q(x' | x)` is accepted with
probability

.. math:: \alpha(x, x') = \min\Bigl(1, \frac{\pi(x')\, q(x | x')}{\pi(x)\, q(x' | x)}\Bigr),

(Hastings, 1970). Everything here works with :math:`\log \alpha` so that target densities of
:math:`e^{\pm 1000}` neither overflow nor underflow, and with a leading chain dimension.
"""

from __future__ import annotations

import torch

__all__ = ["log_accept_ratio", "accept_prob", "metropolis_accept", "select"]


def log_accept_ratio(
    log_density_new: torch.Tensor,
    log_density_old: torch.Tensor,
    log_q_forward: torch.Tensor | float = 0.0,
    log_q_backward: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    r""":math:`\log \pi(x') - \log \pi(x) + \log q(x | x') - \log q(x' | x)`, shape ``(C,)``.

    ``log_q_forward`` is :math:`\log q(x' | x)`, ``log_q_backward`` :math:`\log q(x | x')`
    (zero for symmetric proposals). NaN (e.g. a proposal outside the support evaluated as
    ``-inf - (-inf)``) is mapped to ``-inf``: such a move is always rejected.
    """
    ratio = log_density_new - log_density_old + log_q_backward - log_q_forward
    return torch.nan_to_num(ratio, nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)


def accept_prob(log_ratio: torch.Tensor) -> torch.Tensor:
    r""":math:`\alpha = \min(1, e^{\log r})`, computed without overflow; shape of ``log_ratio``."""
    return log_ratio.clamp(max=0.0).exp()


def metropolis_accept(
    log_ratio: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Accept each chain's move with probability :math:`\min(1, e^{\log r})`.

    Compares :math:`\log u` with :math:`\log r` for :math:`u \sim U(0, 1)`, which never
    exponentiates a large ratio. Returns ``(accepted, accept_prob)``: a boolean tensor and
    the acceptance probabilities, both of the shape of ``log_ratio`` (``(C,)``).
    """
    u = torch.rand(
        log_ratio.shape, generator=generator, dtype=log_ratio.dtype, device=log_ratio.device
    )
    # log(u) < log r  <=>  u < r; u == 0 has probability 0 but log(0) = -inf still accepts.
    accepted = torch.log(u) < log_ratio
    return accepted, accept_prob(log_ratio)


def select(accepted: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Per chain ``new`` where ``accepted`` else ``old``; ``accepted`` has shape ``(C,)``
    and is broadcast over the trailing dimensions of ``new``/``old`` (shape ``(C, ...)``)."""
    mask = accepted.reshape(accepted.shape + (1,) * (new.dim() - accepted.dim()))
    return torch.where(mask, new, old)
