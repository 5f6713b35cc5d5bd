"""Benchmark: the GAN recipe at real size, on 28x28 MNIST (issue 10).

For each seed: build ``pyrogen.gan.gan_recipe(784)`` (an MLP GAN, latent 32, hidden 256/512,
the R1 penalty), train it with ``pyrogen.gan.fit(**recipe.fit_kwargs)`` on the 4,000
binarised training images of ``pyrogen.data.load_mnist5k`` (pixel > 127; the tour trains
every model on binary images), then score 10,000 samples ``G(z)``:

* mode coverage: ``pyrogen.metrics.class_coverage`` under the 28x28 feature classifier
  (``pyrogen.metrics.mnist_features``, trained on the grey training images with their
  labels): classes covered (>= 1% of samples), the largest class share (a balanced digit is
  10%) and the KL divergence of the class shares to uniform;
* Fréchet distance in that classifier's features, of 4,000 samples to the 1,000 test images,
  against the floor: the same distance from the 4,000 real training images.

The test images are scored by the same classifier as a reference for the coverage figures.
Targets of the issue: 10/10 classes, max share <= 15%.

    python benchmarks/gan_mnist.py            # 2 seeds, 6,000 steps (~4 min per seed)
    python benchmarks/gan_mnist.py --quick    # 1 seed, 1,500 steps
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, format_table, write_json

from pyrogen.data import load_mnist5k
from pyrogen.gan import fit, gan_recipe
from pyrogen.metrics import MnistFeatures, class_coverage, frechet_distance, mnist_features
from pyrogen.seeding import forked_global_rng, make_generator

NUM_SAMPLES = 10_000  # generator draws scored for coverage


def run_seed(
    seed: int,
    train: torch.Tensor,
    test: torch.Tensor,
    features: MnistFeatures,
    floor: float,
    args: argparse.Namespace,
) -> dict:
    with forked_global_rng(seed):
        recipe = gan_recipe(train.shape[1])
    kwargs = dict(recipe.fit_kwargs)
    if args.r1_penalty is not None:
        kwargs["r1_penalty"] = args.r1_penalty
    tic = time.perf_counter()
    history = fit(recipe.gan, train, steps=args.steps, seed=seed, progress=False, **kwargs)
    seconds = time.perf_counter() - tic
    with torch.no_grad():
        samples = recipe.gan.generator.sample(NUM_SAMPLES, generator=make_generator(seed + 1000))
    coverage = class_coverage(features, samples)
    return {
        "seed": seed,
        "steps": args.steps,
        "r1_penalty": kwargs["r1_penalty"],
        "train_s": seconds,
        "d_real": history.last("d_real"),
        "d_fake": history.last("d_fake"),
        "classes": coverage.num_covered,
        "max_share": coverage.max_share,
        "kl_uniform": coverage.kl_to_uniform,
        "fd": frechet_distance(samples[: len(train)], test, features),
        "fd_floor": floor,
        "shares": [round(s, 4) for s in coverage.shares.tolist()],
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--r1-penalty", type=float, default=None, help="override the recipe")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="1 seed, 1,500 steps")
    parser.add_argument("--out", default=str(RESULTS_DIR / "gan_mnist.json"))
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.seeds, args.steps = 1, 1500
    grey, grey_test, labels, test_labels = load_mnist5k(binarize=False, return_labels=True)
    train, test = load_mnist5k(binarize=True)  # the same split (seed 0), binarised
    tic = time.perf_counter()
    features = mnist_features(grey, labels, held_out=(grey_test, test_labels))
    feature_seconds = time.perf_counter() - tic
    floor = frechet_distance(train, test, features)
    real = class_coverage(features, test)
    reference = {
        "feature_train_s": feature_seconds,
        "classifier_test_accuracy": features.test_accuracy,
        "test_images_max_share": real.max_share,
        "test_images_kl_uniform": real.kl_to_uniform,
        "fd_floor_train_vs_test": floor,
    }
    print(format_table([reference], list(reference)), flush=True)
    rows = []
    for seed in range(args.seeds):
        rows.append(run_seed(seed, train, test, features, floor, args))
        print(f"done: seed {seed}", file=sys.stderr, flush=True)
    columns = [c for c in rows[0] if c != "shares"]
    print(format_table(rows, columns))
    print("target: 10/10 classes, max share <= 0.15")
    payload = {"reference": reference, "rows": rows, "args": vars(args)}
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
