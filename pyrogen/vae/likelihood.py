r"""Log-likelihood estimates for a trained :class:`~pyrogen.vae.VAE`.

The importance-weighted bound (Burda et al. 2016) with :math:`K` draws from the encoder,

.. math:: \mathcal L_K(x) = \log \frac1K \sum_{k=1}^K
          \frac{p_\theta(x \mid z_k)\, p(z_k)}{q_\phi(z_k \mid x)},
          \qquad z_k \sim q_\phi(z \mid x),

is a stochastic lower bound on :math:`\log p_\theta(x)` whose expectation increases with
:math:`K` and converges to it (:math:`\mathcal L_1` is the ELBO). It is the VAE figure to set
beside an RBM's AIS estimate of the same held-out log-likelihood.

References:
    Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted autoencoders", ICLR 2016.
"""

from __future__ import annotations

import math

import torch

from pyrogen._validation import check_positive_int
from pyrogen.seeding import make_generator
from pyrogen.vae.functional import encode, log_prior, pixel_log_likelihood
from pyrogen.vae.model import VAE

__all__ = ["log_likelihood", "elbo"]

# Default memory bound: examples x samples rows evaluated at once. At 2**16 rows a decoder
# with 256 hidden units and 784 outputs holds ~270 MB of float32 activations.
_MAX_ROWS = 2**16


def _check(vae: VAE, x: object, num_samples: int, batch_size: int | None) -> torch.Tensor:
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be a pyrogen.vae.VAE, got {type(vae).__name__}")
    x = vae.check_data(x)
    if x.dim() != 2:
        raise ValueError(f"x must have shape (n, {vae.x_dim}), got {tuple(x.shape)}")
    check_positive_int(num_samples, "num_samples")
    if batch_size is not None:
        check_positive_int(batch_size, "batch_size")
    return x.to(vae.device)


def _log_weights(
    vae: VAE, x: torch.Tensor, num_samples: int, generator: torch.Generator | None
) -> torch.Tensor:
    """log p(x, z_k) - log q(z_k | x) for z_k ~ q(z | x); shape ``(num_samples, n)``."""
    loc, scale = encode(vae, x)
    eps = torch.randn(
        (num_samples, *loc.shape), generator=generator, dtype=loc.dtype, device=loc.device
    )
    z = loc + scale * eps
    # log q(z|x) from the standardised draw: -eps^2/2 - log scale - log(2 pi)/2 per unit.
    log_q = (-0.5 * eps**2 - torch.log(scale)).sum(-1) - 0.5 * vae.z_dim * math.log(2 * math.pi)
    log_px = pixel_log_likelihood(vae, x, z).sum(-1)
    return log_px + log_prior(vae, z) - log_q


def _chunks(n: int, num_samples: int, batch_size: int | None) -> tuple[int, int]:
    """(examples per chunk, samples per chunk) keeping rows within the memory bound."""
    if batch_size is None:
        batch_size = max(1, min(n, _MAX_ROWS // num_samples))
    samples_per_chunk = max(1, min(num_samples, _MAX_ROWS // batch_size))
    return batch_size, samples_per_chunk


@torch.no_grad()
def log_likelihood(
    vae: VAE,
    x: torch.Tensor,
    num_samples: int = 1000,
    batch_size: int | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    """Importance-weighted estimate :math:`\\mathcal L_K(x)` of :math:`\\log p(x)` per example.

    Args:
        vae: a trained VAE.
        x: data, shape ``(n, x_dim)``.
        num_samples: :math:`K`, encoder draws per example.
        batch_size: examples evaluated together; default keeps ``batch_size * samples`` at
            most 65,536 rows. The samples of one example are also split into chunks of that
            bound and combined with a running logsumexp, so memory never grows with ``K``.
        seed: seeds the draws; the global RNG is left untouched. ``None``: a fresh seed
            drawn from torch's global generator (:mod:`pyrogen.seeding`).

    Returns:
        Tensor of shape ``(n,)`` in nats (``x``'s dtype): a lower bound in expectation,
        tight as :math:`K \\to \\infty`.

    Example:
        >>> vae = VAE(64, 8)
        >>> x = torch.bernoulli(torch.full((4, 64), 0.3))
        >>> log_likelihood(vae, x, num_samples=100, seed=0).shape
        torch.Size([4])
    """
    x = _check(vae, x, num_samples, batch_size)
    generator = make_generator(seed, vae.device)
    batch_size, per_chunk = _chunks(x.shape[0], num_samples, batch_size)
    out = []
    for batch in x.split(batch_size):
        running = torch.full((batch.shape[0],), -math.inf, dtype=x.dtype, device=x.device)
        done = 0
        while done < num_samples:
            k = min(per_chunk, num_samples - done)
            chunk = torch.logsumexp(_log_weights(vae, batch, k, generator), dim=0)
            running = torch.logaddexp(running, chunk)
            done += k
        out.append(running - math.log(num_samples))
    return torch.cat(out)


@torch.no_grad()
def elbo(
    vae: VAE,
    x: torch.Tensor,
    num_samples: int = 1,
    batch_size: int | None = None,
    seed: int | None = None,
) -> torch.Tensor:
    r"""The evidence lower bound per example, KL term in closed form.

    .. math:: \operatorname{ELBO}(x) = E_{q(z|x)}[\log p(x|z)]
              - \operatorname{KL}(q(z|x) \,\|\, \mathcal N(0, I)),
              \quad \operatorname{KL} = \tfrac12 \sum_j (\mu_j^2 + s_j^2 - 1 - 2\log s_j),

    the expectation averaged over ``num_samples`` draws. Shape ``(n,)``, nats. This is what
    ``TraceMeanField_ELBO`` optimises, per example and unscaled.
    """
    x = _check(vae, x, num_samples, batch_size)
    generator = make_generator(seed, vae.device)
    batch_size, per_chunk = _chunks(x.shape[0], num_samples, batch_size)
    out = []
    for batch in x.split(batch_size):
        loc, scale = encode(vae, batch)
        kl = 0.5 * (loc**2 + scale**2 - 1.0 - 2.0 * torch.log(scale)).sum(-1)
        expected = torch.zeros(batch.shape[0], dtype=x.dtype, device=x.device)
        done = 0
        while done < num_samples:
            k = min(per_chunk, num_samples - done)
            eps = torch.randn(
                (k, *loc.shape), generator=generator, dtype=loc.dtype, device=loc.device
            )
            expected += pixel_log_likelihood(vae, batch, loc + scale * eps).sum(-1).sum(0)
            done += k
        out.append(expected / num_samples - kl)
    return torch.cat(out)
