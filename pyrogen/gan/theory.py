r"""The GAN game on tabulated distributions, where everything has a closed form.

For distributions :math:`p_{data}, p_g` on a finite set (or densities tabulated on a grid,
multiplied by the cell volume), Goodfellow et al. (2014, Proposition 1 and Theorem 1) show:

* for fixed :math:`G` the value :math:`V(G, D) = \sum_x p_{data}(x) \log D(x) + p_g(x)
  \log(1 - D(x))` is maximised pointwise by
  :math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))`, since :math:`a \log y + b \log(1-y)`
  peaks at :math:`y = a / (a + b)`;
* at that maximum, :math:`C(G) = V(G, D^*) = -\log 4 + 2\,\mathrm{JSD}(p_{data} \Vert p_g)`,
  so :math:`C(G) \ge -\log 4` with equality iff :math:`p_g = p_{data}`.

These functions compute each side so that tests can check the identities to rounding error.
The convention :math:`0 \log 0 = 0` is used throughout (``torch.xlogy``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pyrogen._validation import check_finite, check_tensor

__all__ = ["game_value", "jensen_shannon", "optimal_discriminator"]


def _check_distribution(p: object, name: str) -> torch.Tensor:
    """A non-negative table summing to 1 (to the square root of the dtype's epsilon)."""
    p = check_tensor(p, name)
    check_finite(p, name)
    if bool((p < 0).any()):
        raise ValueError(f"{name} must be non-negative, got minimum {float(p.min())}")
    total = float(p.sum())
    tolerance = math.sqrt(torch.finfo(p.dtype).eps)
    if abs(total - 1.0) > tolerance:
        raise ValueError(
            f"{name} must sum to 1 (a probability table), got sum {total}; normalise it, "
            f"and for densities on a grid multiply by the cell volume first"
        )
    return p


def _check_pair(p: object, q: object, names: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor]:
    p, q = _check_distribution(p, names[0]), _check_distribution(q, names[1])
    if p.shape != q.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {tuple(p.shape)} and "
            f"{tuple(q.shape)}"
        )
    if p.dtype != q.dtype:
        raise TypeError(f"{names[0]} and {names[1]} must share a dtype, got {p.dtype}, {q.dtype}")
    return p, q


def optimal_discriminator(
    p_data: torch.Tensor, p_g: torch.Tensor, *, logits: bool = False
) -> torch.Tensor:
    r""":math:`D^*(x) = p_{data}(x) / (p_{data}(x) + p_g(x))`, same shape as the inputs.

    Where both probabilities are zero the value does not affect :math:`V`; 1/2 is returned.
    With ``logits=True`` the log-odds :math:`\log p_{data}(x) - \log p_g(x)` are returned
    instead (:math:`\pm\infty` where one side is zero, 0 where both are): a probability
    within machine epsilon of 1 rounds to 1, which makes :math:`\log(1 - D^*)` infinite
    although :math:`p_g \log(1 - D^*)` is finite; the log-odds keep it exact (pass them to
    :func:`game_value` as ``logits``).

    Example:
        >>> optimal_discriminator(torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.0, 0.5, 0.5]))
        tensor([1.0000, 0.5000, 0.0000])
    """
    p_data, p_g = _check_pair(p_data, p_g, ("p_data", "p_g"))
    total = p_data + p_g
    if logits:
        return torch.where(total > 0, torch.log(p_data) - torch.log(p_g), 0.0)
    return torch.where(total > 0, p_data / total.clamp_min(torch.finfo(total.dtype).tiny), 0.5)


def game_value(
    p_data: torch.Tensor,
    p_g: torch.Tensor,
    d: torch.Tensor | None = None,
    *,
    logits: torch.Tensor | None = None,
) -> torch.Tensor:
    r""":math:`V(G, D) = \sum_x p_{data}(x) \log D(x) + p_g(x) \log(1 - D(x))` (0-dim tensor).

    Give the discriminator either as ``d``, :math:`D(x) \in [0, 1]` on the same table, or as
    ``logits``, :math:`\operatorname{logit} D(x) \in [-\infty, \infty]`, evaluated in log
    space (:math:`\log D = \log\sigma(l)`, :math:`\log(1 - D) = \log\sigma(-l)`), which stays
    exact where :math:`D` is within rounding of 0 or 1. The value is :math:`-\infty` where
    :math:`D` puts 0 on data mass or 1 on generator mass; terms with zero mass count 0.
    Differentiable in ``d`` / ``logits``.
    """
    p_data, p_g = _check_pair(p_data, p_g, ("p_data", "p_g"))
    if logits is not None:
        if d is not None:
            raise ValueError("give exactly one of d (probabilities) and logits")
        check_tensor(logits, "logits")
        if bool(torch.isnan(logits).any()):
            raise ValueError("logits contains NaN")
        if logits.shape != p_data.shape:
            raise ValueError(
                f"logits must have shape {tuple(p_data.shape)}, got {tuple(logits.shape)}"
            )
        zero = torch.zeros((), dtype=p_data.dtype, device=p_data.device)
        real = torch.where(p_data > 0, p_data * F.logsigmoid(logits), zero)
        fake = torch.where(p_g > 0, p_g * F.logsigmoid(-logits), zero)
        return real.sum() + fake.sum()
    if d is None:
        raise ValueError("give exactly one of d (probabilities) and logits")
    check_tensor(d, "d")
    check_finite(d, "d")
    if d.shape != p_data.shape:
        raise ValueError(f"d must have shape {tuple(p_data.shape)}, got {tuple(d.shape)}")
    if bool((d < 0).any() | (d > 1).any()):
        raise ValueError(f"d must lie in [0, 1], got range [{float(d.min())}, {float(d.max())}]")
    return torch.xlogy(p_data, d).sum() + torch.xlogy(p_g, 1 - d).sum()


def jensen_shannon(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    r"""Jensen-Shannon divergence in nats (0-dim tensor), between 0 and :math:`\log 2`.

    .. math:: \mathrm{JSD}(p \Vert q) = \tfrac12 \mathrm{KL}(p \Vert m) + \tfrac12
              \mathrm{KL}(q \Vert m), \quad m = \tfrac12 (p + q).
    """
    p, q = _check_pair(p, q, ("p", "q"))
    m = 0.5 * (p + q)
    kl_p = (torch.xlogy(p, p) - torch.xlogy(p, m)).sum()
    kl_q = (torch.xlogy(q, q) - torch.xlogy(q, m)).sum()
    return 0.5 * (kl_p + kl_q)
