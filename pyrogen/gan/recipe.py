r"""A GAN recipe for flattened images of any width: the networks and the settings of ``fit``.

:func:`gan_recipe` builds an MLP GAN for images flattened to ``data_dim`` pixels in
:math:`[0, 1]` (binary or grey) and returns it with the keyword arguments of
:func:`pyrogen.gan.fit` it was tuned with, so that every caller (the tour, ``pyrogen
train``, a benchmark) trains the same model the same way::

    recipe = gan_recipe(train.shape[1])
    history = fit(recipe.gan, train, steps=3000, seed=0, **recipe.fit_kwargs)

Sizes, for ``D = data_dim``:

* latent width :math:`2^{\operatorname{round}(\log_2 \sqrt D)}` (the side of a square
  image, rounded to a power of two), clipped to [8, 128]: 8 for 8x8, 32 for 28x28;
* hidden widths ``(256, w)`` for the generator ``z -> 256 -> w -> D`` and ``(w, 256)`` for
  the discriminator ``D -> w -> 256 -> 1``, with
  :math:`w = 2^{\lceil \log_2 (D / 2) \rceil}` clipped to [256, 1024]: the layer next to the
  pixels has at least half as many units as there are pixels. 64 pixels give (256, 256),
  784 give 512.

The fit settings (:func:`recipe_fit_kwargs`), and why:

* ``r1_penalty = 3``: binarised images are point masses at corners of :math:`[0, 1]^D`,
  where the unregularised game does not converge (Mescheder et al. 2018). On the 8x8 digits
  the discriminator won outright without it (D(real) = 1.00, D(fake) = 0.00) and the
  generator collapsed to one image (Fréchet distance 341 after 3,000 steps); with it the game
  settles at D ~ 0.5 and the samples cover the digits. Instance noise (sigma 0.1, or 0.3
  annealed to 0) and one-sided label smoothing (0.1) did not prevent the collapse; gamma 1
  and 10 gave about the same Fréchet distance. :math:`\gamma` has the units of :math:`x^2`
  and not of the dimension, so the same value serves 784 pixels (Mescheder et al. use 10 on
  images in [-1, 1], i.e. 2.5 on [0, 1]).
* the rest are :func:`~pyrogen.gan.fit`'s defaults (Adam 2e-4, betas (0.5, 0.999), batches
  of 128, one discriminator step per generator step), listed explicitly so that a change of
  those defaults does not silently change the recipe.

Measured on the 4,000 binarised training images of :func:`pyrogen.data.load_mnist5k`
(28x28, pixel > 127; ``benchmarks/gan_mnist.py``, one CPU thread, 0.04 s per step): after
6,000 steps (about 4 minutes) 10,000 samples covered all 10 classes of the 28x28 classifier
(:func:`pyrogen.metrics.class_coverage`) with the largest class share 12.3% and 13.8% (seeds
0 and 1; the real test images give 10.5%), KL to uniform 0.02, and a Fréchet distance
(:func:`pyrogen.metrics.mnist_features`) of 8.3 and 5.8 against a floor of 1.7 for real
training images. After 3,000 steps seed 0 still had a 16% class and distance 13.

References:
    L. Mescheder, A. Geiger, S. Nowozin, "Which training methods for GANs actually
    converge?", ICML 2018.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch

from pyrogen._validation import check_positive_int
from pyrogen.gan.implicit import ImplicitModel
from pyrogen.gan.model import GAN
from pyrogen.gan.networks import mlp_discriminator, mlp_generator

__all__ = ["GANRecipe", "gan_recipe", "recipe_fit_kwargs", "recipe_hidden", "recipe_latent_dim"]


class GANRecipe(NamedTuple):
    """What :func:`gan_recipe` returns.

    Attributes:
        gan: the untrained :class:`~pyrogen.gan.GAN` (``gan.generator``, an
            :class:`~pyrogen.gan.ImplicitModel` ``z (n, latent_dim) -> x (n, data_dim)`` with a
            sigmoid output, and ``gan.discriminator``, ``x (n, data_dim) -> logit (n, 1)``).
        fit_kwargs: keyword arguments for :func:`pyrogen.gan.fit` (a fresh dict, yours to
            change); give ``steps`` or ``epochs`` and ``seed`` yourself.
    """

    gan: GAN
    fit_kwargs: dict[str, Any]


def recipe_latent_dim(data_dim: int) -> int:
    r"""Default latent width for ``data_dim`` pixels: :math:`2^{\operatorname{round}(\log_2
    \sqrt D)}` clipped to [8, 128] (8 for 64 pixels, 32 for 784)."""
    check_positive_int(data_dim, "data_dim")
    return int(min(max(2 ** round(0.5 * math.log2(data_dim)), 8), 128))


def recipe_hidden(data_dim: int) -> tuple[int, int]:
    r"""Default generator hidden widths ``(256, w)``, :math:`w = 2^{\lceil \log_2 (D/2)
    \rceil}` clipped to [256, 1024]; the discriminator uses them reversed.

    Example:
        >>> recipe_hidden(64), recipe_hidden(784)
        ((256, 256), (256, 512))
    """
    check_positive_int(data_dim, "data_dim")
    wide = 2 ** math.ceil(math.log2(max(data_dim / 2, 1)))
    return 256, int(min(max(wide, 256), 1024))


def recipe_fit_kwargs(data_dim: int) -> dict[str, Any]:
    """The keyword arguments of :func:`pyrogen.gan.fit` that go with :func:`gan_recipe`.

    A fresh dict each call (see the module docstring for each value's reason).
    """
    check_positive_int(data_dim, "data_dim")
    return {
        "r1_penalty": 3.0,
        "lr": 2e-4,
        "betas": (0.5, 0.999),
        "batch_size": 128,
        "d_steps": 1,
        "loss": "nonsaturating",
    }


def _check_widths(widths: object, name: str) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence):
        raise TypeError(f"{name} must be a sequence of ints, got {type(widths).__name__}")
    return tuple(check_positive_int(w, f"{name}[{i}]") for i, w in enumerate(widths))


def gan_recipe(
    data_dim: int,
    latent_dim: int | None = None,
    hidden: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    discriminator_hidden: Sequence[int] | None = None,
) -> GANRecipe:
    r"""An MLP GAN for ``data_dim``-pixel images in [0, 1], and the settings to train it.

    Args:
        data_dim: pixels per flattened image, e.g. 64 (8x8) or 784 (28x28).
        latent_dim: width of :math:`z \sim \mathcal N(0, I)`; default
            :func:`recipe_latent_dim` ``(data_dim)``.
        hidden: generator hidden widths; default :func:`recipe_hidden` ``(data_dim)``.
        device: where the networks live. They are initialised on the CPU from torch's
            global RNG (seed it, or wrap the call in :func:`pyrogen.seeding.forked_global_rng`)
            and then moved, so a seed gives the same weights on every device.
        discriminator_hidden: discriminator hidden widths; default ``hidden`` reversed (the
            wide layer next to the pixels in both networks).

    Returns:
        :class:`GANRecipe` ``(gan, fit_kwargs)``.

    Example:
        >>> recipe = gan_recipe(784)
        >>> g = recipe.gan.generator
        >>> g.latent_dim, g.out_dim, recipe.fit_kwargs["r1_penalty"]
        (32, 784, 3.0)
        >>> tuple(recipe.gan.logits(g.sample(5)).shape)
        (5,)
    """
    check_positive_int(data_dim, "data_dim")
    if latent_dim is None:
        latent_dim = recipe_latent_dim(data_dim)
    check_positive_int(latent_dim, "latent_dim")
    if hidden is None:
        hidden = recipe_hidden(data_dim)
    hidden = _check_widths(hidden, "hidden")
    if discriminator_hidden is None:
        discriminator_hidden = hidden[::-1]
    discriminator_hidden = _check_widths(discriminator_hidden, "discriminator_hidden")
    # Generator first, then discriminator: the order the global RNG is consumed in, which the
    # tour's seeded 8x8 results depend on.
    generator = ImplicitModel(
        mlp_generator(latent_dim, data_dim, hidden=hidden, output="sigmoid"), latent_dim
    )
    discriminator = mlp_discriminator(data_dim, hidden=discriminator_hidden)
    return GANRecipe(GAN(generator, discriminator).to(device), recipe_fit_kwargs(data_dim))
