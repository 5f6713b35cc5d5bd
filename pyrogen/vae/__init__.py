"""Variational autoencoders as Pyro model/guide pairs: training, likelihood, inpainting, M2."""

from pyrogen.vae.model import VAE
from pyrogen.vae.training import fit

__all__ = ["VAE", "fit"]
