"""Options and checks shared by the CLI commands."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch

from pyrogen.distributed import local_device

__all__ = ["CLIError", "add_common_options", "prepare_out_dir", "resolve_device"]


class CLIError(Exception):
    """A user error reported as one line and exit status 2."""


def add_common_options(parser: argparse.ArgumentParser, out_default: str) -> None:
    """``--out``, ``--seed``, ``--device``, ``--no-progress``."""
    parser.add_argument(
        "--out", default=out_default, help=f"output directory (default {out_default})"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def resolve_device(name: str) -> torch.device:
    """Check that ``name`` is a usable torch device."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise CLIError(f"--device {name!r} is not a torch device ({err})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name!r} asked for CUDA, but torch sees no GPU")
    if device.type not in ("cpu", "cuda"):
        raise CLIError(f"--device must be cpu or cuda[:N], got {name!r}")
    # Under torchrun, a bare "cuda" means this process's GPU, cuda:LOCAL_RANK (untested).
    return local_device(device)


def prepare_out_dir(path: str) -> Path:
    """Create ``path`` (a directory) or fail *before* any work if it cannot be written."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {path!r} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        raise CLIError(f"--out {path!r} is not writable ({err.strerror or err})") from None
    if not os.access(out, os.W_OK):
        raise CLIError(f"--out {path!r} is not writable")
    return out
