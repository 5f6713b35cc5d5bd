"""The ``pyrogen`` command line: ``pyrogen --help`` lists the commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pyrogen.cli import bench, diagnose, sample, train
from pyrogen.cli._common import CLIError

__all__ = ["build_parser", "main"]

_COMMANDS = [train, sample, bench, diagnose]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyrogen",
        description="RBMs, VAEs and GANs as first-class citizens of Pyro.",
        epilog="Example: pyrogen train rbm --hidden 16 --epochs 100 --out runs/rbm",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from pyrogen import __version__

    parser.add_argument("--version", action="version", version=f"pyrogen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyrogen`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
