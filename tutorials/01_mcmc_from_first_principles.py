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
# # Tutorial 1 — MCMC from first principles
#
# Every sampler in pyrogen, from block Gibbs on an RBM to Metropolis-Hastings on a Pyro
# model, ultimately consumes a stream of numbers that look uniform on $(0, 1)$. This notebook
# rebuilds the whole stack on top of such a stream, checking each layer as it goes:
#
# 1. **uniforms** from a linear congruential generator (LCG): its period and a
#    Kolmogorov-Smirnov test, and where it fails;
# 2. **normals** from pairs of uniforms by the Box-Muller transform;
# 3. **Markov chains** on a few states and their stationary distribution $\pi P = \pi$;
# 4. **detailed balance**, the local condition that makes a target stationary;
# 5. **Gibbs sampling and Metropolis-Hastings** on a small discrete target, verified twice:
#    exactly, through their transition matrices, and by simulation, with the total variation
#    distance to the target falling as the chains run longer.
#
# Everything here uses `pyrogen.first_principles` (`generators` for the random numbers,
# `markov_chains` for the finite chains), whose functions are small enough to read alongside.
# Under the environment variable `CI` the sizes shrink so that the notebook runs in seconds;
# the closing assertions hold in both modes.

# %%
import os
import sys

SMOKE_TEST = "CI" in os.environ

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # run as a script: draw off-screen, no display needed
import math

import matplotlib.pyplot as plt
import numpy as np
import scipy.stats
import torch

from pyrogen.first_principles import (
    LinearCongruential,
    box_muller,
    detailed_balance_violation,
    gibbs_chain,
    gibbs_matrix,
    hull_dobell,
    metropolis_hastings_chain,
    metropolis_hastings_matrix,
    stationary_distribution,
)

NUM_UNIFORMS = 20_000 if SMOKE_TEST else 200_000
NUM_CHAINS = 1_000 if SMOKE_TEST else 10_000  # independent chains for the "across chains" view
CHAIN_STEPS = 40 if SMOKE_TEST else 60
LONG_RUN = 2_000 if SMOKE_TEST else 20_000  # one long chain for the "time average" view


def show(fig):
    """Display a figure in a notebook; as a script just release it (nothing is saved)."""
    if "ipykernel" in sys.modules:
        plt.show()
    plt.close(fig)


# %% [markdown]
# ## 1. Uniforms from a linear congruential generator
#
# An LCG keeps one integer state $x_n \in \{0, \dots, m-1\}$ and updates it by
#
# $$x_{n+1} = (a\,x_n + c) \bmod m ,$$
#
# mapping each state to a number in the open interval, $u_n = (x_n + \tfrac12)/m$. The state
# space is finite, so the sequence must eventually repeat; the best one can hope for is a
# **period** equal to $m$, every residue visited once per cycle. Hull and Dobell (1962)
# characterised exactly when that happens: $c$ coprime to $m$, $a-1$ divisible by every prime
# factor of $m$, and $a - 1$ divisible by 4 whenever $m$ is.
#
# On a toy modulus we can simply walk the whole cycle and count.


# %%
def period(a, c, m, seed=0):
    """Steps until the LCG first revisits its starting state (at most m)."""
    lcg = LinearCongruential(seed, a=a, c=c, m=m)
    values = lcg.integers(m).tolist()
    return values.index(seed % m) + 1 if seed % m in values else None


m = 64
for a, c in [(21, 11), (21, 12), (23, 11), (5, 1)]:
    print(
        f"a={a:2d} c={c:2d} m={m}: Hull-Dobell says full period: {hull_dobell(a, c, m)!s:5}"
        f"  measured period from seed 0: {period(a, c, m)}"
    )

# %% [markdown]
# Only the parameter sets that pass all three conditions reach period 64; $c = 12$ shares the
# factor 2 with $m$, and $a = 23$ has $a - 1 = 22$, not a multiple of 4.
#
# `LinearCongruential()` defaults to the constants of *Numerical Recipes*
# ($a = 1664525$, $c = 1013904223$, $m = 2^{32}$), which satisfy the theorem. A million
# values come out as one vectorised block, identical to running the recurrence by hand.
# Uniformity is checked by the Kolmogorov-Smirnov statistic
# $D_N = \sup_u |\hat F_N(u) - u|$ and by a chi-square test on 20 equal bins.

# %%
lcg = LinearCongruential(seed=2024)
print(lcg, "full period:", lcg.has_full_period)

x, by_hand = 2024, []
for _ in range(5):
    x = (1664525 * x + 1013904223) % 2**32
    by_hand.append(x)
assert LinearCongruential(seed=2024).integers(5).tolist() == by_hand

u = lcg.uniform(NUM_UNIFORMS)
ks_uniform = scipy.stats.kstest(u.numpy(), "uniform")
counts = np.bincount((u.numpy() * 20).astype(int), minlength=20)
chi2_uniform = scipy.stats.chisquare(counts)
print(f"KS:   D = {ks_uniform.statistic:.4f}, p = {ks_uniform.pvalue:.3f}")
print(f"chi2: {chi2_uniform.statistic:.1f} on 19 dof, p = {chi2_uniform.pvalue:.3f}")

# %% [markdown]
# Passing these tests does not make a generator good. Two weaknesses of LCGs can be shown
# *exactly*:
#
# * with $m = 2^{32}$ the lowest bit of $x_n$ simply alternates (bit $k$ has period
#   $2^{k+1}$), so "$x_n$ is odd" is a terrible coin;
# * IBM's infamous RANDU ($a = 65539 = 2^{16} + 3$, $c = 0$, $m = 2^{31}$) satisfies
#   $a^2 \equiv 6a - 9 \pmod{2^{31}}$, hence $x_{n+2} - 6x_{n+1} + 9x_n \equiv 0$: every
#   triple of successive values lies on one of a handful of planes in the unit cube.

# %%
low_bits = LinearCongruential(seed=7).integers(1000) % 2
print("lowest bits:", low_bits[:12].tolist())
randu = LinearCongruential(seed=1, a=65539, c=0, m=2**31).integers(3000)
plane = (randu[2:] - 6 * randu[1:-1] + 9 * randu[:-2]) % 2**31
print("RANDU triples on the planes:", bool((plane == 0).all()))

fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
axes[0].hist(u.numpy(), bins=50, density=True)
axes[0].set(title="LCG uniforms", xlabel="u")
axes[1].plot(u[:-1:2][:3000], u[1::2][:3000], ".", ms=1)
axes[1].set(title="successive pairs $(u_n, u_{n+1})$")
r = (randu.double() + 0.5) / 2**31
# 9 u_n - 6 u_{n+1} + u_{n+2} is (up to the 1/2m offsets) an integer: one per plane.
axes[2].plot(r[:-2], 9 * r[:-2] - 6 * r[1:-1] + r[2:], ".", ms=1)
axes[2].set(title="RANDU: $9u_n - 6u_{n+1} + u_{n+2}$ vs $u_n$", xlabel="$u_n$")
fig.tight_layout()
show(fig)

# %% [markdown]
# ## 2. Normals from uniforms: Box-Muller
#
# Two independent uniforms give two independent standard normals:
#
# $$r = \sqrt{-2 \log u_1},\qquad z_1 = r\cos(2\pi u_2),\qquad z_2 = r \sin(2\pi u_2).$$
#
# The reason: a standard bivariate normal written in polar coordinates has a uniform angle
# and a squared radius $r^2$ that is $\chi^2_2$, i.e. $r^2/2 \sim \text{Exp}(1)$, and
# $-\log u_1$ is exactly an Exp(1) variable. We check the moments $E z = 0$, $E z^2 = 1$,
# $E z^4 = 3$ against their Monte Carlo standard errors
# ($\sqrt{\operatorname{Var}(z^k)/N}$ with $\operatorname{Var} z = 1$,
# $\operatorname{Var} z^2 = 2$, $\operatorname{Var} z^4 = 105 - 9 = 96$), and the whole
# distribution with a KS test against $\mathcal N(0, 1)$.

# %%
lcg = LinearCongruential(seed=99)
u1, u2 = lcg.uniform(NUM_UNIFORMS // 2), lcg.uniform(NUM_UNIFORMS // 2)
z1, z2 = box_muller(u1, u2)
z = torch.cat([z1, z2])
n = z.numel()
moment_z_scores = {
    "E z   = 0": float(z.mean()) / math.sqrt(1 / n),
    "E z^2 = 1": (float((z**2).mean()) - 1) / math.sqrt(2 / n),
    "E z^4 = 3": (float((z**4).mean()) - 3) / math.sqrt(96 / n),
}
for name, score in moment_z_scores.items():
    print(f"{name}: {score:+.2f} standard errors off")
ks_normal = scipy.stats.kstest(z.numpy(), "norm")
ks_radius = scipy.stats.kstest((z1**2 + z2**2).numpy() / 2, "expon")
print(
    f"KS against N(0,1): p = {ks_normal.pvalue:.3f}; "
    f"r^2/2 against Exp(1): p = {ks_radius.pvalue:.3f}"
)
print("correlation of z1 and z2:", round(float(torch.corrcoef(torch.stack([z1, z2]))[0, 1]), 4))

grid = np.linspace(-4, 4, 200)
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.hist(z.numpy(), bins=80, density=True, alpha=0.6, label="Box-Muller on LCG uniforms")
ax.plot(grid, scipy.stats.norm.pdf(grid), "k", label="N(0, 1) density")
ax.legend()
show(fig)

# %% [markdown]
# ## 3. Markov chains and stationary distributions
#
# A Markov chain on states $\{0, \dots, S-1\}$ is described by a transition matrix $P$ whose
# row $i$ is the law of the next state given the current state $i$. If $\mu_t$ is the law of
# the state at time $t$ (a row vector), then $\mu_{t+1} = \mu_t P$ and $\mu_t = \mu_0 P^t$.
# A distribution with
#
# $$\pi P = \pi$$
#
# is **stationary**: a chain started from $\pi$ stays distributed as $\pi$. When the chain is
# irreducible and aperiodic, $\pi$ is unique and $\mu_t \to \pi$ from *any* start; this is
# the whole reason MCMC works, since we will design $P$ so that its $\pi$ is the distribution
# we want to sample.
#
# A three-state example (think: tomorrow's weather given today's):

# %%
P = torch.tensor(
    [
        [0.90, 0.08, 0.02],
        [0.30, 0.60, 0.10],
        [0.20, 0.30, 0.50],
    ],
    dtype=torch.float64,
)
pi = stationary_distribution(P)
print("pi          =", pi.numpy().round(6))
print("|pi P - pi| =", float((pi @ P - pi).abs().max()))
for t in (1, 5, 20, 80):
    rows = torch.linalg.matrix_power(P, t)
    print(f"rows of P^{t:<2d}: ", rows.numpy().round(4).tolist())

# %% [markdown]
# Every row of $P^t$, i.e. the law after $t$ steps from each possible starting state,
# approaches the same vector $\pi$. Simulating the chain needs only uniforms: the next state
# is the first $j$ whose cumulative probability $\sum_{k \le j} P_{ik}$ exceeds $u$ (inverse
# CDF). Driven by our LCG, the fraction of time spent in each state approaches $\pi$.

# %%
lcg = LinearCongruential(seed=5)
state, visits = 0, torch.zeros(3, dtype=torch.float64)
cdf = P.cumsum(-1)
for u_t in lcg.uniform(LONG_RUN).tolist():
    state = int(torch.searchsorted(cdf[state], torch.tensor(u_t, dtype=torch.float64)))
    visits[state] += 1
print("time fractions:", (visits / LONG_RUN).numpy().round(3), " pi:", pi.numpy().round(3))

# %% [markdown]
# ## 4. Detailed balance
#
# Checking $\pi P = \pi$ requires summing over all states, which is hopeless for the huge
# state spaces of real models. A sufficient *local* condition is **detailed balance**:
#
# $$\pi_i P_{ij} = \pi_j P_{ji}\quad\text{for all } i, j ,$$
#
# the probability flow from $i$ to $j$ equals the flow back. Summing over $i$ gives
# $\sum_i \pi_i P_{ij} = \pi_j \sum_i P_{ji} = \pi_j$, i.e. stationarity. Chains that satisfy
# it are called *reversible*. The converse fails: a chain that mostly walks clockwise around
# a cycle keeps the uniform distribution stationary, yet its flows are anything but balanced.


# %%
def cyclic_walk(S, forward, backward):
    Q = torch.zeros(S, S, dtype=torch.float64)
    for i in range(S):
        Q[i, (i + 1) % S] += forward
        Q[i, (i - 1) % S] += backward
        Q[i, i] += 1 - forward - backward
    return Q


cycle = cyclic_walk(4, forward=0.6, backward=0.1)
symmetric = cyclic_walk(4, forward=0.35, backward=0.35)
for name, Q in [("clockwise walk", cycle), ("symmetric walk", symmetric)]:
    pi_Q = stationary_distribution(Q)
    print(
        f"{name}: pi = {pi_Q.numpy().round(4)}, "
        f"detailed-balance violation = {detailed_balance_violation(Q, pi_Q):.3g}"
    )
print("weather chain: violation =", round(detailed_balance_violation(P, pi), 4))

# %% [markdown]
# The weather chain of section 3 is not reversible either (a small net probability current
# circulates $0 \to 2 \to 1 \to 0$), yet its $\pi$ is stationary: detailed balance is a
# convenient design rule, not a requirement.

# %% [markdown]
# ## 5. Gibbs sampling and Metropolis-Hastings, checked exactly
#
# Both algorithms build a transition matrix with a prescribed $\pi$ from nothing more than
# *ratios* $\pi_j / \pi_i$, so the normalising constant of $\pi$ is never needed.
#
# Our target is a small table: two variables $x_1, x_2 \in \{0, \dots, 4\}$ with
#
# $$\pi(x_1, x_2) \propto \exp\!\Big(-\frac{(x_1 - 2)^2 + (x_2 - 2)^2}{4}
#   + 0.4\,(x_1 - 2)(x_2 - 2)\Big),$$
#
# a discretised bell with correlation about 0.8: 25 states in all, most of the mass on the
# diagonal $x_1 \approx x_2$.
#
# **Gibbs sampling** redraws one variable from its *full conditional*
# $\pi(x_k \mid x_{-k})$, a one-dimensional distribution read off a row or column of the
# table. Each such move $G_k$ satisfies detailed balance, so
# *random scan* ($P = \frac12(G_1 + G_2)$, pick a variable at random) is reversible, while
# *systematic scan* ($P = G_1 G_2$, update both in turn) keeps $\pi$ stationary without being
# reversible.

# %%
values = torch.arange(5, dtype=torch.float64) - 2
joint = torch.exp(
    -0.25 * values[:, None] ** 2 - 0.25 * values[None, :] ** 2 + 0.4 * values[:, None] * values
)
target = (joint / joint.sum()).reshape(-1)  # row-major: state = 5 * x1 + x2

checks = {}
for scan in ("random", "systematic"):
    P_gibbs = gibbs_matrix(joint, scan=scan)
    checks[f"gibbs-{scan}"] = (
        float((target @ P_gibbs - target).abs().max()),
        detailed_balance_violation(P_gibbs, target),
    )

# %% [markdown]
# **Metropolis-Hastings** proposes $j \sim Q(i, \cdot)$ from the current state $i$ and accepts
# it with probability
#
# $$\alpha_{ij} = \min\!\Big(1,\ \frac{\pi_j\, Q_{ji}}{\pi_i\, Q_{ij}}\Big),$$
#
# otherwise staying at $i$. For $i \ne j$ the flow is
# $\pi_i Q_{ij} \alpha_{ij} = \min(\pi_i Q_{ij},\ \pi_j Q_{ji})$, symmetric in $i$ and $j$:
# detailed balance holds for *any* proposal. Here the proposal moves to a uniformly chosen
# grid neighbour. Corner states have 2 neighbours and interior states 4, so $Q$ is not
# symmetric, and the factor $Q_{ji} / Q_{ij}$ (Hastings' correction) matters: leaving it out
# (plain Metropolis with an asymmetric proposal) converges to the wrong distribution.


# %%
def neighbour_proposal(size=5):
    Q = torch.zeros(size * size, size * size, dtype=torch.float64)
    for i in range(size):
        for j in range(size):
            moves = [(i + di, j + dj) for di, dj in ((1, 0), (-1, 0), (0, 1), (0, -1))]
            moves = [(a, b) for a, b in moves if 0 <= a < size and 0 <= b < size]
            for a, b in moves:
                Q[size * i + j, size * a + b] = 1 / len(moves)
    return Q


Q = neighbour_proposal()
P_mh = metropolis_hastings_matrix(target, Q)
checks["metropolis-hastings"] = (
    float((target @ P_mh - target).abs().max()),
    detailed_balance_violation(P_mh, target),
)

# The same chain without the Hastings factor Q_ji / Q_ij, built by hand.
ratio = (target[None, :] / target[:, None]).clamp(max=1.0)
P_no_hastings = Q * ratio
P_no_hastings += torch.diag(1 - P_no_hastings.sum(-1))
wrong = stationary_distribution(P_no_hastings)
tv_no_hastings = 0.5 * float((wrong - target).abs().sum())

for name, (stationarity, balance) in checks.items():
    print(f"{name:20s} |pi P - pi| = {stationarity:.1e}   detailed balance: {balance:.1e}")
print(f"without the Hastings correction: TV(stationary, target) = {tv_no_hastings:.3f}")

# %% [markdown]
# All three samplers leave the target invariant to rounding error; random-scan Gibbs and MH
# are reversible and systematic-scan Gibbs is not. The exact matrices also tell us how fast
# each chain forgets its start: the **total variation distance**
#
# $$\mathrm{TV}(\mu, \pi) = \tfrac12 \sum_i |\mu_i - \pi_i|$$
#
# between $\mu_t = \delta_{s_0} P^t$ and the target, where every chain starts in the corner
# $s_0 = (x_1, x_2) = (0, 4)$, across the diagonal from the mass and the least likely state.
#
# ## 6. ... and checked by simulation
#
# Now we run the algorithms themselves, `gibbs_chain` and `metropolis_hastings_chain`,
# driven by nothing but our LCG, and measure TV in two ways:
#
# * **across chains**: the empirical law of $N$ independent chains at time $t$ should track
#   the exact $\mu_t$, down to the Monte Carlo floor of $N$ draws
#   ($E\,\mathrm{TV} \approx \sum_i \sqrt{\pi_i(1-\pi_i) / (2\pi N)}$ for independent draws);
# * **along one chain**: the fraction of time a single long chain spends in each state
#   converges to $\pi$ (the ergodic theorem), TV shrinking roughly like $1/\sqrt{n}$.


# %%
def tv(samples, probs):
    counts = torch.bincount(samples.reshape(-1), minlength=probs.numel()).double()
    return 0.5 * float((counts / counts.sum() - probs).abs().sum())


START = 4  # (x1, x2) = (0, 4)
assert int(target.argmin()) == START
samplers = {
    "Gibbs (random scan)": lambda steps, chains, gen: gibbs_chain(
        joint, steps, scan="random", num_chains=chains, initial_state=START, generator=gen
    ),
    "Gibbs (systematic)": lambda steps, chains, gen: gibbs_chain(
        joint, steps, scan="systematic", num_chains=chains, initial_state=START, generator=gen
    ),
    "Metropolis-Hastings": lambda steps, chains, gen: metropolis_hastings_chain(
        target, Q, steps, num_chains=chains, initial_state=START, generator=gen
    ),
}
across, exact_tv, along = {}, {}, {}
lengths = [LONG_RUN // 100, LONG_RUN // 10, LONG_RUN]
for k, (name, run) in enumerate(samplers.items()):
    result = run(CHAIN_STEPS, NUM_CHAINS, LinearCongruential(seed=100 + k))
    mu = torch.zeros_like(target)
    mu[START] = 1.0
    exact_tv[name], across[name] = [], []
    for t in range(CHAIN_STEPS + 1):
        exact_tv[name].append(0.5 * float((mu - target).abs().sum()))
        across[name].append(tv(result.states[:, t], target))
        mu = mu @ result.transition_matrix
    long_chain = run(LONG_RUN, 1, LinearCongruential(seed=200 + k)).states[0, 1:]
    along[name] = [tv(long_chain[:n], target) for n in lengths]

# The Monte Carlo floor of TV for NUM_CHAINS independent exact draws, by simulation.
floor_gen = torch.Generator().manual_seed(0)
iid_tv = torch.tensor(
    [
        tv(torch.multinomial(target, NUM_CHAINS, replacement=True, generator=floor_gen), target)
        for _ in range(200)
    ]
)
floor_mean, floor_sd = float(iid_tv.mean()), float(iid_tv.std())
print(f"TV floor of {NUM_CHAINS} independent draws: {floor_mean:.4f} +- {floor_sd:.4f}")
for name in samplers:
    print(
        f"{name:20s} after {CHAIN_STEPS} steps: exact TV {exact_tv[name][-1]:.1e}, "
        f"simulated {across[name][-1]:.4f};  one chain of n = {lengths}: "
        + ", ".join(f"{x:.3f}" for x in along[name])
    )

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
for name in samplers:
    (line,) = axes[0].semilogy(exact_tv[name], label=f"{name} (exact)")
    axes[0].semilogy(across[name], ".", color=line.get_color(), ms=4)
    axes[1].loglog(lengths, along[name], "o-", label=name)
axes[0].axhline(floor_mean, color="grey", ls="--", label="floor of N i.i.d. draws")
axes[0].set(xlabel="step t", ylabel="TV to target", title=f"across {NUM_CHAINS} chains")
axes[0].legend(fontsize=7)
axes[1].loglog(
    lengths,
    [along["Metropolis-Hastings"][0] * (lengths[0] / n) ** 0.5 for n in lengths],
    "k:",
    label="slope -1/2",
)
axes[1].set(xlabel="chain length n", ylabel="TV of the time average", title="along one chain")
axes[1].legend(fontsize=7)
fig.tight_layout()
show(fig)

# %% [markdown]
# The simulated points follow the exact curves until they hit the sampling floor of $N$
# draws, and the single-chain averages shrink steadily with length. Systematic-scan Gibbs
# forgets its start fastest here, since one of its steps updates both variables. The
# correlated target slows down all three: each move changes one coordinate (or one grid
# step), while the mass lies along a diagonal. That is the price of local moves, and the
# theme of the next tutorial, where the RBM's structure lets a Gibbs sampler update
# *hundreds* of variables in one block.
#
# ## Closing checks
#
# The key numbers of this notebook, asserted so that the notebook fails loudly if any layer
# breaks. The statistical checks use fixed seeds; their thresholds are p-values of $10^{-3}$
# or 4-5 standard errors.

# %%
assert period(21, 11, 64) == 64 and period(23, 11, 64) < 64
assert ks_uniform.pvalue > 1e-3 and chi2_uniform.pvalue > 1e-3
assert bool((low_bits[1:] != low_bits[:-1]).all())  # the lowest bit alternates
assert bool((plane == 0).all())  # RANDU's planes, exactly
assert all(abs(s) < 4 for s in moment_z_scores.values())
assert ks_normal.pvalue > 1e-3 and ks_radius.pvalue > 1e-3
assert float((pi @ P - pi).abs().max()) < 1e-12
assert detailed_balance_violation(symmetric, stationary_distribution(symmetric)) < 1e-12
assert detailed_balance_violation(cycle, stationary_distribution(cycle)) > 0.1
for name, (stationarity, balance) in checks.items():
    assert stationarity < 1e-12, name
    assert (balance < 1e-12) == (name != "gibbs-systematic"), name
assert tv_no_hastings > 0.01
for name in samplers:
    assert exact_tv[name][-1] < 0.01 * floor_mean, name  # converged: only sampling error left
    assert across[name][-1] < floor_mean + 5 * floor_sd, name
    assert along[name][-1] < along[name][0], name
print("all checks passed")
