"""The tour's model recipes for the 8x8 digits, shared with ``pyrogen train``."""

from __future__ import annotations

import torch

from pyrogen.gan import GAN, ImplicitModel, mlp_discriminator, mlp_generator

__all__ = ["digits_gan"]


def digits_gan(
    latent_dim: int = 8,
    hidden: tuple[int, ...] = (256, 256),
    device: torch.device | str | None = None,
) -> GAN:
    """An MLP GAN for 64-pixel images: sigmoid generator output, logit discriminator."""
    generator = ImplicitModel(
        mlp_generator(latent_dim, 64, hidden=hidden, output="sigmoid"), latent_dim
    )
    return GAN(generator, mlp_discriminator(64, hidden=hidden)).to(device)
