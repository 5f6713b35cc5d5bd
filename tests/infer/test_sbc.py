r"""Simulation-based calibration (SBC) of pyrogen's samplers (Talts, Betancourt, Simpson, Vehtari
& Gelman, 2018, "Validating Bayesian inference algorithms with simulation-based calibration").

If :math:`\theta^* \sim p(\theta)` and :math:`y \sim p(y \mid \theta^*)`, then :math:`\theta^*`
is a draw from the posterior :math:`p(\theta \mid y)`. So for :math:`L` independent posterior
draws :math:`\theta_1, \dots, \theta_L` the rank :math:`\#\{l : \theta_l < \theta^*\}` of the
truth is uniform on :math:`\{0, \dots, L\}` for every scalar quantity, whatever the data. A
sampler whose draws do not follow the posterior (a wrong target, a wrong Hastings correction, a
kernel that is not invariant) bends the histogram of the ranks over many simulations; Pearson's
chi-square test of the histogram (``B`` equal bins of ranks) detects it. Ties (the outlier
count is an integer) are broken uniformly at random, which keeps the rank exactly uniform.

The model: a location with a few outliers, ``NUM_DATA = 4`` observations,

.. math:: \mu \sim N(0, 1), \quad \sigma \sim \text{LogNormal}(0, 0.5), \quad
          z_i \sim \text{Bernoulli}(0.2), \quad y_i \mid z_i \sim N(\mu, \sigma (1 + 4 z_i)).

:class:`~pyrogen.infer.GibbsWithinHMC` samples it as written (``z`` by Gibbs; ``mu`` and the
positive ``sigma``, in log space, by Pyro's HMC). :class:`~pyrogen.infer.MetropolisHastings`
(random walk and MALA) samples the same model with ``z`` summed out, a two-component mixture
likelihood per observation. Quantities ranked: ``mu`` and ``sigma`` (and for Gibbs-within-HMC
the outlier count :math:`\sum_i z_i`).

Draws. Talts et al. thin each chain to roughly independent draws; here every simulation is one
chain, and the ``L`` kept draws are spaced by about the autocorrelation time or more (a pilot
run of 1000 simulations measured per-chain bulk ESS per post-warm-up step of median 0.08 for
the random walk and 0.17 for MALA; a spacing of 40 and 20 steps). The Metropolis tests check
that the kept draws are uncorrelated at lag 1. All simulations of a Metropolis test run as one
batch of vectorised chains (:func:`pyrogen.infer.sample`): chain ``c`` conditions on data set
``c`` (see :func:`condition_chains_on`). Gibbs-within-HMC runs through ``pyro.infer.MCMC``, one
simulation at a time at ~15 ms a step, so it gets a lighter configuration: fewer simulations,
short chains, ``L = 4`` and a fixed-step HMC (no adaptation, so a short warm-up suffices).

Failure rate. Each chi-square test rejects a correct sampler with probability ``ALPHA = 1e-4``
(over the random seeds; the chi-square approximation is good with at least 12 expected counts
per bin). The 7 tests of correct samplers here (2 + 2 + 3 quantities) together fail spuriously
with probability at most 7e-4 (union bound), far below 1 / number of tests. All seeds are
fixed, so on a given platform the file either always passes or always fails: 7e-4 is the chance
that the chosen seeds make a correct sampler fail, and a failure here means a bug (or draws
that are no longer close to independent), not bad luck to rerun away. The
``test_sbc_detects_*`` tests run the same SBC with a deliberately broken sampler and require a
rejection (observed p-values below 1e-7).
"""

from __future__ import annotations

from typing import NamedTuple

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import HMC, MCMC
from scipy import stats

from pyrogen.infer import GibbsWithinHMC, MetropolisHastings, mala, sample

DT = torch.float64
ALPHA = 1e-4

NUM_DATA = 4
OUTLIER_PROB = 0.2
OUTLIER_SCALE = 5.0  # an outlier's noise scale, in units of sigma
SIGMA_PRIOR_SCALE = 0.5


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread, as under pytest-xdist (conftest.py): the tensors here are small
    (1000 chains x 2 dims), and with several threads on a busy machine each step of the
    vectorised chains takes several times longer."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------------- model
def outlier_model(y: torch.Tensor, outlier_prob: float = OUTLIER_PROB) -> None:
    """The model with its outlier indicators ``z`` (shape ``(NUM_DATA,)``) as latent sites."""
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=DT), 1.0))
    sigma = pyro.sample("sigma", dist.LogNormal(torch.tensor(0.0, dtype=DT), SIGMA_PRIOR_SCALE))
    with pyro.plate("data", y.shape[-1]):
        z = pyro.sample("z", dist.Bernoulli(torch.tensor(outlier_prob, dtype=DT)))
        pyro.sample("y", dist.Normal(mu, sigma * (1 + (OUTLIER_SCALE - 1) * z)), obs=y)


def marginal_outlier_model(y: torch.Tensor) -> None:
    """:func:`outlier_model` with ``z`` summed out: each ``y_i`` from a two-Normal mixture.

    ``y`` has shape ``(NUM_DATA,)``, or ``(C, NUM_DATA)`` for one data set per chain: latent
    values come batched as ``(C, 1)`` (chain, then the data plate), which broadcasts row by row.
    """
    mu = pyro.sample("mu", dist.Normal(torch.tensor(0.0, dtype=DT), 1.0))
    sigma = pyro.sample("sigma", dist.LogNormal(torch.tensor(0.0, dtype=DT), SIGMA_PRIOR_SCALE))
    scales = torch.tensor([1.0, OUTLIER_SCALE], dtype=DT)
    likelihood = dist.MixtureSameFamily(
        dist.Categorical(torch.tensor([1 - OUTLIER_PROB, OUTLIER_PROB], dtype=DT)),
        dist.Normal(mu.unsqueeze(-1), sigma.unsqueeze(-1) * scales),
    )
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", likelihood, obs=y)


def simulate(num_simulations: int, seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Draws from the joint: true values ``{name: (S,)}`` and data ``(S, NUM_DATA)``.

    Written out by hand (not through Pyro), so the simulator and the samplers' model are two
    independent transcriptions of the same maths.
    """
    g = torch.Generator().manual_seed(seed)
    shape = (num_simulations, NUM_DATA)
    mu = torch.randn(num_simulations, generator=g, dtype=DT)
    sigma = (SIGMA_PRIOR_SCALE * torch.randn(num_simulations, generator=g, dtype=DT)).exp()
    z = torch.rand(shape, generator=g, dtype=DT) < OUTLIER_PROB
    scale = sigma.unsqueeze(-1) * torch.where(z, OUTLIER_SCALE, 1.0)
    y = mu.unsqueeze(-1) + scale * torch.randn(shape, generator=g, dtype=DT)
    return {"mu": mu, "sigma": sigma, "outliers": z.sum(-1).to(DT)}, y


# ------------------------------------------------------------------------- SBC statistics
def sbc_ranks(draws: torch.Tensor, truth: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Rank of each true value among its ``L`` draws, shape ``(S,)`` with values in ``0..L``.

    ``draws`` ``(S, L)``, ``truth`` ``(S,)``. The rank is the number of draws below the truth
    plus, when ``m`` draws equal it, a uniform integer in ``0..m``: the truth's position among
    the tied values after a random tie-break, so the rank stays uniform for discrete values.
    """
    below = (draws < truth.unsqueeze(-1)).sum(-1)
    ties = (draws == truth.unsqueeze(-1)).sum(-1)
    u = torch.rand(truth.shape, generator=generator, dtype=DT)
    return below + (u * (ties + 1)).long().clamp(max=ties)


def rank_chi_square(ranks: torch.Tensor, num_draws: int, num_bins: int) -> tuple[float, float]:
    """Pearson's chi-square statistic and p-value of uniform ranks in ``0..num_draws``,
    pooled into ``num_bins`` bins of ``(num_draws + 1) / num_bins`` consecutive ranks."""
    if (num_draws + 1) % num_bins:
        raise ValueError(f"{num_draws + 1} rank values do not split into {num_bins} bins")
    counts = torch.bincount(ranks * num_bins // (num_draws + 1), minlength=num_bins).to(DT)
    expected = ranks.numel() / num_bins
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, num_bins - 1))


def lag_one_autocorrelation(draws: torch.Tensor) -> float:
    """Lag-1 autocorrelation of ``(S, L)`` draws around each simulation's own mean, pooled.
    About ``-1 / L`` for independent draws (the centring), near 1 for a stuck chain."""
    centred = draws - draws.mean(-1, keepdim=True)
    return float((centred[:, 1:] * centred[:, :-1]).sum() / (centred**2).sum())


class SBCConfig(NamedTuple):
    num_simulations: int
    warmup_steps: int
    num_samples: int  # post-warm-up steps per chain
    num_draws: int  # L: draws kept per chain, evenly spaced
    num_bins: int


# ------------------------------------------------------------------- Metropolis-Hastings
METROPOLIS_CONFIGS = {
    "random_walk": SBCConfig(1000, warmup_steps=200, num_samples=600, num_draws=15, num_bins=8),
    "mala": SBCConfig(1000, warmup_steps=150, num_samples=300, num_draws=15, num_bins=8),
}


def condition_chains_on(kernel: MetropolisHastings, y: torch.Tensor) -> None:
    """Make chain ``c`` of ``kernel`` target :math:`p(\\cdot \\mid y_c)`, for ``y`` ``(C, N)``.

    The kernel's target (layout, plate nesting, vectorisation check) is built from one data
    set; then its model argument becomes all of ``y``. In the batched log joint each latent
    value has shape ``(C, 1)``, and Pyro's broadcasting pairs chain ``c`` with row ``c``:
    ``C`` independent posteriors as one batch (checked by
    ``test_each_chain_targets_its_own_data_set``).
    """
    kernel.target.model_args = (y,)


def metropolis_sbc(proposal: str, config: SBCConfig, seed: int) -> dict[str, tuple[float, float]]:
    """SBC of ``MetropolisHastings(marginal_outlier_model, proposal)``: one chain per
    simulation, all in one batch. Returns ``{name: (chi-square, p-value)}`` for mu and sigma
    and ``{"lag 1": (autocorrelation, nan)}`` of the kept draws (the worse of the two)."""
    truth, y = simulate(config.num_simulations, seed)
    kernel = MetropolisHastings(marginal_outlier_model, proposal, model_args=(y[0],))
    condition_chains_on(kernel, y)
    # Early in dual averaging a chain far from its mode accepts every move and its step size
    # grows to hundreds; a proposal log(sigma) < -745 then makes sigma == 0.0 in float64, and
    # Pyro's argument validation raises instead of returning log density -inf (a rejection).
    with pyro.validation_enabled(False):
        idata = sample(
            kernel,
            config.num_simulations,
            num_samples=config.num_samples,
            warmup_steps=config.warmup_steps,
            seed=seed + 1,
            thin=config.num_samples // config.num_draws,
            progress=False,
        )
    g = torch.Generator().manual_seed(seed + 2)
    results, lag_one = {}, -1.0
    for name in ("mu", "sigma"):
        draws = torch.as_tensor(idata.posterior[name].values)  # (chain = simulation, draw)
        assert draws.shape == (config.num_simulations, config.num_draws)
        ranks = sbc_ranks(draws, truth[name], g)
        results[name] = rank_chi_square(ranks, config.num_draws, config.num_bins)
        lag_one = max(lag_one, lag_one_autocorrelation(draws))
    results["lag 1"] = (lag_one, float("nan"))
    return results


def test_each_chain_targets_its_own_data_set():
    """:func:`condition_chains_on`: chain c's log density is that of a kernel built on y[c]."""
    _, y = simulate(3, seed=10)
    kernel = MetropolisHastings(marginal_outlier_model, model_args=(y[0],))
    condition_chains_on(kernel, y)
    g = torch.Generator().manual_seed(11)
    continuous = torch.randn(3, 2, generator=g, dtype=DT)
    discrete = torch.zeros(3, 0, dtype=torch.long)
    batched = kernel.log_density_fn(discrete, continuous)
    for c in range(3):
        alone = MetropolisHastings(marginal_outlier_model, model_args=(y[c],))
        expected = alone.log_density_fn(discrete[c : c + 1], continuous[c : c + 1])
        assert torch.allclose(batched[c], expected[0], rtol=1e-12, atol=0)


def test_sbc_ranks_break_ties_uniformly():
    """Discrete draws tied with the truth: the rank is uniform over the tied positions."""
    g = torch.Generator().manual_seed(12)
    draws = torch.tensor([[0.0, 1.0, 1.0, 2.0]], dtype=DT).expand(40000, 4)
    ranks = sbc_ranks(draws, torch.ones(40000, dtype=DT), g)  # 1 below, 2 ties: rank 1, 2, 3
    counts = torch.bincount(ranks, minlength=5)
    assert counts[0] == counts[4] == 0
    assert stats.chisquare(counts[1:4].numpy()).pvalue > ALPHA
    # Continuous truth: no ties, the rank is the number of draws below.
    assert sbc_ranks(draws[:1], torch.tensor([1.5], dtype=DT), g).item() == 3


@pytest.mark.parametrize("proposal", ["random_walk", "mala"])
def test_metropolis_sbc_ranks_are_uniform(proposal):
    results = metropolis_sbc(proposal, METROPOLIS_CONFIGS[proposal], seed=100)
    assert results["lag 1"][0] < 0.1, results  # the kept draws are close to independent
    for name in ("mu", "sigma"):
        assert results[name][1] > ALPHA, (name, results)


def _log_density_without_jacobian(self, discrete, continuous):
    return self.target.log_density(discrete, continuous, jacobian=False)


def _mala_density_without_drift(z_to, z_from, grad_from, step):
    """The Hastings correction of a random walk: MALA's drift left out of q."""
    return -((z_to - z_from) ** 2).sum(-1) / (2 * step**2)


@pytest.mark.parametrize(
    "proposal,bug",
    [("random_walk", "no log-Jacobian of sigma"), ("mala", "no drift in the proposal density")],
)
def test_sbc_detects_wrong_metropolis(proposal, bug, monkeypatch):
    """The same SBC rejects a broken kernel: the target in log(sigma) without the Jacobian
    (samples p(mu, sigma | y) / sigma), or MALA's q(z' | z) without the gradient drift."""
    if bug.startswith("no log-Jacobian"):
        monkeypatch.setattr(MetropolisHastings, "log_density_fn", _log_density_without_jacobian)
    else:
        monkeypatch.setattr(mala, "log_proposal_density", _mala_density_without_drift)
    results = metropolis_sbc(proposal, METROPOLIS_CONFIGS[proposal], seed=100)
    assert min(results[name][1] for name in ("mu", "sigma")) < ALPHA, results


# -------------------------------------------------------------------- Gibbs within HMC
GIBBS_CONFIG = SBCConfig(60, warmup_steps=10, num_samples=16, num_draws=4, num_bins=5)
GIBBS_WRONG_CONFIG = GIBBS_CONFIG._replace(num_simulations=30)


def gibbs_within_hmc_sbc(config: SBCConfig, seed: int) -> dict[str, tuple[float, float]]:
    """SBC of ``GibbsWithinHMC(HMC(outlier_model))`` under ``pyro.infer.MCMC``, one run per
    simulation; returns ``{name: (chi-square, p-value)}`` for mu, sigma and the outlier count.

    The HMC step is fixed (0.3, 4 leapfrog steps: a trajectory of about one posterior standard
    deviation of mu; no adaptation, so 10 warm-up steps reach the posterior).
    """
    truth, y = simulate(config.num_simulations, seed)
    pyro.set_rng_seed(seed + 1)
    thin = config.num_samples // config.num_draws
    draws: dict[str, list[torch.Tensor]] = {"mu": [], "sigma": [], "outliers": []}
    with pyro.validation_enabled(False):  # a third faster; the model is validated elsewhere
        for s in range(config.num_simulations):
            inner = HMC(
                outlier_model,
                step_size=0.3,
                num_steps=4,
                adapt_step_size=False,
                adapt_mass_matrix=False,
            )
            mcmc = MCMC(
                GibbsWithinHMC(inner),
                num_samples=config.num_samples,
                warmup_steps=config.warmup_steps,
                disable_progbar=True,
            )
            mcmc.run(y[s])
            samples = mcmc.get_samples()
            kept = slice(thin - 1, None, thin)
            draws["mu"].append(samples["mu"][kept])
            draws["sigma"].append(samples["sigma"][kept])
            draws["outliers"].append(samples["z"].sum(-1)[kept])
    g = torch.Generator().manual_seed(seed + 2)
    results = {}
    for name, values in draws.items():
        ranks = sbc_ranks(torch.stack(values).to(DT), truth[name], g)
        results[name] = rank_chi_square(ranks, config.num_draws, config.num_bins)
    return results


def test_gibbs_within_hmc_sbc_ranks_are_uniform():
    results = gibbs_within_hmc_sbc(GIBBS_CONFIG, seed=200)
    for name in ("mu", "sigma", "outliers"):
        assert results[name][1] > ALPHA, (name, results)


def test_sbc_detects_wrong_gibbs_within_hmc(monkeypatch):
    """The same SBC rejects a kernel whose Gibbs draws never reach the conditioned model: the
    discrete values are written once, in ``setup``, and then kept (HMC and the returned z
    stay at the random initial z)."""
    write = GibbsWithinHMC._set_discrete_values

    def write_once(self):
        if not self._discrete_values:
            write(self)

    monkeypatch.setattr(GibbsWithinHMC, "_set_discrete_values", write_once)
    results = gibbs_within_hmc_sbc(GIBBS_WRONG_CONFIG, seed=200)
    assert min(p for _, p in results.values()) < ALPHA, results
