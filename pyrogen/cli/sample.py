"""``pyrogen sample PATH``: draw samples from a saved RBM, VAE or GAN."""

from __future__ import annotations

import argparse
import json

import torch

from pyrogen.cli._common import CLIError, add_common_options, prepare_out_dir, resolve_device
from pyrogen.distributed import is_main_process
from pyrogen.io import atomic_write_bytes
from pyrogen.seeding import make_generator

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sample",
        help="draw samples from a saved model",
        description="Draw samples from a model saved by 'pyrogen train' (RBM: vectorised block "
        "Gibbs chains, saved as netCDF for 'pyrogen diagnose'; VAE and GAN: ancestral "
        "samples). Writes samples.safetensors and samples.png.",
        epilog="Example: pyrogen sample runs/rbm/rbm.safetensors --num-samples 64 --out runs/s",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="a .safetensors file written by pyrogen")
    parser.add_argument("--num-samples", type=int, default=64, help="samples (RBM: chains)")
    parser.add_argument("--warmup", type=int, default=1000, help="RBM: Gibbs sweeps discarded")
    parser.add_argument("--draws", type=int, default=200, help="RBM: sweeps kept per chain")
    add_common_options(parser, "runs/sample")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pyrogen.io import read_kind
    from pyrogen.tour.figures import image_grid

    if args.num_samples < 1 or args.draws < 4 or args.warmup < 0:
        raise CLIError("--num-samples must be >= 1, --draws >= 4 and --warmup >= 0")
    kind = read_kind(args.path)
    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)
    generator = make_generator(args.seed, device)
    info: dict[str, object] = {"path": args.path, "kind": kind, "seed": args.seed}
    if kind == "RBM":
        from pyrogen import diagnostics
        from pyrogen.infer import BlockGibbs, sample
        from pyrogen.rbm import RBM

        rbm = RBM.load(args.path, device=device)
        idata = sample(
            BlockGibbs(rbm),
            num_chains=args.num_samples,
            num_samples=args.draws,
            warmup_steps=args.warmup,
            seed=args.seed,
            progress=not args.no_progress,
        )
        if idata is None:  # under torchrun: the chains were gathered on rank 0
            return 0
        diagnostics.save(idata, out / "chains.nc")
        samples = torch.as_tensor(idata.posterior["v"].values[:, -1])
        info["chains"] = str(out / "chains.nc")
    elif not is_main_process():  # ancestral samples are cheap: rank 0 draws them alone
        return 0
    elif kind == "VAE":
        from pyrogen.vae import VAE

        vae = VAE.load(args.path, device=device)
        samples = vae.sample(args.num_samples, generator=generator)
    elif kind in ("GAN", "ImplicitModel"):
        from pyrogen.gan import GAN, ImplicitModel

        model = GAN.load(args.path).generator if kind == "GAN" else ImplicitModel.load(args.path)
        samples = model.to(device).sample(args.num_samples, generator=generator)
    else:
        raise CLIError(f"PATH holds a {kind!r}; 'pyrogen sample' takes an RBM, VAE or GAN")
    from safetensors.torch import save_file

    from pyrogen.io import atomic_path

    with atomic_path(out / "samples.safetensors") as tmp:
        save_file({"samples": samples.detach().cpu().contiguous()}, tmp)
    if samples.shape[-1] == 64:
        image_grid([(f"{kind} samples", samples[:64])], out / "samples.png")
    atomic_write_bytes(out / "sample.json", json.dumps(info, indent=2).encode())
    print(f"{kind}: {samples.shape[0]} samples written to {out / 'samples.safetensors'}")
    return 0
