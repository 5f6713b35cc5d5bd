r"""Toy data: synthetic 2-D Gaussian mixtures for mode-collapse studies, and their metrics.

The 8-Gaussian ring and the 25-Gaussian grid are the benchmarks of VEEGAN (Srivastava et al.
2017) and PacGAN (Lin et al. 2018): equal-weight isotropic Gaussian mixtures whose modes are
far apart compared to their width, so a generator that drops a mode is easy to detect.
:func:`mode_metrics` scores samples the way those papers do. Real images live apart, in
:mod:`pyrogen.data.images`. This module was ``pyrogen.datasets`` (still importable, with a
``DeprecationWarning``).
"""

from __future__ import annotations

import math

import torch

from pyrogen._validation import (
    check_finite,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_tensor,
)
from pyrogen.seeding import make_generator

__all__ = ["grid", "mode_metrics", "ring"]


def _mixture(
    n: int, centers: torch.Tensor, std: float, seed: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws from the equal-weight mixture of :math:`\\mathcal N(c_k, std^2 I)`."""
    rng = make_generator(seed)
    component = torch.randint(len(centers), (n,), generator=rng)
    noise = torch.randn(n, centers.shape[1], generator=rng, dtype=centers.dtype)
    return centers[component] + std * noise, centers


def ring(
    n: int,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Equal-weight mixture of ``modes`` Gaussians on a circle.

    Centre :math:`k` is :math:`r(\cos 2\pi k/K, \sin 2\pi k/K)`; each component is
    :math:`\mathcal N(c_k, \mathrm{std}^2 I_2)`.

    Returns:
        ``(samples, centers)`` of shapes ``(n, 2)`` and ``(modes, 2)``.

    Example:
        >>> x, c = ring(1000, seed=0)
        >>> tuple(x.shape), tuple(c.shape)
        ((1000, 2), (8, 2))
    """
    check_positive_int(n, "n")
    check_positive_int(modes, "modes")
    radius = check_positive_float(radius, "radius")
    std = check_positive_float(std, "std")
    angles = 2 * math.pi * torch.arange(modes, dtype=torch.float64) / modes
    centers = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    return _mixture(n, centers.to(dtype), std, seed)


def grid(
    n: int,
    side: int = 5,
    spacing: float = 2.0,
    std: float = 0.05,
    seed: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Equal-weight mixture of ``side**2`` Gaussians on a square grid centred at 0.

    Centres are :math:`((i - (s-1)/2)\,\delta, (j - (s-1)/2)\,\delta)` for
    :math:`i, j = 0..s-1` (the default is PacGAN's :math:`\{-4,-2,0,2,4\}^2`).

    Returns:
        ``(samples, centers)`` of shapes ``(n, 2)`` and ``(side**2, 2)``.

    Example:
        >>> x, c = grid(500, seed=0)
        >>> tuple(x.shape), tuple(c.shape), c[0].tolist()
        ((500, 2), (25, 2), [-4.0, -4.0])
    """
    check_positive_int(n, "n")
    check_positive_int(side, "side")
    spacing = check_positive_float(spacing, "spacing")
    std = check_positive_float(std, "std")
    axis = (torch.arange(side, dtype=torch.float64) - (side - 1) / 2) * spacing
    centers = torch.cartesian_prod(axis, axis).reshape(side * side, 2)
    return _mixture(n, centers.to(dtype), std, seed)


def mode_metrics(
    samples: torch.Tensor,
    centers: torch.Tensor,
    std: float,
    threshold: float = 3.0,
    min_fraction: float = 0.01,
) -> dict[str, object]:
    r"""Mode coverage and sample quality of ``samples`` against a mixture's ``centers``.

    Each sample is assigned to its nearest centre; it is *high quality* if that distance is
    at most ``threshold * std`` (3 standard deviations). Following PacGAN (Lin et al. 2018):

    * ``modes``: number of centres holding at least ``min_fraction`` (1%) of the
      high-quality samples (and at least one);
    * ``high_quality``: fraction of all samples that are high quality;
    * ``kl``: :math:`\mathrm{KL}(\hat q \Vert u) = \sum_k \hat q_k \log(K \hat q_k)`, the
      reverse KL divergence from the histogram :math:`\hat q` of high-quality samples over
      the :math:`K` modes to the uniform mode distribution of the data (NaN when no sample
      is high quality).

    Also returned: ``counts`` (high-quality samples per centre, a list of ints).

    Args:
        samples: shape ``(n, dim)``.
        centers: shape ``(K, dim)``.
        std: the mixture components' standard deviation.

    Example:
        >>> x, c = ring(2000, seed=0)
        >>> m = mode_metrics(x, c, std=0.02)
        >>> m["modes"], m["high_quality"] > 0.98
        (8, True)
    """
    check_tensor(samples, "samples", ndim=2)
    check_finite(samples, "samples")
    check_tensor(centers, "centers", ndim=2, last_dim=samples.shape[1])
    std = check_positive_float(std, "std")
    threshold = check_positive_float(threshold, "threshold")
    min_fraction = check_probability(min_fraction, "min_fraction")
    distance, nearest = torch.cdist(samples.double(), centers.double().to(samples.device)).min(1)
    good = distance <= threshold * std
    counts = torch.bincount(nearest[good], minlength=centers.shape[0]).cpu()
    total = int(counts.sum())
    if total == 0:
        return {"modes": 0, "high_quality": 0.0, "kl": math.nan, "counts": counts.tolist()}
    q = counts.double() / total
    modes = int(((counts > 0) & (q >= min_fraction)).sum())
    kl = float(torch.xlogy(q, q * centers.shape[0]).sum())
    return {
        "modes": modes,
        "high_quality": total / samples.shape[0],
        "kl": kl,
        "counts": counts.tolist(),
    }
