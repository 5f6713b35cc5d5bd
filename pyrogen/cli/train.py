"""``pyrogen train {rbm,vae,gan}``: train a model on the bundled digits (or your own data).

``--data`` picks the images (:mod:`pyrogen.cli._data`): ``digits`` (default), ``mnist5k``, or
a ``.npz`` / IDX file; the model's width follows the data (64 pixels for the digits, 784 for
MNIST).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pyrogen.cli._common import add_common_options, prepare_out_dir, resolve_device
from pyrogen.cli._data import add_data_options, load_data, require_binary
from pyrogen.data import DIGITS_SHAPE, ImageSplit
from pyrogen.io import atomic_write_bytes
from pyrogen.seeding import forked_global_rng, make_generator

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train an RBM, VAE or GAN",
        description="Train a model and save it: on the bundled 8x8 digits by default, on "
        "5,000 real MNIST digits with --data mnist5k, or on your own .npz / IDX file with "
        "--data PATH (the model's width follows the images).",
    )
    models = train.add_subparsers(dest="model", metavar="MODEL", required=True)
    rbm = models.add_parser(
        "rbm",
        help="restricted Boltzmann machine (CD/PCD)",
        description="Train a binary RBM on binarized images (--data, default the digits); "
        "report the held-out log-likelihood (exact for small hidden layers, AIS otherwise).",
        epilog="Example: pyrogen train rbm --hidden 16 --epochs 100 --out runs/rbm\n"
        "         pyrogen train rbm --data mnist5k --hidden 64 --epochs 20 --out runs/rbm784",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rbm.add_argument("--hidden", type=int, default=16, help="hidden units (default 16)")
    rbm.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    rbm.add_argument("--algorithm", choices=["cd", "pcd"], default="pcd")
    rbm.add_argument("--k", type=int, default=1, help="Gibbs sweeps per update (default 1)")
    rbm.add_argument("--lr", type=float, default=None, help="learning rate (default: fit's)")
    add_common_options(rbm, "runs/rbm")
    add_data_options(rbm)
    rbm.set_defaults(handler=train_rbm)

    vae = models.add_parser(
        "vae",
        help="variational autoencoder (SVI)",
        description="Train a Bernoulli VAE on binarized images (--data, default the digits) "
        "with Pyro's SVI; report the held-out ELBO and importance-weighted log-likelihood.",
        epilog="Example: pyrogen train vae --z-dim 8 --epochs 100 --out runs/vae\n"
        "         pyrogen train vae --data mnist.npz --key x_train --test-key x_test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vae.add_argument("--z-dim", type=int, default=8, help="latent dimension (default 8)")
    vae.add_argument("--hidden", type=int, nargs="+", default=[256], help="hidden widths")
    vae.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    vae.add_argument("--batch-size", type=int, default=128)
    vae.add_argument("--lr", type=float, default=1e-3)
    vae.add_argument("--iwae-samples", type=int, default=500, help="K of the IWAE estimate")
    add_common_options(vae, "runs/vae")
    add_data_options(vae)
    vae.set_defaults(handler=train_vae)

    gan = models.add_parser(
        "gan",
        help="generative adversarial network",
        description="Train an MLP GAN (non-saturating loss) on binarized images (--data, "
        "default the digits); report the Frechet digits distance of its samples to the test "
        "split (8x8 digits only).",
        epilog="Example: pyrogen train gan --steps 4000 --out runs/gan",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gan.add_argument("--latent-dim", type=int, default=8, help="latent dimension (default 8)")
    gan.add_argument("--steps", type=int, default=4000, help="generator steps (default 4000)")
    gan.add_argument("--loss", choices=["nonsaturating", "minimax"], default="nonsaturating")
    gan.add_argument("--lr", type=float, default=2e-4)
    gan.add_argument(
        "--r1-penalty",
        type=float,
        default=None,
        help="weight of the R1 penalty on the discriminator (default: the digits recipe's, "
        "3; 0 disables it, and the game then collapses on binarized digits)",
    )
    add_common_options(gan, "runs/gan")
    add_data_options(gan)
    gan.set_defaults(handler=train_gan)


def train_rbm(args: argparse.Namespace) -> int:
    from pyrogen.rbm import RBM, ais, fit

    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    data = load_data(args)
    require_binary(data, "RBM")
    train, test = data.train.to(device), data.test.to(device)
    width = data.num_pixels
    # Initial weights come from the global RNG: seed a fork of it (pyrogen.seeding's rule).
    with forked_global_rng(args.seed, device):
        rbm = RBM(width, args.hidden, device=device)
    kwargs = {} if args.lr is None else {"lr": args.lr}
    tic = time.perf_counter()
    history = fit(
        rbm,
        train,
        algorithm=args.algorithm,
        k=args.k,
        epochs=args.epochs,
        seed=args.seed,
        validation=test,
        progress=not args.no_progress,
        **kwargs,
    )
    train_time = time.perf_counter() - tic
    if args.hidden <= 20:
        log_z, stderr, method = float(rbm.log_partition()), 0.0, "exact"
    else:
        result = ais(rbm, num_chains=200, num_temperatures=3000, data=train, seed=args.seed)
        log_z, stderr, method = float(result.log_z), float(result.stderr), "ais"
    with torch.no_grad():
        held_out = float((-rbm.free_energy(test) - log_z).mean())
    rbm.save(out / "rbm.safetensors")
    summary = {
        "model": "rbm",
        **_data_summary(data),
        "n_visible": width,
        "n_hidden": args.hidden,
        "epochs": len(history),
        "interrupted": history.interrupted,
        "train_seconds": train_time,
        "held_out_log_likelihood": held_out,
        "log_partition": log_z,
        "log_partition_stderr": stderr,
        "log_partition_method": method,
        "seed": args.seed,
        "device": str(device),
    }
    _write_summary(out, history, summary)
    se = f" +/- {stderr:.3f} (AIS)" if method == "ais" else " (exact)"
    print(
        f"RBM {width}x{args.hidden} on {data.name}: {len(history)} epochs in "
        f"{train_time:.1f} s; held-out log-likelihood {held_out:.3f} nats/image{se}; "
        f"saved to {out / 'rbm.safetensors'}"
    )
    return 0


def _data_summary(data: ImageSplit) -> dict[str, object]:
    return {
        "data": data.name,
        "data_description": data.description,
        "image_shape": list(data.image_shape),
        "n_train": len(data.train),
        "n_test": len(data.test),
    }


def _write_summary(out, history, summary: dict) -> None:
    atomic_write_bytes(out / "history.json", json.dumps(history.to_dict(), indent=1).encode())
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())


def train_vae(args: argparse.Namespace) -> int:
    from pyrogen.vae import VAE, fit, log_likelihood

    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    data = load_data(args)
    require_binary(data, "Bernoulli VAE")
    train, test = data.train.to(device), data.test.to(device)
    with forked_global_rng(args.seed, device):
        vae = VAE(data.num_pixels, args.z_dim, hidden=tuple(args.hidden), device=device)
    tic = time.perf_counter()
    history = fit(
        vae,
        train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        validation=test,
        progress=not args.no_progress,
    )
    train_time = time.perf_counter() - tic
    iwae = float(log_likelihood(vae, test, num_samples=args.iwae_samples, seed=args.seed).mean())
    vae.save(out / "vae.safetensors")
    summary = {
        "model": "vae",
        **_data_summary(data),
        "n_visible": data.num_pixels,
        "z_dim": args.z_dim,
        "hidden": args.hidden,
        "epochs": len(history),
        "interrupted": history.interrupted,
        "train_seconds": train_time,
        "held_out_elbo": history.last("validation_elbo") if "validation_elbo" in history else None,
        "held_out_log_likelihood_iwae": iwae,
        "iwae_samples": args.iwae_samples,
        "seed": args.seed,
        "device": str(device),
    }
    _write_summary(out, history, summary)
    print(
        f"VAE {data.num_pixels}->z={args.z_dim} on {data.name}: {len(history)} epochs in "
        f"{train_time:.1f} s; held-out IWAE (K={args.iwae_samples}) log-likelihood "
        f"{iwae:.3f} nats/image; saved to {out / 'vae.safetensors'}"
    )
    return 0


def _mlp_gan(latent_dim: int, width: int, device: torch.device):
    """:func:`pyrogen.tour.models.digits_gan`'s architecture for ``width`` pixels."""
    # TODO(issue 10): use the GAN recipe of pyrogen.tour.models once it takes a width.
    from pyrogen.gan import GAN, ImplicitModel, mlp_discriminator, mlp_generator

    hidden = (256, 256)
    generator = ImplicitModel(
        mlp_generator(latent_dim, width, hidden=hidden, output="sigmoid"), latent_dim
    )
    return GAN(generator, mlp_discriminator(width, hidden=hidden)).to(device)


def train_gan(args: argparse.Namespace) -> int:
    from pyrogen.gan import fit
    from pyrogen.metrics import digits_features, frechet_distance
    from pyrogen.tour.models import DIGITS_GAN_FIT, digits_gan

    recipe = dict(DIGITS_GAN_FIT)
    if args.r1_penalty is not None:
        recipe["r1_penalty"] = args.r1_penalty
    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    data = load_data(args)
    train, test = data.train.to(device), data.test.to(device)
    # The Frechet digits distance's features are a classifier of 8x8 digits.
    digits = data.image_shape == DIGITS_SHAPE
    with forked_global_rng(args.seed, device):
        if digits:
            gan = digits_gan(args.latent_dim, device=device)
        else:
            gan = _mlp_gan(args.latent_dim, data.num_pixels, device)
    tic = time.perf_counter()
    history = fit(
        gan,
        train,
        loss=args.loss,
        steps=args.steps,
        lr=args.lr,
        seed=args.seed,
        progress=not args.no_progress,
        **recipe,
    )
    train_time = time.perf_counter() - tic
    fd = None
    if digits:
        generator = make_generator(args.seed, device)
        samples = gan.generator.sample(len(test), generator=generator)
        features = digits_features(device=device)
        fd = float(frechet_distance(samples, test, features))
    gan.save(out / "gan.safetensors")
    summary = {
        "model": "gan",
        **_data_summary(data),
        "n_visible": data.num_pixels,
        "latent_dim": args.latent_dim,
        "steps": args.steps,
        "loss": args.loss,
        "r1_penalty": recipe["r1_penalty"],
        "interrupted": history.interrupted,
        "train_seconds": train_time,
        "frechet_digits_distance": fd,
        "seed": args.seed,
        "device": str(device),
    }
    _write_summary(out, history, summary)
    quality = (
        f"Frechet digits distance to the test split {fd:.3f}"
        if fd is not None
        else "no Frechet digits distance (its features are for 8x8 digits)"
    )
    print(
        f"GAN latent={args.latent_dim} on {data.name}: {args.steps} steps in "
        f"{train_time:.1f} s; {quality}; saved to {out / 'gan.safetensors'}"
    )
    return 0
