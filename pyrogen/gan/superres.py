r"""Super-resolution with a GAN prior: the posterior over the latent code of each image.

A low-resolution image :math:`y` is modelled as the block average of a generated image plus
Gaussian noise,

.. math:: y = A\,G(z) + \varepsilon, \qquad z \sim p(z),\ \varepsilon \sim \mathcal N(0, s^2 I),

with :math:`A` the :math:`f \times f` average pooling (:func:`average_pool`). The estimate of
the high-resolution image is the posterior mean :math:`E[G(z) \mid y]`. That posterior is
multimodal: several digits pool to the same :math:`4 \times 4` blocks, and MALA chains stay
where they start (median R-hat of :math:`G(z)` above 3 on the 8x8 digits). :func:`super_resolve`
samples every image's posterior by replica-exchange MALA
(:func:`~pyrogen.infer.replica_exchange_mala`: the likelihood tempered, the prior kept, all
images and chains in one batch, each image accepted on its own) and checks, per image, the
chains of :math:`G(z)` (the quantity the estimate is made of; :math:`z` itself is not
identifiable, see :mod:`pyrogen.gan.posterior`). If any image's chains fail
:func:`pyrogen.convergence.check_convergence`, one :class:`~pyrogen.ConvergenceWarning`
names them and the result says so.
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F

from pyrogen._validation import check_choice, check_positive_float, check_positive_int, check_tensor
from pyrogen.convergence import Reliability, check_convergence, warn_unreliable
from pyrogen.gan.implicit import ImplicitModel, module_dtype_device
from pyrogen.gan.model import GAN
from pyrogen.networks import frozen
from pyrogen.seeding import make_generator

__all__ = ["SuperResolution", "average_pool", "bilinear_upsample", "psnr", "super_resolve"]

#: Replicas of the default ladder (geometric down to ``MIN_BETA``, then adapted in warm-up).
NUM_REPLICAS = 12
MIN_BETA = 0.01


def _side(num_pixels: int, name: str) -> int:
    side = math.isqrt(num_pixels)
    if side * side != num_pixels:
        raise ValueError(f"{name} must hold square images flattened, got {num_pixels} pixels")
    return side


def average_pool(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Block averages of square images flattened, ``(..., s^2)`` to ``(..., (s / f)^2)``.

    Example:
        >>> average_pool(torch.arange(16.0)).tolist()
        [2.5, 4.5, 10.5, 12.5]
    """
    check_positive_int(factor, "factor")
    side = _side(x.shape[-1], "x")
    if side % factor:
        raise ValueError(f"factor {factor} does not divide the image side {side}")
    low = side // factor
    blocks = x.reshape(*x.shape[:-1], low, factor, low, factor)
    return blocks.mean(dim=(-3, -1)).reshape(*x.shape[:-1], low * low)


def bilinear_upsample(y: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Bilinear interpolation of square images flattened, ``(n, s^2)`` to ``(n, (f s)^2)``:
    the baseline that knows nothing about digits."""
    check_positive_int(factor, "factor")
    side = _side(y.shape[-1], "y")
    up = F.interpolate(
        y.reshape(-1, 1, side, side), scale_factor=factor, mode="bilinear", align_corners=False
    )
    return up.reshape(y.shape[0], -1)


def psnr(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for pixels in [0, 1], one value per image ``(n,)``:
    :math:`-10 \\log_{10} \\mathrm{MSE}` (the MSE floored at 1e-10)."""
    mse = ((estimate - truth) ** 2).mean(-1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


class SuperResolution(NamedTuple):
    """What :func:`super_resolve` returns for ``n`` images of ``D`` pixels.

    Attributes:
        estimate: :math:`E[G(z) \\mid y]`, shape ``(n, D)``.
        reliability: one :class:`~pyrogen.convergence.Reliability` per image (chains of
            :math:`G(z)`); an image whose entry is not ``converged`` has no result.
        converged: ``(n,)`` bool, ``reliability[i].converged``.
        max_r_hat: ``(n,)`` worst split R-hat over the pixels of :math:`G(z)` per image.
        accept_rate: ``(n,)`` mean MALA acceptance of the :math:`\\beta = 1` replicas.
        swap_accept_rate: ``(R,)`` mean exchange acceptance of each pair (empty for MALA).
        round_trips: ``(n,)`` round trips of replica labels, summed over the chains.
        betas: the ladder after warm-up, ``(R + 1,)``.
        seconds: wall time of the sampling.
    """

    estimate: torch.Tensor
    reliability: tuple[Reliability, ...]
    converged: torch.Tensor
    max_r_hat: torch.Tensor
    accept_rate: torch.Tensor
    swap_accept_rate: torch.Tensor
    round_trips: torch.Tensor
    betas: torch.Tensor
    seconds: float

    def summary(self) -> dict[str, Any]:
        """JSON-friendly figures: converged share, median/max R-hat, acceptance, time."""
        r_hat = self.max_r_hat[torch.isfinite(self.max_r_hat)]
        return {
            "images": int(self.estimate.shape[0]),
            "converged": int(self.converged.sum()),
            "median_max_r_hat": float(r_hat.median()) if r_hat.numel() else math.nan,
            "max_r_hat": float(r_hat.max()) if r_hat.numel() else math.nan,
            "accept_rate": float(self.accept_rate.mean()),
            "swap_accept_rate": [float(r) for r in self.swap_accept_rate],
            "round_trips_per_chain": float(self.round_trips.double().mean()),
            "seconds": self.seconds,
        }


def super_resolve(
    generator: ImplicitModel | GAN,
    low: torch.Tensor,
    *,
    factor: int = 2,
    noise_scale: float = 0.05,
    method: Literal["replica_exchange", "mala"] = "replica_exchange",
    num_replicas: int = NUM_REPLICAS,
    num_chains: int = 8,
    num_samples: int = 2000,
    warmup_steps: int = 1000,
    seed: int | None = None,
    warn: bool = True,
) -> SuperResolution:
    r"""Posterior-mean high-resolution images :math:`E[G(z) \mid y]` of low-resolution ``low``.

    Args:
        generator: the GAN (or its :class:`~pyrogen.gan.ImplicitModel`) whose :math:`G`
            and latent prior form the image prior; its outputs are flattened square images.
        low: low-resolution images, shape ``(n, (s / f)^2)`` for outputs of ``s^2`` pixels.
        factor: the pooling factor :math:`f` of :func:`average_pool`.
        noise_scale: the standard deviation :math:`s` of the observation noise.
        method: ``"replica_exchange"`` (default: ``num_replicas`` temperatures, adapted
            ladder, see :func:`~pyrogen.infer.replica_exchange_mala`) or ``"mala"`` (one
            temperature: plain MALA, for comparison).
        num_replicas: temperatures of the ladder (``method="replica_exchange"``).
        num_chains: chains per image, started from independent prior draws.
        num_samples, warmup_steps: kept and discarded steps per chain.
        seed: seeds every draw (``None``: drawn from torch's global RNG).
        warn: emit one :class:`~pyrogen.ConvergenceWarning` naming the images whose chains
            of :math:`G(z)` failed (max R-hat > 1.01, bulk ESS < 100, acceptance < 5%).

    Returns:
        :class:`SuperResolution`.

    Example:
        >>> g = ImplicitModel(torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Sigmoid()),
        ...                   latent_dim=2)
        >>> low = average_pool(g.sample(3, torch.Generator().manual_seed(0)))
        >>> out = super_resolve(g, low, num_chains=4, seed=0)
        >>> tuple(out.estimate.shape), bool(out.converged.all())
        ((3, 16), True)
    """
    if isinstance(generator, GAN):
        generator = generator.generator
    if not isinstance(generator, ImplicitModel):
        raise TypeError(
            f"generator must be a pyrogen.gan.ImplicitModel or GAN, got {type(generator).__name__}"
        )
    method = check_choice(method, "method", ("replica_exchange", "mala"))
    check_positive_float(noise_scale, "noise_scale")
    check_positive_int(num_replicas, "num_replicas")
    check_positive_int(num_chains, "num_chains")
    check_positive_int(num_samples, "num_samples")
    check_positive_int(warmup_steps, "warmup_steps", minimum=0)
    dtype, device = module_dtype_device(generator)
    low = check_tensor(low, "low", ndim=2)
    with torch.no_grad():  # the output size, without touching any random stream
        zero = torch.zeros(1, generator.latent_dim, dtype=dtype, device=device)
        probe = average_pool(generator.generator(zero), factor)
    if low.shape[-1] != probe.shape[-1]:
        raise ValueError(
            f"low must have {probe.shape[-1]} pixels per image (the generator's output pooled "
            f"by {factor}), got {low.shape[-1]}"
        )
    low = low.to(dtype=dtype, device=device)
    from pyrogen.infer import replica_exchange_mala  # pyrogen.infer imports pyrogen.gan

    n = low.shape[0]
    rng = make_generator(seed, device)
    targets = low.repeat(num_chains, 1)  # batch entry c * n + i: chain c of image i
    prior = generator.prior()

    def log_likelihood(z: torch.Tensor) -> torch.Tensor:
        pooled = average_pool(generator.generator(z), factor)
        return -0.5 * (((pooled - targets) / noise_scale) ** 2).sum(-1)

    start = time.perf_counter()
    with frozen(generator):  # gradients with respect to z only
        out = replica_exchange_mala(
            prior.log_prob,
            log_likelihood,
            generator.sample_latent(num_chains * n, rng),
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            betas=num_replicas if method == "replica_exchange" else 1,
            min_beta=MIN_BETA,
            generator=rng,
        )
    seconds = time.perf_counter() - start
    z = out.samples.reshape(num_samples, num_chains, n, -1)
    estimates, parts = [], []
    with torch.no_grad():
        for i in range(n):
            images = generator.generator(z[:, :, i].transpose(0, 1))  # (chain, draw, D)
            estimates.append(images.mean((0, 1)))
            parts.append(
                check_convergence(
                    {"G(z)": images},
                    f"super-resolution posterior mean, image {i}",
                    acceptance=float(out.accept_rate.reshape(num_chains, n)[:, i].mean()),
                    warn=False,
                )
            )
    converged = torch.tensor([p.converged for p in parts])
    if warn and not bool(converged.all()):
        failing = [i for i, p in enumerate(parts) if not p.converged]
        shown = ", ".join(f"{i} ({parts[i].label})" for i in failing[:3])
        warn_unreliable(
            f"super-resolution ({method}): the chains of G(z) did not converge for "
            f"{len(failing)} of {n} images: {shown}{' ...' if len(failing) > 3 else ''}; "
            "their posterior means are not results"
        )
    return SuperResolution(
        estimate=torch.stack(estimates),
        reliability=tuple(parts),
        converged=converged,
        max_r_hat=torch.tensor([p.max_r_hat for p in parts], dtype=torch.float64),
        accept_rate=out.accept_rate.reshape(num_chains, n).mean(0),
        swap_accept_rate=out.swap_accept_rate,
        round_trips=out.round_trips.reshape(num_chains, n).sum(0),
        betas=out.betas,
        seconds=seconds,
    )
