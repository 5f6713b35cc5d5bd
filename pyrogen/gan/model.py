r"""The two players of a GAN as one module: a generator and a discriminator returning logits.

:class:`GAN` holds the generator :math:`G` (an :class:`~pyrogen.gan.ImplicitModel`: a
network and its latent prior) and the discriminator's logit :math:`d(x)`, with
:math:`D(x) = \sigma(d(x))` the probability that :math:`x` is real, and estimates the value
of the game of Goodfellow et al. (2014),

.. math:: V(G, D) = \mathbb E_{x\sim p_{data}} \log D(x)
          + \mathbb E_{z\sim p(z)} \log(1 - D(G(z))),

in logits, :math:`\log D = \operatorname{logsigmoid}(d)` and :math:`\log(1 - D) =
\operatorname{logsigmoid}(-d)`, which stay finite when :math:`D` saturates. Training is in
:mod:`pyrogen.gan.training`, the theory of the game (optimal discriminator, Jensen-Shannon
divergence) in :mod:`pyrogen.gan.theory`. ``save``/``load`` write both networks to one
safetensors file with a JSON description of their architectures (no unpickling).
"""

from __future__ import annotations

import os
from typing import Any

import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from pyrogen._validation import check_tensor
from pyrogen.gan.implicit import ImplicitModel, module_dtype_device
from pyrogen.io import load_state, save_module
from pyrogen.networks import MLP

__all__ = ["GAN"]


class GAN(nn.Module):
    """A generator (an :class:`ImplicitModel`) and a discriminator returning logits.

    Args:
        generator: the implicit model; kept as ``gan.generator``.
        discriminator: module mapping ``x`` of shape ``(n, out_dim)`` to logits of shape
            ``(n,)`` or ``(n, 1)`` (*not* probabilities, see :func:`mlp_discriminator`).

    Example:
        >>> from pyrogen.gan import ImplicitModel, mlp_discriminator, mlp_generator
        >>> gan = GAN(ImplicitModel(mlp_generator(2, 2), 2), mlp_discriminator(2))
        >>> real = torch.randn(100, 2)
        >>> float(gan.value(real)) <= 0.0
        True
    """

    def __init__(self, generator: ImplicitModel, discriminator: nn.Module) -> None:
        super().__init__()
        if not isinstance(generator, ImplicitModel):
            raise TypeError(
                "generator must be a pyrogen.gan.ImplicitModel (wrap your network: "
                f"ImplicitModel(net, latent_dim)), got {type(generator).__name__}"
            )
        if not isinstance(discriminator, nn.Module):
            raise TypeError(
                f"discriminator must be a torch.nn.Module, got {type(discriminator).__name__}"
            )
        self.generator = generator
        self.discriminator = discriminator
        x = generator.probe(2)
        was_training = discriminator.training
        discriminator.eval()
        try:
            with torch.no_grad():
                self.logits(x)
        except RuntimeError as err:
            raise ValueError(
                f"discriminator failed on generator output of shape {tuple(x.shape)}: does it "
                f"take out_dim={generator.out_dim} inputs? ({err})"
            ) from err
        finally:
            discriminator.train(was_training)

    @property
    def device(self) -> torch.device:
        """Device of the parameters (the discriminator's first, else the generator's)."""
        return module_dtype_device(self.discriminator, self.generator)[1]

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters (the discriminator's first, else the generator's)."""
        return module_dtype_device(self.discriminator, self.generator)[0]

    @property
    def latent_dim(self) -> int:
        """Width of the generator's latent :math:`z` (``gan.generator.latent_dim``)."""
        return self.generator.latent_dim

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws :math:`x = G(z)`, :math:`z \\sim p(z)`, shape ``(n, out_dim)``.

        :meth:`ImplicitModel.sample` of ``gan.generator``: ``generator`` (a
        ``torch.Generator`` on the model's device, ``None``: torch's global one) drives the
        latent draws; no gradients are tracked.
        """
        return self.generator.sample(n, generator)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Discriminator logits :math:`d(x)`, shape ``x.shape[:-1]`` (unchecked input)."""
        out = self.discriminator(x)
        batch = x.shape[:-1]
        if out.shape == (*batch, 1):
            return out.squeeze(-1)
        if out.shape != batch:
            raise ValueError(
                f"discriminator must return logits of shape {tuple(batch)} or "
                f"{(*batch, 1)} for input {tuple(x.shape)}, got {tuple(out.shape)}"
            )
        return out

    def probability(self, x: torch.Tensor) -> torch.Tensor:
        """:math:`D(x) = \\sigma(d(x))`, the probability that ``x`` is real.

        ``x`` has shape ``(..., out_dim)``; the result has shape ``x.shape[:-1]``.
        """
        check_tensor(x, "x", last_dim=self.generator.out_dim)
        return torch.sigmoid(self.logits(x))

    @torch.no_grad()
    def value(
        self,
        real: torch.Tensor,
        fake: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Monte Carlo estimate of :math:`V(G, D)` (0-dim tensor).

        :math:`\\hat V = \\frac1n\\sum_i \\log D(x_i) + \\frac1m\\sum_j \\log(1 - D(\\tilde x_j))`
        with ``real`` :math:`x_i` (n, out_dim) and ``fake`` :math:`\\tilde x_j` (m, out_dim),
        by default ``m = n`` fresh generator samples drawn with ``generator``.
        """
        check_tensor(real, "real", ndim=2, last_dim=self.generator.out_dim)
        if fake is None:
            fake = self.generator.sample(real.shape[0], generator)
        check_tensor(fake, "fake", ndim=2, last_dim=self.generator.out_dim)
        return F.logsigmoid(self.logits(real)).mean() + F.logsigmoid(-self.logits(fake)).mean()

    # ------------------------------------------------------------------ persistence
    def config(self) -> dict[str, Any]:
        """JSON description of both networks (they need ``config()``, e.g. pyrogen MLPs)."""
        discriminator_config = getattr(self.discriminator, "config", None)
        if not callable(discriminator_config):
            raise TypeError(
                "saving needs a discriminator with a config() method (e.g. pyrogen.gan."
                f"mlp_discriminator); got {type(self.discriminator).__name__}. Save the "
                "state_dict yourself, or pass your module to load(..., discriminator=module)"
            )
        return {"generator": self.generator.config(), "discriminator": discriminator_config()}

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write both networks' weights and configuration to one safetensors file, atomically."""
        save_module(self, path, "GAN", self.config())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        generator: nn.Module | None = None,
        discriminator: nn.Module | None = None,
        latent_dist: dist.TorchDistribution | None = None,
        device: torch.device | str | None = None,
    ) -> GAN:
        """Load a GAN written by :meth:`save` (safetensors + JSON, no unpickling).

        ``generator`` (the bare network) and ``discriminator`` replace the stored
        architectures, for custom modules; a custom ``latent_dist`` must be passed again.
        """
        config, state = load_state(path, "GAN")

        def entries(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}

        implicit = ImplicitModel.from_state(
            config["generator"], entries("generator."), generator, latent_dist, device
        )
        own = entries("discriminator.")
        if discriminator is None:
            dtype = next(iter(own.values())).dtype
            discriminator = MLP(**config["discriminator"], dtype=dtype, device=device)
        discriminator.load_state_dict(own)
        if device is not None:
            discriminator = discriminator.to(device)
        return cls(implicit, discriminator)
