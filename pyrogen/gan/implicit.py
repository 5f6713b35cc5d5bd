r"""A generator network as a Pyro model: the *implicit* model :math:`x = G(z)`, :math:`z \sim p(z)`.

An implicit model can be sampled but has no tractable density for :math:`x`: the push-forward
of :math:`p(z)` through :math:`G` is supported on (at most) a ``latent_dim``-dimensional
manifold of the data space. Inference therefore happens over :math:`z`, whose prior is
explicit: with an observation model :math:`y = f(G(z)) + \varepsilon`,
:math:`\varepsilon \sim \mathcal N(0, s^2 I)`, the posterior

.. math:: \log p(z \mid y) = \log p(z) - \frac{\lVert y - f(G(z))\rVert^2}{2 s^2} + \text{const}

is an ordinary differentiable density any Pyro or pyrogen kernel can sample (Bora et al.
2017, "Compressed sensing using generative models", do the same by optimisation).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyrogen._validation import check_finite, check_positive_float, check_positive_int, check_tensor
from pyrogen.seeding import draw_seed, forked_global_rng

__all__ = ["ImplicitModel"]


def module_dtype_device(
    *modules: nn.Module,
) -> tuple[torch.dtype, torch.device]:
    """dtype and device of the first floating parameter or buffer of ``modules``.

    Modules without any (e.g. ``nn.Identity``) default to ``float32`` on the CPU.
    """
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.is_floating_point():
                return tensor.dtype, tensor.device
    return torch.float32, torch.device("cpu")


class ImplicitModel(nn.Module):
    """Wrap a generator network :math:`G` and a latent prior as a Pyro model.

    Args:
        generator: module mapping ``z`` of shape ``(..., latent_dim)`` to ``x`` of shape
            ``(..., out_dim)``; any leading batch dimensions must pass through.
        latent_dim: width of :math:`z`.
        latent_dist: prior of :math:`z`, a Pyro distribution with ``event_shape ==
            (latent_dim,)`` and empty batch shape. ``None`` (default) is the standard normal
            :math:`\\mathcal N(0, I)`, which follows the module's dtype and device.

    The generator is probed once with a batch of two latent vectors (in eval mode, without
    gradients) so that a wrong latent width fails here, with a clear message, and
    ``out_dim`` is known.

    Example:
        >>> from pyrogen.gan import mlp_generator
        >>> g = ImplicitModel(mlp_generator(2, 3), latent_dim=2)
        >>> x = g.sample(10, generator=torch.Generator().manual_seed(0))
        >>> tuple(x.shape)
        (10, 3)
        >>> trace = pyro.poutine.trace(g.model).get_trace(num_samples=4)
        >>> tuple(trace.nodes["z"]["value"].shape), tuple(trace.nodes["x"]["value"].shape)
        ((4, 2), (4, 3))
    """

    # Registered with register_buffer, which nn.Module's attribute typing cannot see.
    _latent_loc: torch.Tensor

    def __init__(
        self,
        generator: nn.Module,
        latent_dim: int,
        latent_dist: dist.TorchDistribution | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(generator, nn.Module):
            raise TypeError(f"generator must be a torch.nn.Module, got {type(generator).__name__}")
        self.generator = generator
        self.latent_dim = check_positive_int(latent_dim, "latent_dim")
        if latent_dist is not None:
            if not isinstance(latent_dist, dist.Distribution):
                raise TypeError(
                    f"latent_dist must be a pyro.distributions.Distribution, "
                    f"got {type(latent_dist).__name__}"
                )
            if tuple(latent_dist.event_shape) != (latent_dim,) or latent_dist.batch_shape:
                raise ValueError(
                    f"latent_dist must have event_shape ({latent_dim},) and no batch shape, "
                    f"got event_shape {tuple(latent_dist.event_shape)} and batch_shape "
                    f"{tuple(latent_dist.batch_shape)}; use .to_event(1) on a vector of "
                    f"independent components"
                )
        self.latent_dist = latent_dist
        dtype, device = module_dtype_device(generator)
        # A non-persistent buffer makes the default prior follow .to(device/dtype) calls.
        self.register_buffer(
            "_latent_loc", torch.zeros(latent_dim, dtype=dtype, device=device), persistent=False
        )
        self.out_dim = self._probe_out_dim()

    # ------------------------------------------------------------------ helpers
    def probe(self, n: int = 2) -> Any:
        """:math:`G` at ``n`` copies of the prior's location (zeros), for shape checks.

        Runs the generator in eval mode (no BatchNorm statistics updated) without gradients
        and touches no random stream; returns whatever the generator returns, normally
        ``(n, out_dim)``. A generator that fails on ``(n, latent_dim)`` raises ``ValueError``.

        Example:
            >>> ImplicitModel(torch.nn.Linear(2, 3), latent_dim=2).probe().shape
            torch.Size([2, 3])
        """
        check_positive_int(n, "n")
        z = self._latent_loc.expand(n, self.latent_dim).clone()
        was_training = self.generator.training
        self.generator.eval()
        try:
            with torch.no_grad():
                return self.generator(z)
        except RuntimeError as err:
            raise ValueError(
                f"generator failed on a latent batch of shape {tuple(z.shape)}; does it "
                f"take latent_dim={self.latent_dim} inputs? ({err})"
            ) from err
        finally:
            self.generator.train(was_training)

    def _probe_out_dim(self) -> int:
        x = self.probe(2)
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[0] != 2:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"generator must map (n, latent_dim) to (n, out_dim); on (2, {self.latent_dim}) "
                f"it returned {shape}"
            )
        return int(x.shape[1])

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description: the generator's ``config()`` when it has one."""
        generator_config = getattr(self.generator, "config", None)
        if not callable(generator_config):
            raise TypeError(
                "saving needs a generator with a config() method (e.g. pyrogen.gan."
                f"mlp_generator); got {type(self.generator).__name__}. Save its state_dict "
                "yourself, or pass your module to load(..., generator=module)"
            )
        return {
            "generator": generator_config(),
            "latent_dim": self.latent_dim,
            "custom_latent_dist": self.latent_dist is not None,
        }

    @property
    def device(self) -> torch.device:
        """Device of the latent prior's buffers (and of the generator, once moved with it)."""
        return self._latent_loc.device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the latent draws (that of the generator, once moved with it)."""
        return self._latent_loc.dtype

    def prior(self) -> dist.TorchDistribution:
        """The latent distribution :math:`p(z)`, event shape ``(latent_dim,)``."""
        if self.latent_dist is not None:
            return self.latent_dist
        loc = self._latent_loc
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)

    def check_latent(self, z: torch.Tensor, name: str = "z") -> torch.Tensor:
        """Validate a latent batch of shape ``(..., latent_dim)``; returns ``z`` unchanged."""
        check_tensor(z, name, last_dim=self.latent_dim)
        return check_finite(z, name)

    # ------------------------------------------------------------------ sampling
    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` latent vectors from the prior, shape ``(n, latent_dim)``.

        With a custom ``latent_dist`` (Pyro distributions take no ``torch.Generator``) the
        draw happens under a forked global RNG seeded from ``generator``, so it is still
        reproducible and leaves the global stream untouched.
        """
        check_positive_int(n, "n")
        loc = self._latent_loc
        if self.latent_dist is None:
            return torch.randn(
                n, self.latent_dim, generator=generator, dtype=loc.dtype, device=loc.device
            )
        if generator is None:
            return self.latent_dist.sample((n,))
        with forked_global_rng(draw_seed(generator), loc.device):
            return self.latent_dist.sample((n,))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`G(z)`: ``z`` of shape ``(..., latent_dim)`` to ``(..., out_dim)``."""
        return self.generator(self.check_latent(z))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples :math:`x = G(z)`, :math:`z \\sim p(z)`; shape ``(n, out_dim)``.

        No gradients are tracked; use :meth:`model` or :meth:`generate` to differentiate.
        """
        return self.generator(self.sample_latent(n, generator))

    # ------------------------------------------------------------------ Pyro models
    def model(self, num_samples: int = 1) -> torch.Tensor:
        """Pyro model: ``num_samples`` draws of site ``"z"`` in plate ``"samples"``, then
        ``pyro.deterministic("x", G(z))``. Returns ``x``, shape ``(num_samples, out_dim)``.

        The generator's parameters are not registered with the param store (the model is
        fixed here, as in :meth:`pyrogen.rbm.RBM.model`); train it with :func:`pyrogen.gan.fit`.
        """
        check_positive_int(num_samples, "num_samples")
        with pyro.plate("samples", num_samples):
            z = pyro.sample("z", self.prior())
            return pyro.deterministic("x", self.generator(z), event_dim=1)

    def condition(
        self,
        forward: Callable[[torch.Tensor], torch.Tensor],
        y: torch.Tensor,
        noise_scale: float,
    ) -> Callable[[], torch.Tensor]:
        r"""Pyro model for the posterior over ``z`` given ``y = forward(G(z)) + noise``.

        The returned model has sites ``"z"`` (latent, prior :meth:`prior`), deterministic
        ``"x"`` (:math:`G(z)`) and observed ``"y"`` with likelihood
        :math:`\mathcal N(y;\, f(G(z)),\, s^2 I)`, :math:`s` = ``noise_scale``. Its log joint
        is :math:`\log p(z) + \log \mathcal N(y; f(G(z)), s^2 I)`, the unnormalised log
        posterior (see the module docstring).

        Args:
            forward: the measurement :math:`f`, mapping ``(..., out_dim)`` to ``(..., m)``:
                e.g. average pooling (super-resolution) or a mask (inpainting).
            y: observations, shape ``(m,)`` for one, or ``(n, m)`` for ``n`` independent
                observations each with its own latent (plate ``"observations"``; ``z`` then
                has shape ``(n, latent_dim)``).
            noise_scale: standard deviation :math:`s > 0` of the Gaussian noise.

        Example:
            >>> g = ImplicitModel(torch.nn.Linear(2, 4), latent_dim=2)
            >>> model = g.condition(lambda x: x[..., :2], torch.zeros(2), noise_scale=0.1)
            >>> kernel = pyro.infer.NUTS(model)  # or pyrogen.gan.latent_posterior(g, model)
        """
        if not callable(forward):
            raise TypeError(f"forward must be callable, got {type(forward).__name__}")
        check_tensor(y, "y")
        check_finite(y, "y")
        if y.dim() > 2:
            raise ValueError(f"y must have shape (m,) or (n, m), got {tuple(y.shape)}")
        noise_scale = check_positive_float(noise_scale, "noise_scale")
        with torch.no_grad():
            probe = forward(self.probe(2))
        if not isinstance(probe, torch.Tensor) or tuple(probe.shape) != (2, y.shape[-1]):
            shape = tuple(probe.shape) if isinstance(probe, torch.Tensor) else type(probe)
            raise ValueError(
                f"forward(G(z)) must have shape (..., {y.shape[-1]}) to match y of shape "
                f"{tuple(y.shape)}; on a batch of 2 it gave {shape}"
            )

        def conditioned_model() -> torch.Tensor:
            prior = self.prior()
            if y.dim() == 1:
                z = pyro.sample("z", prior)
                x = pyro.deterministic("x", self.generator(z), event_dim=1)
                pyro.sample("y", dist.Normal(forward(x), noise_scale).to_event(1), obs=y)
                return x
            with pyro.plate("observations", y.shape[0]):
                z = pyro.sample("z", prior)
                x = pyro.deterministic("x", self.generator(z), event_dim=1)
                pyro.sample("y", dist.Normal(forward(x), noise_scale).to_event(1), obs=y)
                return x

        return conditioned_model

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Not available: an implicit model has no tractable density for ``x``."""
        raise NotImplementedError(
            "an ImplicitModel has no tractable log_prob(x): x = G(z) is the push-forward of "
            "the latent prior through a network, a density concentrated on a latent_dim-"
            "dimensional manifold with no closed form. Fit it adversarially instead "
            "(pyrogen.gan.fit: the discriminator's loss estimates the Jensen-Shannon "
            "divergence), or score observations through the latent posterior "
            "(ImplicitModel.condition)."
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the generator (a pyrogen MLP) and its configuration, atomically."""
        from pyrogen.io import save_module

        save_module(self, path, "ImplicitModel", self.config())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        generator: nn.Module | None = None,
        latent_dist: dist.TorchDistribution | None = None,
        device: torch.device | str | None = None,
    ) -> ImplicitModel:
        """Load a model written by :meth:`save` (safetensors + JSON, no unpickling).

        ``generator`` replaces the stored architecture (for custom modules: pass a freshly
        built one and only the weights are read). A model saved with a custom
        ``latent_dist`` needs it passed again: distributions are not serialised.
        """
        from pyrogen.io import load_state

        config, state = load_state(path, "ImplicitModel")
        return cls.from_state(config, state, generator, latent_dist, device)

    @classmethod
    def from_state(
        cls,
        config: dict[str, Any],
        state: dict[str, torch.Tensor],
        generator: nn.Module | None = None,
        latent_dist: dist.TorchDistribution | None = None,
        device: torch.device | str | None = None,
    ) -> ImplicitModel:
        """Rebuild a model from its :meth:`config` and its ``state_dict`` (what :meth:`load`
        reads from a file; :meth:`pyrogen.gan.GAN.load` passes the ``"generator."`` entries).

        ``generator`` replaces the architecture of ``config`` (only the weights are read);
        ``latent_dist`` must be given for a model that had a custom one. The generator is
        rebuilt with the dtype of the stored weights, then moved to ``device``.
        """
        from pyrogen.networks import MLP

        if config["custom_latent_dist"] and latent_dist is None:
            raise ValueError(
                "this model was saved with a custom latent_dist, which is not serialised; "
                "pass it again: load(path, latent_dist=...)"
            )
        if generator is None:
            dtype = next(iter(state.values())).dtype if state else torch.float32
            generator = MLP(**config["generator"], dtype=dtype, device=device)
        model = cls(generator, config["latent_dim"], latent_dist)
        model.load_state_dict(state)
        return model if device is None else model.to(device)
