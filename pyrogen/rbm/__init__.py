"""Restricted Boltzmann machines: energy model, partition function, training."""

from pyrogen.rbm.ais import AISResult, ais, base_rate_bias
from pyrogen.rbm.model import RBM, binary_states
from pyrogen.rbm.training import fit, pseudo_log_likelihood, reconstruction_error, standardize

__all__ = [
    "RBM",
    "AISResult",
    "ais",
    "base_rate_bias",
    "binary_states",
    "fit",
    "pseudo_log_likelihood",
    "reconstruction_error",
    "standardize",
]
