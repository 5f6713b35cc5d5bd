"""The two ArviZ generations side by side: the 1.x packages that pyrogen uses (arviz-base,
arviz-stats, arviz-plots, import names ``arviz_*``) and ArviZ 0.23 (``import arviz``, in
the test extra) for users who still have it.

* ESS, R-hat, MCSE of the mean and the HDI of pyrogen's reports equal what ArviZ 0.23
  computed on the same draws (to 1e-8, relative);
* ``arviz.from_pyro`` still works on runs of pyrogen's kernels (their ``diagnostics()``
  contract) and agrees with pyrogen's own ``from_pyro``;
* an ArviZ 0.x ``InferenceData``, in memory or as a netCDF file, goes everywhere a
  ``DataTree`` goes, ``pyrogen diagnose`` included.
"""

from __future__ import annotations

import importlib.metadata
import warnings

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch
import xarray as xr
from pyro.infer import MCMC, NUTS

from pyrogen import diagnostics
from pyrogen.cli import main
from pyrogen.convergence import check_convergence
from pyrogen.infer import DiscreteGibbs, GibbsWithinHMC, MetropolisHastings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)  # 0.23 announces its 1.x refactor
    az = pytest.importorskip("arviz")
if not hasattr(az, "from_pyro"):  # ArviZ 1.x's meta-package (Python >= 3.12): no 0.x API
    pytest.skip("arviz is 1.x here; the 0.x comparison needs arviz 0.23", allow_module_level=True)

Y = torch.tensor([-2.1, -1.7, 0.1, 2.2, 1.9])
LOCS = torch.tensor([-2.0, 0.0, 2.0])


def test_both_generations_are_installed_side_by_side():
    assert importlib.metadata.version("arviz").startswith("0.")
    for name in ("arviz-base", "arviz-stats", "arviz-plots"):
        assert importlib.metadata.version(name).split(".")[:2] == ["0", "8"]


# --------------------------------------------------------- statistics against 0.23
def _draw_sets():
    rng = np.random.default_rng(0)
    iid = rng.normal(size=(4, 500, 2))
    # AR(1) chains with heavy-tailed innovations and a drifting chain: ESS far below n.
    ar = np.zeros((4, 400, 2))
    noise = rng.standard_t(3, size=ar.shape)
    for t in range(1, ar.shape[1]):
        ar[:, t] = 0.9 * ar[:, t - 1] + noise[:, t]
    ar[3] += np.linspace(0, 3, 400)[:, None]
    many_short = rng.normal(size=(256, 8, 3))  # more chains than draws, as sample() makes
    binary = rng.integers(0, 2, size=(3, 200, 2)).astype(float)  # RBM-like units
    return {"iid": iid, "ar1": ar, "many_short": many_short, "binary": binary}


@pytest.mark.parametrize("name", ["iid", "ar1", "many_short", "binary"])
def test_ess_rhat_mcse_hdi_equal_arviz_0_23(name):
    draws = _draw_sets()[name]
    table = diagnostics.summarize({"x": draws})
    dataset = xr.Dataset({"x": (("chain", "draw", "k"), draws)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = {
            "ess_bulk": az.ess(dataset, method="bulk")["x"].values,
            "ess_tail": az.ess(dataset, method="tail")["x"].values,
            "r_hat": az.rhat(dataset)["x"].values,
            "mcse_mean": az.mcse(dataset, method="mean")["x"].values,
            "hdi_3%": az.hdi(dataset, hdi_prob=0.94)["x"].values[:, 0],
            "hdi_97%": az.hdi(dataset, hdi_prob=0.94)["x"].values[:, 1],
        }
    for column, expected in reference.items():
        np.testing.assert_allclose(table[column].values, expected, rtol=1e-8, err_msg=column)


def test_summary_of_inference_data_equals_arviz_0_23_summary():
    draws = _draw_sets()["ar1"]
    idata = az.from_dict(posterior={"x": draws})
    ours = diagnostics.summarize(idata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = az.summary(idata, round_to="none")
    columns = ["mean", "sd", "hdi_3%", "hdi_97%", "mcse_mean", "ess_bulk", "ess_tail", "r_hat"]
    np.testing.assert_allclose(ours[columns].values, theirs[columns].values, rtol=1e-8)


# ------------------------------------------------------------ arviz.from_pyro (0.x)
def mixture(y):
    locs = pyro.sample("locs", dist.Normal(LOCS, 1.0).to_event(1))
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Categorical(torch.ones(3) / 3))
        pyro.sample("y", dist.Normal(locs[z], 0.5), obs=y)


def fixed_locs_mixture(y):
    with pyro.plate("data", len(y)):
        z = pyro.sample("z", dist.Categorical(torch.ones(3) / 3))
        pyro.sample("y", dist.Normal(LOCS[z], 0.5), obs=y)


KERNELS = {
    "MetropolisHastings": lambda: MetropolisHastings(mixture),
    "DiscreteGibbs": lambda: DiscreteGibbs(fixed_locs_mixture),
    "GibbsWithinHMC": lambda: GibbsWithinHMC(NUTS(mixture)),
}

#: Models whose pointwise log-likelihood arviz.from_pyro 0.23 computes. For ``mixture``
#: (``locs[z]`` does not vectorise over draws) it logs a warning and leaves the group out;
#: pyrogen's from_pyro traces each draw instead (exact: tests/diagnostics/test_converters.py).
ARVIZ_0_HAS_LOG_LIKELIHOOD = {"DiscreteGibbs"}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_arviz_from_pyro_works_on_pyrogen_kernels_and_agrees(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "chains drawn sequentially"
        mcmc = MCMC(KERNELS[name](), 20, 10, num_chains=2, disable_progbar=True)
        mcmc.run(Y)
        legacy = az.from_pyro(mcmc)
    assert isinstance(legacy, az.InferenceData)
    ours = diagnostics.from_pyro(mcmc)
    for site in legacy.posterior.data_vars:
        np.testing.assert_array_equal(ours.posterior[site].values, legacy.posterior[site].values)
    np.testing.assert_array_equal(
        ours.sample_stats["diverging"].values, legacy.sample_stats["diverging"].values
    )
    assert ("log_likelihood" in legacy.groups()) == (name in ARVIZ_0_HAS_LOG_LIKELIHOOD)
    if name in ARVIZ_0_HAS_LOG_LIKELIHOOD:
        np.testing.assert_allclose(
            ours.log_likelihood["y"].values, legacy.log_likelihood["y"].values, rtol=1e-6
        )
    assert ours.log_likelihood["y"].shape == (2, 20, len(Y))
    np.testing.assert_array_equal(ours.observed_data["y"].values, Y.numpy())
    # The legacy object goes through pyrogen's reports as it is.
    np.testing.assert_array_equal(
        diagnostics.summarize(legacy).values, diagnostics.summarize(ours).values
    )


# ---------------------------------------------------- InferenceData, in memory and on disk
@pytest.fixture
def legacy_idata():
    rng = np.random.default_rng(1)
    return az.from_dict(
        posterior={"v": rng.integers(0, 2, size=(4, 300, 2)).astype(float)},
        sample_stats={"accept_prob": np.full((4, 300), 0.02)},
        attrs={"wall_time": 0.5},
    )


def test_inference_data_is_converted_and_not_mutated(legacy_idata):
    assert diagnostics.is_inference_data(legacy_idata)
    tree = diagnostics.to_inference_data(legacy_idata, wall_time=2.0, attrs={"seed": 3})
    assert isinstance(tree, xr.DataTree)
    assert set(tree.children) == set(legacy_idata.groups())
    np.testing.assert_array_equal(tree.posterior["v"].values, legacy_idata.posterior["v"].values)
    assert diagnostics.wall_time_of(tree) == 2.0 and tree.posterior.attrs["seed"] == 3
    assert diagnostics.wall_time_of(legacy_idata) == 0.5  # the original keeps its own
    assert "seed" not in legacy_idata.posterior.attrs


def test_inference_data_goes_through_every_report(legacy_idata, tmp_path):
    assert diagnostics.summarize(legacy_idata)["ess_bulk_per_s"].notna().all()  # wall time
    assert set(diagnostics.sample_stats_arrays(legacy_idata)) == {"accept_prob"}
    rel = check_convergence(legacy_idata, "legacy chains", warn=False)
    assert rel.acceptance == pytest.approx(0.02)
    assert "acceptance 0.02" in rel.label  # read from its sample_stats: below 5%
    tv = diagnostics.total_variation(legacy_idata, np.full(4, 0.25))
    assert 0 <= tv < 0.1
    plotted = diagnostics.plot_diagnostics(legacy_idata, tmp_path / "p.png", max_components=1)
    assert plotted == ["v[0]"]
    diagnostics.save(legacy_idata, tmp_path / "legacy.nc")
    back = diagnostics.load(tmp_path / "legacy.nc")
    assert isinstance(back, xr.DataTree)
    np.testing.assert_array_equal(back.posterior["v"].values, legacy_idata.posterior["v"].values)


def test_netcdf_written_by_arviz_0_23_is_loaded_and_diagnosed(tmp_path, capsys):
    rng = np.random.default_rng(2)
    idata = az.from_dict(
        posterior={"mu": rng.normal(size=(4, 400)), "w": rng.normal(size=(4, 400, 2))},
        sample_stats={"diverging": np.zeros((4, 400), dtype=bool)},
    )
    path = tmp_path / "arviz0.nc"
    idata.to_netcdf(str(path))
    back = diagnostics.load(path)
    assert isinstance(back, xr.DataTree)
    np.testing.assert_array_equal(back.posterior["w"].values, idata.posterior["w"].values)
    path.unlink()  # load() read everything: the file is no longer needed
    assert back.posterior["mu"].values.shape == (4, 400)

    idata.to_netcdf(str(path))
    assert main(["diagnose", str(path), "--out", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "w[1]" in out and "convergence: PASS" in out
    assert (tmp_path / "d" / "diagnostics.png").read_bytes()[:4] == b"\x89PNG"
