"""Tour stage: the MCMC section -- ESS/s and R-hat per kernel on a Gaussian-Bernoulli RBM."""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from pyro.infer import MCMC, NUTS

from pyrogen import diagnostics
from pyrogen.convergence import check_convergence
from pyrogen.infer import BlockGibbs, MetropolisHastings, sample
from pyrogen.rbm import RBM
from pyrogen.seeding import forked_global_rng, make_generator
from pyrogen.tour.config import TourConfig
from pyrogen.tour.context import TourContext
from pyrogen.tour.reliability import combine
from pyrogen.tour.report import Estimate, Report

__all__ = ["gaussian_rbm", "report_mcmc", "run_mcmc"]

#: Columns of the table that compare speeds: meaningless for chains that did not converge.
_SPEED = "x NUTS (bulk ESS/s)"


def gaussian_rbm(seed: int, device: torch.device, n_visible: int = 16, n_hidden: int = 8) -> RBM:
    """The benchmark's target: weights and biases N(0, 0.5^2), unit variance, frozen."""
    generator = make_generator(seed)
    with forked_global_rng(seed):  # RBM() draws its (overwritten) initial weights globally
        rbm = RBM(n_visible, n_hidden, likelihood="gaussian")
    with torch.no_grad():
        for param in rbm.parameters():
            param.copy_(0.5 * torch.randn(param.shape, generator=generator))
    return rbm.requires_grad_(False).to(device)


def _pyro_mcmc(kernel: Any, ctx: TourContext) -> Any:
    cfg = ctx.config
    # Pyro's MCMC draws from the global generator (its worker processes seed themselves from
    # torch.initial_seed()): run it on a seeded fork, leaving the caller's stream alone.
    with forked_global_rng(ctx.seed, ctx.device), warnings.catch_warnings():
        # Pyro: "num_chains=4 is more than available_cpu=1. Chains will be drawn sequentially."
        warnings.filterwarnings(
            "ignore", "num_chains=.*Chains will be drawn sequentially", UserWarning
        )
        mcmc = MCMC(
            kernel,
            num_samples=cfg.mcmc_samples,
            warmup_steps=cfg.mcmc_warmup,
            num_chains=cfg.mcmc_chains,
            disable_progbar=not ctx.progress,
        )
        tic = time.perf_counter()
        mcmc.run()
        wall = time.perf_counter() - tic
    return diagnostics.to_inference_data(mcmc, wall_time=wall, log_likelihood=False)


def _row(name: str, idata: Any) -> dict[str, Any]:
    worst = diagnostics.worst_case(diagnostics.summarize(idata, var_names=["v"]))
    chains, draws = idata.posterior["v"].shape[:2]
    return {
        "kernel": name,
        "chains": int(chains),
        "draws per chain": int(draws),
        "wall s": diagnostics.wall_time_of(idata),
        "min bulk ESS": worst["min_ess_bulk"],
        "min bulk ESS/s": worst["min_ess_bulk_per_s"],
        "min tail ESS/s": worst["min_ess_tail_per_s"],
        "max R-hat": worst["max_r_hat"],
    }


def run_mcmc(ctx: TourContext) -> None:
    cfg = ctx.config
    with ctx.stage("mcmc") as m:
        rbm = gaussian_rbm(ctx.seed, ctx.device)
        runs = {
            "pyrogen BlockGibbs (pyro.infer.MCMC)": _pyro_mcmc(BlockGibbs(rbm), ctx),
            "pyrogen MALA (pyro.infer.MCMC)": _pyro_mcmc(
                MetropolisHastings(rbm.model, proposal="mala"), ctx
            ),
            "Pyro NUTS on rbm.model()": _pyro_mcmc(NUTS(rbm.model), ctx),
            f"pyrogen BlockGibbs, {cfg.vectorized_chains} vectorised chains": sample(
                BlockGibbs(rbm),
                num_chains=cfg.vectorized_chains,
                num_samples=cfg.mcmc_samples,
                warmup_steps=cfg.mcmc_warmup,
                seed=ctx.seed,
                progress=ctx.progress,
                check=False,  # checked below, for the quantity reported
            ),
        }
        rows = [_row(name, idata) for name, idata in runs.items()]
        # Outside _pyro_mcmc's warning filter: one ConvergenceWarning per failing kernel.
        m["reliability"] = {
            name: check_convergence(
                idata, f"MCMC comparison: {name} (chains of v)", var_names=["v"]
            ).as_dict()
            for name, idata in runs.items()
        }
        nuts = next(r for r in rows if "NUTS" in r["kernel"])
        for row in rows:
            row[_SPEED] = row["min bulk ESS/s"] / nuts["min bulk ESS/s"]
            row["convergence"] = m["reliability"][row["kernel"]]["label"]
        m["rows"] = rows
        names = list(runs)
        diagnostics.plot_diagnostics(
            runs[names[0]], ctx.figures / "mcmc_block_gibbs.png", var_names=["v"], max_components=4
        )
        diagnostics.plot_diagnostics(
            runs[names[2]], ctx.figures / "mcmc_nuts.png", var_names=["v"], max_components=4
        )
        inside, vectorised = (_display_rows(m)[i][_SPEED] for i in (0, 3))
        m["summary"] = (
            f"BlockGibbs {Estimate(inside.value, inside.reliability, 'x'):.1f} NUTS in bulk "
            f"ESS/s inside pyro.infer.MCMC, "
            f"{Estimate(vectorised.value, vectorised.reliability, 'x'):.0f} vectorised"
        )
    report_mcmc(ctx.report, m, cfg, ctx.figures)


def _display_rows(m: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The table's rows: each speed-up carries its own and NUTS's reliability."""
    reliability = m["reliability"]
    nuts = next(name for name in reliability if "NUTS" in name)
    rows = []
    for row in m["rows"]:
        both = combine(
            [reliability[name] for name in dict.fromkeys([row["kernel"], nuts])],
            f"{row['kernel']} vs NUTS",
        )
        rows.append({**row, _SPEED: Estimate(row[_SPEED], both)})
    return rows


def report_mcmc(report: Report, m: Mapping[str, Any], cfg: TourConfig, figures: Path) -> None:
    """The MCMC section, from the stage's metrics ``m``; unconverged speed-ups are marked."""
    section = report.section("MCMC: pyrogen's kernels against Pyro's NUTS")
    section.text(
        "A Gaussian-Bernoulli RBM (16 visible, 8 hidden units, weights and biases drawn from "
        "N(0, 0.5^2)) sampled through `rbm.model()` by every kernel. Effective sample sizes "
        "and R-hat are ArviZ's (rank-normalised), taken in the worst of the 16 dimensions; "
        "ESS per second divides by each run's wall time. A speed-up is only a result when "
        "both its kernel's chains and NUTS's pass the convergence check (max R-hat <= 1.01, "
        "min bulk ESS >= 100); otherwise the table says why not."
    )
    section.table(_display_rows(m))
    section.figure(
        figures / "mcmc_block_gibbs.png",
        "BlockGibbs: trace, rank, autocorrelation and ESS-evolution plots (arviz-plots; "
        "first 4 dimensions).",
    )
    section.figure(figures / "mcmc_nuts.png", "Pyro NUTS: the same plots.")
