r"""Discriminator-driven latent sampling (DDLS; Che et al. 2020, "Your GAN is secretly an
energy-based model and you should use discriminator driven latent sampling").

For the optimal discriminator, :math:`d^*(x) = \log p_{data}(x) - \log p_g(x)` (the logit of
:math:`D^* = p_{data} / (p_{data} + p_g)`), so :math:`p_g(x)\, e^{d(x)} \propto p_{data}(x)`:
reweighting the generator by :math:`e^{d}` corrects it. The reweighted distribution is the
push-forward through :math:`G` of the latent density

.. math:: p_t(z) \propto p(z)\, e^{d(G(z))}, \qquad
          E(z) = -\log p(z) - d(G(z)),

which, unlike the density of :math:`x`, is explicit and smooth, so gradient-based MCMC
(MALA, HMC/NUTS) can sample it. Che et al. start many short Langevin chains from the prior;
the discriminator should be (close to) optimal for the *final* generator, e.g. retrained a
little with ``fit(gan, data, train_generator=False)``.
"""

from __future__ import annotations

from collections.abc import Callable

import pyro
import torch

from pyrogen.gan.model import GAN

__all__ = ["discriminator_energy", "discriminator_log_density"]


def discriminator_log_density(gan: GAN, z: torch.Tensor) -> torch.Tensor:
    r"""Unnormalised latent log density :math:`\log p(z) + d(G(z)) = -E(z)`.

    ``z`` has shape ``(..., latent_dim)``; the result has shape ``z.shape[:-1]``.
    Differentiable in ``z`` (for Langevin or HMC steps written by hand).
    """
    if not isinstance(gan, GAN):
        raise TypeError(f"gan must be a pyrogen.gan.GAN, got {type(gan).__name__}")
    implicit = gan.generator
    implicit.check_latent(z)
    return implicit.prior().log_prob(z) + gan.logits(implicit.generator(z))


def discriminator_energy(gan: GAN) -> Callable[[], torch.Tensor]:
    r"""Pyro model of the DDLS latent target :math:`p_t(z) \propto p(z)\, e^{d(G(z))}`.

    The model has the latent site ``"z"`` (prior :meth:`ImplicitModel.prior`), the
    deterministic site ``"x"`` = :math:`G(z)` and the factor ``"discriminator"`` adding
    :math:`d(G(z))`, so its log joint is exactly :math:`-E(z)` (module docstring). Sample it
    with :func:`pyrogen.gan.latent_posterior` (pyrogen's vectorised MALA, many chains, each
    chain's final ``G(z)`` in ``images[:, -1]``, its reliability checked) or with
    ``pyro.infer.NUTS``; the networks are held fixed (not registered with the param store).

    Example:
        >>> from pyrogen.gan import GAN, ImplicitModel, mlp_discriminator, mlp_generator
        >>> gan = GAN(ImplicitModel(mlp_generator(2, 2), 2), mlp_discriminator(2))
        >>> model = discriminator_energy(gan)
        >>> trace = pyro.poutine.trace(model).get_trace()
        >>> sorted(trace.stochastic_nodes), tuple(trace.nodes["x"]["value"].shape)
        (['z'], (2,))
    """
    if not isinstance(gan, GAN):
        raise TypeError(f"gan must be a pyrogen.gan.GAN, got {type(gan).__name__}")

    def model() -> torch.Tensor:
        implicit = gan.generator
        z = pyro.sample("z", implicit.prior())
        x = pyro.deterministic("x", implicit.generator(z), event_dim=1)
        pyro.factor("discriminator", gan.logits(x))
        return x

    return model
