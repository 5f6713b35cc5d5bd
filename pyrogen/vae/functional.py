r"""The maths of :class:`~pyrogen.vae.VAE` and :class:`~pyrogen.vae.SSVAE` as functions.

What inference code (inpainting, likelihood bounds, benchmarks) needs from a trained VAE,
without going through the Pyro model: the encoder's Gaussian, the decoder's per-pixel
log-likelihood, the prior, and draws and means of :math:`p(x \mid z)`. The model classes
compute their Pyro sites with these same functions, so the two never disagree.

Notation: ``x`` is ``(..., x_dim)``, ``z`` is ``(..., z_dim)``, and ``out`` is the decoder
output :math:`f_\theta(z)` of shape ``(..., x_dim)`` (``vae.decoder(z)``): logits for the
Bernoulli decoder, the mean for the Gaussian one. Arguments are checked for their type,
dtype and width (cheap, on every call); values (binary, finite) are not: validate data once
with ``vae.check_data``.

.. math::
    q_\phi(z \mid x) &= \mathcal N(\mu_\phi(x), \operatorname{diag} s_\phi(x)^2),
        \quad s_\phi = \operatorname{softplus}(\cdot) + 10^{-5}, \\
    \log p(x_i \mid z) &= x_i \log \sigma(f_i) + (1 - x_i) \log(1 - \sigma(f_i))
        \ \text{or}\ -\tfrac12 ((x_i - f_i) / \sigma)^2 - \log \sigma - \tfrac12 \log 2\pi, \\
    \log p(z) &= -\tfrac12 \lVert z \rVert^2 - \tfrac{d_z}{2} \log 2\pi.

Example:
    >>> from pyrogen.vae import VAE
    >>> vae = VAE(16, 2, hidden=(8,))
    >>> x = torch.bernoulli(torch.full((3, 16), 0.5))
    >>> loc, scale = encode(vae, x)
    >>> pixel_log_likelihood(vae, x, loc).shape, log_prior(vae, loc).shape
    (torch.Size([3, 16]), torch.Size([3]))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pyro.distributions as dist
import torch
import torch.nn.functional as F

from pyrogen._validation import check_tensor

if TYPE_CHECKING:
    from pyrogen.vae.model import VAE
    from pyrogen.vae.ssvae import SSVAE

__all__ = [
    "class_logits",
    "decode_logits",
    "encode",
    "log_prior",
    "mean_output",
    "noise_scale",
    "pixel_distribution",
    "pixel_log_likelihood",
    "pixel_log_prob",
    "prior",
    "sample_output",
]

#: Floor on the encoder's standard deviations: keeps log q(z|x) finite when a unit's
#: posterior collapses, and is far below any posterior width that matters at float32.
MIN_SCALE = 1e-5


def _check_model(model: object, name: str, ssvae: bool | None) -> None:
    """``ssvae``: ``False`` a VAE, ``True`` an SSVAE, ``None`` either."""
    # Imported here: the model modules import this one.
    from pyrogen.vae.model import VAE
    from pyrogen.vae.ssvae import SSVAE

    kinds = {False: (VAE,), True: (SSVAE,), None: (VAE, SSVAE)}[ssvae]
    if not isinstance(model, kinds):
        wanted = " or ".join(f"pyrogen.vae.{k.__name__}" for k in kinds)
        raise TypeError(f"{name} must be a {wanted}, got {type(model).__name__}")


def _check(x: object, name: str, width: int, dtype: torch.dtype) -> torch.Tensor:
    x = check_tensor(x, name, last_dim=width, allow_empty=True)
    if x.dtype != dtype:
        raise TypeError(f"{name} has dtype {x.dtype}, but the model's parameters are {dtype}")
    return x


def _with_onehot(a: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Concatenate ``a`` (..., d) with one_hot(y) (...,), broadcasting the batch dims.

    Under enumeration ``y`` has shape ``(K, 1)`` and ``a`` ``(B, d)``: the result is
    ``(K, B, d + K)``.
    """
    onehot = F.one_hot(y, num_classes).to(a.dtype)
    batch = torch.broadcast_shapes(a.shape[:-1], onehot.shape[:-1])
    return torch.cat([a.expand(*batch, a.shape[-1]), onehot.expand(*batch, num_classes)], dim=-1)


def _check_labels(y: object, name: str = "y") -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dtype != torch.int64:
        got = y.dtype if isinstance(y, torch.Tensor) else type(y).__name__
        raise TypeError(f"{name} must be an int64 tensor of class indices, got {got}")
    return y


# --------------------------------------------------------------------------- encoder
def encode(
    model: VAE | SSVAE, x: torch.Tensor, y: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Mean and standard deviation of the encoder's Gaussian, each ``(..., z_dim)``.

    For a :class:`~pyrogen.vae.VAE`, :math:`q_\phi(z \mid x)` (``y`` must be ``None``); for
    an :class:`~pyrogen.vae.SSVAE`, :math:`q_\phi(z \mid x, y)` with ``y`` int64 class
    indices broadcasting against ``x.shape[:-1]`` (required). The scale is
    :math:`\operatorname{softplus}(r) + 10^{-5}` of the encoder's raw output :math:`r`.

    Example:
        >>> from pyrogen.vae import VAE
        >>> loc, scale = encode(VAE(16, 2, hidden=()), torch.zeros(5, 16))
        >>> tuple(loc.shape), bool((scale > 0).all())
        ((5, 2), True)
    """
    _check_model(model, "model", None)
    from pyrogen.vae.ssvae import SSVAE

    x = _check(x, "x", model.x_dim, model.dtype)
    if isinstance(model, SSVAE):
        if y is None:
            raise ValueError("encode(ssvae, x, y) needs the class y: q(z | x, y)")
        x = _with_onehot(x, _check_labels(y), model.num_classes)
    elif y is not None:
        raise ValueError("y is only for an SSVAE; encode(vae, x) takes no class")
    loc, raw = model.encoder(x).chunk(2, dim=-1)
    return loc, F.softplus(raw) + MIN_SCALE


def class_logits(ssvae: SSVAE, x: torch.Tensor) -> torch.Tensor:
    r"""Logits of the SSVAE's classifier :math:`q_\phi(y \mid x)`, ``(..., num_classes)``.

    ``torch.softmax(class_logits(ssvae, x), -1)`` is ``ssvae.class_probs(x)`` (without its
    data checks and ``no_grad``).

    Example:
        >>> from pyrogen.vae import SSVAE
        >>> class_logits(SSVAE(16, 2, 3, hidden=(8,)), torch.zeros(4, 16)).shape
        torch.Size([4, 3])
    """
    _check_model(ssvae, "ssvae", True)
    return ssvae.classifier(_check(x, "x", ssvae.x_dim, ssvae.dtype))


def decode_logits(ssvae: SSVAE, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Decoder logits :math:`f_\theta(z, y)` of the SSVAE, ``broadcast(z, y) + (x_dim,)``.

    ``y``: int64 class indices broadcasting against ``z.shape[:-1]``; the pixels are
    :math:`x_i \mid y, z \sim \operatorname{Bernoulli}(\sigma(f_i))`.

    Example:
        >>> from pyrogen.vae import SSVAE
        >>> ssvae = SSVAE(16, 2, 3, hidden=(8,))
        >>> decode_logits(ssvae, torch.zeros(4, 2), torch.tensor([0, 1, 2, 0])).shape
        torch.Size([4, 16])
    """
    _check_model(ssvae, "ssvae", True)
    z = _check(z, "z", ssvae.z_dim, ssvae.dtype)
    return ssvae.decoder(_with_onehot(z, _check_labels(y), ssvae.num_classes))


# --------------------------------------------------------------------------- decoder
def noise_scale(vae: VAE) -> torch.Tensor:
    r"""The Gaussian decoder's noise standard deviation :math:`\sigma` (0-dim tensor).

    Learnt (``sigma=None``) or fixed; differentiable in the learnt case. A Bernoulli VAE has
    none: ``ValueError``.

    Example:
        >>> from pyrogen.vae import VAE
        >>> float(noise_scale(VAE(4, 2, likelihood="gaussian", sigma=0.5)))
        0.5
    """
    _check_model(vae, "vae", False)
    if vae.is_bernoulli:
        raise ValueError("noise_scale is only defined for likelihood='gaussian'")
    return vae.log_sigma.exp()


def pixel_distribution(vae: VAE, out: torch.Tensor) -> dist.TorchDistribution:
    r""":math:`p(x_i \mid z)` per pixel from the decoder output ``out`` (``(..., x_dim)``).

    ``Bernoulli(logits=out)`` or ``Normal(out, sigma)``, batch shape ``out.shape``, no event
    dimension (``.to_event(1)`` gives :math:`p(x \mid z)`; ``.mask(m)`` keeps some pixels).
    Built with ``validate_args=False``: the data are checked once, at the boundary.
    """
    _check_model(vae, "vae", False)
    out = _check(out, "out", vae.x_dim, vae.dtype)
    if vae.is_bernoulli:
        return dist.Bernoulli(logits=out, validate_args=False)
    return dist.Normal(out, noise_scale(vae), validate_args=False)


def pixel_log_prob(vae: VAE, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x_i \mid z)` per pixel, shape ``broadcast(x, out)``.

    From the decoder output ``out`` at :math:`z`: for the Bernoulli decoder
    :math:`-\operatorname{BCE}(\text{out}_i, x_i)` (stable in the logits), for the Gaussian
    :math:`-\frac12 ((x_i - \text{out}_i)/\sigma)^2 - \log\sigma - \frac12\log 2\pi`. Summed
    over the last dimension it is the log-probability of site ``"x"`` of ``vae.model``.

    Example:
        >>> from pyrogen.vae import VAE
        >>> vae = VAE(3, 1, hidden=())
        >>> pixel_log_prob(vae, torch.ones(3), torch.zeros(3))  # log(1/2) each
        tensor([-0.6931, -0.6931, -0.6931])
    """
    _check_model(vae, "vae", False)
    x = _check(x, "x", vae.x_dim, vae.dtype)
    out = _check(out, "out", vae.x_dim, vae.dtype)
    if vae.is_bernoulli:
        out, x = torch.broadcast_tensors(out, x)
        return -F.binary_cross_entropy_with_logits(out, x, reduction="none")
    sigma = noise_scale(vae)
    return -0.5 * ((x - out) / sigma) ** 2 - torch.log(sigma) - 0.5 * math.log(2 * math.pi)


def pixel_log_likelihood(vae: VAE, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(x_i \mid z)` per pixel, shape ``broadcast(x.shape[:-1], z.shape[:-1])
    + (x_dim,)``: :func:`pixel_log_prob` at ``out = vae.decoder(z)``."""
    _check_model(vae, "vae", False)
    z = _check(z, "z", vae.z_dim, vae.dtype)
    return pixel_log_prob(vae, x, vae.decoder(z))


def mean_output(vae: VAE, out: torch.Tensor) -> torch.Tensor:
    r""":math:`E[x \mid z]` from the decoder output: :math:`\sigma(\text{out})` (Bernoulli,
    per-pixel probabilities) or ``out`` (Gaussian); shape ``out.shape``."""
    _check_model(vae, "vae", False)
    out = _check(out, "out", vae.x_dim, vae.dtype)
    return torch.sigmoid(out) if vae.is_bernoulli else out


def sample_output(
    vae: VAE, out: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    r"""A draw :math:`x \sim p(x \mid z)` from the decoder output ``out``; shape ``out.shape``.

    Bernoulli: ``torch.bernoulli(sigmoid(out))``; Gaussian: ``out + sigma * eps``. Every draw
    comes from ``generator`` (``None``: torch's global generator).

    Example:
        >>> from pyrogen.vae import VAE
        >>> g = torch.Generator().manual_seed(0)
        >>> sample_output(VAE(4, 1, hidden=()), torch.full((2, 4), 30.0), g)
        tensor([[1., 1., 1., 1.],
                [1., 1., 1., 1.]])
    """
    _check_model(vae, "vae", False)
    out = _check(out, "out", vae.x_dim, vae.dtype)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if vae.is_bernoulli:
        return torch.bernoulli(torch.sigmoid(out), generator=generator)
    noise = torch.randn(out.shape, generator=generator, dtype=out.dtype, device=out.device)
    return out + noise_scale(vae) * noise


# ----------------------------------------------------------------------------- prior
def prior(vae: VAE | SSVAE) -> dist.TorchDistribution:
    r"""The prior :math:`\mathcal N(0, I_{d_z})` of ``z``: event shape ``(z_dim,)``, on the
    model's dtype and device (site ``"z"`` of ``vae.model``)."""
    _check_model(vae, "vae", None)
    zero = torch.zeros((), dtype=vae.dtype, device=vae.device)
    one = torch.ones((), dtype=vae.dtype, device=vae.device)
    return dist.Normal(zero, one).expand([vae.z_dim]).to_event(1)


def log_prior(vae: VAE | SSVAE, z: torch.Tensor) -> torch.Tensor:
    r""":math:`\log p(z) = -\frac12\lVert z\rVert^2 - \frac{d_z}{2}\log 2\pi`, shape
    ``z.shape[:-1]``.

    Example:
        >>> from pyrogen.vae import VAE
        >>> round(float(log_prior(VAE(4, 2), torch.zeros(2))), 4)  # -log(2 pi)
        -1.8379
    """
    _check_model(vae, "vae", None)
    z = _check(z, "z", vae.z_dim, vae.dtype)
    return -0.5 * (z**2).sum(-1) - 0.5 * vae.z_dim * math.log(2 * math.pi)
