"""Tour stage: VAE by SVI, IWAE log-likelihood, 2-D embedding, hole filling by inference."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyro
import torch

from pyrogen.seeding import forked_global_rng
from pyrogen.tour.config import TourConfig
from pyrogen.tour.context import TourContext
from pyrogen.tour.figures import image_grid, image_rows, scatter_embedding
from pyrogen.tour.reliability import describe
from pyrogen.tour.report import Estimate, Report
from pyrogen.vae import (
    VAE,
    fit,
    hidden_log_likelihood,
    inpaint,
    log_likelihood,
    marginal_impute,
)

__all__ = ["report_vae", "run_vae"]


def run_vae(ctx: TourContext) -> VAE:
    cfg = ctx.config
    with ctx.stage("vae") as m:
        pyro.clear_param_store()
        with forked_global_rng(ctx.seed, ctx.device):  # the initial weights
            vae = VAE(ctx.num_pixels, cfg.vae_z_dim, hidden=(256,), device=ctx.device)
        tic = time.perf_counter()
        history = fit(
            vae,
            ctx.train,
            epochs=cfg.vae_epochs,
            seed=ctx.seed,
            validation=ctx.test,
            progress=ctx.progress,
        )
        m["train_seconds"] = time.perf_counter() - tic
        m["held_out_elbo"] = history.last("validation_elbo")
        m["held_out_log_likelihood"] = float(
            log_likelihood(vae, ctx.test, num_samples=cfg.iwae_samples, seed=ctx.seed).mean()
        )
        m["iwae_samples"] = cfg.iwae_samples
        m["parameters"] = sum(p.numel() for p in vae.parameters())
        tic = time.perf_counter()
        samples = vae.sample(len(ctx.test), generator=ctx.generator(1))
        m["sampling_seconds"] = time.perf_counter() - tic
        m["frechet_distance"] = ctx.frechet(samples)
        image_grid(
            [
                ("real test digits", ctx.test[:64]),
                ("VAE samples", samples[:64]),
                ("VAE decoder means", vae.sample(64, mean=True, generator=ctx.generator(2))),
            ],
            ctx.figures / "vae_samples.png",
            shape=ctx.image_shape,
        )

        # Dimensionality reduction: a VAE with a 2-D latent space.
        pyro.clear_param_store()
        with forked_global_rng(ctx.seed, ctx.device):
            flat = VAE(ctx.num_pixels, 2, hidden=(256,), device=ctx.device)
        fit(flat, ctx.train, epochs=cfg.vae_embedding_epochs, seed=ctx.seed, progress=ctx.progress)
        loc, _ = flat.encode(ctx.test)
        scatter_embedding(
            loc.detach(),
            ctx.test_labels,
            ctx.figures / "vae_embedding.png",
            title="held-out digits in a 2-D VAE latent space (encoder means)",
        )

        # Hole filling: bottom half hidden, posterior over z by replica-exchange MALA.
        # Row-major images: the first half of the pixels is the top half of the rows.
        k = cfg.inpaint_images
        x = ctx.test[:k]
        d = ctx.num_pixels
        mask = (torch.arange(d, device=ctx.device) < d // 2).expand(k, d)
        result = inpaint(
            vae,
            x,
            mask,
            method="replica_exchange",
            num_samples=cfg.inpaint_samples,
            warmup_steps=cfg.inpaint_samples // 2,
            num_chains=4,
            seed=ctx.seed,
        )
        if result is None:  # inpaint returns None only on ranks > 0 of a process group
            raise RuntimeError("the tour runs in one process, not in a process group")
        # inpaint has checked the chains of z (and warned if they failed): the hidden-pixel
        # log-likelihood below rests on them.
        m["inpaint_reliability"] = result.reliability.as_dict()
        m["inpaint_max_r_hat"] = m["inpaint_reliability"]["max_r_hat"]
        m["inpaint_method"] = "replica_exchange"
        # (key name kept from when the method was Metropolis-within-Gibbs: metrics.json readers)
        m["inpaint_hidden_ll_mwg"] = float(hidden_log_likelihood(result.imputed, x, mask).mean())
        baseline = marginal_impute(ctx.train, x, mask)
        m["inpaint_hidden_ll_marginal"] = float(hidden_log_likelihood(baseline, x, mask).mean())
        shown = torch.where(mask, x, torch.full_like(x, 0.5))
        image_rows(
            [
                ("masked input", shown),
                ("VAE fill", result.imputed),
                ("pixel marginals", baseline),
                ("truth", x),
            ],
            ctx.figures / "vae_inpainting.png",
            shape=ctx.image_shape,
        )
        m["summary"] = (
            f"IWAE log-likelihood {m['held_out_log_likelihood']:.2f} nats; "
            f"FD {m['frechet_distance']:.2f}"
        )
    report_vae(ctx.report, m, cfg, ctx.figures)
    return vae


def report_vae(report: Report, m: Mapping[str, Any], cfg: TourConfig, figures: Path) -> None:
    """The VAE section, from the stage's metrics ``m``; unconverged inpainting is marked."""
    k = cfg.inpaint_images
    reliability = m["inpaint_reliability"]
    hidden_ll = Estimate(m["inpaint_hidden_ll_mwg"], reliability, unit=" nats per pixel")
    section = report.section("VAE: SVI, importance-weighted likelihood, hole filling")
    section.text(
        f"A Bernoulli VAE (z dimension {cfg.vae_z_dim}, one hidden layer of 256) trained with "
        f"Pyro's ELBO for {cfg.vae_epochs} epochs ({m['train_seconds']:.1f} s). Held-out ELBO "
        f"{m['held_out_elbo']:.2f}; the importance-weighted bound with K = {cfg.iwae_samples} "
        f"gives **{m['held_out_log_likelihood']:.2f} nats per image** (a lower bound, so the "
        "gap to the RBM is conservative in the VAE's disfavour)."
    )
    section.figure(figures / "vae_samples.png", "Test digits, VAE samples, decoder means.")
    section.figure(figures / "vae_embedding.png", "Dimensionality reduction: a 2-D latent.")
    section.text(
        f"Hole filling: the bottom half of {k} held-out digits is hidden and filled by sampling "
        f"the posterior over z given the visible half (replica-exchange MALA: tempered copies "
        f"of each chain carry it between the digits that fit half an image; chains of z: "
        f"{describe(reliability)}). Log-likelihood of the "
        f"hidden pixels: {hidden_ll:.3f}, against {m['inpaint_hidden_ll_marginal']:.3f} nats "
        "per pixel for per-pixel marginal frequencies."
    )
    fill = "VAE fill" if hidden_ll.converged else f"VAE fill ({reliability['label']})"
    section.figure(figures / "vae_inpainting.png", f"Masked input, {fill}, baseline, truth.")
