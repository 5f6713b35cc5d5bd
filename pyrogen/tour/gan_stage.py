"""Tour stage: a GAN on the digits, and super-resolution by posterior inference over z."""

from __future__ import annotations

import time
import warnings

import torch
import torch.nn.functional as F

from pyrogen import diagnostics
from pyrogen.gan import GAN, fit
from pyrogen.infer import MetropolisHastings, sample
from pyrogen.tour.context import TourContext
from pyrogen.tour.figures import image_grid, image_rows
from pyrogen.tour.models import DIGITS_GAN_FIT, digits_gan

__all__ = ["run_gan", "average_pool", "bilinear_upsample"]


def average_pool(x: torch.Tensor) -> torch.Tensor:
    """8x8 images ``(..., 64)`` to their 4x4 block averages ``(..., 16)``."""
    return x.reshape(*x.shape[:-1], 4, 2, 4, 2).mean(dim=(-3, -1)).reshape(*x.shape[:-1], 16)


def bilinear_upsample(y: torch.Tensor) -> torch.Tensor:
    """4x4 images ``(n, 16)`` to 8x8 ``(n, 64)`` by bilinear interpolation."""
    up = F.interpolate(y.reshape(-1, 1, 4, 4), size=(8, 8), mode="bilinear", align_corners=False)
    return up.reshape(-1, 64)


def psnr(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1] (mean over images)."""
    mse = ((estimate - truth) ** 2).mean(-1).clamp_min(1e-10)
    return float((-10 * torch.log10(mse)).mean())


def run_gan(ctx: TourContext) -> GAN:
    cfg = ctx.config
    with ctx.stage("gan") as m:
        torch.manual_seed(ctx.seed)
        gan = digits_gan(cfg.gan_latent_dim, device=ctx.device)
        tic = time.perf_counter()
        history = fit(
            gan,
            ctx.train,
            steps=cfg.gan_steps,
            seed=ctx.seed,
            progress=ctx.progress,
            **DIGITS_GAN_FIT,
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
        image_grid(
            [("real test digits", ctx.test[:64]), ("GAN samples G(z)", samples[:64])],
            ctx.figures / "gan_samples.png",
        )

        # Super-resolution: the posterior over z given a 4x4 average-pooled image.
        k = cfg.superres_images
        truth = ctx.test[:k]
        low = average_pool(truth)
        estimates, r_hats = [], []
        for i in range(k):
            model = gan.generator.condition(average_pool, low[i], noise_scale=0.05)
            kernel = MetropolisHastings(model, proposal="mala", step_size=0.1)
            init = gan.generator.sample_latent(cfg.superres_chains, ctx.generator(100 + i))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                idata = sample(
                    kernel,
                    num_chains=cfg.superres_chains,
                    num_samples=cfg.superres_samples,
                    warmup_steps=cfg.superres_samples,
                    seed=ctx.seed + i,
                    progress=False,
                    initial_params={"z": init},
                )
            r_hats.append(float(diagnostics.summarize(idata, var_names=["z"])["r_hat"].max()))
            z = torch.as_tensor(
                idata.posterior["z"].values, dtype=truth.dtype, device=ctx.device
            ).reshape(-1, cfg.gan_latent_dim)
            estimates.append(gan.generator.generator(z).mean(0))
        estimate = torch.stack(estimates)
        bilinear = bilinear_upsample(low).clamp(0, 1)
        m["superres_psnr_gan"] = psnr(estimate, truth)
        m["superres_psnr_bilinear"] = psnr(bilinear, truth)
        m["superres_max_r_hat"] = max(r_hats)
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
        m["summary"] = (
            f"FD {m['frechet_distance']:.2f}; super-resolution PSNR "
            f"{m['superres_psnr_gan']:.2f} dB (bilinear {m['superres_psnr_bilinear']:.2f})"
        )
    section = ctx.report.section("GAN: an implicit model in Pyro, super-resolution by inference")
    section.text(
        f"An MLP GAN (latent dimension {cfg.gan_latent_dim}) trained with the non-saturating "
        f"generator loss for {cfg.gan_steps} steps ({m['train_seconds']:.1f} s), the "
        f"discriminator regularised by the R1 gradient penalty (gamma "
        f"{DIGITS_GAN_FIT['r1_penalty']:g}; without it the game does not converge on binary "
        "pixels and the generator collapses to one image). The generator "
        "defines samples but no density, so there is no likelihood to report: its quality is "
        f"measured by the Fréchet digits distance, **{m['frechet_distance']:.2f}**."
    )
    section.figure(ctx.figures / "gan_samples.png", "Test digits and GAN samples.")
    section.text(
        "Super-resolution with the GAN as a prior: each 8x8 test digit is average-pooled to 4x4, "
        "and the posterior over z given the 4x4 image (Gaussian noise 0.05) is sampled by "
        f"pyrogen's vectorised MALA ({cfg.superres_chains} chains; max R-hat over z "
        f"{m['superres_max_r_hat']:.3f}). PSNR of the posterior-mean image "
        f"{m['superres_psnr_gan']:.2f} dB against {m['superres_psnr_bilinear']:.2f} dB for "
        "bilinear upsampling."
    )
    section.figure(ctx.figures / "gan_superres.png", "4x4 input, bilinear, GAN posterior, truth.")
    return gan
