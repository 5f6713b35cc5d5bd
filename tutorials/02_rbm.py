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
# # Tutorial 2 — The restricted Boltzmann machine
#
# An RBM is an *energy-based* model: it scores configurations with an energy and turns
# scores into probabilities through a normalising constant it can almost never compute.
# This notebook follows the model from its definition to its uses:
#
# 1. the energy, the partition function $Z_\theta$ and the free energy, checked by brute
#    force on a model small enough to enumerate;
# 2. why the log-likelihood gradient is intractable: a data term minus a model term;
# 3. contrastive divergence (CD) and persistent CD (PCD) with `pyrogen.rbm.fit` on
#    handwritten digits, scored by the *exact* held-out log-likelihood;
# 4. annealed importance sampling (AIS) for $\log Z_\theta$, against the exact value;
# 5. block Gibbs (`pyrogen.infer.BlockGibbs`) against Pyro's NUTS on the same Pyro model,
#    with ArviZ diagnostics through `pyrogen.diagnostics`;
# 6. RBM features for classification;
# 7. the general Boltzmann machine, sampled by `pyrogen.infer.DiscreteGibbs`, and why the
#    *restriction* is what makes block Gibbs possible.
#
# Tutorial 1 built Gibbs sampling and Metropolis-Hastings from a uniform generator; here
# they do real work. Under the environment variable `CI` every size shrinks so that the
# notebook runs in seconds; the closing assertions hold in both modes.

# %%
import math
import os
import sys
import tempfile
import time
import warnings

SMOKE_TEST = "CI" in os.environ

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # run as a script: draw off-screen, no display needed
import matplotlib.pyplot as plt
import numpy as np
import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.infer import MCMC, NUTS
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from pyrogen import diagnostics
from pyrogen.data import load_digits
from pyrogen.first_principles import stationary_distribution
from pyrogen.infer import BlockGibbs, DiscreteGibbs, sample
from pyrogen.rbm import RBM, ais, binary_states, fit, functional, log_likelihood_bounds

PROGRESS = not SMOKE_TEST
EPOCHS = 15 if SMOKE_TEST else 100  # CD / PCD training on the digits
AIS_TEMPERATURES = [100, 1_000] if SMOKE_TEST else [100, 1_000, 10_000]
NUTS_CHAINS, NUTS_WARMUP, NUTS_DRAWS = (2, 100, 200) if SMOKE_TEST else (4, 300, 1_000)
GIBBS_DRAWS = 1_000 if SMOKE_TEST else 5_000
FEATURE_HIDDEN, FEATURE_EPOCHS = (100, 20) if SMOKE_TEST else (200, 50)
LABEL_REPEATS = 10 if SMOKE_TEST else 40
BM_CHAINS, BM_SWEEPS = (1_000, 30) if SMOKE_TEST else (10_000, 50)


def show(fig):
    """Display a figure in a notebook; as a script just release it (nothing is saved)."""
    if "ipykernel" in sys.modules:
        plt.show()
    plt.close(fig)


# %% [markdown]
# ## 1. Energy, partition function, free energy
#
# An RBM has binary visible units $\mathbf v \in \{0,1\}^{n_v}$ (the data) and binary hidden
# units $\mathbf h \in \{0,1\}^{n_h}$, with parameters $\theta = \{\mathbf b, \mathbf c, W\}$:
# visible biases $\mathbf b$, hidden biases $\mathbf c$ and a weight matrix $W$ that couples
# every visible unit to every hidden unit, and nothing else. The energy and the joint law are
#
# $$E_\theta(\mathbf v, \mathbf h) = -\mathbf b^\top \mathbf v - \mathbf c^\top \mathbf h
#   - \mathbf v^\top W \mathbf h, \qquad
#   P_\theta(\mathbf v, \mathbf h) = \frac{e^{-E_\theta(\mathbf v, \mathbf h)}}{Z_\theta},
#   \qquad Z_\theta = \sum_{\mathbf v, \mathbf h} e^{-E_\theta(\mathbf v, \mathbf h)} .$$
#
# Low energy means high probability. $Z_\theta$ sums $2^{n_v + n_h}$ terms. Because the
# energy is linear in each $h_j$, the sum over $\mathbf h$ factorises and the visible
# marginal has a closed form through the **free energy**:
#
# $$P(\mathbf v) = \frac{e^{-F(\mathbf v)}}{Z_\theta},\qquad
#   F(\mathbf v) = -\log\sum_{\mathbf h} e^{-E_\theta(\mathbf v, \mathbf h)}
#   = -\mathbf b^\top \mathbf v - \sum_j \log\big(1 + e^{c_j + (\mathbf v^\top W)_j}\big).$$
#
# The same factorisation gives the conditionals
# $P(h_j = 1 \mid \mathbf v) = \sigma(c_j + (\mathbf v^\top W)_j)$ and
# $P(v_i = 1 \mid \mathbf h) = \sigma(b_i + (W\mathbf h)_i)$, with $\sigma$ the logistic
# function. `RBM.log_partition()` uses it too: it enumerates only the *smaller* layer and sums
# the other in closed form, so $2^{\min(n_v, n_h)}$ terms suffice.
#
# On a 5 x 3 model everything can be checked against brute force over all 256 pairs
# $(\mathbf v, \mathbf h)$.

# %%
torch.manual_seed(0)
tiny = RBM(5, 3, dtype=torch.float64)
with torch.no_grad():
    tiny.weight.normal_(0.0, 2.0)
    tiny.visible_bias.normal_(0.0, 0.5)
    tiny.hidden_bias.normal_(0.0, 0.5)

V = binary_states(5, dtype=torch.float64)  # (32, 5): every visible configuration
H = binary_states(3, dtype=torch.float64)  # (8, 3)
with torch.no_grad():
    b, c, W = tiny.visible_bias, tiny.hidden_bias, tiny.weight
    energy_table = -(V @ b)[:, None] - (H @ c)[None, :] - V @ W @ H.T  # (32, 8)
    log_z_brute = torch.logsumexp(-energy_table.reshape(-1), 0)
    p_h1_table = torch.softmax(-energy_table, 1)[:, H[:, 0] == 1].sum(1)  # P(h_1 = 1 | v)
    errors = {
        "energy": (tiny.energy(V[:, None, :], H[None, :, :]) - energy_table).abs().max(),
        "free energy": (tiny.free_energy(V) + torch.logsumexp(-energy_table, 1)).abs().max(),
        "log Z": (tiny.log_partition() - log_z_brute).abs(),
        "sum of P(v)": torch.logsumexp(tiny.log_prob(V), 0).abs(),
        "P(h_1=1|v)": (p_h1_table - tiny.hidden_probs(V)[:, 0]).abs().max(),
    }
for name, error in errors.items():
    print(f"{name:12s} largest error against brute force: {float(error):.1e}")
print(f"log Z = {float(log_z_brute):.6f}")

# %% [markdown]
# ## 2. Why the likelihood gradient is intractable
#
# For training data $\mathbf v^1, \dots, \mathbf v^n$ the log-likelihood is
#
# $$\ell(\theta) = \sum_{t=1}^n \log P(\mathbf v^t)
#   = \sum_{t=1}^n \log \sum_{\mathbf h} e^{-E_\theta(\mathbf v^t, \mathbf h)}
#   - n \log \sum_{\mathbf v, \mathbf h} e^{-E_\theta(\mathbf v, \mathbf h)},$$
#
# and differentiating each log-sum-exp gives an expectation:
#
# $$\nabla_\theta \ell(\theta) =
#   \underbrace{\sum_{t=1}^n \mathbb E_{P(\mathbf h \mid \mathbf v^t)}
#   \big[-\nabla_\theta E_\theta(\mathbf v^t, \mathbf h)\big]}_{\text{data term}}
#   \; - \; n\, \underbrace{\mathbb E_{P(\mathbf v, \mathbf h)}
#   \big[-\nabla_\theta E_\theta(\mathbf v, \mathbf h)\big]}_{\text{model term}} .$$
#
# For the weights $-\partial E / \partial W = \mathbf v \mathbf h^\top$: the data term
# correlates each training image with its hidden response, which is cheap because
# $P(\mathbf h\mid\mathbf v)$ factorises. The model term is the same correlation under the
# model's *own* distribution, a sum over all $2^{n_v + n_h}$ states, needed afresh after
# every parameter update. For a 64 x 16 digits model that is $2^{16}$ terms even with the
# closed-form trick; for 64 x 500 it is hopeless.
#
# On the tiny model both terms are exact sums, and their difference must equal what autograd
# finds for $\ell$ itself.

# %%
gen = torch.Generator().manual_seed(1)
prototypes = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]], dtype=torch.float64)
flips = torch.bernoulli(torch.full((60, 5), 0.1, dtype=torch.float64), generator=gen)
tiny_data = (prototypes[torch.arange(60) % 2] + flips) % 2  # two noisy patterns
codes = (tiny_data * 2 ** torch.arange(5)).sum(-1).long()
p_data = torch.bincount(codes, minlength=32).double() / len(tiny_data)  # over the 32 rows of V


def correlation(visible_law):
    """E[v h^T] when v has law `visible_law` over the rows of V and h ~ P(h | v)."""
    with torch.no_grad():
        return (visible_law[:, None] * V).T @ tiny.hidden_probs(V)


with torch.no_grad():
    p_model = tiny.log_prob(V).exp()
data_term, model_term = correlation(p_data), correlation(p_model)
exact_gradient = data_term - model_term  # of the mean log-likelihood, per example

# The same gradient by autograd, through a brute-force log Z.
weight = tiny.weight.detach().clone().requires_grad_(True)


def free(v):
    return -(v @ tiny.visible_bias) - F.softplus(tiny.hidden_bias + v @ weight).sum(-1)


mean_log_lik = -free(tiny_data).mean() - torch.logsumexp(-free(V), 0)
(autograd_gradient,) = torch.autograd.grad(mean_log_lik, weight)
gradient_error = float((autograd_gradient - exact_gradient).abs().max())
print(f"data term - model term vs autograd: largest difference {gradient_error:.1e}")

# %% [markdown]
# ### Contrastive divergence
#
# CD (Hinton, 2002) replaces the model term by a cheap stand-in: start a block-Gibbs chain
# at each training example and run it for $k$ steps,
#
# $$\mathbf v^0 = \mathbf v^t,\quad \mathbf h^0 \sim P(\mathbf h \mid \mathbf v^0),\quad
#   \mathbf v^{1} \sim P(\mathbf v \mid \mathbf h^0),\quad \mathbf h^1 \sim
#   P(\mathbf h\mid\mathbf v^1),\ \dots,\ \mathbf v^{k},$$
#
# and use $-\nabla_\theta E_\theta(\tilde{\mathbf v}, \tilde{\mathbf h})$ at the end of the
# chain in place of the model expectation. As $k \to \infty$ the chain forgets where it
# started and the estimate becomes unbiased; for small $k$ it is biased towards the data.
# **Persistent CD** (Tieleman, 2008) never restarts the chains: they carry over from one
# update to the next, so when the parameters move slowly they stay close to samples of the
# current model.
#
# On the tiny model the *expected* CD-$k$ update is computable exactly: the one-sweep
# transition matrix on visible states is
# $T(\mathbf v, \mathbf v') = \sum_{\mathbf h} P(\mathbf h\mid\mathbf v)P(\mathbf v'\mid\mathbf h)$,
# and after $k$ sweeps from the data the visible law is $p_{\text{data}}\, T^k$.

# %%
with torch.no_grad():
    hidden_logits = functional.hidden_logits(tiny, V)
    visible_logits = functional.visible_statistic(tiny, H)
    p_h_given_v = torch.exp(hidden_logits @ H.T - F.softplus(hidden_logits).sum(-1, True))
    p_v_given_h = torch.exp(visible_logits @ V.T - F.softplus(visible_logits).sum(-1, True))
T = p_h_given_v @ p_v_given_h  # (32, 32), rows sum to one
assert float((p_model @ T - p_model).abs().max()) < 1e-12  # the model is stationary

cd_steps = [1, 2, 5, 10, 50]
cd_error = {}
for k in cd_steps:
    law = p_data @ torch.linalg.matrix_power(T, k)
    cd_gradient = data_term - correlation(law)
    cd_error[k] = float((cd_gradient - exact_gradient).norm() / exact_gradient.norm())
    cosine = float(F.cosine_similarity(cd_gradient.flatten(), exact_gradient.flatten(), 0))
    print(
        f"CD-{k:<3d}: relative error of the expected update {cd_error[k]:.3f}, cosine {cosine:.3f}"
    )

# %% [markdown]
# The expected CD-1 update points in roughly the right direction, but it is off by about a
# third of the gradient's length; the bias shrinks as $k$ grows, at the price of $k$ Gibbs
# sweeps per update. This five-unit model mixes within a few sweeps. A model of real data
# mixes far more slowly, which is where PCD's long-lived chains help. Even so, CD-1 trains
# useful models, as the next section shows.
#
# ## 3. CD and PCD on the digits
#
# `pyrogen.data.load_digits()` gives scikit-learn's 8 x 8 handwritten digits, binarised:
# 1437 training and 360 held-out images of 64 pixels. With 16 hidden units
# `log_partition()` needs only $2^{16}$ terms, so `fit` reports the **exact** held-out
# log-likelihood after every epoch. As a yardstick, the best model with *independent* pixels
# (each pixel Bernoulli with its training frequency) scores:

# %%
train, test, train_labels, test_labels = load_digits(return_labels=True)
pixel_freq = (train.sum(0) + 1) / (len(train) + 2)  # Laplace smoothing keeps logs finite
baseline = float((test * pixel_freq.log() + (1 - test) * (1 - pixel_freq).log()).sum(-1).mean())
print(
    f"train {tuple(train.shape)}, test {tuple(test.shape)}; independent pixels: "
    f"{baseline:.2f} nats per image"
)

histories, models = {}, {}
for algorithm in ("cd", "pcd"):
    torch.manual_seed(0)  # the same initial weights for both
    models[algorithm] = RBM(64, 16)
    tic = time.perf_counter()
    histories[algorithm] = fit(
        models[algorithm],
        train,
        algorithm=algorithm,
        epochs=EPOCHS,
        seed=0,
        validation=test,
        progress=PROGRESS,
    )
    final = histories[algorithm].last("validation_log_likelihood")
    print(
        f"{algorithm.upper():3s}-1, {EPOCHS} epochs in {time.perf_counter() - tic:.1f} s: "
        f"held-out log-likelihood {final:.2f} nats per image"
    )

fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for algorithm, history in histories.items():
    axes[0].plot(
        range(1, EPOCHS + 1), history["validation_log_likelihood"], label=f"{algorithm.upper()}-1"
    )
axes[0].axhline(baseline, color="grey", ls="--", label="independent pixels")
axes[0].set(
    xlabel="epoch",
    ylabel="held-out log-likelihood (nats / image)",
    title="exact held-out log-likelihood",
)
axes[0].legend()
rbm = models["cd"]
filters = rbm.weight.detach().T.reshape(16, 8, 8)
axes[1].imshow(
    torch.cat([torch.cat(list(filters[r * 8 : (r + 1) * 8]), 1) for r in range(2)], 0),
    cmap="RdBu_r",
)
axes[1].set(title="the 16 filters (columns of W) of the CD model")
axes[1].axis("off")
fig.tight_layout()
show(fig)

# %% [markdown]
# Each filter is the weight pattern a hidden unit responds to: strokes and blobs of the
# digits. Samples from the trained model come from block Gibbs, two matrix products per
# sweep: $\mathbf h \sim P(\mathbf h\mid\mathbf v)$ for all hidden units at once, then
# $\mathbf v \sim P(\mathbf v\mid\mathbf h)$ for all pixels at once.

# %%
gen = torch.Generator().manual_seed(3)
v = torch.bernoulli(torch.full((16, 64), 0.5), generator=gen)
with torch.no_grad():
    for _ in range(1_000):
        v, h = rbm.gibbs_step(v, gen)
    mean_image = rbm.visible_mean(h)
fig, axes = plt.subplots(1, 16, figsize=(12, 1))
for ax, image in zip(axes, mean_image.reshape(16, 8, 8), strict=True):
    ax.imshow(image, cmap="gray_r", vmin=0, vmax=1)
    ax.axis("off")
show(fig)

# %% [markdown]
# ## 4. Annealed importance sampling for $\log Z_\theta$
#
# With more hidden units *and* more visible units than about 25, no layer can be enumerated
# and $Z_\theta$ must be estimated. AIS (Neal, 2001; Salakhutdinov & Murray, 2008) starts from
# a base model $A$ whose partition function is known (no weights, visible biases fitted to the
# pixel frequencies) and moves through intermediate RBMs whose energies interpolate,
# $E_k = (1 - \beta_k) E_A + \beta_k E_\theta$ with $0 = \beta_0 < \dots < \beta_K = 1$;
# write $p_k^*(\mathbf v) = \sum_{\mathbf h} e^{-E_k(\mathbf v, \mathbf h)}$ for their
# unnormalised marginals. A run draws $\mathbf v_1 \sim p_A$, applies one block-Gibbs sweep
# that leaves $p_k$ invariant at each temperature, and collects the importance weight
#
# $$w = \prod_{k=1}^{K} \frac{p_k^*(\mathbf v_k)}{p_{k-1}^*(\mathbf v_k)}, \qquad
#   E[w] = \frac{Z_\theta}{Z_A},$$
#
# so $\hat Z_\theta = Z_A\,\overline{w}$ over independent runs. The spread of the weights
# gives a standard error. Since $\log$ is concave, $\log \hat Z_\theta$ errs low on average,
# making AIS log-likelihoods slightly optimistic. Our 64 x 16 model has an exact answer to
# compare with:

# %%
exact_log_z = float(rbm.log_partition())
ais_results = {}
for K in AIS_TEMPERATURES:
    tic = time.perf_counter()
    result = ais(rbm, num_chains=100, num_temperatures=K, data=train, seed=0)
    ais_results[K] = (float(result.log_z), float(result.stderr))
    print(
        f"K = {K:6d}: log Z = {result.log_z:.4f} +- {result.stderr:.4f} "
        f"(exact {exact_log_z:.4f}, error {float(result.log_z) - exact_log_z:+.4f}) "
        f"in {time.perf_counter() - tic:.2f} s"
    )
ais_log_z, ais_stderr = ais_results[AIS_TEMPERATURES[-1]]

# %% [markdown]
# More temperatures make consecutive intermediate models closer, the weights less variable
# and the estimate sharper (the cost grows linearly with $K$); with a thousand
# temperatures the error is already far below the differences between the training runs
# of section 3.
#
# On a model without an exact answer, one AIS number is not enough: a run that misses modes
# of a peaked model underestimates $\log Z_\theta$ by many nats *with a small standard
# error*, and the log-likelihood comes out optimistic. Reverse AIS (RAISE, Burda, Grosse &
# Salakhutdinov 2015) anneals the other way, from held-out digits down to the base model, and
# errs in the opposite direction. `log_likelihood_bounds` runs both (and caps AIS by the
# certain floor $\log Z_\theta \ge \operatorname{logsumexp}_{\mathbf v \in S}(-F(\mathbf v))$
# over the data it has seen): the held-out log-likelihood lies in the bracket, and a
# bracket that is wide or self-contradictory is flagged instead of reported. This is the
# held-out number to quote for an RBM whose $\log Z_\theta$ cannot be enumerated; here the
# exact value lets us check it.

# %%
bounds = log_likelihood_bounds(
    rbm, test, train, num_chains=100, num_temperatures=AIS_TEMPERATURES[-1], seed=0
)
with torch.no_grad():
    exact_held_out = float((-rbm.free_energy(test)).mean()) - exact_log_z
print(bounds)
print(f"exact held-out log-likelihood {exact_held_out:.3f} nats per image")
#
# ## 5. Block Gibbs against NUTS, with ArviZ diagnostics
#
# Any Pyro model can be handed to Pyro's NUTS, but NUTS needs continuous variables. An RBM
# with **Gaussian** visible units (energy
# $\lVert\mathbf v - \mathbf b\rVert^2/2\sigma^2 - \mathbf c^\top\mathbf h
# - (\mathbf v/\sigma)^\top W\mathbf h$) gives one: its visible marginal is a mixture of
# $2^{n_h}$ Gaussians, $\mathbf v \mid \mathbf h \sim \mathcal N(\mathbf b + \sigma W\mathbf h,
# \sigma^2 I)$, with mixture weights
# $P(\mathbf h) \propto \exp(\mathbf c^\top \mathbf h + \mathbf b^\top W\mathbf h/\sigma
# + \lVert W\mathbf h\rVert^2/2)$. Enumerating $\mathbf h$ therefore gives the exact
# $E[\mathbf v] = \mathbf b + \sigma W\, E[\mathbf h]$ to check both samplers against.
#
# `rbm.model()` is that distribution as a Pyro model: one sample site `"v"` plus a
# `pyro.factor`, so that the trace's log joint is exactly $-F(\mathbf v)$.

# %%
torch.manual_seed(0)
g_rbm = RBM(16, 8, likelihood="gaussian", dtype=torch.float64)
with torch.no_grad():
    for parameter in g_rbm.parameters():
        parameter.normal_(0.0, 0.5)

v0 = torch.randn(16, dtype=torch.float64)
with torch.no_grad():
    trace = poutine.trace(poutine.condition(g_rbm.model, data={"v": v0})).get_trace()
    trace_log_joint, minus_free_energy = float(trace.log_prob_sum()), float(-g_rbm.free_energy(v0))
print(f"log joint of the trace: {trace_log_joint:.10f}   -F(v): {minus_free_energy:.10f}")

with torch.no_grad():
    H8 = binary_states(8, dtype=torch.float64)
    WH = H8 @ g_rbm.weight.T  # (256, 16): W h for every hidden state
    log_weight = (
        H8 @ g_rbm.hidden_bias + WH @ g_rbm.visible_bias / g_rbm.sigma + 0.5 * (WH**2).sum(-1)
    )
    p_hidden = torch.softmax(log_weight, 0)
    exact_mean = g_rbm.visible_bias + g_rbm.sigma * p_hidden @ WH

# %% [markdown]
# Three ways to sample it:
#
# * **Pyro NUTS** through `pyro.infer.MCMC` (gradient-based, adapts a step size and a mass
#   matrix during warmup, a trajectory of many gradient evaluations per draw);
# * **pyrogen BlockGibbs** as an ordinary kernel inside the same `pyro.infer.MCMC` driver;
#   with $\mathbf h$ as an auxiliary variable, one sweep is
#   $\mathbf h \sim P(\mathbf h\mid\mathbf v)$, $\mathbf v \sim P(\mathbf v \mid \mathbf h)$;
# * **BlockGibbs vectorised** by `pyrogen.infer.sample`: all chains advance as one batch
#   of tensors.
#
# Pyro's driver would put several chains into worker processes when cores are free; to keep
# timings comparable and the notebook reproducible, its chains run one after the other
# here. `pyrogen.diagnostics.to_inference_data` turns the draws into an ArviZ 1.x
# `xarray.DataTree` (groups `posterior`, `sample_stats`, ...; `pyrogen.infer.sample` returns
# one too, and `pyrogen.diagnostics.from_pyro` converts a whole `pyro.infer.MCMC` run), and
# `summarize` reports arviz-stats' rank-normalised R-hat, bulk and tail effective sample
# sizes (ESS), Monte Carlo standard errors and ESS per second of sampling.


# %%
def run_pyro_mcmc(make_kernel, num_chains, warmup_steps, num_samples):
    """Chains of Pyro's MCMC driver, one after another; a DataTree with the wall time."""
    draws, tic = [], time.perf_counter()
    for chain in range(num_chains):
        pyro.set_rng_seed(chain)
        mcmc = MCMC(
            make_kernel(),
            num_samples=num_samples,
            warmup_steps=warmup_steps,
            disable_progbar=not PROGRESS,
        )
        mcmc.run()
        draws.append(mcmc.get_samples()["v"])
    wall = time.perf_counter() - tic
    return diagnostics.to_inference_data({"v": torch.stack(draws)}, wall_time=wall)


runs = {
    "Pyro NUTS": run_pyro_mcmc(lambda: NUTS(g_rbm.model), NUTS_CHAINS, NUTS_WARMUP, NUTS_DRAWS),
    "BlockGibbs in pyro MCMC": run_pyro_mcmc(
        lambda: BlockGibbs(g_rbm), NUTS_CHAINS, NUTS_WARMUP, NUTS_DRAWS
    ),
    "BlockGibbs, 4 chains": sample(
        BlockGibbs(g_rbm),
        num_chains=4,
        num_samples=GIBBS_DRAWS,
        warmup_steps=100,
        seed=0,
        progress=PROGRESS,
    ),
    "BlockGibbs, 256 chains": sample(
        BlockGibbs(g_rbm),
        num_chains=256,
        num_samples=GIBBS_DRAWS,
        warmup_steps=100,
        seed=1,
        progress=PROGRESS,
    ),
}
print("groups of the vectorised run:", list(runs["BlockGibbs, 4 chains"].children))
summaries = {}
for name, idata in runs.items():
    summary = diagnostics.summarize(idata)
    worst = diagnostics.worst_case(summary)
    z_scores = (summary["mean"].to_numpy() - exact_mean.numpy()) / summary["mcse_mean"].to_numpy()
    summaries[name] = dict(
        worst, max_abs_z=float(np.abs(z_scores).max()), wall_time=diagnostics.wall_time_of(idata)
    )
print(
    f"{'sampler':24s} {'wall s':>7s} {'min bulk ESS':>12s} {'ESS/s':>10s} "
    f"{'max R-hat':>9s} {'max |mean-exact|/MCSE':>22s}"
)
for name, row in summaries.items():
    print(
        f"{name:24s} {row['wall_time']:7.2f} {row['min_ess_bulk']:12.0f} "
        f"{row['min_ess_bulk_per_s']:10.0f} {row['max_r_hat']:9.3f} {row['max_abs_z']:22.2f}"
    )
speedup = (
    summaries["BlockGibbs, 4 chains"]["min_ess_bulk_per_s"]
    / summaries["Pyro NUTS"]["min_ess_bulk_per_s"]
)
print(
    f"vectorised BlockGibbs (4 chains) gives {speedup:.0f}x the ESS per second of NUTS "
    "(timings on a shared machine are noisy)"
)

# %% [markdown]
# All samplers agree with the exact mean within a few Monte Carlo standard errors, and R-hat
# is close to 1. What differs is the cost per effective sample: a NUTS draw integrates a
# Hamiltonian trajectory through many gradient evaluations, while a Gibbs sweep is two matrix
# products that draw *exact* conditional samples. Vectorising chains multiplies the
# advantage: a batch of 256 chains costs only a few times as much as a batch of 4. The
# conditional independence inside each layer, the "restricted" in RBM, is what makes this
# possible, as section 7 shows.
#
# `pyrogen.diagnostics.plot_diagnostics` draws trace, rank, autocorrelation and
# ESS-evolution plots with arviz-plots into one PNG file; here it goes to a temporary
# directory.

# %%
with tempfile.TemporaryDirectory() as tmp:
    plotted = diagnostics.plot_diagnostics(
        runs["Pyro NUTS"], os.path.join(tmp, "nuts.png"), max_components=3
    )
    if "ipykernel" in sys.modules:
        from IPython.display import Image, display

        display(Image(os.path.join(tmp, "nuts.png")))
print("plotted", plotted)

# %% [markdown]
# ## 6. RBM features for classification
#
# The hidden probabilities $P(h_j = 1\mid\mathbf v)$ are a learned, nonlinear representation
# of an image, trained without labels. We feed them to a logistic regression and compare with
# the same classifier on raw pixels, with all 1437 training labels and with only a few
# dozen (averaged over random label subsets, the same subsets for both feature sets).

# %%
torch.manual_seed(0)
feature_rbm = RBM(64, FEATURE_HIDDEN)
fit(feature_rbm, train, epochs=FEATURE_EPOCHS, seed=0, progress=PROGRESS)
with torch.no_grad():
    features = {
        "raw pixels": (train.numpy(), test.numpy()),
        f"RBM ({FEATURE_HIDDEN} hidden)": (
            feature_rbm.hidden_probs(train).numpy(),
            feature_rbm.hidden_probs(test).numpy(),
        ),
    }
y_train, y_test = train_labels.numpy(), test_labels.numpy()
rng = np.random.default_rng(0)
label_budgets = [30, 100, 300, len(train)]
accuracy = {name: {} for name in features}
for budget in label_budgets:
    subsets = [
        rng.permutation(len(train))[:budget]
        for _ in range(LABEL_REPEATS if budget < len(train) else 1)
    ]
    for name, (x_train, x_test) in features.items():
        scores = []
        for subset in subsets:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf = LogisticRegression(max_iter=1_000).fit(x_train[subset], y_train[subset])
            scores.append(clf.score(x_test, y_test))
        accuracy[name][budget] = np.array(scores)
print(f"{'labels':>7s} " + " ".join(f"{name:>18s}" for name in features))
for budget in label_budgets:
    print(f"{budget:7d} " + " ".join(f"{accuracy[name][budget].mean():18.3f}" for name in features))

raw_name, rbm_name = list(features)
few = label_budgets[1]
paired = accuracy[rbm_name][few] - accuracy[raw_name][few]
paired_se = paired.std(ddof=1) / math.sqrt(len(paired))
print(f"with {few} labels: RBM minus raw accuracy {paired.mean():+.3f} +- {paired_se:.3f} (paired)")

# %% [markdown]
# Features learned from the images alone, without a single label, match the pixels when
# every label is available (a difference of a point or two is within the sampling error of
# 360 test images, about $\pm 1.4$ points) and are clearly better when labels are scarce:
# the RBM has already found the strokes that distinguish digits, and the classifier only
# has to weigh them. That is the setting where an unsupervised generative model earns its
# keep.
#
# ## 7. The general Boltzmann machine, and why the restriction matters
#
# A (general) Boltzmann machine also couples visible units with each other (symmetric $L$,
# zero diagonal) and hidden units with each other ($J$):
#
# $$E(\mathbf v, \mathbf h) = -\mathbf b^\top\mathbf v - \mathbf c^\top\mathbf h
#   - \mathbf v^\top W\mathbf h - \tfrac12 \mathbf v^\top L\,\mathbf v
#   - \tfrac12 \mathbf h^\top J\,\mathbf h .$$
#
# The conditional of one hidden unit now depends on the *other* hidden units,
# $P(h_j = 1 \mid \mathbf v, \mathbf h_{-j}) = \sigma\big(c_j + (\mathbf v^\top W)_j
# + \sum_{k} J_{jk} h_k\big)$, so $P(\mathbf h\mid\mathbf v)$ no longer factorises and a whole
# layer cannot be drawn in one go. The RBM is the special case $L = 0$, $J = 0$.
#
# Written as a Pyro model, the machine is two Bernoulli(1/2) sites and a `pyro.factor`
# that turns their uniform base into $e^{-E}$ (the same construction as `RBM.model()`).
# Pyro itself cannot *sample* such discrete sites (its MCMC enumerates them out, impossible
# beyond a few dozen units); `pyrogen.infer.DiscreteGibbs` can: one unit at a time, each from
# its full conditional, computed from the model's log joint at both values of the unit.

# %%
n_v, n_h = 4, 3
torch.manual_seed(2)
bm = {
    "b": 0.5 * torch.randn(n_v, dtype=torch.float64),
    "c": 0.5 * torch.randn(n_h, dtype=torch.float64),
    "W": torch.randn(n_v, n_h, dtype=torch.float64),
    "L": torch.randn(n_v, n_v, dtype=torch.float64).triu(1),
    "J": torch.randn(n_h, n_h, dtype=torch.float64).triu(1),
}
bm["L"] = bm["L"] + bm["L"].T  # symmetric, zero diagonal
bm["J"] = bm["J"] + bm["J"].T


def bm_energy(v, h, p):
    """E(v, h) for batches v (..., n_v), h (..., n_h); broadcasts over leading dimensions."""
    return (
        -(v @ p["b"])
        - h @ p["c"]
        - ((v @ p["W"]) * h).sum(-1)
        - 0.5 * ((v @ p["L"]) * v).sum(-1)
        - 0.5 * ((h @ p["J"]) * h).sum(-1)
    )


def boltzmann_machine(params=bm):
    base_v = dist.Bernoulli(probs=torch.full((n_v,), 0.5, dtype=torch.float64)).to_event(1)
    base_h = dist.Bernoulli(probs=torch.full((n_h,), 0.5, dtype=torch.float64)).to_event(1)
    v = pyro.sample("v", base_v)
    h = pyro.sample("h", base_h)
    # The base contributes (n_v + n_h) log(1/2) to the log joint; cancel it so that the
    # log joint is exactly -E(v, h).
    pyro.factor("energy", -bm_energy(v, h, params) + (n_v + n_h) * math.log(2.0))
    return v, h


# Exact law over all 2^7 = 128 states; state code = sum_i x_i 2^i with x = (v, h).
X = binary_states(n_v + n_h, dtype=torch.float64)
exact_probs = torch.softmax(-bm_energy(X[:, :n_v], X[:, n_v:], bm), 0)

idata_bm = sample(
    DiscreteGibbs(boltzmann_machine),
    num_chains=BM_CHAINS,
    num_samples=BM_SWEEPS,
    warmup_steps=0,
    seed=0,
    progress=PROGRESS,
)
final = {
    name: torch.as_tensor(np.asarray(arr))[:, -1]
    for name, arr in diagnostics.flatten_components(idata_bm).items()
}
final_states = torch.stack(
    [final[f"v[{i}]"] for i in range(n_v)] + [final[f"h[{j}]"] for j in range(n_h)], -1
)
tv_gibbs = diagnostics.total_variation(final_states, exact_probs)

# The same number of independent exact draws: how small TV can be with this many samples.
floor_gen = torch.Generator().manual_seed(0)
iid_tv = np.array(
    [
        diagnostics.total_variation(
            torch.multinomial(exact_probs, BM_CHAINS, replacement=True, generator=floor_gen),
            exact_probs,
        )
        for _ in range(100)
    ]
)
print(
    f"TV(final states of {BM_CHAINS} DiscreteGibbs chains, exact) = {tv_gibbs:.4f}; "
    f"independent exact draws: {iid_tv.mean():.4f} +- {iid_tv.std():.4f}"
)

# %% [markdown]
# After a few dozen sweeps the chains are as close to the exact law as independent draws
# would be. Now the restriction. Suppose we ignore the intra-layer couplings when
# updating and draw every unit of a layer *simultaneously* from its single-unit conditional
# given the current state, exactly what block Gibbs does for an RBM. On 128 states we can
# write down that chain's transition matrix and find its stationary distribution with
# `pyrogen.first_principles.stationary_distribution` (tutorial 1):


# %%
def block_update_matrix(params):
    """Transition matrix of 'draw all h in parallel, then all v in parallel'."""
    K = torch.zeros(n_v + n_h, n_v + n_h, dtype=torch.float64)  # couplings of x = (v, h)
    K[:n_v, :n_v], K[n_v:, n_v:] = params["L"], params["J"]
    K[:n_v, n_v:], K[n_v:, :n_v] = params["W"], params["W"].T
    bias = torch.cat([params["b"], params["c"]])

    def layer(units):
        logits = X @ K + bias  # (128, 7): each unit's conditional logit given all the others
        keep = [i for i in range(n_v + n_h) if i not in units]
        same_rest = (X[:, None, keep] == X[None, :, keep]).all(-1)  # (128, 128)
        log_p = (
            X[None, :, units] * F.logsigmoid(logits[:, None, units])
            + (1 - X[None, :, units]) * F.logsigmoid(-logits[:, None, units])
        ).sum(-1)
        return torch.where(same_rest, log_p.exp(), torch.zeros_like(log_p))

    return layer(list(range(n_v, n_v + n_h))) @ layer(list(range(n_v)))


rbm_params = dict(bm, L=torch.zeros_like(bm["L"]), J=torch.zeros_like(bm["J"]))
block_tv = {}
for name, params in (("RBM (L = J = 0)", rbm_params), ("general BM", bm)):
    target = torch.softmax(-bm_energy(X[:, :n_v], X[:, n_v:], params), 0)
    stationary = stationary_distribution(block_update_matrix(params))
    block_tv[name] = 0.5 * float((stationary - target).abs().sum())
    print(f"{name:16s}: TV(stationary law of layer-wise updates, target) = {block_tv[name]:.2e}")

# %% [markdown]
# For the RBM the layer-wise chain has exactly the right stationary distribution: given
# $\mathbf v$ the hidden units are independent, so drawing them together *is* drawing from
# $P(\mathbf h\mid\mathbf v)$. For the general machine the same moves converge to the wrong
# distribution; a correct sampler must update one unit at a time (as `DiscreteGibbs` does,
# $n_v + n_h$ model evaluations per sweep), or pay for something cleverer. Removing the
# intra-layer connections costs some modelling power, and buys a sampler whose cost per
# sweep is two matrix products however many units a layer has: the reason RBMs, not general
# Boltzmann machines, became practical.
#
# ## Closing checks

# %%
assert all(float(error) < 1e-10 for error in errors.values()), errors
assert gradient_error < 1e-10
assert cd_error[1] > 0.1 and cd_error[50] < 0.01
assert abs(trace_log_joint - minus_free_energy) < 1e-10
for algorithm, history in histories.items():
    assert history.last("validation_log_likelihood") > baseline + 2.0, algorithm
assert abs(ais_log_z - exact_log_z) < max(4 * ais_stderr, 0.01), (ais_log_z, exact_log_z)
assert abs(ais_log_z - exact_log_z) < 0.1
assert bounds.reliable, bounds.problems
slack = 4 * max(bounds.lower_stderr, bounds.upper_stderr) + 0.01
assert bounds.lower - slack < exact_held_out < bounds.upper + slack, (bounds, exact_held_out)
for name, row in summaries.items():
    assert row["max_r_hat"] < 1.05, name
    assert row["max_abs_z"] < 4.5, name  # 16 components each: 4.5 MCSE is a 1e-4 event
assert speedup > 10
assert accuracy[raw_name][len(train)].mean() > 0.85
assert accuracy[rbm_name][len(train)].mean() > 0.85
assert paired.mean() > 0
assert tv_gibbs < iid_tv.mean() + 4 * iid_tv.std()
assert block_tv["RBM (L = J = 0)"] < 1e-12 and block_tv["general BM"] > 0.01
print("all checks passed")
