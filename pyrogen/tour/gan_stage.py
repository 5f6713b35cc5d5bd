"""Tour stage: a GAN, and super-resolution by posterior inference over z (8x8 digits only).

The GAN is :func:`pyrogen.gan.gan_recipe` for the data's width, trained with its settings;
its samples are scored by the Fréchet distance (and, on 28x28 images with labels, by class
coverage). The super-resolution part pools 8x8 digits to 4x4 and is skipped on other images,
with a note in the report.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from pyrogen.gan import GAN, fit, gan_recipe, recipe_fit_kwargs, superres
from pyrogen.gan.superres import average_pool, bilinear_upsample, super_resolve
from pyrogen.seeding import forked_global_rng
from pyrogen.tour.config import TourConfig
from pyrogen.tour.context import TourContext
from pyrogen.tour.figures import image_grid, image_rows
from pyrogen.tour.reliability import combine, describe, warn_combined
from pyrogen.tour.report import Estimate, Report, format_value

__all__ = ["SUPERRES_SKIPPED", "report_gan", "run_gan"]


def psnr(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (mean over images)."""
    return float(superres.psnr(estimate, truth).mean())


def run_gan(ctx: TourContext) -> GAN:
    cfg = ctx.config
    with ctx.stage("gan") as m:
        # The configured latent width is the digits'; other widths take the recipe's own.
        latent_dim = cfg.gan_latent_dim if ctx.is_digits else None
        with forked_global_rng(ctx.seed, ctx.device):  # the initial weights
            recipe = gan_recipe(ctx.num_pixels, latent_dim, device=ctx.device)
        gan = recipe.gan
        m["latent_dim"] = gan.generator.latent_dim
        m["r1_penalty"] = recipe.fit_kwargs["r1_penalty"]
        tic = time.perf_counter()
        history = fit(
            gan,
            ctx.train,
            steps=cfg.gan_steps,
            seed=ctx.seed,
            progress=ctx.progress,
            **recipe.fit_kwargs,
        )
        m["train_seconds"] = time.perf_counter() - tic
        gan.requires_grad_(False)
        m["parameters"] = sum(p.numel() for p in gan.parameters())
        m["generator_parameters"] = sum(p.numel() for p in gan.generator.parameters())
        m["final_value_estimate"] = history.last("value") if "value" in history else None
        tic = time.perf_counter()
        samples = gan.generator.sample(len(ctx.test), generator=ctx.generator(3))
        m["sampling_seconds"] = time.perf_counter() - tic
        m["frechet_distance"] = ctx.frechet(samples)
        m["frechet_name"] = ctx.frechet_name
        coverage = ctx.coverage(samples)
        if coverage is not None:
            m["class_coverage"] = coverage
        image_grid(
            [(f"real test {ctx.image_noun}", ctx.test[:64]), ("GAN samples G(z)", samples[:64])],
            ctx.figures / "gan_samples.png",
            shape=ctx.image_shape,
        )
        if ctx.is_digits:
            _superres(ctx, gan, m)
            gan_psnr = Estimate(m["superres_psnr_gan"], m["superres_reliability"], unit=" dB")
            m["summary"] = (
                f"FD {m['frechet_distance']:.2f}; super-resolution PSNR "
                f"{gan_psnr:.2f} (bilinear {m['superres_psnr_bilinear']:.2f})"
            )
        else:
            m["superres_skipped"] = SUPERRES_SKIPPED
            m["summary"] = f"FD {m['frechet_distance']:.2f}; super-resolution skipped"
    report_gan(ctx.report, m, cfg, ctx.figures)
    return gan


#: Why super-resolution is skipped off the 8x8 digits (metrics.json and the report).
SUPERRES_SKIPPED = (
    "super-resolution skipped: it pools 8x8 digits to 4x4 and upsamples back, "
    "written for the 8x8 digits only"
)


def _superres(ctx: TourContext, gan: GAN, m: dict[str, Any]) -> None:
    """Super-resolution: the posterior over z given a 4x4 average-pooled image (8x8 only),
    sampled by replica-exchange MALA (:func:`pyrogen.gan.superres.super_resolve`)."""
    cfg = ctx.config
    truth = ctx.test[: cfg.superres_images]
    low = average_pool(truth)
    # Checked per image inside; one warning below if any image's chains of G(z) failed.
    result = super_resolve(
        gan,
        low,
        noise_scale=0.05,
        num_chains=cfg.superres_chains,
        num_samples=cfg.superres_samples,
        warmup_steps=cfg.superres_samples // 2,
        seed=ctx.seed,
        warn=False,
    )
    parts = list(result.reliability)
    estimate = result.estimate.to(truth)
    bilinear = bilinear_upsample(low).clamp(0, 1)
    m["superres_reliability"] = combine(parts, "GAN super-resolution PSNR (chains of G(z))")
    m["superres_reliability_per_image"] = [p.as_dict() for p in parts]
    warn_combined(m["superres_reliability"], stacklevel=2)
    m["superres_psnr_gan"] = psnr(estimate, truth)
    m["superres_psnr_bilinear"] = psnr(bilinear, truth)
    m["superres_method"] = "replica-exchange MALA"
    m["superres_sampling"] = result.summary()
    nearest = low.reshape(-1, 4, 1, 4, 1).expand(-1, 4, 2, 4, 2).reshape(-1, 64)
    image_rows(
        [
            ("4x4 input", nearest),
            ("bilinear", bilinear),
            ("GAN posterior mean", estimate),
            ("truth", truth),
        ],
        ctx.figures / "gan_superres.png",
    )


def report_gan(report: Report, m: Mapping[str, Any], cfg: TourConfig, figures: Path) -> None:
    """The GAN section, from the stage's metrics ``m``; an unconverged PSNR is marked."""
    r1_penalty = m.get("r1_penalty", recipe_fit_kwargs(64)["r1_penalty"])  # older metrics
    latent_dim = m.get("latent_dim", cfg.gan_latent_dim)
    name = m.get("frechet_name", "Fréchet digits distance")
    fd = m["frechet_distance"]
    fd = f"{fd:.2f}" if math.isfinite(fd) else format_value(fd)  # NaN: no feature map
    section = report.section("GAN: an implicit model in Pyro, super-resolution by inference")
    coverage = ""
    if "class_coverage" in m:
        c, real = m["class_coverage"]["samples"], m["class_coverage"]["test"]
        coverage = (
            f" Under the same classifier its samples cover {c['num_covered']} of "
            f"{c['num_classes']} classes (largest share {c['max_share']:.1%}, KL to uniform "
            f"{c['kl_to_uniform']:.3f}; real test images: {real['max_share']:.1%}, "
            f"{real['kl_to_uniform']:.3f})."
        )
    section.text(
        f"An MLP GAN (latent dimension {latent_dim}) trained with the non-saturating "
        f"generator loss for {cfg.gan_steps} steps ({m['train_seconds']:.1f} s), the "
        f"discriminator regularised by the R1 gradient penalty (gamma "
        f"{r1_penalty:g}; without it the game does not converge on binary "
        "pixels and the generator collapses to one image). The generator "
        "defines samples but no density, so there is no likelihood to report: its quality is "
        f"measured by the {name}, **{fd}**.{coverage}"
    )
    section.figure(figures / "gan_samples.png", "Test digits and GAN samples.")
    if "superres_reliability" not in m:
        section.text(f"Not run on these images: {m.get('superres_skipped', SUPERRES_SKIPPED)}.")
        return
    reliability = m["superres_reliability"]
    gan_psnr = Estimate(m["superres_psnr_gan"], reliability, unit=" dB")
    section.text(
        "Super-resolution with the GAN as a prior: each 8x8 test digit is average-pooled to 4x4, "
        "and the posterior over z given the 4x4 image (Gaussian noise 0.05) is sampled by "
        f"replica-exchange MALA ({cfg.superres_chains} chains per image, each with a ladder "
        f"of tempered copies; chains of G(z): "
        f"{describe(reliability)}). PSNR of the posterior-mean image {gan_psnr:.2f} against "
        f"{m['superres_psnr_bilinear']:.2f} dB for bilinear upsampling."
    )
    posterior = "GAN posterior" if gan_psnr.converged else f"GAN posterior ({reliability['label']})"
    section.figure(figures / "gan_superres.png", f"4x4 input, bilinear, {posterior}, truth.")
