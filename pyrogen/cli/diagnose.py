"""``pyrogen diagnose PATH``: ArviZ summary and plots of chains saved as netCDF.

PATH is read into an ``xarray.DataTree`` (:func:`pyrogen.diagnostics.load`): files written
by pyrogen, by ArviZ 1.x (``DataTree.to_netcdf``) and by ArviZ 0.x
(``InferenceData.to_netcdf``) share one layout, a netCDF group per ArviZ group. R-hat, ESS
and MCSE come from arviz-stats, the plots from arviz-plots.

The last lines say whether the chains pass the reliability thresholds of
:func:`pyrogen.convergence.check_convergence` (max R-hat <= 1.01, min bulk ESS >= 100, mean
acceptance >= 5% when recorded); when they do not, a :class:`~pyrogen.ConvergenceWarning`
goes to stderr as well and the output says the chains are not a posterior estimate.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pyrogen.cli._common import CLIError, prepare_out_dir
from pyrogen.convergence import ACCEPT_MIN, ESS_MIN, R_HAT_MAX, check_convergence

__all__ = ["register"]


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "diagnose",
        help="summarise and plot saved chains (netCDF)",
        description="Print R-hat, bulk/tail ESS, MCSE and ESS per second of chains saved as "
        "netCDF by any pyrogen command (or ArviZ 0.x/1.x), say whether they pass the "
        "convergence thresholds (max R-hat <= 1.01, min bulk ESS >= 100, mean acceptance "
        ">= 5%), and write trace/rank/autocorrelation/ESS-evolution plots.",
        epilog="Example: pyrogen diagnose runs/sample/chains.nc --var v --out runs/diag",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("path", help="netCDF file written by pyrogen (or ArviZ 0.x/1.x)")
    parser.add_argument("--var", nargs="+", default=None, help="variables to include")
    parser.add_argument(
        "--out",
        default=None,
        help="directory for diagnostics.png and summary.csv (default: next to PATH)",
    )
    parser.add_argument("--max-rows", type=int, default=20, help="rows of the printed table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pyrogen import diagnostics

    path = Path(args.path)
    if not path.is_file():
        raise CLIError(f"PATH {args.path!r} does not exist or is not a file")
    out = prepare_out_dir(args.out or str(path.parent))
    try:
        idata = diagnostics.load(path)
    except (OSError, ValueError) as err:
        raise CLIError(
            f"PATH {args.path!r} is not a readable netCDF file of chains ({err})"
        ) from None
    if "posterior" not in idata.children:
        raise CLIError(
            f"PATH {args.path!r} has no posterior group (it holds {list(idata.children)}); "
            "expected chains saved by pyrogen or ArviZ"
        )
    try:
        table = diagnostics.summarize(idata, var_names=args.var)
    except (KeyError, ValueError) as err:
        raise CLIError(f"--var names a variable that is not in {args.path!r}: {err}") from None
    with_rows = table.head(args.max_rows)
    print(with_rows.to_string(float_format=lambda x: f"{x:.4g}"))
    if len(table) > args.max_rows:
        print(f"... {len(table) - args.max_rows} more rows in summary.csv")
    worst = diagnostics.worst_case(table)
    print(", ".join(f"{k} {v:.4g}" for k, v in worst.items()))
    names = ", ".join(args.var) if args.var else "all variables"
    reliability = check_convergence(idata, f"chains in {path.name} ({names})", var_names=args.var)
    thresholds = (
        f"max R-hat <= {R_HAT_MAX}, min bulk ESS >= {ESS_MIN:g}, mean acceptance >= {ACCEPT_MIN:g}"
    )
    if reliability.converged:
        measured = (
            f"max R-hat {reliability.max_r_hat:.4g}, min bulk ESS {reliability.min_ess_bulk:.4g}"
        )
        if reliability.acceptance is not None:
            measured += f", mean acceptance {reliability.acceptance:.3g}"
        print(f"convergence: PASS, {measured} (thresholds: {thresholds})")
    else:
        print(f"convergence: FAIL, {reliability.label} (thresholds: {thresholds})")
        print(
            "these chains are not a reliable posterior estimate: run longer chains or use a "
            "better-mixing sampler"
        )
    table.to_csv(out / "summary.csv")
    diagnostics.plot_diagnostics(idata, out / "diagnostics.png", var_names=args.var)
    print(f"wrote {out / 'summary.csv'} and {out / 'diagnostics.png'}")
    return 0
