"""NumPyro's side of ``benchmarks/discrete.py``: run in the NumPyro venv, never in the project's.

One call runs one contender on one problem of :mod:`discrete_problems` and writes its draws
and timings to an ``.npz`` file; the driver computes every statistic (ESS, MCSE, errors) with
the same estimator (``pyrogen.diagnostics``) as for pyrogen's rows. Contenders:

* ``--problem mixture``: ``DiscreteHMCGibbs(NUTS(model))`` (Gibbs sweeps over the assignments
  ``z`` from their exact conditionals, then one NUTS transition of the continuous sites);
* ``--problem ising``: ``DiscreteGibbs(model)`` (NumPyro's standalone Gibbs kernel for purely
  discrete models, ``numpyro.infer.gibbs.DiscreteGibbs``: one sweep over the 16 spins in a
  random order per step, each from its exact conditional).

``--chain-method sequential`` runs the chains one after another (NumPyro's ``_laxmap``);
``vectorized`` runs them as one ``jax.vmap``-ed program (NumPyro's ``"vectorized"`` method).

Timing. JAX is pinned to one thread before it is imported (``XLA_FLAGS`` below, unless the
caller set its own). ``MCMC.run`` is called twice with different keys on the same ``MCMC``
object: the first call traces and compiles, the second hits NumPyro's and JAX's caches.
``sampling_s`` is the second call (warm-up plus draws, ``block_until_ready`` on the draws),
``compile_s`` the first call minus the second (the one-off cost of the first call); the draws
written are the second call's.

    .venv-numpyro/bin/python benchmarks/discrete_numpyro.py --problem ising \\
        --num-chains 4 --chain-method sequential --num-samples 1000 --warmup 200 --out /tmp/a.npz
"""

from __future__ import annotations

import os

# Before jax is imported: one intra-op thread, Eigen's thread pool off, CPU only.
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS, DiscreteHMCGibbs, init_to_median

sys.path.insert(0, str(Path(__file__).resolve().parent))
import discrete_problems as problems

PROBLEMS = ("mixture", "ising")
#: ``"vmap"`` passes ``jax.vmap`` itself as the chain method: the whole single-chain run
#: (init included) is vmapped, which works for kernels whose ``init`` takes one key only
#: (NumPyro's ``DiscreteGibbs``: the ``"vectorized"`` method hands it a batch of keys).
CHAIN_METHODS = ("sequential", "vectorized", "vmap")


# -------------------------------------------------------------------------------- models
def mixture_model(y: jax.Array) -> None:
    """The mixture of :mod:`discrete_problems`, assignments ``z`` sampled (not enumerated)."""
    num_components = len(problems.MIXTURE_PRIOR_LOCS)
    weights = numpyro.sample("weights", dist.Dirichlet(jnp.ones(num_components)))
    prior_locs = jnp.asarray(problems.MIXTURE_PRIOR_LOCS)
    locs = numpyro.sample(
        "locs", dist.Normal(prior_locs, problems.MIXTURE_PRIOR_LOC_SCALE).to_event(1)
    )
    scale = numpyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with numpyro.plate("data", y.shape[0]):
        z = numpyro.sample("z", dist.Categorical(weights))
        numpyro.sample("y", dist.Normal(locs[z], scale), obs=y)


def ising_model() -> None:
    """The 4 x 4 Ising grid of :mod:`discrete_problems`: Bernoulli(1/2) base plus a factor.

    The spins are a plate, not ``.to_event(1)``: NumPyro's ``Independent`` has no
    ``enumerate_support``, which its Gibbs kernel needs for the support sizes."""
    pairs = problems.neighbour_pairs()
    with numpyro.plate("spins", problems.ISING_SIDE**2):
        x = numpyro.sample("x", dist.Bernoulli(probs=0.5))
    s = 2.0 * x - 1.0
    coupling = (s[..., pairs[:, 0]] * s[..., pairs[:, 1]]).sum(-1)
    # The base's log-density is the constant -16 log 2: the factor alone is the Ising energy.
    numpyro.factor("ising", problems.ISING_COUPLING * coupling + problems.ISING_FIELD * s.sum(-1))


def discrete_gibbs_kernel() -> Any:
    """NumPyro's Gibbs kernel for purely discrete models (``numpyro.infer.DiscreteGibbs``)."""
    kernel_class = getattr(numpyro.infer, "DiscreteGibbs", None)
    if kernel_class is None:
        raise SystemExit(
            f"numpyro {numpyro.__version__} has no numpyro.infer.DiscreteGibbs; install the "
            "versions pinned in benchmarks/requirements-numpyro.txt"
        )
    return kernel_class(ising_model)


# ------------------------------------------------------------------------------- running
def timed_runs(
    make_kernel: Callable[[], Any],
    args: argparse.Namespace,
    model_args: tuple[Any, ...],
    sites: tuple[str, ...],
) -> tuple[dict[str, np.ndarray], float, float]:
    """Run twice on one ``MCMC``; return the second run's draws ``(chain, draw, ...)`` per site
    in ``sites``, the compile estimate (first minus second) and the second run's time."""
    mcmc = MCMC(
        make_kernel(),
        num_warmup=args.warmup,
        num_samples=args.num_samples,
        num_chains=args.num_chains,
        chain_method=jax.vmap if args.chain_method == "vmap" else args.chain_method,
        progress_bar=False,
    )
    times = []
    for key in jax.random.split(jax.random.key(args.seed), 2):
        start = time.perf_counter()
        mcmc.run(key, *model_args)
        samples = jax.block_until_ready(mcmc.get_samples(group_by_chain=True))
        times.append(time.perf_counter() - start)
    draws = {name: np.asarray(samples[name]) for name in sites}
    return draws, max(times[0] - times[1], 0.0), times[1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.problem == "mixture":
        y = jnp.asarray(problems.mixture_data(args.num_points))
        draws, compile_s, sampling_s = timed_runs(
            # init_to_median as on pyrogen's side: chains started at random land in
            # different label permutations of the mixture, and their ESS collapses (4.9).
            lambda: DiscreteHMCGibbs(NUTS(mixture_model, init_strategy=init_to_median)),
            args,
            (y,),
            ("weights", "locs", "scale"),
        )
        kernel = "DiscreteHMCGibbs(NUTS)"
    else:
        draws, compile_s, sampling_s = timed_runs(discrete_gibbs_kernel, args, (), ("x",))
        draws["x"] = draws["x"].astype(np.int8)
        kernel = "DiscreteGibbs"
    meta = {
        "kernel": kernel,
        "problem": args.problem,
        "chain_method": args.chain_method,
        "num_chains": args.num_chains,
        "num_samples": args.num_samples,
        "warmup": args.warmup,
        "seed": args.seed,
        "compile_s": compile_s,
        "sampling_s": sampling_s,
        "numpyro": numpyro.__version__,
        "jax": jax.__version__,
        "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else None,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, meta=np.array(json.dumps(meta)), **draws)
    return meta


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--problem", choices=PROBLEMS, required=True)
    parser.add_argument("--chain-method", choices=CHAIN_METHODS, default="sequential")
    parser.add_argument("--num-chains", type=int, default=4)
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--num-points", type=int, default=problems.MIXTURE_NUM_POINTS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="where to write the .npz of draws")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    meta = run(parse_args(argv))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
