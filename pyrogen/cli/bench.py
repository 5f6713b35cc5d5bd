"""``pyrogen bench NAME`` (``mcmc``, ``rbm``, ``vae``, ``gan``, ``mixing``, ...): run a script of
``benchmarks/``."""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from pyrogen.cli._common import CLIError

__all__ = ["register", "BENCHMARKS"]

#: Benchmark name -> script in the repository's ``benchmarks/`` folder.
BENCHMARKS = {
    "mcmc": "mcmc_rbm.py",
    "rbm": "rbm_train.py",
    "rbm-mnist": "rbm_mnist.py",
    "vae-mnist": "vae_mnist.py",
    "gan-mnist": "gan_mnist.py",
    "vae": "vae_digits.py",
    "gan": "gan_toy.py",
    "superres": "gan_superres.py",
    "adversarial": "adversarial_digits.py",
    "mixing": "mixing.py",
    "discrete": "discrete.py",
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="run a benchmark (prints a table, writes JSON)",
        description="Run one of the benchmark scripts of the repository's benchmarks/ folder. "
        "Arguments after the name go to the script (see 'pyrogen bench NAME --help').",
        epilog="Example: pyrogen bench rbm --quick",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(BENCHMARKS), help="which benchmark")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="passed to the script")
    parser.set_defaults(handler=run)


def benchmarks_dir() -> Path:
    """The ``benchmarks/`` folder of the checkout pyrogen is installed from."""
    import pyrogen

    folder = Path(pyrogen.__file__).resolve().parent.parent / "benchmarks"
    if not folder.is_dir():
        raise CLIError(
            "the benchmarks/ folder is not next to the installed package; run 'pyrogen bench' "
            "from an editable install of a pyrogen checkout (pip install -e .)"
        )
    return folder


def run(args: argparse.Namespace) -> int:
    script = benchmarks_dir() / BENCHMARKS[args.name]
    if not script.is_file():
        raise CLIError(f"benchmark script {script} is missing")
    saved = sys.argv
    sys.argv = [str(script), *args.script_args]
    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:  # argparse --help / errors inside the script
        return int(exit_.code or 0) if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved
    return 0
