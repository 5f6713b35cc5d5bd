r"""Filling holes in images by posterior inference over a VAE's latent code.

Given an image with observed pixels :math:`x_o` and hidden pixels :math:`x_h` (``mask`` is
``True`` where observed), the target is the posterior predictive

.. math:: p(x_h \mid x_o) = \int p(x_h \mid z)\, p(z \mid x_o)\, dz,
          \qquad p(z \mid x_o) \propto p(z) \prod_{i \in o} p(x_i \mid z).

Every method returns draws of :math:`z` and the Rao-Blackwellised predictive mean
:math:`E[x_h \mid x_o] \approx \frac1S \sum_s E[x_h \mid z_s]` (per-pixel probabilities for
the Bernoulli decoder), with its reliability: the chains of :math:`z` that the mean averages
over must pass :func:`pyrogen.convergence.check_convergence` (R-hat, bulk ESS, acceptance),
or a :class:`~pyrogen.ConvergenceWarning` is emitted and ``result.reliability`` says why.

* ``"replica_exchange"`` (default): replica-exchange MALA on :math:`z` alone
  (:func:`pyrogen.infer.replica_exchange_mala`): for every image and chain, copies of the
  chain on :math:`p(z)\, p(x_o \mid z)^{\beta}` for a ladder of :math:`\beta` in (0, 1],
  MALA moves with per-copy step sizes, and exchanges between neighbouring temperatures; the
  :math:`\beta = 1` copies are exact draws of :math:`p(z \mid x_o)`. The hole's pixels
  are never sampled (the predictive mean is Rao-Blackwellised), and the tempered copies
  carry chains between the several digits that fit half an image.
* ``"mwg"``: Metropolis-within-Gibbs on :math:`(z, x_h)` (Mattei & Frellsen 2018, alg. 1).
  Given the completed image :math:`\tilde x = (x_o, x_h)`, propose
  :math:`z' \sim q(z \mid \tilde x)` from the encoder (an independence proposal), accept
  with probability

  .. math:: \min\Bigl(1, \frac{p(\tilde x \mid z')\, p(z')\, q(z \mid \tilde x)}
            {p(\tilde x \mid z)\, p(z)\, q(z' \mid \tilde x)}\Bigr),

  then draw :math:`x_h \sim p(x_h \mid z)`. Exact MCMC for :math:`p(z, x_h \mid x_o)`; all
  images and chains move as one batch.
* ``"pseudo_gibbs"``: the same sweep with every proposal accepted (Rezende et al. 2014):
  cheap, but its stationary law is only approximately the posterior.
* ``"nuts"``: Pyro's NUTS over :math:`z` of a model whose likelihood is masked to the observed
  pixels (``Distribution.mask``), one ``pyro.infer.MCMC`` run per chain.

References:
    P.-A. Mattei and J. Frellsen, "Leveraging the exact likelihood of deep latent variable
    models", NeurIPS 2018.
    D. J. Rezende, S. Mohamed and D. Wierstra, "Stochastic backpropagation and approximate
    inference in deep generative models", ICML 2014, appendix F.
    M. D. Hoffman and A. Gelman, "The No-U-Turn sampler", JMLR 15 (2014).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Literal, NamedTuple

import pyro
import torch
from pyro.infer import MCMC, NUTS

from pyrogen import distributed as _dist
from pyrogen._validation import (
    check_binary,
    check_choice,
    check_finite,
    check_positive_int,
    check_tensor,
)
from pyrogen.convergence import Reliability, check_convergence
from pyrogen.diagnostics import to_inference_data
from pyrogen.networks import frozen
from pyrogen.seeding import draw_seed, forked_global_rng, make_generator
from pyrogen.vae.functional import (
    encode,
    log_prior,
    mean_output,
    pixel_distribution,
    pixel_log_prob,
    prior,
    sample_output,
)
from pyrogen.vae.model import VAE

__all__ = [
    "ImputationState",
    "InpaintResult",
    "gibbs_step",
    "hidden_log_likelihood",
    "init_state",
    "inpaint",
    "marginal_impute",
    "masked_model",
]

#: The methods of :func:`inpaint` (module docstring).
METHODS: tuple[Literal["replica_exchange", "mwg", "nuts", "pseudo_gibbs"], ...] = (
    "replica_exchange",
    "mwg",
    "nuts",
    "pseudo_gibbs",
)

#: ``(num_samples, warmup_steps)`` of each method when not given. Replica exchange needs
#: longer chains than the others take per draw to reach R-hat <= 1.01 (measured on 20 test
#: digits, bottom half hidden: 8x8 digits with a z_dim 8 VAE converge at 1500 / 700, MNIST
#: 28x28 with z_dim 16 reaches max R-hat 1.02); NUTS is the expensive reference.
DEFAULT_STEPS = {
    "replica_exchange": (1500, 700),
    "mwg": (500, 200),
    "nuts": (500, 200),
    "pseudo_gibbs": (500, 200),
}

# Laplace smoothing of the per-pixel frequencies: a pixel never seen "on" in training must
# not get probability 0 (an infinite log-loss) in the baseline.
_PSEUDO_COUNT = 1.0


class InpaintResult(NamedTuple):
    """What :func:`inpaint` returns.

    Attributes:
        imputed: ``(n, x_dim)``: observed pixels as given, hidden ones replaced by the
            posterior predictive mean :math:`E[x_h \\mid x_o]`.
        samples: posterior draws of :math:`z`, ``(num_chains, num_samples, n, z_dim)``;
            ``vae.decode(samples)`` gives the matching completed-image means.
        idata: ``xarray.DataTree`` with variable ``"z"`` (same layout), for R-hat/ESS;
            ``idata.posterior.attrs`` holds ``method``, ``wall_time`` and ``accept_rate``
            (mean MH acceptance probability; for NUTS, Pyro's "acceptance rate" diagnostic).
        reliability: :class:`~pyrogen.convergence.Reliability` of ``imputed``: the worst
            split R-hat and bulk ESS over the components of ``samples`` (every image and
            latent coordinate) and the mean acceptance. When ``reliability.converged`` is
            false, :func:`inpaint` has emitted a :class:`~pyrogen.ConvergenceWarning` and
            ``imputed`` is not a result (``reliability.label`` says why, for reports).
            ``"pseudo_gibbs"`` accepts every move, so passing says its chains mixed, not that
            their (approximate) stationary law is the posterior.
    """

    imputed: torch.Tensor
    samples: torch.Tensor
    idata: Any
    reliability: Reliability


class ImputationState(NamedTuple):
    """State of the batched Gibbs chains; every tensor is ``(num_chains, n, ...)``."""

    z: torch.Tensor  # latent code
    x: torch.Tensor  # completed image (observed pixels fixed, hidden ones the latest draw)
    out: torch.Tensor  # decoder output at z (logits or mean), cached for the next MH ratio


def _check_inputs(vae: VAE, x: object, mask: object) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(vae, VAE):
        raise TypeError(f"vae must be a pyrogen.vae.VAE, got {type(vae).__name__}")
    x = check_tensor(x, "x", ndim=2, last_dim=vae.x_dim)
    if x.dtype != vae.dtype:
        raise TypeError(f"x has dtype {x.dtype}, but the VAE's parameters are {vae.dtype}")
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        got = mask.dtype if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise TypeError(f"mask must be a bool tensor (True = observed), got {got}")
    if mask.shape != x.shape:
        raise ValueError(f"mask must have the shape of x {tuple(x.shape)}, got {tuple(mask.shape)}")
    observed = x[mask]
    if vae.is_bernoulli:
        check_binary(observed, "x (observed pixels)")
    else:
        check_finite(observed, "x (observed pixels)")
    # Hidden pixels may hold anything (NaN included); they are never read.
    mask = mask.to(vae.device)
    x = torch.where(mask, x.to(vae.device), torch.zeros((), dtype=x.dtype, device=vae.device))
    return x, mask


def _normal_log_density(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return (-0.5 * ((z - loc) / scale) ** 2 - torch.log(scale)).sum(-1) - 0.5 * z.shape[
        -1
    ] * math.log(2 * math.pi)


def _draw(sampler: Any, like: torch.Tensor, part: _dist.Shard | None) -> torch.Tensor:
    """``sampler(like)``; distributed, at the shape of every chain, cut to this rank's
    block (:func:`pyrogen.distributed.draw_rows`), so each chain gets its one-process noise."""
    return sampler(like) if part is None else _dist.draw_rows(sampler, like, part)


def init_state(
    vae: VAE,
    x: torch.Tensor,
    mask: torch.Tensor,
    num_chains: int,
    generator: torch.Generator,
    part: _dist.Shard | None = None,
) -> ImputationState:
    r"""Start ``num_chains`` Metropolis-within-Gibbs chains per image from
    :math:`q(z \mid x)` with the holes as given in ``x`` (e.g. 0), one independent draw each.

    ``x`` ``(n, x_dim)`` images, ``mask`` ``(n, x_dim)`` bool (True: observed); the state's
    tensors are ``(num_chains, n, ...)``. ``part``: this rank's block of the chains
    (``num_chains`` is then its size). The building block of :func:`inpaint`'s ``"mwg"`` and
    ``"pseudo_gibbs"`` methods and of its replica-exchange start.
    """
    completed = x.expand(num_chains, *x.shape)
    loc, scale = encode(vae, completed)

    def standard_normal(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=generator, dtype=t.dtype, device=t.device)

    z = loc + scale * _draw(standard_normal, loc, part)
    return ImputationState(z, completed, vae.decoder(z))


def gibbs_step(
    vae: VAE,
    state: ImputationState,
    x: torch.Tensor,
    mask: torch.Tensor,
    generator: torch.Generator,
    metropolis: bool,
    part: _dist.Shard | None = None,
) -> tuple[ImputationState, torch.Tensor]:
    r"""One sweep: an encoder-proposal MH update of :math:`z` (``metropolis=True``; else the
    proposal is always accepted, the pseudo-Gibbs approximation), then :math:`x_h \mid z`.

    Returns the new state and the acceptance probability, shape ``(num_chains, n)``.
    ``part``: this rank's block of the chains, whose noise is drawn as in one process.
    """
    loc, scale = encode(vae, state.x)

    def standard_normal(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=generator, dtype=loc.dtype, device=loc.device)

    def uniform(t: torch.Tensor) -> torch.Tensor:
        return torch.rand(t.shape, generator=generator, dtype=loc.dtype, device=loc.device)

    proposal = loc + scale * _draw(standard_normal, loc, part)
    proposal_out = vae.decoder(proposal)
    if metropolis:
        log_target_new = pixel_log_prob(vae, state.x, proposal_out).sum(-1) + log_prior(
            vae, proposal
        )
        log_target_old = pixel_log_prob(vae, state.x, state.out).sum(-1) + log_prior(vae, state.z)
        log_ratio = (
            log_target_new
            - _normal_log_density(proposal, loc, scale)
            - log_target_old
            + _normal_log_density(state.z, loc, scale)
        )
        accept_prob = log_ratio.clamp(max=0.0).exp()
        accept = _draw(uniform, accept_prob, part) < accept_prob
        z = torch.where(accept.unsqueeze(-1), proposal, state.z)
        out = torch.where(accept.unsqueeze(-1), proposal_out, state.out)
    else:
        z, out = proposal, proposal_out
        accept_prob = torch.ones(loc.shape[:-1], dtype=loc.dtype, device=loc.device)
    hidden = _draw(lambda o: sample_output(vae, o, generator), out, part)
    completed = torch.where(mask, x, hidden)
    return ImputationState(z, completed, out), accept_prob


def _run_gibbs(
    vae: VAE,
    x: torch.Tensor,
    mask: torch.Tensor,
    num_samples: int,
    warmup_steps: int,
    num_chains: int,
    generator: torch.Generator,
    metropolis: bool,
    part: _dist.Shard | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``(samples, sum of E[x | z] over the chains' draws, acceptance sum, 0 divergences)``.

    The acceptance sum adds, over the kept steps, the mean acceptance probability (this
    rank's mean weighted by its share of the chains, when ``part`` is given).
    """
    share = 1.0 if part is None else part.size / part.total
    state = init_state(vae, x, mask, num_chains, generator, part)
    draws = []
    mean_sum = torch.zeros_like(x)
    accept_sum = torch.zeros((), dtype=x.dtype, device=x.device)
    for step in range(warmup_steps + num_samples):
        state, accept_prob = gibbs_step(vae, state, x, mask, generator, metropolis, part)
        if step >= warmup_steps:
            draws.append(state.z)
            mean_sum += mean_output(vae, state.out).sum(0)
            accept_sum += accept_prob.mean() * share
    samples = torch.stack(draws, dim=1)
    return samples, mean_sum, accept_sum, 0


def _run_tempered(
    vae: VAE,
    x: torch.Tensor,
    mask: torch.Tensor,
    num_samples: int,
    warmup_steps: int,
    num_chains: int,
    generator: torch.Generator,
    num_replicas: int,
) -> tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int], dict[str, Any]]:
    r"""Replica-exchange MALA on :math:`p(z \mid x_o)` of every image and chain in one batch
    (:func:`pyrogen.infer.replica_exchange_mala`: the observed pixels' likelihood tempered).

    Returns the run tuple of :func:`_run_gibbs` and the exchange statistics.
    """
    from pyrogen.infer import replica_exchange_mala  # pyrogen.infer imports pyrogen.vae

    n = x.shape[0]
    with torch.no_grad():
        start = init_state(vae, x, mask, num_chains, generator).z.reshape(num_chains * n, -1)
    targets = x.repeat(num_chains, 1)  # batch entry c * n + i: chain c of image i
    observed = mask.repeat(num_chains, 1)

    def log_likelihood(z: torch.Tensor) -> torch.Tensor:
        pixels = pixel_log_prob(vae, targets, vae.decoder(z))
        return torch.where(observed, pixels, torch.zeros((), dtype=pixels.dtype)).sum(-1)

    def log_density(z: torch.Tensor) -> torch.Tensor:
        return log_prior(vae, z)

    with frozen(vae):  # gradients with respect to z only
        out = replica_exchange_mala(
            log_density,
            log_likelihood,
            start,
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            betas=num_replicas,
            generator=generator,
        )
    samples = out.samples.reshape(num_samples, num_chains, n, -1).transpose(0, 1)
    mean_sum = torch.zeros_like(x)
    with torch.no_grad():
        for block in out.samples.reshape(-1, num_chains * n, out.samples.shape[-1]).split(64):
            means = mean_output(vae, vae.decoder(block))  # (draws, C * n, x_dim)
            mean_sum += means.reshape(-1, num_chains, n, x.shape[-1]).sum((0, 1))
    accept_sum = out.accept_rate.mean() * num_samples
    stats = {
        "betas": out.betas.tolist(),
        "swap_accept_rate": out.swap_accept_rate.tolist(),
        "round_trips_per_chain": float(out.round_trips.double().mean()),
    }
    return (samples.contiguous(), mean_sum, accept_sum, 0), stats


def masked_model(vae: VAE, x: torch.Tensor, mask: torch.Tensor) -> None:
    """Pyro model of :math:`p(z, x_o)` for images ``x`` ``(n, x_dim)``: the prior on ``z``
    and the decoder likelihood masked to the observed pixels (``mask`` ``(n, x_dim)``, True
    observed); what the ``"nuts"`` method samples."""
    with pyro.plate("images", x.shape[0]):
        z = pyro.sample("z", prior(vae))
        pixels = pixel_distribution(vae, vae.decoder(z))
        pyro.sample("x", pixels.mask(mask).to_event(1), obs=x)


def _run_nuts(
    vae: VAE,
    x: torch.Tensor,
    mask: torch.Tensor,
    num_samples: int,
    warmup_steps: int,
    num_chains: int,
    generator: torch.Generator,
    part: _dist.Shard | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``(samples, sum of E[x | z], sum of the chains' acceptance rates, divergences)``.

    Every chain's start and seed are drawn, in chain order, as in one process; with
    ``part`` only this rank's block of chains is run (the sums are over those).
    """
    with torch.no_grad():
        start = init_state(vae, x, mask, num_chains, generator).z
    # Pyro's MCMC samples from torch's global generator: each chain forks it, seeded from
    # ``generator``, so that the caller's RNG state is left alone.
    seeds = [draw_seed(generator) for _ in range(num_chains)]
    chains = range(num_chains) if part is None else range(part.start, part.stop)
    draws, accept, divergences = [], [], 0
    # Gradients are needed for z only: freezing the weights spares their backward pass.
    with frozen(vae):
        for chain in chains:
            with forked_global_rng(seeds[chain], vae.device), pyro.validation_enabled(False):
                kernel = NUTS(lambda: masked_model(vae, x, mask), adapt_step_size=True)
                mcmc = MCMC(
                    kernel,
                    num_samples=num_samples,
                    warmup_steps=warmup_steps,
                    initial_params={"z": start[chain]},
                    disable_progbar=True,
                )
                mcmc.run()
            draws.append(mcmc.get_samples()["z"].detach())
            diagnostics = mcmc.diagnostics()
            rate = diagnostics.get("acceptance rate", {}).get("chain 0", math.nan)
            accept.append(float(rate))
            divergences += len(diagnostics.get("divergences", {}).get("chain 0", []))
    samples = torch.stack(draws)
    with torch.no_grad():
        mean_sum = torch.zeros_like(x)
        for chain_draws in samples:
            for block in chain_draws.split(64):
                mean_sum += mean_output(vae, vae.decoder(block)).sum(0)
    return samples, mean_sum, torch.tensor(sum(accept), dtype=torch.float64), divergences


def inpaint(
    vae: VAE,
    x: torch.Tensor,
    mask: torch.Tensor,
    method: Literal["replica_exchange", "mwg", "nuts", "pseudo_gibbs"] = "replica_exchange",
    num_samples: int | None = None,
    warmup_steps: int | None = None,
    num_chains: int = 4,
    seed: int | None = None,
    distributed: bool | None = None,
    num_replicas: int = 8,
) -> InpaintResult | None:
    """Fill the hidden pixels of ``x`` by posterior inference over ``z``.

    Args:
        vae: a trained VAE (its parameters are not changed).
        x: images, shape ``(n, x_dim)``; hidden entries are ignored (NaN allowed there).
        mask: bool, shape ``(n, x_dim)``, ``True`` where a pixel is observed.
        method: ``"replica_exchange"`` (default), ``"mwg"``, ``"nuts"`` or
            ``"pseudo_gibbs"``; see the module docs. (The default was ``"mwg"`` before
            0.2; it did not converge on most images, max R-hat 1.5 on the 8x8 digits and
            6.9 with 3% acceptance on MNIST.)
        num_samples: draws kept per chain; ``None``: :data:`DEFAULT_STEPS` of the method.
        warmup_steps: draws discarded first (NUTS also adapts its step size and diagonal
            mass matrix there, replica exchange its step sizes and ladder); ``None``:
            :data:`DEFAULT_STEPS` of the method.
        num_chains: independent chains, started from independent encoder draws.
        seed: seeds every draw; the global RNG is left untouched. ``None``: a fresh seed.
        distributed: ``None`` (default): split the chains across the ranks of the open
            ``torch.distributed`` group, if there is one of more than one process;
            ``False``: run them all here; ``True``: require a group. Each rank runs its
            contiguous block of chains (:func:`pyrogen.distributed.shard`) with the noise,
            starting points and NUTS seeds those chains get in one process, so the draws are
            the one-process draws (to rounding); rank 0 gathers them, computes R-hat and ESS
            over all chains and returns the result, the other ranks return ``None``.
            (``"replica_exchange"``: rank ``r`` runs its block from the seed
            :func:`pyrogen.distributed.shard_seed` ``(seed, r)`` instead, so its draws are
            not the one-process draws, but every chain is still an exact chain.)
        num_replicas: temperatures of ``"replica_exchange"`` (a geometric ladder to 0.01,
            adapted during warm-up).

    Returns:
        :class:`InpaintResult` ``(imputed, samples, idata, reliability)`` (``None`` on the
        ranks other than 0 of a distributed run).

    Warns:
        ConvergenceWarning: once, when the chains of ``z`` fail a threshold of
            :func:`pyrogen.convergence.check_convergence` (max R-hat > 1.01, min bulk ESS
            < 100, or mean acceptance < 5%); ``result.reliability`` holds the numbers.

    Example:
        >>> vae = VAE(64, 8)
        >>> x = torch.bernoulli(torch.full((3, 64), 0.3))
        >>> mask = torch.arange(64) < 32  # top half observed
        >>> # 20 draws per chain are far too few: this warns (ConvergenceWarning).
        >>> result = inpaint(vae, x, mask.expand(3, 64), num_samples=20, warmup_steps=10)
        >>> tuple(result.samples.shape), result.reliability.converged
        ((4, 20, 3, 8), False)
    """
    method = check_choice(method, "method", METHODS)
    default_samples, default_warmup = DEFAULT_STEPS[method]
    num_samples = default_samples if num_samples is None else num_samples
    warmup_steps = default_warmup if warmup_steps is None else warmup_steps
    check_positive_int(num_replicas, "num_replicas")
    check_positive_int(num_samples, "num_samples")
    check_positive_int(warmup_steps, "warmup_steps", minimum=0)
    check_positive_int(num_chains, "num_chains")
    x, mask = _check_inputs(vae, x, mask)
    part = None
    rank_seed = seed  # the seed of this rank's block of chains (replica exchange)
    if _dist.resolve_distributed(distributed):  # this rank's block of chains, one seed
        seed = _dist.shared_seed(seed)
        part = _dist.shard(num_chains)
        if part.size == 0:
            raise ValueError(
                f"num_chains={num_chains} leaves rank {part.rank} of {part.world_size} "
                "without a chain; run at least one chain per rank"
            )
        rank_seed = _dist.shard_seed(seed, part.rank)
    generator = make_generator(seed, vae.device)
    tic = time.perf_counter()
    was_training = vae.training
    vae.eval()
    try:
        exchange: dict[str, Any] = {}
        if method == "nuts":
            run = _run_nuts(vae, x, mask, num_samples, warmup_steps, num_chains, generator, part)
        elif method == "replica_exchange":
            if part is not None:  # each rank its own block of chains, with its own stream
                generator = make_generator(rank_seed, vae.device)
            run, exchange = _run_tempered(
                vae, x, mask, num_samples, warmup_steps,
                num_chains if part is None else part.size, generator, num_replicas,
            )  # fmt: skip
        else:
            with torch.no_grad():
                run = _run_gibbs(
                    vae,
                    x,
                    mask,
                    num_samples,
                    warmup_steps,
                    num_chains if part is None else part.size,
                    generator,
                    metropolis=method == "mwg",
                    part=part,
                )
    finally:
        vae.train(was_training)
    if part is not None:
        gathered = _dist.gather_to_main(tuple(t.cpu() if torch.is_tensor(t) else t for t in run))
        if gathered is None:
            return None
        run = (
            torch.cat([g[0] for g in gathered]).to(vae.device),
            sum(g[1] for g in gathered).to(vae.device),
            sum(g[2] for g in gathered),
            sum(g[3] for g in gathered),
        )
    samples, mean_sum, accept_sum, divergences = run
    mean = mean_sum / (num_samples * num_chains)
    if method == "nuts":
        accept_rate = float(accept_sum) / num_chains
        if divergences:
            warnings.warn(f"NUTS inpainting had {divergences} divergent transitions", stacklevel=2)
    else:
        accept_rate = float(accept_sum) / num_samples
    wall_time = time.perf_counter() - tic
    imputed = torch.where(mask, x, mean)
    idata = to_inference_data({"z": samples}, wall_time=wall_time)
    idata.posterior.attrs["method"] = method
    idata.posterior.attrs["accept_rate"] = accept_rate
    for key, value in exchange.items():  # replica exchange: ladder, swap rates, round trips
        idata.posterior.attrs[key] = value
    # imputed is a function of z averaged over the draws: the chains of z are what it rests
    # on (every hidden pixel's predictive mean is E[f(z)] for a smooth f).
    reliability = check_convergence(
        {"z": samples},
        f"inpainted pixels ({method}; chains of z)",
        acceptance=accept_rate if math.isfinite(accept_rate) else None,
        stacklevel=2,
    )
    return InpaintResult(imputed, samples, idata, reliability)


def marginal_impute(data: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Baseline: fill hidden pixels with their training-set frequency.

    Each hidden pixel :math:`i` gets :math:`(\\sum_n d_{ni} + 1) / (N + 2)` (Laplace-smoothed),
    independently of the observed pixels. Returns ``(n, x_dim)`` like ``inpaint().imputed``.
    """
    data = check_tensor(data, "data", ndim=2)
    check_finite(data, "data")
    x = check_tensor(x, "x", ndim=2, last_dim=data.shape[1])
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.shape != x.shape:
        raise ValueError(f"mask must be a bool tensor of shape {tuple(x.shape)}")
    probs = (data.sum(0) + _PSEUDO_COUNT) / (data.shape[0] + 2 * _PSEUDO_COUNT)
    return torch.where(mask, x, probs.to(device=x.device, dtype=x.dtype).expand_as(x))


def hidden_log_likelihood(
    imputed: torch.Tensor, x: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean log-likelihood (nats per hidden pixel) of binary truth ``x`` under ``imputed``.

    .. math:: \\frac{1}{|h|} \\sum_{(n, i) \\in h} x_{ni} \\log p_{ni}
              + (1 - x_{ni}) \\log(1 - p_{ni}),

    with :math:`p` the imputed probabilities and :math:`h` the hidden entries (``~mask``).
    Probabilities are clamped to ``[1e-6, 1 - 1e-6]`` so a confident miss costs ~13.8 nats,
    not infinity. Returns a 0-dim tensor.
    """
    x = check_tensor(x, "x", ndim=2)
    check_binary(x, "x")
    imputed = check_tensor(imputed, "imputed", ndim=2)
    if imputed.shape != x.shape or mask.shape != x.shape or mask.dtype != torch.bool:
        raise ValueError("imputed, x and mask (bool) must all have the same shape")
    hidden = ~mask
    if not bool(hidden.any()):
        raise ValueError("mask hides no pixel: there is nothing to score")
    p = imputed[hidden].clamp(1e-6, 1 - 1e-6)
    t = x[hidden].to(p.dtype)
    return (t * torch.log(p) + (1 - t) * torch.log1p(-p)).mean()
