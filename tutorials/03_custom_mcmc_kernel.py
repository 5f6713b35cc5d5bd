# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 3 — Writing your own MCMC kernel for Pyro
#
# `pyro.infer.MCMC` is a *driver*: it asks a kernel for one transition at a time and stores
# what comes back. Pyro ships HMC and NUTS as kernels, but any object that speaks the
# `MCMCKernel` protocol can be driven, and how to write one is documented mostly by reading
# Pyro's source (Pyro's issue #2069 asks for exactly this guide). This notebook is that guide,
# with pyrogen's own kernels as the worked example:
#
# 1. the protocol: which methods the driver calls, in which order, and its traps;
# 2. a small random-scan Gibbs kernel for discrete Pyro models, written from scratch;
# 3. an **exact** check: the kernel's transition matrix $P$ on a 12-state model, with
#    $\pi P = \pi$ and detailed balance to rounding error against the enumerated target;
# 4. the kernel inside `pyro.infer.MCMC`, a log of the driver's calls, and a total
#    variation test whose tolerance comes from $P$'s spectral gap;
# 5. how pyrogen structures a kernel: a pure batched step function and a thin adapter
#    (`pyrogen.infer.base.ChainKernel`), which gives Pyro's one-chain kernel and
#    thousands of vectorised chains from the same 30 lines;
# 6. `pyrogen.diagnostics` (`to_inference_data`, `summarize`, `total_variation`) on all of it.
#
# Tutorial 1 built Gibbs and Metropolis-Hastings on a table; here the target is a Pyro model.
# Under the environment variable `CI` the sizes shrink; the closing assertions hold in both
# modes.

# %%
import collections
import json
import math
import multiprocessing
import os
import sys
import warnings
from typing import NamedTuple

SMOKE_TEST = "CI" in os.environ

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # run as a script: draw off-screen, no display needed
import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer import MCMC
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

from pyrogen import diagnostics
from pyrogen.first_principles import detailed_balance_violation, stationary_distribution
from pyrogen.infer import (
    DiscreteGibbs,
    GibbsWithGradients,
    LocallyBalanced,
    MetropolisHastings,
    VectorizedKernel,
    sample,
)
from pyrogen.infer.base import ChainKernel
from pyrogen.infer.locally_balanced import BALANCING, proposal_log_probs
from pyrogen.infer.proposal import accept_prob, log_accept_ratio

WARMUP, DRAWS = (100, 1_000) if SMOKE_TEST else (500, 10_000)  # per chain, in pyro MCMC
NUM_CHAINS = 2
VECTOR_CHAINS, VECTOR_STEPS = (4_000, 30) if SMOKE_TEST else (20_000, 50)
PROGRESS = not SMOKE_TEST


def show(fig):
    """Display a figure in a notebook; as a script just release it (nothing is saved)."""
    if "ipykernel" in sys.modules:
        plt.show()
    plt.close(fig)


# %% [markdown]
# ## 1. The protocol, as the driver sees it
#
# `MCMC(kernel, num_samples, warmup_steps, num_chains).run(*args, **kwargs)` does, for each
# chain (paraphrasing `pyro/infer/mcmc/api.py`):
#
# ```python
# kernel.initial_params = given_initial_params  # only if MCMC(initial_params=...) was set
# kernel.setup(warmup_steps, *args, **kwargs)  # the model's arguments arrive here
# params = kernel.initial_params  # a dict: site name -> tensor
# for t in range(warmup_steps + num_samples):
#     params = kernel.sample(params)  # one transition
#     json.dumps(kernel.logging())  # for the progress bar, *every* step
#     if t >= warmup_steps:
#         store(params)  # flattened and concatenated
# chain_diagnostics = kernel.diagnostics()
# kernel.cleanup()
# ```
#
# and then maps the stored draws through `kernel.transforms[name].inv`, from Pyro's
# unconstrained space back to each site's support. Only `sample` is abstract; everything
# else has a default that is wrong for most kernels. The traps:
#
# * **`end_warmup` is never called.** A kernel that adapts (a step size, a proposal scale)
#   must count its own steps against the `warmup_steps` that `setup` received.
# * **`kernel.transforms` and `kernel.model` are read.** If `transforms` is `None` after the
#   run, the driver calls `setup` *again* to find them (which resets the chain of a
#   careless kernel), and `arviz.from_pyro` and `pyrogen.diagnostics` read `kernel.model`
#   to find the observed sites.
# * **One kernel object serves every chain** when the chains run one after another (always
#   when there are fewer spare CPU cores than chains): `setup` must rebuild *all* state, and
#   initial values left from the previous chain must not leak into the next.
# * **`logging()` is passed to `json.dumps` at every step**, so it must hold plain strings
#   or numbers, never tensors.
# * **`diagnostics()` must be a dict, and `arviz.from_pyro` reads its `"divergences"`
#   entry** (a list of draw indices) unconditionally; a kernel without divergences must
#   still report an empty list.
# * **Draws should be floating point.** `MCMC.diagnostics()` and `MCMC.summary()` compute
#   effective sample sizes with Pyro's `stats` functions, which fail on `int64` tensors, and
#   `arviz.from_pyro` calls `MCMC.diagnostics()`.
#
# The last three are easy to see for yourself:

# %%
try:
    json.dumps({"acc. prob": torch.tensor(0.25)})
    logging_trap = None
except TypeError as error:
    logging_trap = str(error)
print("logging() with a tensor:", logging_trap)

integer_draws = {"a": torch.randint(3, (2, 50))}
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # Pyro first warns with a traceback
        pyro.infer.mcmc.util.diagnostics(integer_draws)
    integer_trap = None
except RuntimeError as error:
    integer_trap = str(error)
print("Pyro's diagnostics on int64 draws:", integer_trap)

# %% [markdown]
# ## 2. A small discrete target
#
# Two categorical variables, $a \in \{0, 1, 2, 3\}$ and $b \in \{0, 1, 2\}$, with their own
# priors and a coupling table $J$ added to the log density by `pyro.factor`:
#
# $$\pi(a, b) \propto p_a(a)\, p_b(b)\, e^{J_{ab}} .$$
#
# Twelve states, so the exact law is one enumeration away. Pyro's own MCMC kernels would not
# sample $a$ and $b$ at all: they enumerate discrete sites out of the model (see tutorial 2).
# The model is written so that it broadcasts: conditioning a site on a tensor of values
# scores all of them in one trace, which both the enumeration below and the kernels use.

# %%
prior_a = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
prior_b = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
coupling = torch.tensor(
    [[1.5, 0.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.5], [0.5, -0.5, 0.0]], dtype=torch.float64
)


def model():
    a = pyro.sample("a", dist.Categorical(prior_a))
    b = pyro.sample("b", dist.Categorical(prior_b))
    pyro.factor("coupling", coupling[a, b])


def log_joint(model, values, *args, **kwargs):
    """Sum of all sample sites' log-probabilities (factors included) of ``model`` run with
    the latent sites fixed to ``values``; broadcasts over the shapes of the values."""
    trace = poutine.trace(poutine.condition(model, data=values)).get_trace(*args, **kwargs)
    trace.compute_log_prob()
    return sum(site["log_prob"] for site in trace.nodes.values() if site["type"] == "sample")


# Every (a, b) at once: a as a column, b as a row. State code: 3 * a + b.
exact_log = log_joint(model, {"a": torch.arange(4)[:, None], "b": torch.arange(3)})
exact_probs = torch.softmax(exact_log.reshape(-1), 0)
print("exact pi(a, b):\n", exact_probs.reshape(4, 3).numpy().round(4))

# %% [markdown]
# ## 3. A random-scan Gibbs kernel from scratch
#
# Random-scan Gibbs picks one latent site uniformly at random and redraws it from its full
# conditional, computed from the model's log joint at every value of the site:
#
# $$\pi(x_s = j \mid x_{-s}) = \frac{\pi(x_{-s}, x_s = j)}{\sum_i \pi(x_{-s}, x_s = i)}
#   = \operatorname{softmax}_j \log \pi(x_{-s}, x_s = j).$$
#
# Each such move leaves $\pi$ invariant and satisfies detailed balance (tutorial 1), so
# their mixture does too. The kernel below is the whole protocol of section 1 in about forty
# lines. It keeps the chain's state itself (as Pyro's HMC does) and treats the `params`
# argument of `sample` as read-only, keeps integer values inside, and hands floats to the
# driver.


# %%
class RandomScanGibbs(MCMCKernel):
    """Random-scan Gibbs for Pyro models whose latent sites are scalar and enumerable."""

    def __init__(self, model):
        self.model = model  # read by arviz.from_pyro and pyrogen.diagnostics
        self.transforms = {}  # discrete sites need none; None would make MCMC re-run setup
        self._given_initial = None
        self._state = None

    def setup(self, warmup_steps, *args, **kwargs):
        # Called once per chain, on the same object: rebuild everything here.
        self._args, self._kwargs = args, kwargs
        trace = poutine.trace(self.model).get_trace(*args, **kwargs)  # draws from the prior
        self._supports = {
            name: site["fn"].enumerate_support(expand=False)
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"]
        }
        start = self._given_initial or {name: trace.nodes[name]["value"] for name in self._supports}
        self._state = {name: torch.as_tensor(value).long() for name, value in start.items()}
        self._steps = self._moves = 0

    @property
    def initial_params(self):
        return self._draw()

    @initial_params.setter
    def initial_params(self, params):
        self._given_initial = params

    def conditional(self, name, state):
        """log pi(x_name = j | the other sites as in ``state``), for every value j."""
        values = {**state, name: self._supports[name]}
        return torch.log_softmax(log_joint(self.model, values, *self._args, **self._kwargs), 0)

    def sample(self, params):
        names = list(self._supports)
        name = names[int(torch.randint(len(names), ()))]  # torch's RNG: pyro.set_rng_seed
        probs = self.conditional(name, self._state).exp()
        new = self._supports[name][torch.multinomial(probs, 1)[0]]
        self._moves += int(new != self._state[name])
        self._state = {**self._state, name: new}  # a new dict: never mutate what we returned
        self._steps += 1
        return self._draw()

    def _draw(self):
        # Floats for the driver: Pyro's ESS / R-hat code fails on int64 draws.
        return {name: value.double() for name, value in self._state.items()}

    def logging(self):
        return {"moved": f"{self._moves / max(self._steps, 1):.3f}"}  # strings: JSON-safe

    def diagnostics(self):
        return {"divergences": [], "move rate": self._moves / max(self._steps, 1)}

    def cleanup(self):
        self._given_initial = None  # the next chain draws its own start


# %% [markdown]
# ## 4. The exact check: the kernel's transition matrix
#
# On twelve states the kernel's transition matrix can be written down from the *kernel's
# own* `conditional` method, so the test exercises the code that samples, not a copy of the
# maths:
#
# $$P = \tfrac12 (G_a + G_b), \qquad G_s\big((a, b), (a', b')\big) =
#   \pi(x_s' \mid x_{-s})\ \text{if the states differ at most in site } s,\ \text{else } 0.$$
#
# We check $\pi P = \pi$ against the enumerated $\pi$ and detailed balance. The matrix also
# says how *correlated* the chain's draws are, which is what turns "the samples look right"
# into a test with a tolerance. For a function $f$ of the state, the average over $n$ steps
# has variance $\approx \sigma_f^2 / n$ with the asymptotic variance
#
# $$\sigma_f^2 = \operatorname{Var}_\pi f + 2 \sum_{k \ge 1}
#   \operatorname{Cov}_\pi\big(f(X_0), f(X_k)\big)
#   = \big\langle \bar f, (2 Z - I) \bar f \big\rangle_\pi, \qquad
#   Z = (I - P + \mathbf 1 \pi)^{-1},$$
#
# where $\bar f = f - E_\pi f$ and $Z$ is the chain's fundamental matrix (Kemeny and Snell).
# For a reversible chain, $\sigma_f^2 / \operatorname{Var}_\pi f$ never exceeds
# $\tau = (1 + \lambda_2) / (1 - \lambda_2)$, with $\lambda_2$ the second-largest
# eigenvalue of $P$ (the **spectral gap** is $1 - \lambda_2$).

# %%
pyro.set_rng_seed(0)
gibbs = RandomScanGibbs(model)
gibbs.setup(warmup_steps=0)
states = [(a, b) for a in range(4) for b in range(3)]
P_gibbs = torch.zeros(12, 12, dtype=torch.float64)
for i, (a, b) in enumerate(states):
    current = {"a": torch.tensor(a), "b": torch.tensor(b)}
    for value, p in enumerate(gibbs.conditional("a", current).exp()):
        P_gibbs[i, 3 * value + b] += 0.5 * p
    for value, p in enumerate(gibbs.conditional("b", current).exp()):
        P_gibbs[i, 3 * a + value] += 0.5 * p

stationarity_error = float((exact_probs @ P_gibbs - exact_probs).abs().max())
balance_error = detailed_balance_violation(P_gibbs, exact_probs)
unique_error = float((stationary_distribution(P_gibbs) - exact_probs).abs().max())
# D^{1/2} P D^{-1/2} is symmetric for a reversible P: its eigenvalues are real.
root = exact_probs.sqrt()
eigenvalues = torch.linalg.eigvalsh(root[:, None] * P_gibbs / root[None, :]).flip(0)
lambda_2 = float(eigenvalues[1])
tau = (1 + lambda_2) / (1 - lambda_2)
# Asymptotic variance of each state's indicator 1{X = k}: centred indicators as columns.
eye = torch.eye(12, dtype=torch.float64)
centred = eye - exact_probs
fundamental = torch.linalg.inv(eye - P_gibbs + exact_probs)  # + 1 pi: each row adds pi
asymptotic_var = (exact_probs[:, None] * centred * ((2 * fundamental - eye) @ centred)).sum(0)
inflation = asymptotic_var / (exact_probs * (1 - exact_probs))
print(f"|pi P - pi| = {stationarity_error:.1e}, detailed balance violation {balance_error:.1e}")
print(f"stationary law of P vs enumeration: {unique_error:.1e}")
print(f"eigenvalues of P: {eigenvalues.numpy().round(3)}")
print(f"lambda_2 = {lambda_2:.3f}: variance inflation at most tau = {tau:.2f}")
print(f"variance inflation of the 12 state indicators: {inflation.numpy().round(2)}")

# %% [markdown]
# The smallest eigenvalues are 0, not negative: each $G_s$ is a projection (averaging over
# one site), so the random-scan mixture is positive semi-definite, every draw is positively
# correlated with the next, and each indicator's variance inflation lies between 1 and
# $\tau$.
#
# ## 5. Inside `pyro.infer.MCMC`
#
# Now the driver. A subclass records every method call the driver makes; with
# `num_chains=2` on a machine with fewer spare cores than chains, both chains go through
# the same object (the driver warns about it; we silence that warning).


# %%
class CallLog(RandomScanGibbs):
    """RandomScanGibbs that counts the driver's calls."""

    def __init__(self, model):
        super().__init__(model)
        self.calls = collections.Counter()

    def setup(self, warmup_steps, *args, **kwargs):
        self.calls["setup"] += 1
        super().setup(warmup_steps, *args, **kwargs)

    def sample(self, params):
        self.calls["sample"] += 1
        return super().sample(params)

    def logging(self):
        self.calls["logging"] += 1
        return super().logging()

    def diagnostics(self):
        self.calls["diagnostics"] += 1
        return super().diagnostics()

    def cleanup(self):
        self.calls["cleanup"] += 1
        super().cleanup()

    def end_warmup(self):
        self.calls["end_warmup"] += 1


def run_mcmc(kernel, num_chains=NUM_CHAINS, seed=0):
    pyro.set_rng_seed(seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="num_chains=")  # "drawn sequentially"
        mcmc = MCMC(
            kernel,
            num_samples=DRAWS,
            warmup_steps=WARMUP,
            num_chains=num_chains,
            disable_progbar=not PROGRESS,
        )
        mcmc.run()
    return mcmc


# Pyro's own rule: chains run in this process when they outnumber the spare cores.
sequential = NUM_CHAINS > max(multiprocessing.cpu_count() - 1, 1)
logged = CallLog(model)
mcmc = run_mcmc(logged)
print("chains in this process:", sequential, "; calls:", dict(logged.calls))

# %% [markdown]
# Per chain: one `setup`, `warmup_steps + num_samples` calls each of `sample` and `logging`,
# one `diagnostics`; `cleanup` twice (the generator and the sampler loop each call it);
# `end_warmup` never. (On a machine with more cores the chains run in worker processes, each
# with its own copy of the kernel, and this process's counter stays empty.)
#
# The draws are checked against the enumerated law by the total variation distance of the
# pooled draws, $\mathrm{TV} = \tfrac12\sum_k |\hat\pi_k - \pi_k|$. Each $\hat\pi_k$ is the
# average of an indicator, approximately normal with variance $\sigma_k^2 / n$, so
# $E\,\mathrm{TV} \approx \tfrac12 \sum_k \sqrt{2 \sigma_k^2 / (\pi n)}$ (the mean of a
# half-normal). For independent draws $\sigma_k^2 = \pi_k (1 - \pi_k)$; for our chain it is
# the exact asymptotic variance from section 4. A correct kernel lands near that figure; we
# allow twice it (the sum over twelve states fluctuates far less than each term).

# %%
samples = mcmc.get_samples()
codes = (3 * samples["a"] + samples["b"]).long()
n_draws = codes.numel()


expected_tv = 0.5 * float((2 * asymptotic_var / (math.pi * n_draws)).sqrt().sum())
expected_tv_iid = 0.5 * float(
    (2 * exact_probs * (1 - exact_probs) / (math.pi * n_draws)).sqrt().sum()
)
tv_mcmc = diagnostics.total_variation(codes, exact_probs)
tv_mcmc_tolerance = 2 * expected_tv
print(
    f"TV of {n_draws} draws: {tv_mcmc:.4f}; expected {expected_tv:.4f} for this chain, "
    f"{expected_tv_iid:.4f} for independent draws; tolerance {tv_mcmc_tolerance:.4f}"
)

# %% [markdown]
# ArviZ 1.x works on the run through `pyrogen.diagnostics.from_pyro` (ArviZ 1.x itself has no
# Pyro converter): an `xarray.DataTree` whose `sample_stats` include the kernel's per-chain
# scalars (here the move rate), with the `pyro.factor` site left out of the observed data.
# `to_inference_data` accepts the same run. `summarize` gives rank-normalised R-hat and ESS
# per component. Users still on ArviZ 0.23 (`import arviz`) keep `arviz.from_pyro`, which
# works only because `diagnostics()` has `"divergences"`; that part runs when 0.23 is
# installed.

# %%
idata_mcmc = diagnostics.from_pyro(mcmc, log_likelihood=False)
print("pyrogen.diagnostics.from_pyro groups:", list(idata_mcmc.children))
print("move rate per chain:", idata_mcmc.sample_stats["move_rate"].values.round(3))
summary_mcmc = diagnostics.summarize(idata_mcmc)
print(summary_mcmc[["mean", "sd", "ess_bulk", "r_hat"]])
exact_mean_a = float((exact_probs.reshape(4, 3).sum(1) * torch.arange(4.0)).sum())
exact_mean_b = float((exact_probs.reshape(4, 3).sum(0) * torch.arange(3.0)).sum())

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ArviZ 0.23 announces 1.x
        import arviz as az
    if not hasattr(az, "from_pyro"):  # ArviZ 1.x: no Pyro converter
        az = None
except ImportError:
    az = None


class NoDivergences(RandomScanGibbs):
    def diagnostics(self):
        return {"move rate": self._moves / max(self._steps, 1)}


divergence_trap = None
if az is not None:
    print("arviz.from_pyro groups:", list(az.from_pyro(mcmc, log_likelihood=False).groups()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        short = MCMC(NoDivergences(model), num_samples=20, warmup_steps=0, disable_progbar=True)
        short.run()
        try:
            az.from_pyro(short, log_likelihood=False)
        except KeyError as error:
            divergence_trap = repr(error)
print("arviz.from_pyro without 'divergences':", divergence_trap)

# %% [markdown]
# The pooled draws agree with the enumeration within the tolerance set by the spectral gap,
# both chains agree with each other (R-hat near 1), and the means of $a$ and $b$ lie within
# a few Monte Carlo standard errors (`mcse_mean`) of the exact $E[a]$ and $E[b]$, which the
# closing cell checks.
#
# ## 6. How pyrogen structures a kernel
#
# The kernel above works, but it runs one chain, calls the model once per step, and mixes
# the algorithm with the driver's bookkeeping. pyrogen separates the two (BlackJAX's design):
#
# * a **pure step function** over *batched* tensors whose first dimension is the chain,
#   `step(state, generator) -> (state, info)`, with `state` a `NamedTuple` holding only what
#   the next step needs and `info` the per-step statistics (at least `accept_prob`, shape
#   `(chains,)`);
# * a **thin adapter**, `pyrogen.infer.base.ChainKernel`, that runs the step with
#   one chain under `pyro.infer.MCMC` and handles every trap of section 1 once: it counts
#   warmup steps itself, sets `transforms`, rebuilds its state in `setup` and forgets initial
#   values in `cleanup`, returns strings from `logging()` and an empty `"divergences"` list
#   from `diagnostics()`, and owns a `torch.Generator` seeded from torch's global RNG.
#
# A subclass supplies `_prepare` (build the target from the model's arguments),
# `init_chains`, `step_chains` and `chain_values`, which is also the
# `pyrogen.infer.VectorizedKernel` protocol: `pyrogen.infer.sample` then runs thousands of
# chains as one batch. `BlockGibbs` (`block_gibbs.py`), `DiscreteGibbs`
# (`discrete_gibbs.py`) and `MetropolisHastings` (`metropolis.py`) are all built this way,
# with the accept/reject step in log space shared in `proposal.py`.
#
# Here is our random-scan Gibbs redone in that style. `_prepare` enumerates the model once
# into a log-probability table (feasible for small discrete models, and it makes a step a
# few indexing operations); the step redraws one random site per chain.


# %%
class TableState(NamedTuple):
    """Value indices of every site, shape ``(chains, sites)`` (int64)."""

    values: torch.Tensor


def table_gibbs_step(log_table, state, generator):
    """One random-scan Gibbs update of every chain (pure: no side effects, batched).

    ``log_table`` has one dimension per site (size = number of values); returns the new
    state and ``info`` with ``accept_prob`` (ones: Gibbs always accepts).
    """
    values = state.values
    num_chains, num_sites = values.shape
    sizes = torch.tensor(log_table.shape, device=values.device)
    strides = torch.tensor(log_table.stride(), device=values.device)
    site = torch.randint(num_sites, (num_chains,), generator=generator, device=values.device)
    j = torch.arange(int(sizes.max()), device=values.device)  # candidate values, padded
    candidates = values.unsqueeze(1).repeat(1, j.numel(), 1)  # (chains, K, sites)
    candidates[torch.arange(num_chains)[:, None], :, site[:, None]] = j
    valid = j < sizes[site][:, None]  # (chains, K): padding values get probability 0
    flat = (candidates.minimum(sizes - 1) * strides).sum(-1)
    logits = log_table.reshape(-1)[flat].masked_fill(~valid, -math.inf)
    new = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)
    values = values.scatter(1, site[:, None], new)
    return TableState(values), {"accept_prob": torch.ones(num_chains, dtype=log_table.dtype)}


class TableGibbs(ChainKernel):
    """Random-scan Gibbs on the enumerated log joint of a small discrete Pyro model."""

    def __init__(self, model, model_args=(), model_kwargs=None):
        self.model = model
        super().__init__(model_args, model_kwargs)
        self._prepare(self.model_args, self.model_kwargs)

    @property
    def device(self):
        return self.log_table.device

    def _prepare(self, model_args, model_kwargs):
        trace = poutine.trace(self.model).get_trace(*model_args, **model_kwargs)
        self.supports = {
            name: site["fn"].enumerate_support(expand=False)
            for name, site in trace.nodes.items()
            if site["type"] == "sample" and not site["is_observed"]
        }
        # Site d's values along dimension d: one broadcast trace scores every state.
        num_sites = len(self.supports)
        grid = {
            name: support.reshape((-1,) + (1,) * (num_sites - 1 - d))
            for d, (name, support) in enumerate(self.supports.items())
        }
        self.log_table = log_joint(self.model, grid, *model_args, **model_kwargs).detach()
        self.transforms = {}

    def init_chains(self, num_chains, *, generator, initial_params=None):
        sizes = self.log_table.shape
        columns = [torch.randint(k, (num_chains,), generator=generator) for k in sizes]
        for d, (name, support) in enumerate(self.supports.items()):
            if initial_params and name in initial_params:
                given = torch.as_tensor(initial_params[name]).reshape(-1).expand(num_chains)
                columns[d] = (given[:, None] == support).long().argmax(-1)
        return TableState(torch.stack(columns, -1))

    def step_chains(self, state, *, generator, warmup=False):
        return table_gibbs_step(self.log_table, state, generator)

    def chain_values(self, state):
        return {
            name: support[state.values[:, d]].double()
            for d, (name, support) in enumerate(self.supports.items())
        }


table_kernel = TableGibbs(model)
print("a VectorizedKernel:", isinstance(table_kernel, VectorizedKernel))
print("log table matches the enumeration:", bool(torch.allclose(table_kernel.log_table, exact_log)))

# %% [markdown]
# The same object now runs under Pyro's driver (one chain per `sample` call) ...

# %%
mcmc_table = run_mcmc(table_kernel, seed=1)
table_samples = mcmc_table.get_samples()
table_codes = (3 * table_samples["a"] + table_samples["b"]).long()
tv_table = diagnostics.total_variation(table_codes, exact_probs)
summary_table = diagnostics.summarize(diagnostics.to_inference_data(mcmc_table))
print(f"TableGibbs in pyro MCMC: TV {tv_table:.4f} (tolerance {tv_mcmc_tolerance:.4f})")
print(summary_table[["mean", "ess_bulk", "r_hat"]])

# %% [markdown]
# ... and as thousands of chains in one batch with `pyrogen.infer.sample`. With that many
# independent chains we can test the *law at time $t$* directly: start every chain uniformly
# at random, so that after $t$ steps the exact law is $\mu_t = \mu_0 P^t$ and the final
# states should be as close to it as independent draws would be. pyrogen's general kernels,
# `DiscreteGibbs` (single-site Gibbs, one batched model call per update) and
# `MetropolisHastings` (uniform proposals of a new value for one coordinate), sample the same
# Pyro model; their transition matrices differ, so we compare all three with $\pi$ itself
# after enough steps that $\mu_t$ has converged.

# %%
mu = torch.full((12,), 1 / 12, dtype=torch.float64)
exact_tv_at_t = 0.5 * float(
    (mu @ torch.linalg.matrix_power(P_gibbs, VECTOR_STEPS) - exact_probs).abs().sum()
)

vector_kernels = {
    "TableGibbs (ours)": table_kernel,
    "pyrogen DiscreteGibbs": DiscreteGibbs(model),
    "pyrogen MetropolisHastings": MetropolisHastings(model),
}
vector_tv, vector_wall = {}, {}
for k, (name, kernel) in enumerate(vector_kernels.items()):
    idata = sample(
        kernel,
        num_chains=VECTOR_CHAINS,
        num_samples=1,
        warmup_steps=VECTOR_STEPS - 1,
        seed=k,
        progress=PROGRESS,
    )
    final = {v: np.asarray(idata.posterior[v].values[:, -1]) for v in ("a", "b")}
    final_codes = (3 * final["a"] + final["b"]).astype(np.int64)
    vector_tv[name] = diagnostics.total_variation(final_codes, exact_probs)
    vector_wall[name] = diagnostics.wall_time_of(idata)

floor_gen = torch.Generator().manual_seed(0)
iid_tv = np.array(
    [
        diagnostics.total_variation(
            torch.multinomial(exact_probs, VECTOR_CHAINS, replacement=True, generator=floor_gen),
            exact_probs,
        )
        for _ in range(200)
    ]
)
print(f"exact TV of mu_t after {VECTOR_STEPS} steps of our kernel: {exact_tv_at_t:.1e}")
print(f"TV floor of {VECTOR_CHAINS} independent draws: {iid_tv.mean():.4f} +- {iid_tv.std():.4f}")
for name in vector_kernels:
    print(
        f"{name:28s} TV of {VECTOR_CHAINS} final states {vector_tv[name]:.4f}"
        f"  ({VECTOR_STEPS} steps in {vector_wall[name]:.2f} s)"
    )

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].bar(np.arange(12) - 0.2, exact_probs.numpy(), width=0.4, label="enumeration")
counts = np.bincount(codes.numpy(), minlength=12) / n_draws
axes[0].bar(np.arange(12) + 0.2, counts, width=0.4, label="RandomScanGibbs in pyro MCMC")
axes[0].set(xlabel="state 3a + b", ylabel="probability", title="draws against the exact law")
axes[0].legend(fontsize=8)
axes[1].hist(iid_tv, bins=30, color="grey", alpha=0.6, label="i.i.d. draws")
for name, value in vector_tv.items():
    axes[1].axvline(value, label=name, color=f"C{list(vector_tv).index(name)}")
axes[1].set(xlabel="TV to the exact law", title=f"{VECTOR_CHAINS} vectorised chains")
axes[1].legend(fontsize=7)
fig.tight_layout()
show(fig)

# %% [markdown]
# All three are indistinguishable from exact draws at this sample size. The lesson of the
# exercise: the MCMC maths fits in one small pure function, which the tests can drive
# directly (a transition matrix, a batch of chains); the driver's requirements are a fixed
# list, best handled once in an adapter rather than in every kernel.

# %% [markdown]
# ## 7. Gradient-informed moves for discrete sites
#
# Single-site Gibbs spends one model evaluation per value of every coordinate it visits, and
# a uniform bit-flip proposal mostly proposes moves the target rejects. *Locally informed*
# proposals pick the coordinate to change by how much each change would raise the density.
# With $r_{dj}(x) = \log \pi(x_{d \leftarrow j}) - \log \pi(x)$ for every single-coordinate
# change, the locally balanced proposal (Zanella, 2020) is
#
# $$q(x_{d \leftarrow j} \mid x) \propto e^{r_{dj}(x) / 2},$$
#
# corrected by Metropolis-Hastings with the reverse proposal computed at the new state.
# Evaluating every $r_{dj}$ exactly costs $\sum_d (k_d - 1)$ model evaluations per move
# (`pyrogen.infer.LocallyBalanced`). **Gibbs-with-Gradients** (Grathwohl et al., 2021) replaces
# them by one gradient of the log joint with respect to the site values,
# $\tilde r_{dj} = \nabla_d \log\pi(x)\,(j - x_d)$ for a bit, exact whenever the log density is
# linear in each bit and an approximation otherwise. The approximation only changes which
# moves are proposed: the Metropolis-Hastings correction uses the same estimate both ways, so
# the chain stays exactly reversible. That is checked here as in section 4, from pyrogen's own
# proposal function, on a five-bit target with a non-linear (softplus) term.

# %%
bit_field = torch.tensor([0.5, -0.3, 0.8, -1.0, 0.2], dtype=torch.float64)
bit_mix = torch.tensor([1.0, -0.7, 0.6, 0.9, -1.2], dtype=torch.float64)


def bits_model():
    x = pyro.sample("x", dist.Bernoulli(torch.full((5,), 0.5, dtype=torch.float64)).to_event(1))
    pairs = x[..., 0] * x[..., 1] - 0.8 * x[..., 2] * x[..., 3] + 0.6 * x[..., 3] * x[..., 4]
    nonlinear = 2.0 * torch.nn.functional.softplus((x * bit_mix).sum(-1) - 0.5)
    pyro.factor("energy", (x * bit_field).sum(-1) + pairs + nonlinear)


gwg = GibbsWithGradients(bits_model)
bit_states = torch.tensor([[(s >> (4 - d)) & 1 for d in range(5)] for s in range(32)])
grad_ratios = gwg.ratio_fn(bit_states)
exact_ratios = LocallyBalanced(bits_model).ratio_fn(bit_states)
ratio_gap = float((grad_ratios.log_ratios - exact_ratios.log_ratios).nan_to_num(0.0).abs().max())
bits_pi = torch.softmax(exact_ratios.log_density, 0)

log_q = proposal_log_probs(bit_states, grad_ratios.log_ratios, BALANCING["sqrt"])  # (32, 5 * 2)
P_gwg = torch.zeros(32, 32, dtype=torch.float64)
for d in range(5):
    flipped = bit_states.clone()
    flipped[:, d] = 1 - flipped[:, d]
    target_rows = (flipped * (2 ** torch.arange(4, -1, -1))).sum(-1)
    forward = log_q[torch.arange(32), 2 * d + flipped[:, d]]
    backward = log_q[target_rows, 2 * d + bit_states[:, d]]
    log_r = log_accept_ratio(
        grad_ratios.log_density[target_rows], grad_ratios.log_density, forward, backward
    )
    P_gwg[torch.arange(32), target_rows] += forward.exp() * accept_prob(log_r)
P_gwg += torch.diag((1 - P_gwg.sum(-1)).clamp(min=0.0))  # rounding: never below 0
gwg_stationarity = float((bits_pi @ P_gwg - bits_pi).abs().max())
gwg_balance = detailed_balance_violation(P_gwg, bits_pi)
print(f"largest error of the gradient estimate of a log-ratio: {ratio_gap:.2f} nats")
print(f"Gibbs-with-Gradients: |pi P - pi| = {gwg_stationarity:.1e}, balance {gwg_balance:.1e}")

gwg_idata = sample(
    GibbsWithGradients(bits_model),
    num_chains=VECTOR_CHAINS,
    num_samples=1,
    warmup_steps=VECTOR_STEPS - 1,
    seed=5,
    progress=PROGRESS,
    check=False,  # one draw per chain: the law of the final states is tested below instead
)
gwg_final = np.asarray(gwg_idata.posterior["x"].values[:, -1]).astype(np.int64)
gwg_codes = (gwg_final * (2 ** np.arange(4, -1, -1))).sum(-1)
bits_iid = np.array(
    [
        diagnostics.total_variation(
            torch.multinomial(bits_pi, VECTOR_CHAINS, replacement=True, generator=floor_gen),
            bits_pi,
        )
        for _ in range(200)
    ]
)
gwg_tv = diagnostics.total_variation(gwg_codes, bits_pi)
print(
    f"{VECTOR_CHAINS} chains after {VECTOR_STEPS} moves: TV {gwg_tv:.4f}, "
    f"i.i.d. floor {bits_iid.mean():.4f} +- {bits_iid.std():.4f}"
)

# %% [markdown]
# The estimate is off by up to the printed number of nats, and the chain is still exact. At
# real size the gain is in the cost: one move costs one forward and backward pass of the
# model whatever the number of coordinates, where single-site Gibbs makes one model call per
# pixel. `pyrogen.infer.DiscreteLangevin` (Zhang et al., 2022) goes one step further and
# proposes a new value for *every* coordinate at once from the same gradient, again corrected
# by Metropolis-Hastings. `benchmarks/discrete.py` compares them on a 784-pixel RBM posterior.
#
# ## Closing checks

# %%
assert logging_trap is not None and integer_trap is not None
assert az is None or divergence_trap is not None  # arviz 0.23's from_pyro needs 'divergences'
assert stationarity_error < 1e-12 and balance_error < 1e-12 and unique_error < 1e-10
assert float(eigenvalues[-1]) > -1e-12 and 0 < lambda_2 < 1
assert bool((inflation >= 1).all() & (inflation <= tau + 1e-9).all())
if sequential:
    per_chain = WARMUP + DRAWS
    assert logged.calls["setup"] == NUM_CHAINS and logged.calls["end_warmup"] == 0
    assert logged.calls["sample"] == logged.calls["logging"] == NUM_CHAINS * per_chain
    assert logged.calls["diagnostics"] == NUM_CHAINS
assert samples["a"].shape == (NUM_CHAINS * DRAWS,) and samples["a"].dtype == torch.float64
assert tv_mcmc < tv_mcmc_tolerance and tv_table < tv_mcmc_tolerance
for summary in (summary_mcmc, summary_table):
    assert float(summary["r_hat"].max()) < 1.05
    for site, truth in (("a", exact_mean_a), ("b", exact_mean_b)):
        z_score = (summary.loc[site, "mean"] - truth) / summary.loc[site, "mcse_mean"]
        assert abs(z_score) < 4.5, (site, z_score)  # 4 means: 4.5 MCSE is a 1e-4 event
assert exact_tv_at_t < 0.01 * iid_tv.mean()
assert ratio_gap > 0.1 and gwg_stationarity < 1e-12 and gwg_balance < 1e-12
assert gwg_tv < bits_iid.mean() + 5 * bits_iid.std()
for name, value in vector_tv.items():
    assert value < iid_tv.mean() + 5 * iid_tv.std(), name
print("all checks passed")
