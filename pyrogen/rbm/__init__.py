"""Restricted Boltzmann machines: energy model, partition function, training."""

from pyrogen.rbm.model import RBM, binary_states

__all__ = ["RBM", "binary_states"]
