r"""The variational autoencoder as a Pyro model/guide pair.

Generative model (Kingma & Welling 2014; Rezende et al. 2014), for each example :math:`n`:

.. math:: z_n \sim \mathcal N(0, I_{d_z}), \qquad
          x_n \mid z_n \sim \operatorname{Bernoulli}(\sigma(f_\theta(z_n)))
          \ \text{or}\ \mathcal N(f_\theta(z_n), \sigma^2 I_{d_x}),

with the decoder :math:`f_\theta` an MLP (a linear map when ``hidden=()``: probabilistic
PCA). The guide is the amortised mean-field Gaussian
:math:`q_\phi(z \mid x) = \mathcal N(\mu_\phi(x), \operatorname{diag} s_\phi(x)^2)` from an
encoder MLP. Both run inside ``pyro.plate("data")``, so the pair trains with any Pyro ELBO,
works with ``pyro.infer.Predictive`` and supports data subsampling through the plate.

References:
    D. P. Kingma and M. Welling, "Auto-encoding variational Bayes", ICLR 2014.
    D. J. Rezende, S. Mohamed and D. Wierstra, "Stochastic backpropagation and approximate
    inference in deep generative models", ICML 2014.
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Literal

import pyro
import pyro.distributions as dist
import torch
from pyro.infer.util import is_validation_enabled
from torch import nn

from pyrogen._validation import (
    check_binary,
    check_choice,
    check_finite,
    check_positive_float,
    check_positive_int,
    check_tensor,
)
from pyrogen.deprecation import renamed_argument
from pyrogen.io import load_state, save_module
from pyrogen.networks import MLP, check_hidden
from pyrogen.vae import functional

__all__ = ["VAE"]


class VAE(nn.Module):
    """Variational autoencoder with a Bernoulli or Gaussian decoder.

    Args:
        x_dim: width :math:`d_x` of one (flattened) example.
        latent_dim: latent dimension :math:`d_z` (>= 1); the name of
            :class:`~pyrogen.gan.ImplicitModel`'s.
        hidden: widths of the hidden layers of the encoder; the decoder mirrors them.
            ``()`` makes both maps linear (with ``likelihood="gaussian"``: probabilistic PCA).
        likelihood: ``"bernoulli"`` (binary data, logits decoder) or ``"gaussian"``.
        sigma: noise standard deviation of the Gaussian decoder; ``None`` learns it (one
            scalar). Must be ``None`` for the Bernoulli decoder.
        dtype, device: of the parameters; every method follows them.
        z_dim: deprecated spelling of ``latent_dim`` (a ``FutureWarning``); the attribute
            ``vae.z_dim`` stays as an alias of ``vae.latent_dim``.

    Shapes: ``x`` is ``(..., x_dim)``, ``z`` is ``(..., latent_dim)``.

    The model registers the whole module with ``pyro.module("vae", self)``; as with any
    Pyro module, two VAEs used in one param store need ``pyro.clear_param_store()`` between
    them or they would share the stored weights.

    Example:
        >>> vae = VAE(64, 8)
        >>> x = torch.bernoulli(torch.full((5, 64), 0.3))
        >>> loc, scale = vae.encode(x)
        >>> tuple(loc.shape), tuple(vae.sample(3).shape)
        ((5, 8), (3, 64))
    """

    # Registered with register_buffer, which nn.Module's attribute typing cannot see.
    _zero: torch.Tensor

    def __init__(
        self,
        x_dim: int,
        latent_dim: int | None = None,
        hidden: tuple[int, ...] = (256,),
        likelihood: Literal["bernoulli", "gaussian"] = "bernoulli",
        sigma: float | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        z_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.x_dim = check_positive_int(x_dim, "x_dim")
        latent_dim = renamed_argument(latent_dim, z_dim, "latent_dim", "z_dim", "VAE")
        if latent_dim is None:
            raise TypeError("VAE needs latent_dim, the latent dimension (an int >= 1)")
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        self.hidden = check_hidden(hidden)
        self.likelihood = check_choice(likelihood, "likelihood", ("bernoulli", "gaussian"))
        if sigma is not None:
            if self.likelihood == "bernoulli":
                raise ValueError("sigma is only used by likelihood='gaussian'; pass sigma=None")
            sigma = check_positive_float(sigma, "sigma")
        self.sigma = sigma
        # One encoder head of width 2 * latent_dim (loc and raw scale) instead of two heads:
        # one matmul fewer per step, same function class. ReLU between the layers rather
        # than softplus: on CPU it is the cheaper kernel in both passes, and on the digits
        # benchmark it reaches the same or better held-out likelihood
        # (benchmarks/vae_digits.py).
        self.encoder = MLP(
            self.x_dim,
            2 * self.latent_dim,
            self.hidden,
            activation="relu",
            dtype=dtype,
            device=device,
        )
        self.decoder = MLP(
            self.latent_dim,
            self.x_dim,
            tuple(reversed(self.hidden)),
            activation="relu",
            dtype=dtype,
            device=device,
        )
        if self.likelihood == "gaussian":
            log_sigma = torch.tensor(
                math.log(sigma) if sigma is not None else 0.0, dtype=dtype, device=device
            )
            if sigma is None:
                self.log_sigma = nn.Parameter(log_sigma)
            else:
                self.register_buffer("log_sigma", log_sigma)
        # A buffer that follows .to(device / dtype): what the device and dtype properties read.
        self.register_buffer("_zero", torch.zeros((), dtype=dtype, device=device), persistent=False)
        #: Whether :meth:`model` and :meth:`guide` call ``pyro.module("vae", self)``. ``fit``
        #: optimises the parameters directly and switches it off (it costs ~0.15 ms per
        #: step; :func:`pyrogen.vae.training.unregistered`).
        self.register_params = True

    # ------------------------------------------------------------------ helpers
    @property
    def is_bernoulli(self) -> bool:
        return self.likelihood == "bernoulli"

    @property
    def z_dim(self) -> int:
        """Old name of :attr:`latent_dim` (kept as an alias)."""
        return self.latent_dim

    @property
    def device(self) -> torch.device:
        return self._zero.device

    @property
    def dtype(self) -> torch.dtype:
        return self._zero.dtype

    def config(self) -> dict[str, object]:
        """Constructor arguments (what :meth:`save` stores besides the weights)."""
        return {
            "x_dim": self.x_dim,
            "latent_dim": self.latent_dim,
            "hidden": list(self.hidden),
            "likelihood": self.likelihood,
            "sigma": self.sigma,
        }

    def extra_repr(self) -> str:
        return (
            f"x_dim={self.x_dim}, latent_dim={self.latent_dim}, hidden={self.hidden}, "
            f"likelihood={self.likelihood!r}, sigma={self.sigma}"
        )

    def check_data(self, x: object, name: str = "x") -> torch.Tensor:
        """Validate data: float tensor of width ``x_dim``, finite, binary if Bernoulli."""
        x = check_tensor(x, name, last_dim=self.x_dim)
        if x.dtype != self.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype}, but the VAE's parameters are {self.dtype}"
            )
        return check_binary(x, name) if self.is_bernoulli else check_finite(x, name)

    def check_latent(self, z: object, name: str = "z") -> torch.Tensor:
        z = check_tensor(z, name, last_dim=self.latent_dim)
        return check_finite(z, name)

    # ------------------------------------------------------------------ public maths
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation of :math:`q(z|x)`, each of shape ``(..., latent_dim)``.

        :func:`pyrogen.vae.functional.encode` after the data checks (binary or finite).
        """
        return functional.encode(self, self.check_data(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Mean of :math:`p(x|z)`: ``sigmoid(f(z))`` (Bernoulli) or ``f(z)``; ``(..., x_dim)``."""
        return functional.mean_output(self, self.decoder(self.check_latent(z)))

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, *, mean: bool = False
    ) -> torch.Tensor:
        """Draw ``n`` examples :math:`z \\sim \\mathcal N(0, I)`, :math:`x \\sim p(x|z)`.

        ``generator`` drives every draw (``None``: torch's global one), on the model's
        device; the same generator state gives the same draws. With ``mean=True`` the
        decoder mean :math:`E[x|z]` is returned instead of a draw (grey-level images for the
        Bernoulli decoder). Shape ``(n, x_dim)``. ``sample(n, True)`` (``mean`` second, the
        order of earlier releases) still works, with a ``FutureWarning``.
        """
        check_positive_int(n, "n")
        if isinstance(generator, bool):
            warnings.warn(
                "VAE.sample(n, mean) is deprecated; pass mean=... as a keyword "
                "(the second positional argument is now the generator)",
                FutureWarning,
                stacklevel=3,  # the no_grad wrapper, then the caller
            )
            generator, mean = None, generator
        z = torch.randn(
            n, self.latent_dim, generator=generator, dtype=self.dtype, device=self.device
        )
        out = self.decoder(z)
        if mean:
            return functional.mean_output(self, out)
        return functional.sample_output(self, out, generator)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decoder mean at the encoder mean, :math:`E[x | z = \\mu_\\phi(x)]`; ``(..., x_dim)``."""
        loc, _ = self.encode(x)
        return functional.mean_output(self, self.decoder(loc))

    # ---------------------------------------------------------------- Pyro model
    def _data_plate(
        self,
        size: int,
        subsample: torch.Tensor | None,
        subsample_size: int | None,
    ) -> pyro.plate:
        return pyro.plate(
            "data",
            size,
            subsample_size=subsample_size,
            subsample=subsample,
            # Pyro annotates device as str | None; plate passes it on to torch, which
            # takes a torch.device as well.
            device=self.device,  # type: ignore[arg-type]
        )

    def model(
        self,
        x: torch.Tensor | None = None,
        num_samples: int | None = None,
        *,
        subsample: torch.Tensor | None = None,
        subsample_size: int | None = None,
    ) -> torch.Tensor:
        r"""Pyro model: sites ``"z"`` (prior :math:`\mathcal N(0, I)`) and ``"x"`` (decoder).

        Args:
            x: data of shape ``(N, x_dim)`` observed at site ``"x"``; ``None`` generates.
            num_samples: number of examples to generate when ``x`` is ``None`` (default 1).
            subsample: indices into ``x`` (shape ``(B,)``) for this minibatch; the plate
                scales the log-likelihood by ``N / B`` so that the ELBO estimates the full
                data's.
            subsample_size: draw a random minibatch of this size instead.

        Returns the value of ``"x"`` for the examples in the plate, shape ``(B, x_dim)``.
        Both ``subsample`` arguments must be given identically to :meth:`guide`.
        """
        if self.register_params:
            pyro.module("vae", self)
        if x is None:
            size = 1 if num_samples is None else check_positive_int(num_samples, "num_samples")
        else:
            if num_samples is not None:
                raise ValueError("num_samples is for generation; pass it only with x=None")
            if is_validation_enabled():
                self.check_data(x)
            size = x.shape[0]
        with self._data_plate(size, subsample, subsample_size) as index:
            batch = x
            if x is not None and (subsample is not None or subsample_size is not None):
                batch = x[index]
            z = pyro.sample("z", functional.prior(self))
            likelihood = functional.pixel_distribution(self, self.decoder(z)).to_event(1)
            return pyro.sample("x", likelihood, obs=batch)

    def guide(
        self,
        x: torch.Tensor | None = None,
        num_samples: int | None = None,
        *,
        subsample: torch.Tensor | None = None,
        subsample_size: int | None = None,
    ) -> torch.Tensor:
        r"""Pyro guide :math:`q_\phi(z|x)`: site ``"z"`` inside the same ``"data"`` plate.

        Takes the model's arguments; ``x`` is required. Returns ``z``, shape ``(B, latent_dim)``.
        """
        if self.register_params:
            pyro.module("vae", self)
        if x is None:
            raise ValueError("the guide needs data: call guide(x) with x of shape (N, x_dim)")
        if is_validation_enabled():
            self.check_data(x)
        with self._data_plate(x.shape[0], subsample, subsample_size) as index:
            batch = x if subsample is None and subsample_size is None else x[index]
            loc, scale = functional.encode(self, batch)
            return pyro.sample("z", dist.Normal(loc, scale, validate_args=False).to_event(1))

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights and configuration to a safetensors file, atomically."""
        save_module(self, path, "VAE", self.config())

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: torch.device | str | None = None) -> VAE:
        """Load a VAE written by :meth:`save` (no unpickling: safetensors + JSON)."""
        config, state = load_state(path, "VAE")
        if "z_dim" in config:  # files written before the rename to latent_dim
            config["latent_dim"] = config.pop("z_dim")
        dtype = next(iter(state.values())).dtype
        config["hidden"] = tuple(config["hidden"])
        vae = cls(**config, dtype=dtype, device=device)
        vae.load_state_dict(state)
        return vae
