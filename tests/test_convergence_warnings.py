"""Every place that reports a posterior estimate checks its chains: converged chains stay
quiet, unconverged ones give exactly one ConvergenceWarning naming the quantity, and the
tour's report marks the number instead of presenting it as a result."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch

from pyrogen import ConvergenceWarning, diagnostics
from pyrogen.cli import main
from pyrogen.convergence import check_convergence
from pyrogen.gan import GAN, ImplicitModel, discriminator_energy, latent_posterior
from pyrogen.tour.compose_stage import report_compose
from pyrogen.tour.config import TourConfig
from pyrogen.tour.gan_stage import report_gan
from pyrogen.tour.mcmc_stage import report_mcmc
from pyrogen.tour.reliability import combine, warn_combined
from pyrogen.tour.report import Estimate, Report
from pyrogen.tour.vae_stage import report_vae
from pyrogen.vae import VAE, inpaint


def _convergence_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, ConvergenceWarning)]


def _run(fn, *args, **kwargs):
    """Call ``fn``; return its result and the messages of the ConvergenceWarnings it gave."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, _convergence_warnings(record)


# --------------------------------------------------------------------------- VAE inpainting
@pytest.fixture(scope="module")
def tiny_vae():
    """z_dim = 1, 4 pixels, two observed: a posterior the encoder proposal mixes fast."""
    with torch.random.fork_rng():
        torch.manual_seed(2)
        vae = VAE(4, 1, hidden=(8,), dtype=torch.float64)
    x = torch.tensor([[1.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False, False]])
    return vae, x, mask


def test_inpaint_with_converged_chains_does_not_warn(tiny_vae):
    vae, x, mask = tiny_vae
    result, messages = _run(
        inpaint, vae, x, mask, method="mwg", num_samples=4000, warmup_steps=100, seed=0
    )
    assert messages == []
    assert result.reliability.converged and result.reliability.label == "converged"
    assert result.reliability.max_r_hat <= 1.01 and result.reliability.min_ess_bulk >= 100


@pytest.mark.parametrize("method", ["mwg", "pseudo_gibbs", "nuts"])
def test_inpaint_with_too_few_draws_warns_once(tiny_vae, method):
    vae, x, mask = tiny_vae
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = inpaint(vae, x, mask, method=method, num_samples=8, warmup_steps=2, seed=0)
    messages = _convergence_warnings(record)
    assert len(messages) == 1, messages
    assert f"inpainted pixels ({method}" in messages[0] and "not converged" in messages[0]
    assert not result.reliability.converged
    assert "bulk ESS" in result.reliability.label
    # The warning points at the caller of inpaint, not into pyrogen.
    (warning,) = [w for w in record if issubclass(w.category, ConvergenceWarning)]
    assert warning.filename == __file__


# ------------------------------------------------------------ GAN latent posterior (DDLS too)
def _linear_generator() -> ImplicitModel:
    lin = torch.nn.Linear(2, 3, dtype=torch.float64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0.5], [0.0, 1.0], [1.0, -1.0]]))
        lin.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    return ImplicitModel(lin, latent_dim=2)


def test_latent_posterior_with_converged_chains_does_not_warn():
    g = _linear_generator()
    model = g.condition(lambda x: x, torch.tensor([1.0, 0.5, -0.3], dtype=torch.float64), 0.5)
    post, messages = _run(latent_posterior, g, model, num_chains=4, num_samples=500, seed=0)
    assert messages == []
    assert post.reliability.converged
    assert post.images.shape == (4, 500, 3) and post.mean.shape == (3,)
    torch.testing.assert_close(post.mean, post.images.mean((0, 1)))


def test_latent_posterior_with_chains_started_far_apart_warns_once():
    g = _linear_generator()
    model = g.condition(lambda x: x, torch.zeros(3, dtype=torch.float64), 0.5)
    far = torch.tensor([[-30.0, -30.0], [30.0, 30.0], [-30.0, 30.0], [30.0, -30.0]])
    post, messages = _run(
        latent_posterior,
        g,
        model,
        num_chains=4,
        num_samples=20,
        warmup_steps=0,
        step_size=0.01,
        seed=0,
        initial_params={"z": far.double()},
        quantity="super-resolved test image",
    )
    assert len(messages) == 1, messages
    assert messages[0].startswith("super-resolved test image: not converged: R-hat")
    assert post.reliability.max_r_hat > 2


def test_latent_posterior_of_the_ddls_target_and_quiet_mode():
    gan = GAN(ImplicitModel(torch.nn.Identity(), 1), torch.nn.Linear(1, 1))
    # Too few steps for 2 chains: not converged, but warn=False only reports it.
    post, messages = _run(
        latent_posterior,
        gan,
        discriminator_energy(gan),
        num_chains=2,
        num_samples=10,
        warmup_steps=0,
        seed=0,
        warn=False,
    )
    assert messages == [] and not post.reliability.converged
    assert post.images.shape == (2, 10, 1)


def test_latent_posterior_validation():
    g = _linear_generator()
    model = g.condition(lambda x: x, torch.zeros(3, dtype=torch.float64), 0.5)
    with pytest.raises(TypeError, match="generator must be"):
        latent_posterior(torch.nn.Linear(2, 3), model)
    with pytest.raises(TypeError, match="model must be"):
        latent_posterior(g, "model")
    with pytest.raises(ValueError, match="num_samples"):
        latent_posterior(g, model, num_samples=0)


# -------------------------------------------------------------------- the tour's report
def _reliability(converged: bool, quantity: str = "q") -> dict:
    draws = torch.randn(4, 400, generator=torch.Generator().manual_seed(0))
    if not converged:
        draws = draws[:, :30] + 3 * torch.arange(4.0).reshape(4, 1)
    return check_convergence({"x": draws}, quantity, warn=False).as_dict()


def _fake_gan_metrics(converged: bool) -> dict:
    parts = [_reliability(True), _reliability(converged), _reliability(True)]
    return {
        "train_seconds": 1.0,
        "frechet_distance": 12.5,
        "superres_psnr_gan": 21.5,
        "superres_psnr_bilinear": 18.25,
        "superres_reliability": combine(parts, "GAN super-resolution PSNR"),
        "superres_reliability_per_image": parts,
    }


def test_report_marks_an_unconverged_psnr(tmp_path):
    report = Report("t")
    metrics = _fake_gan_metrics(converged=False)
    report_gan(report, metrics, TourConfig.quick(), tmp_path)
    markdown = report.to_markdown(tmp_path)
    label = metrics["superres_reliability"]["label"]
    assert label.startswith("not converged (1 of 3): R-hat ")
    assert f"{label} (unreliable: 21.50 dB)" in markdown
    assert "PSNR of the posterior-mean image 21.50 dB" not in markdown
    json.dumps(metrics)  # what metrics.json gets: plain JSON


def test_report_presents_a_converged_psnr(tmp_path):
    report = Report("t")
    report_gan(report, _fake_gan_metrics(converged=True), TourConfig.quick(), tmp_path)
    markdown = report.to_markdown(tmp_path)
    assert "PSNR of the posterior-mean image 21.50 dB against 18.25 dB" in markdown
    assert "not converged" not in markdown and "unreliable" not in markdown


def test_report_marks_unconverged_inpainting_and_table_cells(tmp_path):
    report = Report("t")
    vae_metrics = {
        "train_seconds": 1.0,
        "held_out_elbo": -30.0,
        "held_out_log_likelihood": -28.0,
        "inpaint_hidden_ll_mwg": -0.41,
        "inpaint_hidden_ll_marginal": -0.6,
        "inpaint_reliability": _reliability(False, "inpainted pixels"),
    }
    report_vae(report, vae_metrics, TourConfig.quick(), tmp_path)
    reliabilities = {"pyrogen MALA": _reliability(False), "Pyro NUTS": _reliability(True)}
    rows = [
        {"kernel": name, "min bulk ESS/s": 10.0, "x NUTS (bulk ESS/s)": ratio}
        for name, ratio in (("pyrogen MALA", 3.25), ("Pyro NUTS", 1.0))
    ]
    report_mcmc(report, {"rows": rows, "reliability": reliabilities}, TourConfig.quick(), tmp_path)
    markdown = report.to_markdown(tmp_path)
    label = vae_metrics["inpaint_reliability"]["label"]
    assert f"{label} (unreliable: -0.410 nats per pixel)" in markdown
    mala_row = next(line for line in markdown.splitlines() if line.startswith("| pyrogen MALA"))
    assert "not converged (1 of 2): R-hat" in mala_row and "(unreliable: 3.25)" in mala_row
    nuts_row = next(line for line in markdown.splitlines() if line.startswith("| Pyro NUTS"))
    assert "not converged" not in nuts_row
    compose_metrics = {
        "pixel_error_noisy_threshold": 0.2,
        "pixel_error_posterior_mh": 0.0625,
        "pixel_error_posterior_block_gibbs": 0.05,
        "max_marginal_difference_mh_vs_block_gibbs": 0.125,
        "mh_reliability": combine([_reliability(False)], "MH"),
        "block_gibbs_reliability": combine([_reliability(True)], "block Gibbs"),
    }
    report_compose(report, compose_metrics, TourConfig.quick(), tmp_path)
    markdown = report.to_markdown(tmp_path)
    assert "(unreliable: 0.062) from the posterior" in markdown
    assert "at most not converged (1 of 2): R-hat" in markdown
    assert "block Gibbs converged (max R-hat" in markdown
    table = Report("t")
    table.section("s").table([{"psnr": Estimate(21.5, _reliability(False))}])
    assert "not converged: R-hat" in table.to_html()


def test_combined_reliability_warns_once_naming_the_quantity():
    combined = combine([_reliability(False), _reliability(False)], "denoising posterior mean")
    assert combined["failed_parts"] == 2 and not combined["converged"]
    _, messages = _run(warn_combined, combined)
    assert len(messages) == 1 and messages[0].startswith("denoising posterior mean: not conv")
    _, messages = _run(warn_combined, combine([_reliability(True)], "fine"))
    assert messages == []


# ---------------------------------------------------------------------- pyrogen diagnose
def _chains_file(tmp_path: Path, converged: bool) -> Path:
    generator = torch.Generator().manual_seed(0)
    draws = torch.randn(4, 500, 2, generator=generator)
    if not converged:  # four chains stuck in four places
        draws = torch.arange(4.0).reshape(4, 1, 1) + 0.01 * draws
    path = tmp_path / f"chains_{converged}.nc"
    diagnostics.save(diagnostics.to_inference_data({"x": draws}), path)
    return path


@pytest.mark.parametrize("converged", [True, False])
def test_diagnose_says_whether_the_chains_pass(tmp_path, capsys, converged):
    path = _chains_file(tmp_path, converged)
    code, messages = _run(main, ["diagnose", str(path), "--out", str(tmp_path / "d")])
    assert code == 0
    out = capsys.readouterr().out
    if converged:
        assert messages == []
        assert "convergence: PASS" in out and "not converged" not in out
    else:
        assert len(messages) == 1 and messages[0].startswith(f"chains in {path.name} (all")
        assert "convergence: FAIL, not converged: R-hat" in out
        assert "not a reliable posterior estimate" in out


def _standard_normal():
    import pyro
    import pyro.distributions as dist

    pyro.sample("x", dist.Normal(torch.zeros(2, dtype=torch.float64), 1.0).to_event(1))


def test_sample_warns_once_for_unconverged_chains_and_records_it():
    """pyrogen.infer.sample: chains too short for 100 bulk ESS warn once, naming the numbers;
    converged chains do not; the outcome is in the attributes; check=False is silent."""
    from pyrogen.infer import MetropolisHastings, sample

    kernel = MetropolisHastings(_standard_normal)
    idata, record = _run(sample, kernel, 4, num_samples=20, warmup_steps=10, seed=0, progress=False)
    messages = record
    assert len(messages) == 1 and "bulk ESS" in messages[0] and "MetropolisHastings" in messages[0]
    assert idata.posterior.attrs["converged"] == 0
    idata, record = _run(
        sample,
        MetropolisHastings(_standard_normal, "mala"),
        16,
        num_samples=1000,
        warmup_steps=300,
        seed=0,
        progress=False,
    )
    assert record == []
    assert idata.posterior.attrs["converged"] == 1
    assert (
        idata.posterior.attrs["max_r_hat"] < 1.01 and idata.posterior.attrs["min_ess_bulk"] >= 100
    )
    _, record = _run(
        sample, kernel, 4, num_samples=20, warmup_steps=10, seed=0, progress=False, check=False
    )
    assert record == []
