"""Neural-network building blocks shared by the VAE and GAN families.

* :class:`MLP`: the one fully connected network every pyrogen model builds (VAE and SSVAE
  encoders, decoders and classifiers; GAN generators and discriminators), rebuildable from
  its JSON :meth:`MLP.config` so that ``save``/``load`` never unpickle code;
* :func:`check_hidden`: validation of a tuple of hidden-layer widths;
* :func:`frozen`: a context manager that switches a module's parameter gradients off while
  one differentiates with respect to something else (a latent code :math:`z`).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from pyrogen._validation import check_choice, check_positive_int

__all__ = ["MLP", "check_hidden", "frozen"]

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),  # 0.2: the slope DCGAN uses in discriminators
    "elu": nn.ELU,
    "tanh": nn.Tanh,
}
_OUTPUTS = {"identity": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def check_hidden(hidden: object, name: str = "hidden") -> tuple[int, ...]:
    """Return ``hidden`` as a tuple of positive ints (an empty tuple means a linear map).

    Raises ``TypeError`` unless ``hidden`` is a sequence (not a string), and ``ValueError``
    naming the offending entry (``hidden[i]``) unless every entry is a positive int.

    Example:
        >>> check_hidden([256, 128])
        (256, 128)
    """
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
        raise TypeError(
            f"{name} must be a tuple of layer widths, e.g. (256,), got {type(hidden).__name__}"
        )
    return tuple(check_positive_int(h, f"{name}[{i}]") for i, h in enumerate(hidden))


class MLP(nn.Sequential):
    """Fully connected network ``in_dim -> hidden... -> out_dim`` acting on the last dimension.

    .. math:: h_0 = x, \\quad h_k = a(W_k h_{k-1} + b_k)\\ (k < L), \\quad
              \\text{out} = o(W_L h_{L-1} + b_L),

    with :math:`a` the ``activation`` and :math:`o` the ``output`` squashing; each
    :math:`(W_k, b_k)` has PyTorch's default ``nn.Linear`` initialisation, drawn layer by
    layer from the input side (so a seeded global RNG gives the same weights every time).

    Args:
        in_dim, out_dim: input and output widths.
        hidden: widths of the hidden layers (may be empty: one affine map).
        activation: ``"relu"``, ``"leaky_relu"`` (slope 0.2), ``"elu"`` or ``"tanh"``.
        output: squashing of the output, ``"identity"``, ``"sigmoid"`` or ``"tanh"``.
        dtype, device: of the parameters.

    Input shape ``(..., in_dim)``, output shape ``(..., out_dim)``. The layers are
    ``Linear, activation, ..., Linear, output`` (``net[-2]`` is the last linear layer); the
    state-dict keys are ``"{2k}.weight"`` and ``"{2k}.bias"`` for the :math:`k`-th linear
    layer.

    Example:
        >>> net = MLP(3, 2, hidden=(8,))
        >>> tuple(net(torch.zeros(5, 3)).shape), list(net.state_dict())
        ((5, 2), ['0.weight', '0.bias', '2.weight', '2.bias'])
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
        hidden = list(check_hidden(hidden))
        check_choice(activation, "activation", tuple(_ACTIVATIONS))
        check_choice(output, "output", tuple(_OUTPUTS))
        widths = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            layers.append(nn.Linear(a, b, dtype=dtype, device=device))
            if i < len(widths) - 2:
                layers.append(_ACTIVATIONS[activation]())
        # Always an output module, nn.Identity included (it has no parameters): net[-1] is the
        # squashing and net[-2] the last linear layer, whatever ``output`` is.
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


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Switch off ``requires_grad`` on every parameter of ``modules`` inside the block.

    For gradients with respect to an input only, e.g. :math:`\\nabla_z \\log p(y \\mid
    G(z))` in latent-space MCMC: autograd then skips the weights' part of the backward
    pass, and no ``.grad`` accumulates on them. On exit, normal or by an exception, exactly
    the parameters that required gradients before are switched back on (a parameter that
    was already frozen stays frozen).

    Example:
        >>> net = torch.nn.Linear(2, 1)
        >>> z = torch.zeros(1, 2, requires_grad=True)
        >>> with frozen(net):
        ...     net(z).sum().backward()
        >>> net.weight.grad is None, net.weight.requires_grad, z.grad.shape
        (True, True, torch.Size([1, 2]))
    """
    for i, module in enumerate(modules):
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"frozen takes torch.nn.Module arguments; argument {i} is {type(module).__name__}"
            )
    # Deduplicated by identity: a parameter shared by two modules is restored once.
    params = {id(p): p for m in modules for p in m.parameters() if p.requires_grad}
    for p in params.values():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params.values():
            p.requires_grad_(True)
