"""Benchmark: a digits GAN as a Pyro prior: Fréchet distance, then super-resolution by
posterior inference over its latent code.

1. Train an MLP GAN on the grey 8x8 digits train split (``pyrogen.gan.fit``, discriminator
   regularised by the R1 gradient penalty), report the
   Fréchet distance of its samples to the test split in the features of
   ``pyrogen.metrics.digits_features()``, next to the train-vs-test distance (the reference
   a perfect generator would reach, same sample sizes).
2. Super-resolution: each of ``--images`` test digits is 2x2 average-pooled to 4x4;
   ``pyrogen.gan.super_resolve`` samples the posterior over ``z`` given the 16 pooled values
   (``y = pool(G(z)) + N(0, s^2)``) for all images at once, ``--chains`` chains per image,
   by two methods on the same GAN, images, chains and steps: plain MALA and replica-exchange
   MALA (``--replicas`` temperatures, the library default). The 8x8 estimate is the
   posterior mean of ``G(z)``; PSNR against the original is compared with bilinear
   upsampling of the 4x4 image (the anchor, same images, same run). Per image and method:
   the worst split R-hat over the pixels of ``G(z)`` (the quantity the estimate is made of;
   ``z`` is not identifiable) and whether the chains pass pyrogen's convergence check
   (R-hat <= 1.01, bulk ESS >= 100). Target: R-hat of ``G(z)`` <= 1.05 on every image.

    python benchmarks/gan_superres.py            # 32 images
    python benchmarks/gan_superres.py --quick    # 8 images, shorter GAN training
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, format_table, write_json

from pyrogen import ConvergenceWarning
from pyrogen.data import load_digits
from pyrogen.gan import GAN, ImplicitModel, fit, mlp_discriminator, mlp_generator
from pyrogen.gan.superres import average_pool, bilinear_upsample, psnr, super_resolve
from pyrogen.metrics import digits_features, frechet_distance


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=3000)
    parser.add_argument("--replicas", type=int, default=12, help="replica-exchange temperatures")
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

    images = test[: args.images]
    low = average_pool(images)
    baseline = psnr(bilinear_upsample(low).clamp(0, 1), images)
    rows, summaries = [], []
    for method in ("mala", "replica_exchange"):
        print(f"super-resolution: {method}", file=sys.stderr, flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported in the table
            result = super_resolve(
                gan, low, noise_scale=args.noise_scale, method=method,
                num_replicas=args.replicas, num_chains=args.chains, num_samples=args.samples,
                warmup_steps=args.warmup, seed=args.seed,
            )  # fmt: skip
        gain = psnr(result.estimate, images)
        for i in range(args.images):
            rows.append(
                {
                    "method": method,
                    "image": i,
                    "psnr_posterior_db": float(gain[i]),
                    "psnr_bilinear_db": float(baseline[i]),
                    "max_r_hat_image": float(result.max_r_hat[i]),
                    "converged": bool(result.converged[i]),
                    "accept": float(result.accept_rate[i]),
                    "round_trips": int(result.round_trips[i]),
                }
            )
        r_hat = result.max_r_hat
        summaries.append(
            {
                "method": method,
                "images": args.images,
                "psnr_posterior_db": float(gain.mean()),
                "psnr_bilinear_db": float(baseline.mean()),
                "images_posterior_better": int((gain > baseline).sum()),
                "median_max_r_hat_image": float(r_hat.median()),
                "max_r_hat_image": float(r_hat.max()),
                "images_r_hat_le_1.05": int((r_hat <= 1.05).sum()),
                "images_converged": int(result.converged.sum()),
                "accept": float(result.accept_rate.mean()),
                "swap_accept_min": float(result.swap_accept_rate.min())
                if result.swap_accept_rate.numel()
                else None,
                "round_trips_per_chain": float(result.round_trips.double().mean() / args.chains),
                "seconds": result.seconds,
            }
        )
    print(format_table(rows, list(rows[0])))
    print()
    print(format_table(summaries, list(summaries[0])))
    for summary in summaries:
        print(
            f"target: {summary['method']}: R-hat of G(z) <= 1.05 on every image: "
            f"{summary['images_r_hat_le_1.05']}/{summary['images']} "
            f"(max {summary['max_r_hat_image']:.3f}); PSNR {summary['psnr_posterior_db']:.2f} dB "
            f"vs bilinear {summary['psnr_bilinear_db']:.2f} dB"
        )
    summary = {s["method"]: s for s in summaries}
    payload = {"frechet": fd, "rows": rows, "summary": summary, "args": vars(args)}
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
