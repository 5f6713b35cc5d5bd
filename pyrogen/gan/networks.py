"""Small multilayer perceptrons for generators and discriminators that save/load can rebuild.

Any ``torch.nn.Module`` works as a generator or a discriminator; these builders only exist so
that :meth:`pyrogen.gan.GAN.save` can store a JSON description of the architecture next to the
weights, and :meth:`~pyrogen.gan.GAN.load` can rebuild it without unpickling code. The
network class is :class:`pyrogen.networks.MLP` (re-exported here), the one the VAEs use too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyrogen.networks import MLP

__all__ = ["MLP", "mlp_discriminator", "mlp_generator"]


def mlp_generator(
    latent_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (128, 128),
    activation: str = "relu",
    output: str = "identity",
    **kwargs: Any,
) -> MLP:
    """A generator network ``z (..., latent_dim) -> x (..., out_dim)``.

    Use ``output="sigmoid"`` for pixel intensities in [0, 1].

    Example:
        >>> import torch
        >>> g = mlp_generator(2, 2, hidden=(64, 64))
        >>> tuple(g(torch.zeros(5, 2)).shape)
        (5, 2)
    """
    return MLP(latent_dim, out_dim, hidden, activation, output, **kwargs)


def mlp_discriminator(
    in_dim: int,
    hidden: Sequence[int] = (128, 128),
    activation: str = "leaky_relu",
    **kwargs: Any,
) -> MLP:
    """A discriminator network ``x (..., in_dim) -> logit (..., 1)``.

    The output is the *logit* of :math:`D(x)`, never a probability: the losses use
    ``logsigmoid`` on it, which stays finite where ``log(sigmoid(.))`` would underflow.
    """
    return MLP(in_dim, 1, hidden, activation, "identity", **kwargs)
