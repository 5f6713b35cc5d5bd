"""Benchmark: pyrogen's MCMC kernels against Pyro's NUTS/HMC/random walk on RBM targets.

Table 1, a Gaussian-Bernoulli RBM (16 visible x 8 hidden, unit variance, weights and biases
drawn from N(0, 0.5^2), seed fixed): every sampler targets P(v) = exp(-F(v)) / Z. Per row:
wall time of the whole run (warmup + draws, including moving the draws to the host), the
minimum over the 16 dimensions of ArviZ's bulk and tail ESS, their rate per wall second, and
the maximum R-hat. Rows:

* Pyro NUTS, Pyro HMC (default trajectory 2*pi, adapted step size), Pyro RandomWalkKernel,
  on ``v ~ Normal(0, 1).mask(False)`` (a flat base) plus ``pyro.factor(-F(v))``;
* pyrogen BlockGibbs and MetropolisHastings(proposal="mala") inside ``pyro.infer.MCMC``;
* pyrogen vectorised chains (``pyrogen.infer.sample``) of BlockGibbs and MALA;
* the anchor: a bare torch Gibbs loop (the same two conditionals written inline, draws
  stored in a preallocated buffer), at the same chain counts;
* with ``--device cuda``: vectorised BlockGibbs and the bare loop at 1024 and 65536 chains
  (65536 chains keep 100 draws after the 500 warmup steps, so that 1e8 draws fit the
  diagnostics' memory; noted in the row).

Ratios: ESS/s over Pyro NUTS's, and over the bare loop's at the same chain count and device
(the issue's targets: vectorised BlockGibbs >= 5000x NUTS at 1024 chains and >= 1/1.5 of the
bare loop; BlockGibbs through ``pyro.infer.MCMC`` >= 25x NUTS).

Table 2, a binary RBM with 64 visible units, where Pyro has no kernel at all (HMC/NUTS need
continuous sites, and enumerating 2^64 states is impossible). The reference is exact: the
per-unit marginals P(v_i = 1) = sum_h P(h) sigmoid(b_i + (W h)_i), with P(h) enumerated over
all 2^H hidden states (in blocks). H = 16 by default; the issue's 64 x 32 RBM needs 2^32
hidden states (~9 TFLOP), feasible on a GPU (``--tv-hidden 32``) but not on a small CPU. The
error reported is the mean over units of the marginal total variation |p_hat_i - p_i|, next to
the floor an exact i.i.d. sampler with the same number of draws would show,
mean_i sqrt(2 p_i (1 - p_i) / (pi n)) (so a ratio near 1 means "as good as exact sampling").

Timing: the vectorised rows and the bare loop take the best of ``--repeats`` runs (default 3;
shared machines are noisy); the Pyro-driven rows run once (they are long). Timings on a loaded
machine are inflated; the JSON records the load average.

    python benchmarks/mcmc_rbm.py                 # full run, CPU
    python benchmarks/mcmc_rbm.py --quick         # smoke-size run
    python benchmarks/mcmc_rbm.py --device cuda   # adds the GPU rows
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import HMC, MCMC, NUTS, RandomWalkKernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, format_table, write_json

from pyrogen import diagnostics
from pyrogen.convergence import check_convergence
from pyrogen.infer import BlockGibbs, DiscreteGibbs, MetropolisHastings, sample
from pyrogen.rbm import RBM, functional
from pyrogen.rbm.model import binary_states

COLUMNS_1 = [
    "sampler", "device", "chains", "draws", "wall_s", "min_ess_bulk", "min_ess_tail",
    "bulk_ess_per_s", "tail_ess_per_s", "max_r_hat", "x_nuts", "x_bare", "time_x_bare", "check_s",
]  # fmt: skip
COLUMNS_2 = [
    "sampler", "device", "chains", "draws", "wall_s", "min_ess_bulk", "bulk_ess_per_s",
    "max_r_hat", "mean_tv", "max_tv", "tv_floor", "tv_x_floor", "time_x_bare",
]  # fmt: skip


# ------------------------------------------------------------------------------ targets
def make_rbm(
    n_visible: int, n_hidden: int, visible: str, seed: int, device: str, scale: float = 0.5
) -> RBM:
    """An RBM with weights and biases drawn from N(0, scale^2); parameters frozen."""
    generator = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, likelihood=visible)  # type: ignore[arg-type]
    with torch.no_grad():
        for param in rbm.parameters():
            param.copy_(scale * torch.randn(param.shape, generator=generator))
    rbm.requires_grad_(False)  # every sampler sees the same fixed target, no autograd graph
    return rbm.to(device)


def flat_base_model(rbm: RBM) -> Callable[[], None]:
    """P(v) proportional to exp(-F(v)) for Pyro's HMC family: flat base + energy factor."""

    def model() -> None:
        base = dist.Normal(torch.zeros(rbm.n_visible), 1.0).to_event(1).mask(False)
        v = pyro.sample("v", base)
        pyro.factor("v_energy", -functional.free_energy(rbm, v))

    return model


@torch.no_grad()
def exact_visible_marginals(rbm: RBM, block_bits: int = 16) -> torch.Tensor:
    """P(v_i = 1) of a binary RBM by enumerating the hidden layer in blocks (float64).

    P(h) is proportional to exp(c.h + sum_i softplus(b_i + (W h)_i)) and
    P(v_i = 1 | h) = sigmoid(b_i + (W h)_i); both sums run over 2^n_hidden states with a
    running log-sum-exp, so memory stays at 2^block_bits states.
    """
    w, b, c = (p.double() for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias))
    n = rbm.n_hidden
    log_total = torch.tensor(-math.inf, dtype=torch.float64, device=w.device)
    weighted = torch.zeros(rbm.n_visible, dtype=torch.float64, device=w.device)
    block = 2 ** min(block_bits, n)
    for start in range(0, 2**n, block):
        h = binary_states(n, start, start + block, dtype=torch.float64, device=w.device)
        logits = torch.addmm(b, h, w.T)  # (B, n_visible)
        log_weight = h @ c + torch.nn.functional.softplus(logits).sum(-1)
        new_total = torch.logaddexp(log_total, torch.logsumexp(log_weight, 0))
        # Rescale what was accumulated so far to the new normaliser, then add this block.
        weighted = weighted * torch.exp(log_total - new_total)
        weighted += torch.exp(log_weight - new_total) @ torch.sigmoid(logits)
        log_total = new_total
    return weighted.cpu()


# ------------------------------------------------------------------------------ runners
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_pyro(kernel: Any, num_chains: int, num_samples: int, warmup: int, seed: int) -> Any:
    pyro.set_rng_seed(seed)
    with warnings.catch_warnings():
        # Pyro: "num_chains=4 is more than available_cpu=1. Chains will be drawn sequentially."
        warnings.filterwarnings(
            "ignore", "num_chains=.*Chains will be drawn sequentially", UserWarning
        )
        mcmc = MCMC(kernel, num_samples, warmup, num_chains=num_chains, disable_progbar=True)
        start = time.perf_counter()
        mcmc.run()
        wall = time.perf_counter() - start
    return diagnostics.to_inference_data(mcmc, wall_time=wall, log_likelihood=False)


def run_vectorized(
    make_kernel: Callable[[], Any],
    num_chains: int,
    num_samples: int,
    warmup: int,
    seed: int,
    device: str,
    repeats: int,
) -> Any:
    best, best_idata = math.inf, None
    for _ in range(repeats):
        kernel = make_kernel()
        _sync(device)
        start = time.perf_counter()
        # The sampling call, InferenceData included; its convergence check is timed apart:
        # at 1,024 chains ArviZ's rank-normalised R-hat and ESS take 30x the sampling, and the
        # bare loop anchor has no check.
        idata = sample(kernel, num_chains, num_samples, warmup, seed=seed, progress=False,
                       check=False)  # fmt: skip
        _sync(device)
        wall = time.perf_counter() - start
        if wall < best:
            best, best_idata = wall, idata
    tic = time.perf_counter()
    check_convergence(best_idata, f"draws of {num_chains} vectorised chains")
    check_s = time.perf_counter() - tic
    print(f"    convergence check of {num_chains} chains: {check_s:.2f} s", flush=True)
    out = diagnostics.to_inference_data(best_idata, wall_time=best)
    out.attrs["check_s"] = check_s
    return out


@torch.no_grad()
def bare_gibbs(
    rbm: RBM, num_chains: int, num_samples: int, warmup: int, seed: int, device: str
) -> torch.Tensor:
    """The anchor: block Gibbs written inline, draws into a preallocated buffer."""
    w, b, c = rbm.weight, rbm.visible_bias, rbm.hidden_bias
    wt = w.T.contiguous()
    gaussian = rbm.is_gaussian
    generator = torch.Generator(device=device).manual_seed(seed)
    shape = (num_chains, rbm.n_visible)
    if gaussian:
        v = b + torch.randn(shape, generator=generator, device=device)
    else:
        v = torch.bernoulli(torch.full(shape, 0.5, device=device), generator=generator)
    out = torch.empty((num_samples, *shape), device=device)
    for t in range(warmup + num_samples):
        h = torch.bernoulli(torch.sigmoid(torch.addmm(c, v, w)), generator=generator)
        stat = torch.addmm(b, h, wt)
        if gaussian:  # sigma = 1
            v = stat.add_(torch.randn(shape, generator=generator, device=device))
        else:
            v = torch.bernoulli(torch.sigmoid(stat), generator=generator)
        if t >= warmup:
            out[t - warmup].copy_(v)
    return out.transpose(0, 1).cpu()


def run_bare(
    rbm: RBM, num_chains: int, num_samples: int, warmup: int, seed: int, device: str, repeats: int
) -> Any:
    best, best_draws = math.inf, None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        draws = bare_gibbs(rbm, num_chains, num_samples, warmup, seed, device)
        wall = time.perf_counter() - start
        if wall < best:
            best, best_draws = wall, draws
    return diagnostics.to_inference_data({"v": best_draws}, wall_time=best)


def describe(idata: Any, **fields: Any) -> dict[str, Any]:
    """One table row: the worst direction of the ArviZ diagnostics."""
    worst = diagnostics.worst_case(diagnostics.summarize(idata, var_names=["v"]))
    chains, draws = idata.posterior["v"].shape[:2]
    return {
        **fields,
        "chains": int(chains),
        "draws": int(draws),
        "wall_s": diagnostics.wall_time_of(idata),
        "min_ess_bulk": worst["min_ess_bulk"],
        "min_ess_tail": worst["min_ess_tail"],
        "bulk_ess_per_s": worst["min_ess_bulk_per_s"],
        "tail_ess_per_s": worst["min_ess_tail_per_s"],
        "max_r_hat": worst["max_r_hat"],
        "check_s": idata.attrs.get("check_s"),
    }


def add_ratios(rows: list[dict[str, Any]], nuts: dict[str, Any] | None) -> None:
    bare = {(r["device"], r["chains"]): r for r in rows if r["sampler"] == "bare torch Gibbs loop"}
    for row in rows:
        if nuts is not None:
            row["x_nuts"] = row["bulk_ess_per_s"] / nuts["bulk_ess_per_s"]
        anchor = bare.get((row["device"], row["chains"]))
        if anchor is not None and "Gibbs" in row["sampler"]:
            row["x_bare"] = row["bulk_ess_per_s"] / anchor["bulk_ess_per_s"]
            row["time_x_bare"] = row["wall_s"] / anchor["wall_s"]


# ------------------------------------------------------------------------------- tables
def table_gaussian(args: argparse.Namespace) -> list[dict[str, Any]]:
    cfg = {"num_samples": args.num_samples, "warmup": args.warmup, "seed": args.seed}
    n, w, seed, reps = args.num_samples, args.warmup, args.seed, args.repeats
    cpu_rbm = make_rbm(16, 8, "gaussian", args.seed, "cpu")
    rows: list[dict[str, Any]] = []
    pyro_rows = [
        ("Pyro NUTS", lambda: NUTS(flat_base_model(cpu_rbm))),
        ("Pyro HMC", lambda: HMC(flat_base_model(cpu_rbm))),
        ("Pyro RandomWalkKernel", lambda: RandomWalkKernel(flat_base_model(cpu_rbm))),
        ("pyrogen BlockGibbs in pyro MCMC", lambda: BlockGibbs(cpu_rbm)),
        (
            "pyrogen MALA in pyro MCMC",
            lambda: MetropolisHastings(cpu_rbm.model, proposal="mala", step_size=0.5),
        ),
    ]
    for name, make in pyro_rows:
        idata = run_pyro(make(), 4, n, w, seed)
        rows.append(describe(idata, sampler=name, device="cpu"))
        print(f"  {name}: {rows[-1]['wall_s']:.2f} s", flush=True)
    devices = ["cpu"] + ([args.device] if args.device != "cpu" else [])
    for device in devices:
        rbm = cpu_rbm if device == "cpu" else make_rbm(16, 8, "gaussian", args.seed, device)
        counts = [4, args.big_chains] if device == "cpu" else [args.big_chains, args.huge_chains]
        for chains in counts:
            draws = n if chains <= args.big_chains else args.huge_draws
            vec = run_vectorized(
                lambda rbm=rbm: BlockGibbs(rbm), chains, draws, w, seed, device, reps
            )
            rows.append(describe(vec, sampler="pyrogen vectorised BlockGibbs", device=device))
            bare = run_bare(rbm, chains, draws, w, seed, device, reps)
            rows.append(describe(bare, sampler="bare torch Gibbs loop", device=device))
            if device == "cpu":
                mala = run_vectorized(
                    lambda rbm=rbm: MetropolisHastings(rbm.model, proposal="mala", step_size=0.5),
                    chains, draws, w, seed, device, 1,
                )  # fmt: skip
                rows.append(describe(mala, sampler="pyrogen vectorised MALA", device=device))
            print(f"  {device} {chains} chains done", flush=True)
    nuts = next(r for r in rows if r["sampler"] == "Pyro NUTS")
    add_ratios(rows, nuts)
    return rows, cfg


def table_binary(args: argparse.Namespace) -> list[dict[str, Any]]:
    n, w, seed, reps = args.num_samples, args.warmup, args.seed, args.repeats
    hidden = args.tv_hidden
    device = args.device
    rbm = make_rbm(64, hidden, "bernoulli", seed, device)
    start = time.perf_counter()
    # Bigger blocks on a GPU: 2^20 states x 64 units in float64 is 0.5 GiB.
    exact = exact_visible_marginals(rbm, block_bits=16 if device == "cpu" else 20)
    exact_s = time.perf_counter() - start
    cpu_rbm = rbm.to("cpu") if device != "cpu" else rbm
    rows: list[dict[str, Any]] = []

    def tv_row(idata: Any, **fields: Any) -> dict[str, Any]:
        row = describe(idata, **fields)
        draws = torch.as_tensor(idata.posterior["v"].values).reshape(-1, 64).double()
        error = (draws.mean(0) - exact).abs()
        floor = (2 * exact * (1 - exact) / (math.pi * draws.shape[0])).sqrt().mean()
        row.update(mean_tv=float(error.mean()), max_tv=float(error.max()))
        row.update(tv_floor=float(floor), tv_x_floor=float(error.mean() / floor))
        return row

    for name, make in [
        ("pyrogen BlockGibbs in pyro MCMC", lambda: BlockGibbs(cpu_rbm)),
        ("pyrogen MH bit-flip in pyro MCMC", lambda: MetropolisHastings(cpu_rbm.model)),
    ]:
        rows.append(tv_row(run_pyro(make(), 4, n, w, seed), sampler=name, device="cpu"))
        print(f"  {name}: {rows[-1]['wall_s']:.2f} s", flush=True)
    counts = [4, args.big_chains] + ([args.huge_chains] if device != "cpu" else [])
    for chains in counts:
        draws = n if chains <= args.big_chains else args.huge_draws
        vec = run_vectorized(lambda: BlockGibbs(rbm), chains, draws, w, seed, device, reps)
        rows.append(tv_row(vec, sampler="pyrogen vectorised BlockGibbs", device=device))
        bare = run_bare(rbm, chains, draws, w, seed, device, reps)
        rows.append(tv_row(bare, sampler="bare torch Gibbs loop", device=device))
        print(f"  {device} {chains} chains done", flush=True)
    # Single-site samplers move one coordinate (MH) or sweep 64 (Gibbs) per step: fewer
    # chains keep their rows affordable; they are here for the TV column, not for speed.
    gibbs_chains = min(args.big_chains, 256)
    gibbs = run_vectorized(lambda: DiscreteGibbs(rbm.model), gibbs_chains, n, w, seed, device, 1)
    rows.append(tv_row(gibbs, sampler="pyrogen vectorised DiscreteGibbs", device=device))
    mh = run_vectorized(
        lambda: MetropolisHastings(rbm.model), args.big_chains, n, w, seed, device, 1
    )
    rows.append(tv_row(mh, sampler="pyrogen vectorised MH bit-flip", device=device))
    add_ratios(rows, None)
    for row in rows:
        row.pop("x_bare", None)
    cfg = {"n_visible": 64, "n_hidden": hidden, "exact_marginals_s": exact_s}
    return rows, cfg


# --------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-size run (seconds)")
    parser.add_argument("--out", default=str(RESULTS_DIR / "mcmc_rbm.json"), help="JSON path")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (adds the GPU rows)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=3, help="best-of for fast rows")
    parser.add_argument("--tv-hidden", type=int, default=16, help="hidden units, table 2")
    parser.add_argument("--skip-binary", action="store_true", help="table 1 only")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_samples, args.warmup, args.big_chains = 200, 100, 256
        args.huge_chains, args.huge_draws, args.repeats = 4096, 50, 1
    else:
        args.num_samples, args.warmup, args.big_chains = 1000, 500, 1024
        args.huge_chains, args.huge_draws = 65536, 100
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda given but torch.cuda.is_available() is False")
    print("table 1: Gaussian-Bernoulli RBM 16 x 8", flush=True)
    rows_1, cfg_1 = table_gaussian(args)
    print(format_table(rows_1, COLUMNS_1))
    rows_2, cfg_2 = [], {}
    if not args.skip_binary:
        print(f"\ntable 2: binary RBM 64 x {args.tv_hidden} (exact marginals)", flush=True)
        rows_2, cfg_2 = table_binary(args)
        print(format_table(rows_2, COLUMNS_2))
    targets = check_targets(rows_1)
    for line in targets:
        print(line)
    payload = {
        "benchmark": "mcmc_rbm",
        "quick": args.quick,
        "config": {**cfg_1, "threads": args.threads, "repeats": args.repeats,
                   "big_chains": args.big_chains, "huge_chains": args.huge_chains,
                   "huge_draws": args.huge_draws, "device": args.device, "binary": cfg_2},
        "table_gaussian": rows_1,
        "table_binary": rows_2,
        "targets": targets,
    }  # fmt: skip
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


def check_targets(rows: list[dict[str, Any]]) -> list[str]:
    def find(sampler: str, chains: int | None = None, device: str = "cpu") -> dict[str, Any] | None:
        for row in rows:
            if row["sampler"] == sampler and row["device"] == device:
                if chains is None or row["chains"] == chains:
                    return row
        return None

    lines = []
    big = max((r["chains"] for r in rows if r["device"] == "cpu"), default=0)
    vec = find("pyrogen vectorised BlockGibbs", big)
    in_mcmc = find("pyrogen BlockGibbs in pyro MCMC")
    if vec:
        lines.append(
            f"target: vectorised BlockGibbs @ {big} chains >= 5000x NUTS: {vec['x_nuts']:.4g}x"
        )
        lines.append(
            f"target: vectorised BlockGibbs within 1.5x of the bare loop @ {big} chains: "
            f"ESS/s ratio {vec['x_bare']:.3f}, wall-time ratio {vec['time_x_bare']:.3f}"
        )
    if in_mcmc:
        lines.append(f"target: BlockGibbs in pyro MCMC >= 25x NUTS: {in_mcmc['x_nuts']:.4g}x")
    return lines


if __name__ == "__main__":
    main()
