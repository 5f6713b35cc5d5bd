"""Variational autoencoders as Pyro model/guide pairs.

* :class:`VAE` (model/guide, encode/decode/sample/reconstruct, save/load) and :func:`fit`;
* :func:`log_likelihood` (importance-weighted bound) and :func:`elbo`;
* :func:`inpaint` (hole filling by MCMC over z: ``"mwg"``, ``"nuts"``, ``"pseudo_gibbs"``),
  with the baselines :func:`marginal_impute` and the score :func:`hidden_log_likelihood`;
* :class:`SSVAE` (Kingma et al.'s M2), :func:`fit_semisupervised`, :func:`fit_classifier`.
"""

from pyrogen.vae.inpaint import InpaintResult, hidden_log_likelihood, inpaint, marginal_impute
from pyrogen.vae.likelihood import elbo, log_likelihood
from pyrogen.vae.model import VAE
from pyrogen.vae.ssvae import SSVAE, fit_classifier, fit_semisupervised
from pyrogen.vae.training import fit

__all__ = [
    "VAE",
    "SSVAE",
    "InpaintResult",
    "elbo",
    "fit",
    "fit_classifier",
    "fit_semisupervised",
    "hidden_log_likelihood",
    "inpaint",
    "log_likelihood",
    "marginal_impute",
]
