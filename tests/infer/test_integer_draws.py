"""Integer-valued draws (issue 9, defect 3): a mixture model that indexes with a Categorical
site (``locs[z]``) sampled by DiscreteGibbs, MetropolisHastings and GibbsWithinHMC under
``pyro.infer.MCMC``; ``mcmc.get_samples()`` must feed ``Predictive`` and pyrogen's
diagnostics, and ``mcmc.summary()`` / ``mcmc.diagnostics()`` must still work."""

from __future__ import annotations

import io
import warnings

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import MCMC, NUTS, Predictive

from pyrogen import diagnostics
from pyrogen.infer import DiscreteGibbs, GibbsWithinHMC, MetropolisHastings
from pyrogen.infer.integer_draws import IntegerDraws

Y = torch.tensor([-2.1, -1.7, 0.1, 2.2, 1.9])
LOCS = torch.tensor([-2.0, 0.0, 2.0])


def fixed_locs_mixture(y):
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Categorical(torch.ones(3) / 3))
        pyro.sample("y", dist.Normal(LOCS[z], 0.5), obs=y)


def mixture(y):
    locs = pyro.sample("locs", dist.Normal(LOCS, 1.0).to_event(1))
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Categorical(torch.ones(3) / 3))
        pyro.sample("y", dist.Normal(locs[z], 0.5), obs=y)


KERNELS = {
    "DiscreteGibbs": lambda: (DiscreteGibbs(fixed_locs_mixture), fixed_locs_mixture),
    "MetropolisHastings": lambda: (MetropolisHastings(mixture), mixture),
    "GibbsWithinHMC": lambda: (GibbsWithinHMC(NUTS(mixture)), mixture),
}


@pytest.fixture(scope="module", params=sorted(KERNELS))
def run(request):
    pyro.set_rng_seed(0)
    kernel, model = KERNELS[request.param]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "chains drawn sequentially"
        mcmc = MCMC(kernel, num_samples=30, warmup_steps=20, num_chains=2, disable_progbar=True)
        mcmc.run(Y)
    return mcmc, model


def test_draws_are_long_and_in_the_support(run):
    mcmc, _ = run
    z = mcmc.get_samples()["z"]
    assert z.dtype == torch.long and isinstance(z, IntegerDraws)
    assert z.shape == (60, len(Y)) and int(z.min()) >= 0 and int(z.max()) <= 2
    assert mcmc.get_samples(group_by_chain=True)["z"].shape == (2, 30, len(Y))


def test_summary_and_diagnostics_work(run, capsys):
    mcmc, _ = run
    mcmc.summary()
    assert "z[0]" in capsys.readouterr().out
    assert "z" in mcmc.diagnostics()


def test_predictive_replays_the_draws(run):
    mcmc, model = run
    samples = mcmc.get_samples()
    predicted = Predictive(model, samples, return_sites=["y"])(Y)["y"]
    assert predicted.shape == (60, len(Y))


def test_pyrogen_diagnostics_with_log_likelihood(run):
    mcmc, _ = run
    idata = diagnostics.to_inference_data(mcmc)
    assert idata.posterior["z"].shape == (2, 30, len(Y))
    assert "y" in idata.log_likelihood
    summary = diagnostics.summarize(idata)
    assert summary is not None


def test_draws_save_and_load_with_weights_only(run):
    mcmc, _ = run
    buffer = io.BytesIO()
    torch.save(mcmc.get_samples(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    assert loaded["z"].dtype == torch.long and torch.equal(loaded["z"], mcmc.get_samples()["z"])


def test_integer_draws_fall_back_to_float_only_where_needed():
    z = IntegerDraws.of(torch.tensor([[0, 2], [1, 1]]))
    assert torch.var(z, 0).tolist() == [0.5, 0.5]
    assert (z + 1).dtype == torch.long and isinstance(z + 1, IntegerDraws)
    assert type(z == 1) is torch.Tensor and type(z.float()) is torch.Tensor
    with pytest.raises(RuntimeError):
        z @ torch.ones(3)  # a genuine error (shapes) is not swallowed
