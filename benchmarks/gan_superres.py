"""Benchmark: a digits GAN as a Pyro prior: Fréchet distance, then super-resolution by
posterior inference over its latent code.

1. Train an MLP GAN on the grey 8x8 digits train split (``pyrogen.gan.fit``, discriminator
   regularised by the R1 gradient penalty), report the
   Fréchet distance of its samples to the test split in the features of
   ``pyrogen.metrics.digits_features()``, next to the train-vs-test distance (the reference
   a perfect generator would reach, same sample sizes).
2. Super-resolution: each of ``--images`` test digits is 2x2 average-pooled to 4x4;
   ``ImplicitModel.condition(pool, y, noise_scale)`` gives the posterior over ``z`` given the
   16 pooled values, sampled by ``pyrogen.infer``'s vectorised MALA (``--chains`` chains per
   image). The 8x8 estimate is the posterior mean of ``G(z)``. PSNR against the original is
   compared with bilinear upsampling of the 4x4 image (the anchor, same images, same run);
   split R-hat of ``z`` (``pyrogen.diagnostics.summarize``) says whether the chains agree.

    python benchmarks/gan_superres.py            # 32 images
    python benchmarks/gan_superres.py --quick    # 8 images, shorter GAN training
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, format_table, write_json

from pyrogen import diagnostics
from pyrogen.data import load_digits
from pyrogen.gan import GAN, ImplicitModel, fit, mlp_discriminator, mlp_generator
from pyrogen.infer import MetropolisHastings, sample
from pyrogen.metrics import digits_features, frechet_distance


def pool(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling of flattened 8x8 images: ``(..., 64)`` -> ``(..., 16)``."""
    batch = x.shape[:-1]
    return x.reshape(*batch, 4, 2, 4, 2).mean((-3, -1)).reshape(*batch, 16)


def bilinear(y: torch.Tensor) -> torch.Tensor:
    """Bilinear upsampling of flattened 4x4 images to 8x8: ``(n, 16)`` -> ``(n, 64)``."""
    up = F.interpolate(y.reshape(-1, 1, 4, 4), scale_factor=2, mode="bilinear", align_corners=False)
    return up.reshape(-1, 64)


def psnr(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB for pixel range [0, 1], one value per row."""
    mse = ((estimate - truth) ** 2).mean(-1)
    return 10 * torch.log10(1.0 / mse)


def train_gan(train: torch.Tensor, args: argparse.Namespace) -> tuple[GAN, float]:
    torch.manual_seed(args.seed)
    gan = GAN(
        ImplicitModel(
            mlp_generator(args.latent_dim, 64, hidden=(256, 256), output="sigmoid"),
            args.latent_dim,
        ),
        mlp_discriminator(64, hidden=(256, 256)),
    )
    tic = time.perf_counter()
    # R1 (Mescheder et al. 2018): the 1,437 training digits are point masses, where the
    # unregularised game does not converge (see pyrogen.tour.models.DIGITS_GAN_FIT).
    common = {
        "batch_size": args.batch_size,
        "progress": False,
        "betas": (0.5, 0.999),
        "r1_penalty": args.r1_penalty,
    }
    fit(gan, train, steps=args.steps, lr=args.lr, seed=args.seed, **common)
    fit(gan, train, steps=args.steps // 2, lr=args.lr / 10, seed=args.seed + 1, **common)
    return gan, time.perf_counter() - tic


def super_resolve(
    gan: GAN, image: torch.Tensor, seed: int, args: argparse.Namespace
) -> tuple[torch.Tensor, float, float, float, float]:
    """Posterior-mean 8x8 estimate of one image from its 4x4 pooling.

    Returns ``(estimate (64,), max R-hat over z, max R-hat over the pixels of G(z), mean
    acceptance, seconds)``. The latent code of a GAN is not identifiable (many z give the same
    image), so chains can disagree on z while agreeing on the image; R-hat of G(z) diagnoses
    the quantity the estimate is made of.
    """
    y = pool(image)
    model = gan.generator.condition(pool, y, args.noise_scale)
    kernel = MetropolisHastings(model, proposal="mala", step_size=0.1)
    tic = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = sample(
            kernel,
            num_chains=args.chains,
            num_samples=args.samples,
            warmup_steps=args.warmup,
            seed=seed,
            progress=False,
            initial_params={
                "z": gan.generator.sample_latent(args.chains, torch.Generator().manual_seed(seed))
            },
        )
        summary = diagnostics.summarize(idata, var_names=["z"])
    z = torch.as_tensor(idata.posterior["z"].values, dtype=image.dtype)  # (chain, draw, latent)
    with torch.no_grad():
        images = gan.generator.generate(z)  # (chain, draw, 64)
    estimate = images.mean((0, 1))
    r_hat_image = float(diagnostics.summarize({"x": images})["r_hat"].max())
    accept = float(idata.sample_stats["acceptance_rate"].mean())
    seconds = time.perf_counter() - tic
    return estimate, float(summary["r_hat"].max()), r_hat_image, accept, seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--noise-scale", type=float, default=0.05)
    parser.add_argument("--latent-dim", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6000, help="GAN steps at --lr")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--r1-penalty", type=float, default=3.0, help="R1 weight (0: none)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="8 images, 2000 GAN steps")
    parser.add_argument("--out", default=str(RESULTS_DIR / "gan_superres.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.images, args.steps = 8, 2000
    train, test = load_digits(binarize=False, seed=0)

    gan, train_s = train_gan(train, args)
    features = digits_features()
    generated = gan.generator.sample(train.shape[0], torch.Generator().manual_seed(args.seed))
    fd = {
        "gan_vs_test": frechet_distance(generated, test, features),
        "train_vs_test": frechet_distance(train, test, features),
        "gan_train_s": train_s,
    }
    fd["ratio"] = fd["gan_vs_test"] / fd["train_vs_test"]
    print(format_table([fd], list(fd)))
    print()

    rows = []
    for i in range(args.images):
        image = test[i]
        estimate, r_hat, r_hat_image, accept, seconds = super_resolve(
            gan, image, args.seed + i, args
        )
        baseline = bilinear(pool(image).unsqueeze(0)).squeeze(0)
        rows.append(
            {
                "image": i,
                "psnr_posterior_db": float(psnr(estimate, image)),
                "psnr_bilinear_db": float(psnr(baseline, image)),
                "max_r_hat_z": r_hat,
                "max_r_hat_image": r_hat_image,
                "accept": accept,
                "seconds": seconds,
            }
        )
        print(f"done: image {i}", file=sys.stderr, flush=True)
    n = len(rows)

    def mean(key: str) -> float:
        return sum(r[key] for r in rows) / n

    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in rows))

    r_hats = sorted(r["max_r_hat_z"] for r in rows)
    summary = {
        "images": n,
        "psnr_posterior_db": mean("psnr_posterior_db"),
        "psnr_bilinear_db": mean("psnr_bilinear_db"),
        "psnr_gain_db": mean("psnr_posterior_db") - mean("psnr_bilinear_db"),
        "images_posterior_better": sum(
            r["psnr_posterior_db"] > r["psnr_bilinear_db"] for r in rows
        ),
        "median_max_r_hat": median("max_r_hat_z"),
        "images_r_hat_below_1.1": sum(r < 1.1 for r in r_hats),
        "median_max_r_hat_image": median("max_r_hat_image"),
        "images_r_hat_image_below_1.1": sum(r["max_r_hat_image"] < 1.1 for r in rows),
        "accept": mean("accept"),
        "seconds_per_image": mean("seconds"),
    }
    print(format_table(rows, list(rows[0])))
    print()
    print(format_table([summary], list(summary)))
    print(
        f"(PSNR ratio posterior / bilinear: "
        f"{summary['psnr_posterior_db'] / summary['psnr_bilinear_db']:.3f}; "
        f"{'finite' if all(math.isfinite(r) for r in r_hats) else 'non-finite'} R-hat values)"
    )
    payload = {"frechet": fd, "rows": rows, "summary": summary, "args": vars(args)}
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
