"""Restricted Boltzmann machines: energy model, partition function, training."""

from pyrogen.rbm.ais import ESS_FRACTION_MIN, AISResult, ais, base_rate_bias, effective_sample_size
from pyrogen.rbm.model import RBM, binary_states
from pyrogen.rbm.training import fit, pseudo_log_likelihood, reconstruction_error, standardize

__all__ = [
    "RBM",
    "AISResult",
    "ESS_FRACTION_MIN",
    "ais",
    "base_rate_bias",
    "effective_sample_size",
    "binary_states",
    "fit",
    "pseudo_log_likelihood",
    "reconstruction_error",
    "standardize",
]
