"""The discrete-sampling benchmark's problems, in numpy only (shared by both virtual envs).

``benchmarks/discrete.py`` (the project's venv, torch) and ``benchmarks/discrete_numpyro.py``
(the NumPyro venv, jax) import this file, so every constant, data set and exact answer is
defined once and both sides sample exactly the same targets.

Mixture (``MIXTURE_*``, :func:`mixture_data`): a 1-D Gaussian mixture with three components,

.. math:: w \\sim \\mathrm{Dirichlet}(1, 1, 1), \\quad
          \\mu_k \\sim \\mathcal N(m_k, 2^2),\\ m = (-4, 0, 4), \\quad
          \\sigma \\sim \\mathrm{LogNormal}(0, 1), \\quad
          z_i \\sim \\mathrm{Categorical}(w), \\quad y_i \\sim \\mathcal N(\\mu_{z_i}, \\sigma^2),

with :math:`N = 300` points drawn from fixed parameters with a fixed numpy seed. The prior
means are ordered and the true components well separated (3 standard deviations), so the
posterior has one dominant labelling and no label switching.

Ising grid (``ISING_*``, :func:`neighbour_pairs`, :func:`ising_exact`): binary
:math:`x \\in \\{0, 1\\}^{16}` on a 4 x 4 grid with free boundaries, spins
:math:`s = 2x - 1` and

.. math:: \\log p(x) = J \\sum_{(i, j) \\in E} s_i s_j + h \\sum_i s_i - \\log Z,

with :math:`J = 0.35` (below the infinite lattice's critical 0.4407, but strong enough that
single-site updates mix slowly through the magnetisation :math:`m = \\frac{1}{16} \\sum_i s_i`)
and a small field :math:`h = 0.05` that breaks the :math:`s \\to -s` symmetry. The exact
per-spin marginals :math:`P(x_i = 1)` and moments of :math:`m` come from enumerating all
:math:`2^{16}` states.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "ISING_FIELD",
    "ISING_COUPLING",
    "ISING_SIDE",
    "IsingExact",
    "MIXTURE_NUM_POINTS",
    "MIXTURE_PRIOR_LOCS",
    "MIXTURE_PRIOR_LOC_SCALE",
    "MIXTURE_SEED",
    "MIXTURE_TRUE_LOCS",
    "MIXTURE_TRUE_SCALE",
    "MIXTURE_TRUE_WEIGHTS",
    "binary_states",
    "ising_exact",
    "ising_log_density",
    "magnetisation",
    "mixture_data",
    "neighbour_pairs",
]

# ------------------------------------------------------------------------------- mixture
MIXTURE_NUM_POINTS = 300
MIXTURE_SEED = 20240601
#: Prior means of the component locations: ordered, so the prior breaks label symmetry.
MIXTURE_PRIOR_LOCS = (-4.0, 0.0, 4.0)
MIXTURE_PRIOR_LOC_SCALE = 2.0
#: The parameters the data are drawn from (the components sit 3 sigma apart or more).
MIXTURE_TRUE_WEIGHTS = (0.3, 0.45, 0.25)
MIXTURE_TRUE_LOCS = (-3.5, 0.0, 3.0)
MIXTURE_TRUE_SCALE = 1.0


def mixture_data(num_points: int = MIXTURE_NUM_POINTS, seed: int = MIXTURE_SEED) -> np.ndarray:
    """``num_points`` observations ``(N,)`` float32 from the true mixture, fixed seed."""
    rng = np.random.default_rng(seed)
    z = rng.choice(len(MIXTURE_TRUE_WEIGHTS), size=num_points, p=MIXTURE_TRUE_WEIGHTS)
    y = rng.normal(np.asarray(MIXTURE_TRUE_LOCS)[z], MIXTURE_TRUE_SCALE)
    return y.astype(np.float32)


# --------------------------------------------------------------------------------- Ising
ISING_SIDE = 4
ISING_COUPLING = 0.35
ISING_FIELD = 0.05


def neighbour_pairs(side: int = ISING_SIDE) -> np.ndarray:
    """Nearest-neighbour edges of a ``side x side`` grid with free boundaries, ``(E, 2)``
    int64 of row-major site indices (``2 side (side - 1)`` edges, each once)."""
    index = np.arange(side * side).reshape(side, side)
    horizontal = np.stack([index[:, :-1].ravel(), index[:, 1:].ravel()], axis=-1)
    vertical = np.stack([index[:-1, :].ravel(), index[1:, :].ravel()], axis=-1)
    return np.concatenate([horizontal, vertical]).astype(np.int64)


def magnetisation(x: np.ndarray) -> np.ndarray:
    """:math:`m = \\mathrm{mean}_i (2 x_i - 1)` over the last axis of binary ``x``."""
    return (2.0 * np.asarray(x, dtype=np.float64) - 1.0).mean(-1)


def ising_log_density(
    x: np.ndarray,
    side: int = ISING_SIDE,
    coupling: float = ISING_COUPLING,
    field: float = ISING_FIELD,
) -> np.ndarray:
    """Unnormalised :math:`\\log p(x)` of binary ``x`` ``(..., side^2)``; shape ``(...)``."""
    s = 2.0 * np.asarray(x, dtype=np.float64) - 1.0
    pairs = neighbour_pairs(side)
    return coupling * (s[..., pairs[:, 0]] * s[..., pairs[:, 1]]).sum(-1) + field * s.sum(-1)


def binary_states(num_bits: int) -> np.ndarray:
    """All ``2^num_bits`` binary vectors, ``(2^n, n)`` uint8, bit 0 first (least significant)."""
    codes = np.arange(2**num_bits, dtype=np.int64)
    return ((codes[:, None] >> np.arange(num_bits)) & 1).astype(np.uint8)


class IsingExact(NamedTuple):
    """Exact answers for the Ising grid (float64)."""

    spin_marginals: np.ndarray  # (side^2,): P(x_i = 1)
    mean_m: float  # E[m]
    mean_m2: float  # E[m^2]
    var_m2: float  # Var[m^2] (to size tolerances on E[m^2])
    log_partition: float  # log Z


def ising_exact(
    side: int = ISING_SIDE, coupling: float = ISING_COUPLING, field: float = ISING_FIELD
) -> IsingExact:
    """Enumerate all ``2^(side^2)`` states (65,536 for the 4 x 4 grid; keep ``side <= 4``)."""
    if side * side > 20:
        raise ValueError(f"side={side} gives 2^{side * side} states: too many to enumerate")
    x = binary_states(side * side)
    log_w = ising_log_density(x, side, coupling, field)
    top = log_w.max()
    w = np.exp(log_w - top)
    total = w.sum()
    p = w / total
    m = magnetisation(x)
    mean_m2 = float(p @ m**2)
    return IsingExact(
        spin_marginals=p @ x.astype(np.float64),
        mean_m=float(p @ m),
        mean_m2=mean_m2,
        var_m2=float(p @ m**4 - mean_m2**2),
        log_partition=float(top + np.log(total)),
    )
