"""The ``pyrogen`` command line: ``pyrogen --help`` lists the commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import torch

from pyrogen import distributed
from pyrogen.cli import bench, diagnose, sample, tour, train
from pyrogen.cli._common import CLIError

__all__ = ["build_parser", "main"]

_COMMANDS = [tour, train, sample, bench, diagnose]
# Commands that use a torch.distributed group when launched by torchrun.
_DISTRIBUTED_COMMANDS = ("train", "sample")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyrogen",
        description="RBMs, VAEs and GANs as first-class citizens of Pyro.",
        epilog="Example: pyrogen train rbm --hidden 16 --epochs 100 --out runs/rbm\n"
        "More than one process: torchrun --nproc_per_node 2 -m pyrogen.cli train rbm ...",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from pyrogen import __version__

    parser.add_argument("--version", action="version", version=f"pyrogen {__version__}")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default 1, or OMP_NUM_THREADS if set): pyrogen's models are "
        "small, and extra threads mostly add synchronisation, badly so on a busy machine",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(commands)
    return parser


def _default_threads() -> int:
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrogen`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    threads = args.threads if args.threads is not None else _default_threads()
    if threads < 1:
        print("pyrogen: error: --threads must be >= 1", file=sys.stderr)
        return 2
    torch.set_num_threads(threads)
    try:
        # Under torchrun, 'train' and 'sample' split their work across the processes
        # (pyrogen.distributed); rank 0 alone writes the output files.
        if args.command in _DISTRIBUTED_COMMANDS and distributed.launched_by_torchrun():
            distributed.init_from_environment(getattr(args, "device", "cpu"))
        result = args.handler(args)
    except CLIError as err:
        print(f"pyrogen: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as err:
        print(f"pyrogen: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyrogen: interrupted", file=sys.stderr)
        return 130
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
