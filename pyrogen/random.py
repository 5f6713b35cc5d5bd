"""Deprecated: this module is now :mod:`pyrogen.first_principles`.

Importing ``pyrogen.random`` emits one ``DeprecationWarning`` and gives the same objects as
:mod:`pyrogen.first_principles` (``pyrogen.random.LinearCongruential is
pyrogen.first_principles.LinearCongruential``). Import from the new module instead.
"""

import warnings

from pyrogen.first_principles import (
    FiniteChain,
    LinearCongruential,
    box_muller,
    detailed_balance_violation,
    gibbs_chain,
    gibbs_matrix,
    hull_dobell,
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

warnings.warn(
    "pyrogen.random is deprecated: import from pyrogen.first_principles instead "
    "(the same names, split into pyrogen.first_principles.generators and "
    "pyrogen.first_principles.markov_chains)",
    DeprecationWarning,
    stacklevel=2,
)
