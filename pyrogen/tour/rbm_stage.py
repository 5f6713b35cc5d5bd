"""Tour stage: train an RBM, estimate its log-likelihood by AIS, sample it by block Gibbs."""

from __future__ import annotations

import time

import torch

from pyrogen.infer import BlockGibbs, sample
from pyrogen.rbm import RBM, ais, fit
from pyrogen.seeding import forked_global_rng
from pyrogen.tour.context import TourContext
from pyrogen.tour.figures import image_grid

__all__ = ["run_rbm"]


def run_rbm(ctx: TourContext) -> RBM:
    cfg = ctx.config
    with ctx.stage("rbm") as m:
        with forked_global_rng(ctx.seed, ctx.device):  # the initial weights
            rbm = RBM(ctx.num_pixels, cfg.rbm_hidden, device=ctx.device)
        tic = time.perf_counter()
        history = fit(rbm, ctx.train, epochs=cfg.rbm_epochs, seed=ctx.seed, progress=ctx.progress)
        m["train_seconds"] = time.perf_counter() - tic
        rbm.requires_grad_(False)
        result = ais(
            rbm,
            num_chains=cfg.ais_chains,
            num_temperatures=cfg.ais_temperatures,
            data=ctx.train,
            seed=ctx.seed,
        )
        with torch.no_grad():
            m["held_out_log_likelihood"] = float((-rbm.free_energy(ctx.test) - result.log_z).mean())
        m["log_likelihood_stderr"] = float(result.stderr)
        m["log_partition"] = float(result.log_z)
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
        samples = torch.as_tensor(idata.posterior["v"].values[:, -1], dtype=ctx.test.dtype)
        m["sampling_seconds"] = time.perf_counter() - tic
        m["frechet_distance"] = ctx.frechet(samples)
        image_grid(
            [("real test digits", ctx.test[:64]), ("RBM samples", samples[:64])],
            ctx.figures / "rbm_samples.png",
            shape=ctx.image_shape,
        )
        image_grid(
            [(f"first 64 of {cfg.rbm_hidden} filters (columns of W)", rbm.weight.T[:64])],
            ctx.figures / "rbm_filters.png",
            shape=ctx.image_shape,
            symmetric=True,
        )
        m["summary"] = (
            f"held-out log-likelihood {m['held_out_log_likelihood']:.2f} "
            f"+/- {m['log_likelihood_stderr']:.3f} nats (AIS); FD {m['frechet_distance']:.2f}"
        )
    section = ctx.report.section("RBM: energy model, AIS and block Gibbs")
    section.text(
        f"A {ctx.num_pixels}x{cfg.rbm_hidden} binary RBM trained by CD-1 for {m['epochs']} "
        f"epochs ({m['train_seconds']:.1f} s). Its partition function is out of reach of "
        f"enumeration (2^{min(ctx.num_pixels, cfg.rbm_hidden)} states), so log Z comes from "
        f"annealed importance sampling ({cfg.ais_chains} runs x {cfg.ais_temperatures} "
        "temperatures): "
        f"log Z = {m['log_partition']:.2f} +/- {m['log_likelihood_stderr']:.3f}, giving a "
        f"held-out log-likelihood of **{m['held_out_log_likelihood']:.2f} nats per image**. "
        f"Samples are the states of {n} block-Gibbs chains after {cfg.rbm_sample_sweeps} sweeps."
    )
    section.figure(ctx.figures / "rbm_samples.png", "Test digits (left) and RBM samples (right).")
    section.figure(ctx.figures / "rbm_filters.png", "Receptive fields: each hidden unit's weights.")
    return rbm
