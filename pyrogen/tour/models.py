"""The tour's 8x8 GAN, kept as aliases of the width-agnostic :func:`pyrogen.gan.gan_recipe`.

``pyrogen train`` and older scripts import these names; new code should call
:func:`pyrogen.gan.gan_recipe` ``(data_dim)`` and :func:`pyrogen.gan.recipe_fit_kwargs`.
"""

from __future__ import annotations

from typing import Any

import torch

from pyrogen.gan import GAN, gan_recipe, recipe_fit_kwargs

__all__ = ["DIGITS_GAN_FIT", "digits_gan"]

#: Keyword arguments of :func:`pyrogen.gan.fit` that go with :func:`digits_gan`: the R1
#: penalty of :func:`pyrogen.gan.recipe_fit_kwargs` ``(64)`` (the only one of its settings
#: that differs from ``fit``'s defaults; see :mod:`pyrogen.gan.recipe` for why it is needed).
DIGITS_GAN_FIT: dict[str, Any] = {"r1_penalty": recipe_fit_kwargs(64)["r1_penalty"]}


def digits_gan(
    latent_dim: int = 8,
    hidden: tuple[int, ...] = (256, 256),
    device: torch.device | str | None = None,
) -> GAN:
    """``gan_recipe(64, ...).gan`` with ``hidden`` for both networks: an MLP GAN for 64 pixels.

    Train it with ``pyrogen.gan.fit(gan, data, **DIGITS_GAN_FIT, ...)``.
    """
    recipe = gan_recipe(
        64, latent_dim=latent_dim, hidden=hidden, device=device, discriminator_hidden=hidden
    )
    return recipe.gan
