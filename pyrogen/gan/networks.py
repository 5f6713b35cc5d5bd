"""Small multilayer perceptrons for generators and discriminators that save/load can rebuild.

Any ``torch.nn.Module`` works as a generator or a discriminator; these builders only exist so
that :meth:`pyrogen.gan.GAN.save` can store a JSON description of the architecture next to the
weights, and :meth:`~pyrogen.gan.GAN.load` can rebuild it without unpickling code.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from pyrogen._validation import check_choice, check_positive_int

__all__ = ["MLP", "mlp_discriminator", "mlp_generator"]

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # 0.2: the slope DCGAN uses in discriminators
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}
_OUTPUTS = {"identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


class MLP(nn.Sequential):
    """Fully connected network ``in_dim -> hidden... -> out_dim`` acting on the last dimension.

    Args:
        in_dim, out_dim: input and output widths.
        hidden: widths of the hidden layers (may be empty: one affine map).
        activation: ``"relu"``, ``"leaky_relu"`` (slope 0.2), ``"elu"`` or ``"tanh"``.
        output: squashing of the output, ``"identity"``, ``"sigmoid"`` or ``"tanh"``.
        dtype, device: of the parameters.

    Input shape ``(..., in_dim)``, output shape ``(..., out_dim)``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (128, 128),
        activation: str = "relu",
        output: str = "identity",
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        check_positive_int(in_dim, "in_dim")
        check_positive_int(out_dim, "out_dim")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of ints, got {type(hidden).__name__}")
        hidden = [check_positive_int(h, "hidden[i]") for h in hidden]
        check_choice(activation, "activation", tuple(_ACTIVATIONS))
        check_choice(output, "output", tuple(_OUTPUTS))
        widths = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(a, b, dtype=dtype, device=device))
            if i < len(widths) - 2:
                layers.append(_ACTIVATIONS[activation]())
        layers.append(_OUTPUTS[output]())
        super().__init__(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim
        self.hidden, self.activation, self.output = hidden, activation, output

    def config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serialisable (what ``save`` stores besides weights)."""
        return {
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "hidden": list(self.hidden),
            "activation": self.activation,
            "output": self.output,
        }


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
