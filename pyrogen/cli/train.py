"""``pyrogen train {rbm,vae,gan}``: train a model on the bundled digits (or your own data)."""

from __future__ import annotations

import argparse
import json
import time

import torch

from pyrogen.cli._common import add_common_options, prepare_out_dir, resolve_device
from pyrogen.io import atomic_write_bytes

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


def train_rbm(args: argparse.Namespace) -> int:
    from pyrogen.data import load_digits
    from pyrogen.rbm import RBM, ais, fit

    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    train, test = load_digits(seed=args.seed)
    train, test = train.to(device), test.to(device)
    torch.manual_seed(args.seed)
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
    atomic_write_bytes(out / "history.json", json.dumps(history.to_dict(), indent=1).encode())
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
    se = f" +/- {stderr:.3f} (AIS)" if method == "ais" else " (exact)"
    print(
        f"RBM 64x{args.hidden}: {len(history)} epochs in {train_time:.1f} s; held-out "
        f"log-likelihood {held_out:.3f} nats/image{se}; saved to {out / 'rbm.safetensors'}"
    )
    return 0
