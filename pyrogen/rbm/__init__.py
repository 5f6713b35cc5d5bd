"""Restricted Boltzmann machines: energy model, partition function, training.

:mod:`pyrogen.rbm.functional` holds the maths as plain functions (conditionals, free energy,
the block-Gibbs sweep at an inverse temperature) for code that builds on an RBM.
"""

from pyrogen.rbm import functional
from pyrogen.rbm.ais import (
    ESS_FRACTION_MIN,
    AISResult,
    ais,
    base_rate_bias,
    effective_sample_size,
    log_partition_floor,
    reverse_ais,
    salakhutdinov_murray_betas,
)
from pyrogen.rbm.likelihood import MAX_BRACKET_WIDTH, LikelihoodBounds, log_likelihood_bounds
from pyrogen.rbm.model import MAX_ENUMERATION_COST, RBM, binary_states, enumeration_cost
from pyrogen.rbm.training import fit, pseudo_log_likelihood, reconstruction_error, standardize

__all__ = [
    "RBM",
    "AISResult",
    "ESS_FRACTION_MIN",
    "MAX_BRACKET_WIDTH",
    "MAX_ENUMERATION_COST",
    "LikelihoodBounds",
    "ais",
    "base_rate_bias",
    "effective_sample_size",
    "enumeration_cost",
    "binary_states",
    "fit",
    "functional",
    "log_likelihood_bounds",
    "log_partition_floor",
    "pseudo_log_likelihood",
    "reconstruction_error",
    "reverse_ais",
    "salakhutdinov_murray_betas",
    "standardize",
]
