"""pyrogen kernels inside ``pyro.infer.MCMC`` against exact posteriors.

Posterior means must lie within 4 Monte Carlo standard errors of the exact values, with the
MCSE from ArviZ (``arviz.mcse``, batch means on the chain). Two-sided 4 sigma fails with
probability 6e-5 per comparison; a test makes at most 6 comparisons, so a correct kernel
fails a test about once in 3000 runs (MCSE estimates add some slack to this).
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS, config_enumerate

from pyrogen.infer import BlockGibbs, DiscreteGibbs, GibbsWithinHMC, MetropolisHastings
from pyrogen.rbm import binary_states
from tests.common import (
    COMPOSITION_Y,
    DT,
    all_states,
    composition_log_prob,
    composition_model,
    make_rbm,
    normalise,
)


def mean_and_mcse(mcmc: MCMC, name: str) -> tuple[np.ndarray, np.ndarray]:
    idata = az.from_pyro(mcmc, log_likelihood=False)
    samples = idata.posterior[name]
    mean = samples.mean(("chain", "draw")).values
    mcse = az.mcse(idata, var_names=[name], method="mean")[name].values
    return mean, mcse


def assert_within_4_mcse(mean, mcse, exact) -> None:
    exact = np.asarray(exact, dtype=np.float64)
    assert np.all(np.isfinite(mcse)) and np.all(mcse > 0), mcse
    assert np.all(np.abs(mean - exact) < 4 * mcse), (mean, exact, mcse)


@pytest.mark.parametrize(
    "make_kernel,num_samples",
    [(lambda m: DiscreteGibbs(m), 1500), (lambda m: MetropolisHastings(m), 6000)],
    ids=["discrete_gibbs", "metropolis"],
)
def test_composition_posterior_matches_enumeration(make_kernel, num_samples):
    """rbm.model() as a prior over v, y ~ N(v, 0.5^2): p(v | y) by enumerating 2^6 states."""
    rbm = make_rbm(6, 3, seed=1)
    states = all_states(torch.full((6,), 2))
    exact = normalise(composition_log_prob(rbm, COMPOSITION_Y, states)) @ states.to(DT)
    pyro.set_rng_seed(0)
    mcmc = MCMC(
        make_kernel(composition_model(rbm)),
        num_samples=num_samples,
        warmup_steps=100,
        disable_progbar=True,
    )
    mcmc.run(COMPOSITION_Y)
    assert_within_4_mcse(*mean_and_mcse(mcmc, "v"), exact.numpy())


def test_block_gibbs_in_mcmc_matches_gaussian_rbm_mean():
    rbm = make_rbm(5, 3, "gaussian")
    H = binary_states(3, dtype=DT)
    with torch.no_grad():
        wh = H @ rbm.weight.T
        p_h = normalise(H @ rbm.hidden_bias + wh @ rbm.visible_bias + 0.5 * (wh**2).sum(-1))
        exact = p_h @ (rbm.visible_bias + wh)
    pyro.set_rng_seed(1)
    mcmc = MCMC(BlockGibbs(rbm), num_samples=3000, warmup_steps=50, disable_progbar=True)
    mcmc.run()
    assert_within_4_mcse(*mean_and_mcse(mcmc, "v"), exact.numpy())


# ------------------------------------------------------------------ GibbsWithinHMC
GMM_DATA = torch.tensor([-2.6, -1.9, -1.2, -2.2, 1.5, 2.4, 2.0, 3.1, 0.4, -0.3], dtype=DT)


def gmm_model(data):
    """Two components with sampled assignments; the prior on the locations (and the data)
    keeps the labels apart, so the posterior has no label switching."""
    loc = pyro.sample("loc", dist.Normal(torch.tensor([-2.0, 2.0], dtype=DT), 1.0).to_event(1))
    weight = pyro.sample("weight", dist.Beta(torch.tensor(2.0, dtype=DT), 2.0))
    with pyro.plate("data", data.shape[-1]):
        z = pyro.sample("z", dist.Bernoulli(weight))
        pyro.sample("obs", dist.Normal(loc[z.long()], 1.0), obs=data)


@pytest.mark.slow
def test_gibbs_within_hmc_matches_nuts_with_enumeration():
    pyro.set_rng_seed(2)
    reference = MCMC(
        NUTS(config_enumerate(gmm_model), max_plate_nesting=1),
        num_samples=600,
        warmup_steps=200,
        disable_progbar=True,
    )
    reference.run(GMM_DATA)
    pyro.set_rng_seed(3)
    mcmc = MCMC(
        GibbsWithinHMC(NUTS(gmm_model)), num_samples=600, warmup_steps=200, disable_progbar=True
    )
    mcmc.run(GMM_DATA)
    assert mcmc.get_samples()["z"].shape == (600, len(GMM_DATA))
    for name in ("loc", "weight"):
        mean, mcse = mean_and_mcse(mcmc, name)
        ref_mean, ref_mcse = mean_and_mcse(reference, name)
        # Both estimates carry Monte Carlo error: compare with the combined standard error.
        assert np.all(np.abs(mean - ref_mean) < 4 * np.hypot(mcse, ref_mcse)), (
            name,
            mean,
            ref_mean,
        )
