"""``pyrogen tour``: the main job (RBM, VAE and GAN side by side, in one report)."""

from __future__ import annotations

import argparse

from pyrogen.cli._common import prepare_out_dir, resolve_device
from pyrogen.cli._data import add_data_options, load_data, require_binary

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "tour",
        help="train RBM, VAE and GAN on the digits and write a comparison report",
        description="Train an RBM, a VAE and a GAN on the bundled digits, sample them with "
        "pyrogen's kernels and Pyro's, and write report.md, report.html (self-contained) and "
        "metrics.json. Default sizes take under 5 minutes on 2 CPU cores; --quick under 1. "
        "--data trains every stage on other images (e.g. mnist5k, 28x28; much slower); "
        "the GAN's super-resolution (written for 8x8 digits) is then skipped, and Frechet "
        "distances use a 28x28 classifier trained on the labels (mnist5k) or are left out.",
        epilog="Example: pyrogen tour --quick --out runs/tour\n"
        "         pyrogen tour --quick --data mnist5k --max-train 1000 --out runs/tour784",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="runs/tour", help="output directory (default runs/tour)")
    parser.add_argument("--quick", action="store_true", help="small sizes (under a minute)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    add_data_options(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    out = prepare_out_dir(args.out)  # fails before any work on a bad --out
    data = load_data(args)  # and on bad --data
    require_binary(data, "tour's RBM and VAE")
    from pyrogen.tour import run_tour

    metrics = run_tour(
        out,
        quick=args.quick,
        device=device,
        seed=args.seed,
        progress=not args.no_progress,
        data=data,
    )
    print(
        f"tour finished in {metrics['run']['total_seconds']:.1f} s: "
        f"{out / 'report.html'}, {out / 'report.md'}, {out / 'metrics.json'}"
    )
    return 0
