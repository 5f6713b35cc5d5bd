r"""Posterior estimates over a generator's latent code, with their reliability attached.

:meth:`ImplicitModel.condition` (super-resolution, inpainting, compressed sensing: a
posterior :math:`p(z \mid y)`) and :func:`~pyrogen.gan.discriminator_energy` (DDLS: the
target :math:`p_t(z) \propto p(z)\, e^{d(G(z))}`) build Pyro models over the latent site
``"z"``. :func:`latent_posterior` samples such a model with pyrogen's vectorised MALA and
returns the Monte Carlo estimate

.. math:: E[G(z)] \approx \frac{1}{CS} \sum_{c, s} G(z_{c, s})

over ``C`` chains of ``S`` kept draws, the draws :math:`G(z_{c,s})` themselves, and the
:class:`~pyrogen.convergence.Reliability` of the estimate.

The reliability is checked on the chains of :math:`G(z)`, the quantity the estimate is made
of, not on :math:`z`: a GAN's latent code is not identifiable (many :math:`z` give the same
image), so chains can disagree on :math:`z` while agreeing on the image, and only the latter
matters for :math:`E[G(z)]`. R-hat over :math:`z` is still in ``idata`` for
:func:`pyrogen.diagnostics.summarize`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import torch

from pyrogen._validation import check_positive_int
from pyrogen.convergence import Reliability, check_convergence
from pyrogen.gan.implicit import ImplicitModel, module_dtype_device
from pyrogen.gan.model import GAN

__all__ = ["LatentPosterior", "latent_posterior"]

#: Latent draws pushed through the generator at once (bounds the memory of one forward pass).
_BLOCK = 4096


class LatentPosterior(NamedTuple):
    """What :func:`latent_posterior` returns.

    Attributes:
        mean: :math:`E[G(z)]` over every chain and kept draw, shape ``(*batch, out_dim)``
            (``batch`` is the shape of ``z`` without its last dimension: ``()`` for one
            observation, ``(n,)`` for ``n`` observations in a plate).
        images: the draws :math:`G(z)`, shape ``(num_chains, num_draws, *batch, out_dim)``
            (``images[:, -1]``: each chain's final state, the DDLS samples of Che et al.).
        idata: ``xarray.DataTree`` of :func:`pyrogen.infer.sample`: posterior ``"z"``
            ``(num_chains, num_draws, *batch, latent_dim)``, ``sample_stats`` with the
            acceptance.
        reliability: :class:`~pyrogen.convergence.Reliability` of ``mean``: worst split
            R-hat and bulk ESS over the components of ``images``, mean MALA acceptance.
            When ``reliability.converged`` is false a :class:`~pyrogen.ConvergenceWarning`
            has been emitted and ``mean`` is not a result.
    """

    mean: torch.Tensor
    images: torch.Tensor
    idata: Any
    reliability: Reliability


def latent_posterior(
    generator: ImplicitModel | GAN,
    model: Callable[[], Any],
    *,
    num_chains: int = 8,
    num_samples: int = 300,
    warmup_steps: int = 300,
    step_size: float = 0.1,
    seed: int | None = None,
    initial_params: Mapping[str, torch.Tensor] | None = None,
    quantity: str = "posterior mean of G(z)",
    warn: bool = True,
    progress: bool = False,
) -> LatentPosterior:
    r"""Sample ``model`` over ``"z"`` by vectorised MALA; estimate :math:`E[G(z)]`, checked.

    Args:
        generator: the :class:`ImplicitModel` whose :math:`G` the model uses (or the
            :class:`GAN` holding it).
        model: a Pyro model with latent site ``"z"`` and no arguments, e.g.
            ``generator.condition(forward, y, noise_scale)`` or ``discriminator_energy(gan)``.
        num_chains: chains, run as one batch.
        num_samples: post-warmup steps per chain (all kept).
        warmup_steps: steps discarded first, during which each chain adapts its MALA step
            size (dual averaging).
        step_size: initial MALA step size.
        seed: seeds the chains (:func:`pyrogen.infer.sample`); ``None``: drawn from torch's
            global RNG.
        initial_params: ``{"z": (num_chains, *batch, latent_dim)}`` starting points, e.g.
            prior draws (``generator.sample_latent``); default: ``sample``'s start,
            uniform on (-2, 2) per coordinate, over-dispersed as R-hat wants.
        quantity: names the estimate in the warning and in ``reliability``.
        warn: emit the :class:`~pyrogen.ConvergenceWarning`; ``False`` only checks (for a
            caller that combines several checks into one warning of its own).
        progress: show a progress bar.

    Returns:
        :class:`LatentPosterior` ``(mean, images, idata, reliability)``.

    Warns:
        ConvergenceWarning: once (unless ``warn=False``) when the chains of :math:`G(z)`
            fail a threshold of :func:`pyrogen.convergence.check_convergence` (max R-hat
            > 1.01, min bulk ESS < 100, mean acceptance < 5%).

    Example:
        >>> g = ImplicitModel(torch.nn.Linear(2, 4), latent_dim=2)
        >>> model = g.condition(lambda x: x[..., :2], torch.zeros(2), noise_scale=0.5)
        >>> post = latent_posterior(g, model, num_chains=4, num_samples=500, seed=0)
        >>> tuple(post.mean.shape), tuple(post.images.shape), post.reliability.converged
        ((4,), (4, 500, 4), True)
    """
    from pyrogen import diagnostics
    from pyrogen.infer import MetropolisHastings, sample

    if isinstance(generator, GAN):
        generator = generator.generator
    if not isinstance(generator, ImplicitModel):
        raise TypeError(
            f"generator must be a pyrogen.gan.ImplicitModel or GAN, got {type(generator).__name__}"
        )
    if not callable(model):
        raise TypeError(f"model must be a callable Pyro model, got {type(model).__name__}")
    check_positive_int(num_chains, "num_chains")
    check_positive_int(num_samples, "num_samples")
    check_positive_int(warmup_steps, "warmup_steps", minimum=0)
    kernel = MetropolisHastings(model, proposal="mala", step_size=step_size)
    idata = sample(
        kernel,
        num_chains=num_chains,
        num_samples=num_samples,
        warmup_steps=warmup_steps,
        seed=seed,
        progress=progress,
        check=False,  # checked below, for the quantity reported
        initial_params=dict(initial_params) if initial_params else None,
    )
    if idata is None:  # in a process group sample() returns the gathered draws on rank 0 only
        raise RuntimeError(
            "latent_posterior got no draws on this rank: inside a torch.distributed group "
            "only rank 0 receives the chains"
        )
    if "z" not in idata.posterior:
        raise ValueError(
            f"model must have the latent site 'z'; its latent sites are {list(idata.posterior)}"
        )
    dtype, device = module_dtype_device(generator)
    z = torch.as_tensor(idata.posterior["z"].values, dtype=dtype, device=device)
    flat = z.reshape(-1, *z.shape[2:])
    with torch.no_grad():
        images = torch.cat([generator.generator(block) for block in flat.split(_BLOCK)])
    images = images.reshape(*z.shape[:2], *images.shape[1:])
    stats = diagnostics.sample_stats_arrays(idata)
    acceptance = float(np.mean(stats["acceptance_rate"])) if "acceptance_rate" in stats else None
    reliability = check_convergence(
        {"G(z)": images}, quantity, acceptance=acceptance, warn=warn, stacklevel=2
    )
    return LatentPosterior(images.mean((0, 1)), images, idata, reliability)
