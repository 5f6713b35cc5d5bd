"""MCMC for Pyro models with discrete and continuous sites (kernels and vectorised chains)."""

from pyrogen.infer.base import VectorizedKernel

__all__ = ["VectorizedKernel"]
