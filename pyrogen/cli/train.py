"""``pyrogen train {rbm,vae,gan}``: train a model on the bundled digits (or your own data)."""

from __future__ import annotations

import argparse
import json
import time

import torch

from pyrogen.cli._common import add_common_options, prepare_out_dir, resolve_device
from pyrogen.io import atomic_write_bytes
from pyrogen.seeding import forked_global_rng, make_generator

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train",
        help="train an RBM, VAE or GAN",
        description="Train a model on the bundled 8x8 digits and save it.",
    )
    models = train.add_subparsers(dest="model", metavar="MODEL", required=True)
    rbm = models.add_parser(
        "rbm",
        help="restricted Boltzmann machine (CD/PCD)",
        description="Train a binary RBM on the binarized digits; report the held-out "
        "log-likelihood (exact for small hidden layers, AIS otherwise).",
        epilog="Example: pyrogen train rbm --hidden 16 --epochs 100 --out runs/rbm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rbm.add_argument("--hidden", type=int, default=16, help="hidden units (default 16)")
    rbm.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    rbm.add_argument("--algorithm", choices=["cd", "pcd"], default="pcd")
    rbm.add_argument("--k", type=int, default=1, help="Gibbs sweeps per update (default 1)")
    rbm.add_argument("--lr", type=float, default=None, help="learning rate (default: fit's)")
    add_common_options(rbm, "runs/rbm")
    rbm.set_defaults(handler=train_rbm)

    vae = models.add_parser(
        "vae",
        help="variational autoencoder (SVI)",
        description="Train a Bernoulli VAE on the binarized digits with Pyro's SVI; report the "
        "held-out ELBO and importance-weighted log-likelihood.",
        epilog="Example: pyrogen train vae --z-dim 8 --epochs 100 --out runs/vae",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vae.add_argument("--z-dim", type=int, default=8, help="latent dimension (default 8)")
    vae.add_argument("--hidden", type=int, nargs="+", default=[256], help="hidden widths")
    vae.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    vae.add_argument("--batch-size", type=int, default=128)
    vae.add_argument("--lr", type=float, default=1e-3)
    vae.add_argument("--iwae-samples", type=int, default=500, help="K of the IWAE estimate")
    add_common_options(vae, "runs/vae")
    vae.set_defaults(handler=train_vae)

    gan = models.add_parser(
        "gan",
        help="generative adversarial network",
        description="Train an MLP GAN (non-saturating loss) on the binarized digits; report "
        "the Frechet digits distance of its samples to the test split.",
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
    gan.set_defaults(handler=train_gan)


def train_rbm(args: argparse.Namespace) -> int:
    from pyrogen.data import load_digits
    from pyrogen.rbm import RBM, ais, fit

    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    train, test = load_digits(seed=args.seed)
    train, test = train.to(device), test.to(device)
    # Initial weights come from the global RNG: seed a fork of it (pyrogen.seeding's rule).
    with forked_global_rng(args.seed, device):
        rbm = RBM(64, args.hidden, device=device)
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
        "n_visible": 64,
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
        f"RBM 64x{args.hidden}: {len(history)} epochs in {train_time:.1f} s; held-out "
        f"log-likelihood {held_out:.3f} nats/image{se}; saved to {out / 'rbm.safetensors'}"
    )
    return 0


def _write_summary(out, history, summary: dict) -> None:
    atomic_write_bytes(out / "history.json", json.dumps(history.to_dict(), indent=1).encode())
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())


def train_vae(args: argparse.Namespace) -> int:
    from pyrogen.data import load_digits
    from pyrogen.vae import VAE, fit, log_likelihood

    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    train, test = (t.to(device) for t in load_digits(seed=args.seed))
    with forked_global_rng(args.seed, device):
        vae = VAE(64, args.z_dim, hidden=tuple(args.hidden), device=device)
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
        f"VAE z={args.z_dim}: {len(history)} epochs in {train_time:.1f} s; held-out IWAE "
        f"(K={args.iwae_samples}) log-likelihood {iwae:.3f} nats/image; saved to "
        f"{out / 'vae.safetensors'}"
    )
    return 0


def train_gan(args: argparse.Namespace) -> int:
    from pyrogen.data import load_digits
    from pyrogen.gan import fit
    from pyrogen.metrics import digits_features, frechet_distance
    from pyrogen.tour.models import DIGITS_GAN_FIT, digits_gan

    recipe = dict(DIGITS_GAN_FIT)
    if args.r1_penalty is not None:
        recipe["r1_penalty"] = args.r1_penalty
    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    train, test = (t.to(device) for t in load_digits(seed=args.seed))
    with forked_global_rng(args.seed, device):
        gan = digits_gan(args.latent_dim, device=device)
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
    generator = make_generator(args.seed, device)
    samples = gan.generator.sample(len(test), generator=generator)
    features = digits_features(device=device)
    fd = float(frechet_distance(samples, test, features))
    gan.save(out / "gan.safetensors")
    summary = {
        "model": "gan",
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
    print(
        f"GAN latent={args.latent_dim}: {args.steps} steps in {train_time:.1f} s; Frechet "
        f"digits distance to the test split {fd:.3f}; saved to {out / 'gan.safetensors'}"
    )
    return 0
