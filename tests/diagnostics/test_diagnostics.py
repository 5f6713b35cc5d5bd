"""pyrogen.diagnostics: converters, summaries, total variation, plots and files.

Everything here runs on ArviZ 1.x's packages (arviz-base, arviz-stats, arviz-plots 0.8):
every result is an ``xarray.DataTree``. The comparison with ArviZ 0.23 is in
tests/diagnostics/test_arviz_versions.py."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import xarray as xr
from pyro.infer import MCMC, NUTS, RandomWalkKernel

from pyrogen import diagnostics
from pyrogen.rbm.model import binary_states

Y_OBS = torch.tensor([0.3, -0.2, 1.1])


def factor_model():
    """A flat base plus a factor (an energy term) and one genuinely observed site."""
    z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([3]).to_event(1).mask(False))
    pyro.factor("z_energy", -0.5 * (z**2).sum(-1))
    pyro.sample("y", dist.Normal(z, 1.0).to_event(1), obs=Y_OBS)


def run_mcmc(kernel, num_chains=2, num_samples=30):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "chains drawn sequentially"
        mcmc = MCMC(kernel, num_samples, 10, num_chains=num_chains, disable_progbar=True)
        mcmc.run()
    return mcmc


# ------------------------------------------------------------------------ converters
@pytest.mark.parametrize("kernel_class", [NUTS, RandomWalkKernel])
def test_pyro_factor_sites_are_not_log_likelihood(kernel_class):
    mcmc = run_mcmc(kernel_class(factor_model))
    idata = diagnostics.to_inference_data(mcmc, wall_time=2.0)
    assert isinstance(idata, xr.DataTree)
    assert set(idata.children) == {"posterior", "sample_stats", "observed_data", "log_likelihood"}
    assert idata.posterior.attrs["inference_library"] == "pyro"
    assert list(idata.log_likelihood.data_vars) == ["y"]
    assert list(idata.observed_data.data_vars) == ["y"]
    np.testing.assert_array_equal(idata.observed_data["y"].values, Y_OBS.numpy())
    # The stored log-likelihood is exactly log N(y | z, 1) summed over the event dimension.
    z = mcmc.get_samples(group_by_chain=True)["z"]
    expected = dist.Normal(z, 1.0).log_prob(Y_OBS).sum(-1)
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected.numpy(), rtol=1e-6)
    assert idata.posterior["z"].shape == (2, 30, 3)
    stats = idata.sample_stats
    assert stats["acceptance_rate"].dims == ("chain",)
    # NUTS reports divergences; Pyro's RandomWalkKernel does not (az.from_pyro fails there).
    assert ("diverging" in stats) == (kernel_class is NUTS)
    assert diagnostics.wall_time_of(idata) == 2.0


def test_rbm_prior_with_noisy_observation_through_pyrogen_kernel():
    """The issue's composition: rbm.model() as a prior, Gaussian evidence on top. Only the
    evidence is likelihood; the RBM's energy factor is not."""
    from pyrogen.infer import MetropolisHastings
    from pyrogen.rbm import RBM

    rbm = RBM(4, 2)
    y = torch.tensor([0.9, 0.1, 1.2, -0.3])

    def model():
        v = rbm.model()
        pyro.sample("y", dist.Normal(v, 0.5).to_event(1), obs=y)

    mcmc = run_mcmc(MetropolisHastings(model), num_chains=1, num_samples=20)
    idata = diagnostics.to_inference_data(mcmc)
    assert list(idata.log_likelihood.data_vars) == ["y"]
    assert list(idata.observed_data.data_vars) == ["y"]
    v = mcmc.get_samples(group_by_chain=True)["v"]
    expected = dist.Normal(v, 0.5).log_prob(y).sum(-1)
    np.testing.assert_allclose(idata.log_likelihood["y"].values, expected.numpy(), rtol=1e-6)


def test_pyro_model_without_data_has_no_likelihood_group():
    def prior_only():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    idata = diagnostics.to_inference_data(run_mcmc(RandomWalkKernel(prior_only), 1))
    assert "log_likelihood" not in idata.children
    assert "observed_data" not in idata.children
    assert idata.posterior["z"].shape == (1, 30)


def test_dict_source_with_sample_stats():
    draws = {"v": torch.randn(3, 20, 2, 4), "s": np.zeros((3, 20))}
    stats = {"accept_prob": torch.rand(3, 20), "acceptance_rate": torch.tensor([0.1, 0.2, 0.3])}
    idata = diagnostics.to_inference_data(
        draws, wall_time=1.5, sample_stats=stats, attrs={"seed": 7}
    )
    np.testing.assert_array_equal(idata.posterior["v"].values, draws["v"].numpy())
    assert idata.sample_stats["accept_prob"].dims == ("chain", "draw")
    assert idata.sample_stats["acceptance_rate"].dims == ("chain",)
    assert idata.posterior.attrs["seed"] == 7
    assert diagnostics.wall_time_of(idata) == 1.5


def test_inference_data_passes_through_and_is_not_mutated():
    idata = diagnostics.to_inference_data({"x": torch.zeros(1, 5)})
    assert diagnostics.to_inference_data(idata) is idata
    timed = diagnostics.to_inference_data(idata, wall_time=3.0)
    assert diagnostics.wall_time_of(timed) == 3.0
    assert diagnostics.wall_time_of(idata) is None


@pytest.mark.parametrize(
    ("source", "kwargs", "error", "match"),
    [
        ([1, 2], {}, ValueError, r"\(chain, draw"),
        ("chains", {}, TypeError, "source must be"),
        (object(), {}, TypeError, "source must be"),
        ({}, {}, ValueError, "empty"),
        ({"x": torch.zeros(5)}, {}, ValueError, r"\(chain, draw"),
        ({"x": torch.zeros(2, 5), "y": torch.zeros(3, 5)}, {}, ValueError, "disagree"),
        ({"x": [1.0]}, {}, ValueError, r"\(chain, draw"),
        ({"x": "abc"}, {}, TypeError, "array-like of numbers"),
        ({"x": [[1.0, 2.0], [3.0]]}, {}, TypeError, "array-like of numbers"),
        ({"x": torch.zeros(2, 5, dtype=torch.complex64)}, {}, TypeError, "real numbers"),
        ({"x": torch.zeros(2, 5)}, {"attrs": {"a": [1]}}, TypeError, "netCDF-safe"),
        (xr.Dataset({"x": ("draw", np.zeros(5))}), {}, ValueError, "dims"),
        ({"x": torch.zeros(2, 5)}, {"wall_time": -1.0}, ValueError, "wall_time"),
        (
            {"x": torch.zeros(2, 5)},
            {"sample_stats": {"a": torch.zeros(3)}},
            ValueError,
            "num_chains",
        ),
        (
            {"x": torch.zeros(2, 5)},
            {"sample_stats": {"a": torch.zeros(2, 4)}},
            ValueError,
            r"\(chain, draw, ...\)",
        ),
    ],
)
def test_bad_sources_raise(source, kwargs, error, match):
    with pytest.raises(error, match=match):
        diagnostics.to_inference_data(source, **kwargs)


# ------------------------------------------------------------------------ statistics
def test_flatten_components_names_and_values():
    w = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    parts = diagnostics.flatten_components({"w": w, "s": torch.ones(2, 3)})
    assert list(parts) == ["w[0, 0]", "w[0, 1]", "w[1, 0]", "w[1, 1]", "s"]
    np.testing.assert_array_equal(parts["w[1, 0]"], w[:, :, 1, 0].numpy())
    assert parts["s"].dtype == np.float64
    with pytest.raises(ValueError, match="not in posterior"):
        diagnostics.flatten_components({"w": w}, var_names=["q"])


@pytest.fixture(scope="module")
def normal_idata():
    rng = np.random.default_rng(0)
    draws = {"x": rng.normal(size=(4, 500, 3)), "s": rng.normal(2.0, 0.5, size=(4, 500))}
    return diagnostics.to_inference_data(draws, wall_time=0.25)


def test_summarize_columns_and_exact_identities(normal_idata):
    table = diagnostics.summarize(normal_idata)
    assert list(table.columns) == [
        "mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "mcse_sd",
        "ess_bulk", "ess_tail", "r_hat", "ess_bulk_per_s", "ess_tail_per_s",
    ]  # fmt: skip
    assert list(table.index) == ["x[0]", "x[1]", "x[2]", "s"]
    x = normal_idata.posterior["x"].values
    np.testing.assert_allclose(table["mean"].values[:3], x.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(
        table["sd"].values[:3], x.reshape(-1, 3).std(axis=0, ddof=1), rtol=1e-12
    )
    np.testing.assert_allclose(table["ess_bulk_per_s"], table["ess_bulk"] / 0.25, rtol=1e-12)
    assert list(diagnostics.summarize(normal_idata, var_names=["s"]).index) == ["s"]


def test_summarize_statistical_mean_within_mcse(normal_idata):
    # 4 independent comparisons at 4 MCSE: failure rate < 4 * 6.3e-5.
    table = diagnostics.summarize(normal_idata)
    truth = np.array([0.0, 0.0, 0.0, 2.0])
    assert np.all(np.abs(table["mean"].values - truth) < 4 * table["mcse_mean"].values)
    assert table["r_hat"].max() < 1.01


def test_worst_case_and_missing_wall_time():
    idata = diagnostics.to_inference_data(
        {"x": torch.randn(2, 50, 2, generator=torch.Generator().manual_seed(1))}
    )
    table = diagnostics.summarize(idata)
    worst = diagnostics.worst_case(table)
    assert worst["min_ess_bulk"] == table["ess_bulk"].min()
    assert worst["max_r_hat"] == table["r_hat"].max()
    assert math.isnan(worst["min_ess_bulk_per_s"])  # no wall time stored


def test_summarize_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 4 draws"):
        diagnostics.summarize({"x": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="hdi_prob"):
        diagnostics.summarize({"x": torch.randn(2, 10)}, hdi_prob=1.5)
    with pytest.raises(TypeError, match="DataTree, an arviz InferenceData"):
        diagnostics.summarize(object())


# ------------------------------------------------------------------- total variation
def test_total_variation_exact_values():
    probs = torch.tensor([0.25, 0.75])
    assert diagnostics.total_variation(torch.tensor([0, 1, 1, 1]), probs) == 0.0
    assert diagnostics.total_variation(torch.tensor([0, 0]), [0.0, 1.0]) == 1.0
    assert diagnostics.total_variation(np.array([[2, 2], [2, 3]]), [0.5, 0, 0, 0.5]) == 0.75


def test_total_variation_binary_vectors_use_binary_states_order():
    states = binary_states(3, dtype=torch.float64)  # row k encodes k, bit 0 in column 0
    uniform = torch.full((8,), 1 / 8)
    assert diagnostics.total_variation(states, uniform) == pytest.approx(0.0, abs=1e-15)
    one_hot = torch.zeros(8)
    one_hot[5] = 1.0
    assert diagnostics.total_variation(states[5:6], one_hot) == 0.0
    assert diagnostics.total_variation(states[5:6].bool(), one_hot) == 0.0


def test_total_variation_of_exact_draws_is_below_its_bound():
    # E[TV] <= 1/2 sum_k sqrt(p_k (1 - p_k) / n) (Jensen), and TV moves by at most 1/n
    # per draw, so by McDiarmid P(TV > E[TV] + t) <= exp(-2 n t^2) = 1e-6 below.
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    n = 4000
    draws = torch.multinomial(
        probs, n, replacement=True, generator=torch.Generator().manual_seed(3)
    )
    bound = 0.5 * (probs * (1 - probs) / n).sqrt().sum() + math.sqrt(math.log(1e6) / (2 * n))
    assert diagnostics.total_variation(draws, probs) < bound


@pytest.mark.parametrize(
    ("samples", "probs", "error", "match"),
    [
        (torch.tensor([0, 1]), [0.5, 0.6], ValueError, "sum to 1"),
        (torch.tensor([0, 2]), [0.5, 0.5], ValueError, r"\[0, 2\)"),
        (torch.tensor([[0.0, 1.0]]), [0.5, 0.5], ValueError, "2\\*\\*bits"),
        (torch.tensor([[0.5]]), [0.5, 0.5], ValueError, "only 0 and 1"),
        (torch.tensor([0, 1]), [[0.5, 0.5]], ValueError, r"shape \(K,\)"),
        (torch.tensor([0, 1]), [-0.5, 1.5], ValueError, "non-negative"),
        (torch.tensor([], dtype=torch.int64), [0.5, 0.5], ValueError, "empty"),
    ],
)
def test_total_variation_bad_input(samples, probs, error, match):
    with pytest.raises(error, match=match):
        diagnostics.total_variation(samples, probs)


# ------------------------------------------------------------------- plots and files
def test_plot_diagnostics_writes_png_atomically(tmp_path, normal_idata):
    path = tmp_path / "sub" / "diag.png"
    plotted = diagnostics.plot_diagnostics(normal_idata, path, max_components=2)
    assert plotted == ["x[0]", "x[1]"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["diag.png"]  # no temporary left
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []  # arviz-plots' pyplot figures are closed


def test_plot_diagnostics_of_nuts_run_with_short_and_many_chains(tmp_path):
    # Divergences come along from sample_stats; one chain, or chains shorter than max_lag,
    # still plot.
    nuts = diagnostics.to_inference_data(run_mcmc(NUTS(factor_model), num_chains=1))
    assert "diverging" in nuts.sample_stats
    assert diagnostics.plot_diagnostics(nuts, tmp_path / "nuts.png") == ["z[0]", "z[1]", "z[2]"]
    many = {"v": np.random.default_rng(0).integers(0, 2, size=(300, 12, 2)).astype(float)}
    assert diagnostics.plot_diagnostics(many, tmp_path / "many.png", max_chains=4) == [
        "v[0]",
        "v[1]",
    ]
    with pytest.raises(ValueError, match="var_names"):
        diagnostics.plot_diagnostics(many, tmp_path / "x.png", var_names=["w"])
    with pytest.raises(ValueError, match="at least 4 draws"):
        diagnostics.plot_diagnostics({"x": np.zeros((2, 3))}, tmp_path / "x.png")


def test_save_load_round_trip(tmp_path, normal_idata):
    idata = diagnostics.to_inference_data(
        {"v": torch.randn(2, 10, 3)},
        wall_time=0.5,
        sample_stats={"accept_prob": torch.rand(2, 10), "acceptance_rate": torch.rand(2)},
        attrs={"seed": 11},
    )
    path = tmp_path / "run.nc"
    diagnostics.save(idata, path)
    back = diagnostics.load(path)
    np.testing.assert_array_equal(back.posterior["v"].values, idata.posterior["v"].values)
    np.testing.assert_array_equal(
        back.sample_stats["acceptance_rate"].values, idata.sample_stats["acceptance_rate"].values
    )
    assert diagnostics.wall_time_of(back) == 0.5
    assert back.posterior.attrs["seed"] == 11
    assert isinstance(back, xr.DataTree)
    path.unlink()  # load() read everything into memory
    assert back.sample_stats["accept_prob"].values.shape == (2, 10)
    with pytest.raises(ValueError, match="does not exist"):
        diagnostics.load(tmp_path / "missing.nc")
    with pytest.raises(TypeError, match="DataTree or arviz InferenceData"):
        diagnostics.save({"v": torch.zeros(2, 5)}, path)


def test_pyro_run_round_trips_with_every_group(tmp_path):
    idata = diagnostics.to_inference_data(run_mcmc(NUTS(factor_model)), wall_time=1.0)
    diagnostics.save(idata, tmp_path / "nuts.nc")
    back = diagnostics.load(tmp_path / "nuts.nc")
    assert set(back.children) == set(idata.children)
    for group in idata.children:
        xr.testing.assert_identical(back[group].to_dataset(), idata[group].to_dataset())


def test_diagnose_rejects_files_that_are_not_chains(tmp_path, capsys):
    from pyrogen.cli import main

    text = tmp_path / "notes.nc"
    text.write_text("not netCDF")
    assert main(["diagnose", str(text)]) == 2
    assert "not a readable netCDF file" in capsys.readouterr().err
    data_only = tmp_path / "data.nc"
    xr.DataTree.from_dict({"observed_data": xr.Dataset({"y": ("n", np.zeros(3))})}).to_netcdf(
        data_only, engine="h5netcdf"
    )
    assert main(["diagnose", str(data_only)]) == 2
    assert "no posterior group" in capsys.readouterr().err
