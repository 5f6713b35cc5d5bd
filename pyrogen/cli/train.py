"""``pyrogen train {rbm,vae,gan}``: train a model on the bundled digits (or your own data).

``--data`` picks the images (:mod:`pyrogen.cli._data`): ``digits`` (default), ``mnist5k``, or
a ``.npz`` / IDX file; the model's width follows the data (64 pixels for the digits, 784 for
MNIST).

Under ``torchrun --nproc_per_node N -m pyrogen.cli train ...`` the training is split across
the N processes (:mod:`pyrogen.distributed`: same global batches, averaged gradients) and
rank 0 alone evaluates the model and writes the output directory.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from pyrogen.cli._common import CLIError, add_common_options, prepare_out_dir, resolve_device
from pyrogen.cli._data import add_data_options, load_data, require_binary
from pyrogen.data import DIGITS_SHAPE, ImageSplit
from pyrogen.distributed import get_world_size, is_main_process
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
        "report the held-out log-likelihood: exact where enumerating the smaller layer is "
        "affordable, otherwise bracketed between reverse AIS and AIS (flagged when the two "
        "ends disagree or the bracket is wide).",
        epilog="Example: pyrogen train rbm --hidden 16 --epochs 100 --out runs/rbm\n"
        "         pyrogen train rbm --data mnist5k --hidden 64 --epochs 20 --out runs/rbm784",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rbm.add_argument("--hidden", type=int, default=16, help="hidden units (default 16)")
    rbm.add_argument("--epochs", type=int, default=100, help="epochs (default 100)")
    rbm.add_argument("--algorithm", choices=["cd", "pcd"], default="pcd")
    rbm.add_argument("--k", type=int, default=1, help="Gibbs sweeps per update (default 1)")
    rbm.add_argument("--lr", type=float, default=None, help="learning rate (default: fit's)")
    rbm.add_argument(
        "--ais-chains",
        type=int,
        default=100,
        help="runs of each estimator of the log-likelihood bracket (default 100)",
    )
    rbm.add_argument(
        "--ais-temperatures",
        type=int,
        default=None,
        help="equally spaced temperatures of the bracket's estimators (default: Salakhutdinov "
        "& Murray's schedule of 14,501; about 40 s per estimator at 784x500)",
    )
    add_common_options(rbm, "runs/rbm")
    add_data_options(rbm)
    rbm.set_defaults(handler=train_rbm)

    vae = models.add_parser(
        "vae",
        help="variational autoencoder (SVI)",
        description="Train a Bernoulli VAE on binarized images (--data, default the digits) "
        "with Pyro's SVI; report the held-out ELBO and importance-weighted log-likelihood.",
        epilog="Example: pyrogen train vae --latent-dim 8 --epochs 100 --out runs/vae\n"
        "         pyrogen train vae --data mnist.npz --key x_train --test-key x_test",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    vae.add_argument("--latent-dim", type=int, default=8, help="latent dimension (default 8)")
    vae.add_argument("--z-dim", type=int, default=None, help="deprecated spelling of --latent-dim")
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
        description="Train the MLP GAN of pyrogen.gan.gan_recipe for the data's width "
        "(non-saturating loss, R1 penalty) on binarized images (--data, default the digits); "
        "report the Frechet distance of its samples to the test split: digits features on "
        "8x8 images, a 28x28 classifier trained on the labels for 784-pixel images with "
        "labels (mnist5k, with class coverage); skipped otherwise.",
        epilog="Example: pyrogen train gan --steps 4000 --out runs/gan\n"
        "         pyrogen train gan --data mnist5k --steps 6000 --out runs/gan784",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gan.add_argument(
        "--latent-dim",
        type=int,
        default=None,
        help="latent dimension (default: the recipe's, 8 for 8x8 and 32 for 28x28)",
    )
    gan.add_argument("--steps", type=int, default=4000, help="generator steps (default 4000)")
    gan.add_argument(
        "--loss",
        choices=["nonsaturating", "minimax"],
        default=None,
        help="generator loss (default: the recipe's, nonsaturating)",
    )
    gan.add_argument("--lr", type=float, default=None, help="Adam step (default: the recipe's)")
    gan.add_argument(
        "--r1-penalty",
        type=float,
        default=None,
        help="weight of the R1 penalty on the discriminator (default: the recipe's, 3; 0 "
        "disables it, and the game then collapses on binarized digits)",
    )
    add_common_options(gan, "runs/gan")
    add_data_options(gan)
    gan.set_defaults(handler=train_gan)


def train_rbm(args: argparse.Namespace) -> int:
    from pyrogen.rbm import RBM, fit, salakhutdinov_murray_betas
    from pyrogen.tour.rbm_stage import bracket_text, held_out_likelihood

    for option, value, minimum in (
        ("--ais-chains", args.ais_chains, 1),
        ("--ais-temperatures", args.ais_temperatures, 2),
    ):
        if value is not None and value < minimum:
            raise CLIError(f"{option} must be >= {minimum}, got {value}")
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
    processes, main = _leave_group()
    if not main:  # under torchrun: rank 0 evaluates and writes, alone
        return 0
    rbm.requires_grad_(False)
    # Exact where enumeration is affordable (then no bracket is computed), else the bracket.
    likelihood = held_out_likelihood(
        rbm,
        test,
        train,
        num_chains=args.ais_chains,
        num_temperatures=args.ais_temperatures,
        seed=args.seed,
        progress=not args.no_progress,
    )
    rbm.save(out / "rbm.safetensors")
    bounds = likelihood["bounds"]
    temperatures = args.ais_temperatures or len(salakhutdinov_murray_betas())
    summary = {
        "model": "rbm",
        **_data_summary(data),
        "n_visible": width,
        "n_hidden": args.hidden,
        "epochs": len(history),
        "interrupted": history.interrupted,
        "train_seconds": train_time,
        # The exact value, or None: then the bracket below is the result.
        "held_out_log_likelihood": likelihood["held_out_log_likelihood"],
        "log_likelihood_bounds": bounds,
        "log_likelihood_reliable": likelihood["reliability"]["converged"],
        "log_partition": likelihood["log_partition"],
        "log_partition_method": likelihood["method"],
        "ais_chains": None if bounds is None else args.ais_chains,
        "ais_temperatures": None if bounds is None else temperatures,
        "likelihood_seconds": likelihood["seconds"],
        "seed": args.seed,
        "device": str(device),
        "num_processes": processes,
    }
    _write_summary(out, history, summary)
    if bounds is None:
        result = f"log-likelihood {likelihood['held_out_log_likelihood']:.3f} nats/image (exact)"
    else:
        flag = "" if bounds["reliable"] else " [UNRELIABLE: " + "; ".join(bounds["problems"]) + "]"
        result = f"{bracket_text(bounds)} (AIS/reverse-AIS bracket){flag}"
    print(
        f"RBM {width}x{args.hidden} on {data.name}: {len(history)} epochs in "
        f"{train_time:.1f} s; held-out {result}; saved to {out / 'rbm.safetensors'}"
    )
    return 0


def _leave_group() -> tuple[int, bool]:
    """After training: ``(number of processes it ran on, whether this is rank 0)``.

    A distributed run's process group is closed here, so that rank 0 evaluates the model
    as a single process (the samplers it calls would otherwise wait for the other ranks)
    and alone writes the output files.
    """
    processes, main = get_world_size(), is_main_process()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return processes, main


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

    if args.z_dim is not None:
        print(
            "pyrogen train vae: --z-dim is deprecated and will be removed in the next release; "
            "use --latent-dim",
            file=sys.stderr,
        )
        args.latent_dim = args.z_dim
    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    data = load_data(args)
    require_binary(data, "Bernoulli VAE")
    train, test = data.train.to(device), data.test.to(device)
    with forked_global_rng(args.seed, device):
        vae = VAE(data.num_pixels, args.latent_dim, hidden=tuple(args.hidden), device=device)
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
    processes, main = _leave_group()
    if not main:  # under torchrun: rank 0 evaluates and writes, alone
        return 0
    iwae = float(log_likelihood(vae, test, num_samples=args.iwae_samples, seed=args.seed).mean())
    vae.save(out / "vae.safetensors")
    summary = {
        "model": "vae",
        **_data_summary(data),
        "n_visible": data.num_pixels,
        "latent_dim": args.latent_dim,
        "z_dim": args.latent_dim,  # the key of earlier releases
        "hidden": args.hidden,
        "epochs": len(history),
        "interrupted": history.interrupted,
        "train_seconds": train_time,
        "held_out_elbo": history.last("validation_elbo") if "validation_elbo" in history else None,
        "held_out_log_likelihood_iwae": iwae,
        "iwae_samples": args.iwae_samples,
        "seed": args.seed,
        "device": str(device),
        "num_processes": processes,
    }
    _write_summary(out, history, summary)
    print(
        f"VAE {data.num_pixels}->z={args.latent_dim} on {data.name}: {len(history)} epochs in "
        f"{train_time:.1f} s; held-out IWAE (K={args.iwae_samples}) log-likelihood "
        f"{iwae:.3f} nats/image; saved to {out / 'vae.safetensors'}"
    )
    return 0


def _frechet_features(data: ImageSplit, train: torch.Tensor, seed: int, device: torch.device):
    """``(features, name, note)``: the built-in feature map for the data, or None and why not."""
    from pyrogen.metrics import frechet_features

    if data.image_shape == DIGITS_SHAPE:
        return frechet_features(64, device=device), "digits", None
    if data.num_pixels == 28 * 28 and data.train_labels is not None:
        labels = data.train_labels.to(device)
        return frechet_features(784, train, labels, seed=seed, device=device), "mnist", None
    if data.num_pixels == 28 * 28:
        note = "no Frechet distance: the 28x28 features need labelled images (e.g. mnist5k)"
    else:
        note = (
            f"no Frechet distance: built-in features exist for 8x8 digits and labelled 28x28 "
            f"images, not {data.num_pixels}-pixel ones"
        )
    return None, None, note


def train_gan(args: argparse.Namespace) -> int:
    from pyrogen.gan import fit, gan_recipe
    from pyrogen.metrics import class_coverage, frechet_distance

    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    data = load_data(args)
    train, test = data.train.to(device), data.test.to(device)
    with forked_global_rng(args.seed, device):
        recipe = gan_recipe(data.num_pixels, args.latent_dim, device=device)
    gan = recipe.gan
    settings = dict(recipe.fit_kwargs)
    for key, value in (("loss", args.loss), ("lr", args.lr), ("r1_penalty", args.r1_penalty)):
        if value is not None:
            settings[key] = value
    tic = time.perf_counter()
    history = fit(
        gan,
        train,
        steps=args.steps,
        seed=args.seed,
        progress=not args.no_progress,
        **settings,
    )
    train_time = time.perf_counter() - tic
    processes, main = _leave_group()
    if not main:  # under torchrun: rank 0 evaluates and writes, alone
        return 0
    gan.requires_grad_(False)
    features, feature_name, note = _frechet_features(data, train, args.seed, device)
    fd, coverage = None, None
    if features is not None:
        generator = make_generator(args.seed, device)
        samples = gan.generator.sample(len(test), generator=generator)
        fd = float(frechet_distance(samples, test, features))
        if feature_name == "mnist":
            c = class_coverage(features, samples)
            coverage = {
                "kl_to_uniform": c.kl_to_uniform,
                "max_share": c.max_share,
                "num_covered": c.num_covered,
                "num_classes": int(c.counts.numel()),
            }
    gan.save(out / "gan.safetensors")
    summary = {
        "model": "gan",
        **_data_summary(data),
        "n_visible": data.num_pixels,
        "latent_dim": gan.generator.latent_dim,
        "steps": args.steps,
        "loss": settings["loss"],
        "r1_penalty": settings["r1_penalty"],
        "fit_settings": {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()},
        "interrupted": history.interrupted,
        "train_seconds": train_time,
        "frechet_distance": fd,
        "frechet_features": feature_name,
        "frechet_note": note,
        # Kept for readers of older summaries: the distance under the 8x8 digits features.
        "frechet_digits_distance": fd if feature_name == "digits" else None,
        "class_coverage": coverage,
        "seed": args.seed,
        "device": str(device),
        "num_processes": processes,
    }
    _write_summary(out, history, summary)
    if fd is None:
        quality = note
    else:
        quality = f"Frechet {feature_name} distance to the test split {fd:.3f}"
    if coverage is not None:
        quality += (
            f", {coverage['num_covered']} of {coverage['num_classes']} classes covered "
            f"(largest share {coverage['max_share']:.1%})"
        )
    print(
        f"GAN latent={gan.generator.latent_dim} on {data.name}: {args.steps} steps in "
        f"{train_time:.1f} s; {quality}; saved to {out / 'gan.safetensors'}"
    )
    return 0
