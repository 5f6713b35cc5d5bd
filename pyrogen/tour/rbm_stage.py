"""Tour stage: train an RBM, bracket its held-out log-likelihood, sample it by block Gibbs.

The held-out log-likelihood is exact where enumerating one layer is affordable
(:func:`exact_likelihood_affordable`); otherwise it is the AIS / reverse-AIS bracket of
:func:`pyrogen.rbm.log_likelihood_bounds`, never one AIS number: a forward AIS estimate alone
can be optimistic by tens of nats with a small standard error. A flagged bracket is marked in
the report like an unconverged chain (:func:`pyrogen.tour.reliability.bracket_reliability`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pyrogen.infer import BlockGibbs, sample
from pyrogen.rbm import MAX_ENUMERATION_COST, RBM, enumeration_cost, fit, log_likelihood_bounds
from pyrogen.rbm.model import MAX_ENUMERATION_BITS
from pyrogen.seeding import forked_global_rng
from pyrogen.tour.config import TourConfig
from pyrogen.tour.context import TourContext
from pyrogen.tour.figures import image_grid
from pyrogen.tour.reliability import bracket_reliability
from pyrogen.tour.report import Estimate, Report

__all__ = [
    "bracket_text",
    "exact_likelihood_affordable",
    "held_out_likelihood",
    "log_likelihood_estimate",
    "report_rbm",
    "run_rbm",
]


def exact_likelihood_affordable(n_visible: int, n_hidden: int) -> bool:
    """Whether :meth:`pyrogen.rbm.RBM.log_partition` may enumerate a Bernoulli RBM of this size.

    True when its cost (:func:`pyrogen.rbm.enumeration_cost`) is at most
    :data:`pyrogen.rbm.MAX_ENUMERATION_COST` and the enumerated layer has at most
    ``MAX_ENUMERATION_BITS`` units (the two limits ``log_partition`` enforces).

    Example:
        >>> exact_likelihood_affordable(784, 20), exact_likelihood_affordable(64, 64)
        (True, False)
    """
    bits = min(n_visible, n_hidden)
    return bits <= MAX_ENUMERATION_BITS and (
        enumeration_cost(n_visible, n_hidden) <= MAX_ENUMERATION_COST
    )


def bracket_text(bounds: Mapping[str, Any], short: bool = False) -> str:
    """A bracket (``LikelihoodBounds.as_dict()``) as text, without any reliability flag.

    ``"-98.10 (+/- 0.20) <= log-likelihood <= -97.30 (+/- 0.10) nats per image, width 0.80"``
    (what ``str(LikelihoodBounds)`` prints), or with ``short`` ``"-98.10 .. -97.30"`` (a
    table cell; the standard errors go in their own column).
    """
    lower, upper = bounds["lower"], bounds["upper"]
    if short:
        return f"{lower:.2f} .. {upper:.2f}"
    return (
        f"{lower:.2f} (+/- {bounds['lower_stderr']:.2f}) <= log-likelihood <= "
        f"{upper:.2f} (+/- {bounds['upper_stderr']:.2f}) nats per image, "
        f"width {bounds['width']:.2f}"
    )


def held_out_likelihood(
    rbm: RBM,
    test: torch.Tensor,
    train: torch.Tensor,
    num_chains: int,
    num_temperatures: int | None,
    seed: int,
    progress: bool = False,
) -> dict[str, Any]:
    """The held-out log-likelihood of ``rbm`` on ``test`` ``(n, n_visible)``, as JSON.

    Exact (``method "exact"``, ``held_out_log_likelihood`` and ``log_partition`` set,
    ``bounds`` None) when :func:`exact_likelihood_affordable`; otherwise the bracket of
    :func:`pyrogen.rbm.log_likelihood_bounds` with ``num_chains`` runs per estimator and
    ``num_temperatures`` equally spaced temperatures (None: its 14,501-temperature default),
    base rates from ``train`` (``method "bracket"``, ``bounds`` its ``as_dict()``,
    ``held_out_log_likelihood`` None). ``reliability`` is :func:`bracket_reliability`'s dict
    (always reliable when exact). A flagged bracket also emits a ``ConvergenceWarning``.
    """
    quantity = "RBM held-out log-likelihood"
    tic = time.perf_counter()
    if exact_likelihood_affordable(rbm.n_visible, rbm.n_hidden):
        with torch.no_grad():
            log_z = float(rbm.log_partition())
            value = float((-rbm.free_energy(test) - log_z).mean())
        return {
            "method": "exact",
            "held_out_log_likelihood": value,
            "log_partition": log_z,
            "bounds": None,
            "reliability": bracket_reliability(None, quantity),
            "seconds": time.perf_counter() - tic,
        }
    bounds = log_likelihood_bounds(
        rbm,
        test,
        train,
        num_chains=num_chains,
        num_temperatures=num_temperatures,
        seed=seed,
        progress=progress,
    )
    return {
        "method": "bracket",
        "held_out_log_likelihood": None,
        "log_partition": None,
        "bounds": bounds.as_dict(),
        "reliability": bracket_reliability(bounds, quantity),
        "seconds": time.perf_counter() - tic,
    }


def log_likelihood_estimate(m: Mapping[str, Any], short: bool = False) -> Estimate | float:
    """The stage's held-out log-likelihood for the report: the exact number, or the bracket
    as an :class:`~pyrogen.tour.report.Estimate` that renders marked when it was flagged."""
    if m["log_likelihood_method"] == "exact":
        return float(m["held_out_log_likelihood"])
    return _bracket_estimate(m, short)


def _bracket_estimate(m: Mapping[str, Any], short: bool = False) -> Estimate:
    """The AIS / reverse-AIS bracket of a stage whose likelihood was not enumerated."""
    return Estimate(
        bracket_text(m["log_likelihood_bounds"], short), m["log_likelihood_reliability"]
    )


def run_rbm(ctx: TourContext) -> RBM:
    cfg = ctx.config
    with ctx.stage("rbm") as m:
        with forked_global_rng(ctx.seed, ctx.device):  # the initial weights
            rbm = RBM(ctx.num_pixels, cfg.rbm_hidden, device=ctx.device)
        tic = time.perf_counter()
        history = fit(rbm, ctx.train, epochs=cfg.rbm_epochs, seed=ctx.seed, progress=ctx.progress)
        m["train_seconds"] = time.perf_counter() - tic
        rbm.requires_grad_(False)
        likelihood = held_out_likelihood(
            rbm,
            ctx.test,
            ctx.train,
            num_chains=cfg.ais_chains,
            num_temperatures=cfg.ais_temperatures,
            seed=ctx.seed,
        )
        m["log_likelihood_method"] = likelihood["method"]
        m["held_out_log_likelihood"] = likelihood["held_out_log_likelihood"]
        m["log_partition"] = likelihood["log_partition"]
        m["log_likelihood_bounds"] = likelihood["bounds"]
        m["log_likelihood_reliability"] = likelihood["reliability"]
        m["likelihood_seconds"] = likelihood["seconds"]
        m["parameters"] = sum(p.numel() for p in rbm.parameters())
        m["epochs"] = len(history)
        m["final_reconstruction_error"] = history.last("reconstruction_error")

        # Samples: one long block-Gibbs chain per image, started from noise; the last state.
        tic = time.perf_counter()
        n = len(ctx.test)
        idata = sample(
            BlockGibbs(rbm),
            num_chains=n,
            num_samples=1,
            warmup_steps=cfg.rbm_sample_sweeps,
            seed=ctx.seed,
            progress=ctx.progress,
        )
        if idata is None:  # sample returns None only on ranks > 0 of a process group
            raise RuntimeError("the tour runs in one process, not in a process group")
        samples = torch.as_tensor(idata.posterior["v"].values[:, -1], dtype=ctx.test.dtype)
        m["sampling_seconds"] = time.perf_counter() - tic
        m["sampled_chains"] = n
        m["frechet_distance"] = ctx.frechet(samples)
        image_grid(
            [(f"real test {ctx.image_noun}", ctx.test[:64]), ("RBM samples", samples[:64])],
            ctx.figures / "rbm_samples.png",
            shape=ctx.image_shape,
        )
        image_grid(
            [(f"first 64 of {cfg.rbm_hidden} filters (columns of W)", rbm.weight.T[:64])],
            ctx.figures / "rbm_filters.png",
            shape=ctx.image_shape,
            symmetric=True,
        )
        if m["log_likelihood_method"] == "exact":
            summary = f"held-out log-likelihood {m['held_out_log_likelihood']:.2f} nats (exact)"
        else:
            summary = f"held-out {log_likelihood_estimate(m)} (AIS/reverse-AIS bracket)"
        m["summary"] = f"{summary}; FD {m['frechet_distance']:.2f}"
    report_rbm(ctx.report, m, cfg, ctx.figures, ctx.num_pixels)
    return rbm


def report_rbm(
    report: Report,
    m: Mapping[str, Any],
    cfg: TourConfig,
    figures: Path,
    num_pixels: int = 64,
) -> None:
    """The RBM section, from the stage's metrics ``m``; a flagged bracket is marked."""
    size = f"A {num_pixels}x{cfg.rbm_hidden} binary RBM"
    trained = f"trained by CD-1 for {m['epochs']} epochs ({m['train_seconds']:.1f} s)."
    if m["log_likelihood_method"] == "exact":
        likelihood = (
            f"With {min(num_pixels, cfg.rbm_hidden)} units in its smaller layer its partition "
            f"function is enumerated exactly: log Z = {m['log_partition']:.2f}, giving a held-out "
            f"log-likelihood of **{m['held_out_log_likelihood']:.2f} nats per image**."
        )
    else:
        b = m["log_likelihood_bounds"]
        estimate = _bracket_estimate(m)
        verdict = (
            "The two ends agree, so the bracket can be read as the log-likelihood."
            if estimate.converged
            else "The bracket is flagged, so it is no single number: "
            f"{m['log_likelihood_reliability']['label']}."
        )
        likelihood = (
            f"Its partition function is out of reach of enumeration "
            f"(2^{min(num_pixels, cfg.rbm_hidden)} states), so the held-out log-likelihood is "
            f"bracketed between reverse AIS, started at the held-out images (conservative), and "
            f"AIS capped by the certain floor logsumexp(-F) (optimistic), {cfg.ais_chains} runs "
            f"x {cfg.ais_temperatures} temperatures each ({m['likelihood_seconds']:.1f} s): "
            f"**{estimate}** (AIS log Z {b['log_z_ais']:.2f}, reverse AIS "
            f"{b['log_z_reverse_ais']:.2f}). {verdict}"
        )
    section = report.section("RBM: energy model, likelihood bracket and block Gibbs")
    section.text(
        f"{size} {trained} {likelihood} Samples are the states of "
        f"{m.get('sampled_chains', 'the')} block-Gibbs chains after {cfg.rbm_sample_sweeps} "
        "sweeps."
    )
    section.figure(figures / "rbm_samples.png", "Test digits (left) and RBM samples (right).")
    section.figure(figures / "rbm_filters.png", "Receptive fields: each hidden unit's weights.")
