r"""MCMC from first principles: uniforms, normals and Markov chains on small state spaces.

The building blocks tutorial 01 starts from, vectorised in torch and checkable exactly, one
concept per module:

* :mod:`pyrogen.first_principles.generators`: random numbers by hand,
  :class:`LinearCongruential` (uniforms from :math:`x_{n+1} = (a x_n + c) \bmod m`, with
  :func:`hull_dobell` for its full-period conditions) and :func:`box_muller` (normals from
  uniforms).
* :mod:`pyrogen.first_principles.markov_chains`: finite-state chains given by their explicit
  transition matrix :math:`P`: Metropolis-Hastings and Gibbs, both as the exact matrix and as
  the simulated algorithm (:class:`FiniteChain`), :func:`stationary_distribution` and
  :func:`detailed_balance_violation`.

The ``*_chain`` samplers accept a :class:`LinearCongruential` as their ``generator``, so a
whole sampler can run on the hand-written generator. This package was ``pyrogen.random``
(still importable, with a ``DeprecationWarning``).

Example:
    >>> import torch
    >>> from pyrogen.first_principles import LinearCongruential, gibbs_chain
    >>> joint = torch.tensor([[0.4, 0.1], [0.1, 0.4]], dtype=torch.float64)
    >>> run = gibbs_chain(joint, 10, generator=LinearCongruential(seed=0))
    >>> tuple(run.states.shape)
    (1, 11)
"""

from pyrogen.first_principles.generators import LinearCongruential, box_muller, hull_dobell
from pyrogen.first_principles.markov_chains import (
    FiniteChain,
    detailed_balance_violation,
    gibbs_chain,
    gibbs_matrix,
    metropolis_hastings_chain,
    metropolis_hastings_matrix,
    stationary_distribution,
)

__all__ = [
    "LinearCongruential",
    "FiniteChain",
    "box_muller",
    "hull_dobell",
    "metropolis_hastings_matrix",
    "metropolis_hastings_chain",
    "gibbs_matrix",
    "gibbs_chain",
    "stationary_distribution",
    "detailed_balance_violation",
]
