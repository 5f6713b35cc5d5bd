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
# # Tutorial 6 — RBM, VAE and GAN, compared
#
# The lecture ends with one slide that sets the three models side by side:
#
# * **RBM**: an intractable likelihood, hence approximations to its gradient (CD), and a
#   Markov chain to draw samples;
# * **VAE**: trained on a bound, so not asymptotically consistent;
# * **GAN**: asymptotically consistent (at the game's optimum $p_g = p_{data}$) and no Markov
#   chain needed, but no likelihood at all.
#
# This notebook turns the slide into measurements on the same 8 x 8 binarised digits, with
# the same train/test split for all three models:
#
# 1. **held-out log-likelihood**: the RBM's exact value (its $2^{16}$-term partition function
#    is enumerable) and its AIS / reverse-AIS bracket, the VAE's importance-weighted bound,
#    and for the GAN nothing, because an implicit model has no density;
# 2. **sample quality** all three share: the Fréchet distance between features of samples
#    and of held-out digits (`pyrogen.metrics.frechet_distance` with
#    `pyrogen.metrics.digits_features`, a small classifier trained on the digits);
# 3. **cost**: training time, time to draw 360 samples, number of parameters;
# 4. sample grids, and a discussion that ties the numbers back to the slide.
#
# Under the environment variable `CI` every model trains briefly, so the numbers are rough;
# the full run trains each for a minute or two. The closing assertions hold in both modes.

# %%
import os
import sys
import time

SMOKE_TEST = "CI" in os.environ

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # run as a script: draw off-screen, no display needed
import matplotlib.pyplot as plt
import pyro
import torch

from pyrogen.data import load_digits
from pyrogen.gan import fit as fit_gan
from pyrogen.infer import BlockGibbs, sample
from pyrogen.metrics import digits_features, frechet_distance
from pyrogen.rbm import RBM, log_likelihood_bounds
from pyrogen.rbm import fit as fit_rbm
from pyrogen.tour.models import DIGITS_GAN_FIT, digits_gan
from pyrogen.vae import VAE, elbo, log_likelihood
from pyrogen.vae import fit as fit_vae

PROGRESS = not SMOKE_TEST
RBM_EPOCHS, GIBBS_SWEEPS = (10, 300) if SMOKE_TEST else (100, 1_000)
AIS_CHAINS, AIS_TEMPERATURES = (100, 1_000) if SMOKE_TEST else (200, 5_000)
VAE_EPOCHS, IWAE_SAMPLES = (12, 200) if SMOKE_TEST else (100, 1_000)
GAN_STEPS = 300 if SMOKE_TEST else 3_000


def show(fig):
    """Display a figure in a notebook; as a script just release it (nothing is saved)."""
    if "ipykernel" in sys.modules:
        plt.show()
    plt.close(fig)


def count_parameters(module):
    return sum(p.numel() for p in module.parameters())


def image_grid(ax, images, rows, title):
    """Tile ``(rows * cols, 64)`` images into one 8x8-cell mosaic on ``ax``."""
    cols = images.shape[0] // rows
    tiles = images[: rows * cols].reshape(rows, cols, 8, 8).permute(0, 2, 1, 3)
    ax.imshow(tiles.reshape(rows * 8, cols * 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set(title=title)
    ax.axis("off")


train, test = load_digits()
n_test = len(test)
pixel_freq = (train.sum(0) + 1) / (len(train) + 2)
baseline = float((test * pixel_freq.log() + (1 - test) * (1 - pixel_freq).log()).sum(-1).mean())
results = {}
print(f"train {tuple(train.shape)}, test {tuple(test.shape)}; independent pixels {baseline:.2f}")

# %% [markdown]
# ## 1. The RBM: exact likelihood, AIS, and a Markov chain for samples
#
# A 64 x 16 RBM trained by CD-1 (tutorial 2). With 16 hidden units the exact
# $\log Z_\theta$ is a sum of $2^{16}$ closed-form terms, so the held-out log-likelihood
# $\frac1n \sum_t [-F(\mathbf v^t)] - \log Z_\theta$ is exact; a bigger model would need
# the bracket of `log_likelihood_bounds`: reverse AIS from the held-out digits (conservative)
# and AIS (optimistic, here also printed alone), flagged when the two ends disagree.
# Samples are the states of 360 independent block-Gibbs
# chains after a few hundred sweeps from random noise: the "Markov chain" of the slide.

# %%
torch.manual_seed(0)
rbm = RBM(64, 16)
tic = time.perf_counter()
fit_rbm(rbm, train, epochs=RBM_EPOCHS, seed=0, progress=PROGRESS)
rbm_train_s = time.perf_counter() - tic
rbm.requires_grad_(False)
with torch.no_grad():
    exact_log_z = float(rbm.log_partition())
    minus_free = float(-rbm.free_energy(test).mean())
# The bracket a bigger model would need: reverse AIS (conservative) and AIS (optimistic).
bounds = log_likelihood_bounds(
    rbm, test, train, num_chains=AIS_CHAINS, num_temperatures=AIS_TEMPERATURES, seed=0
)
ais_result = bounds.forward  # the AIS run inside the bracket: base rates from train, seed 0
tic = time.perf_counter()
idata = sample(
    BlockGibbs(rbm),
    num_chains=n_test,
    num_samples=1,
    warmup_steps=GIBBS_SWEEPS - 1,
    seed=0,
    progress=PROGRESS,
)
rbm_samples = torch.as_tensor(idata.posterior["v"].values[:, -1], dtype=test.dtype)
rbm_sample_s = time.perf_counter() - tic
results["RBM 64x16"] = {
    "log-lik": minus_free - exact_log_z,
    "how": "exact log Z",
    "train s": rbm_train_s,
    "sample s": rbm_sample_s,
    "parameters": count_parameters(rbm),
    "samples": rbm_samples,
}
ais_log_lik = minus_free - float(ais_result.log_z)
print(
    f"held-out log-likelihood: exact {minus_free - exact_log_z:.3f}, with AIS log Z "
    f"{ais_log_lik:.3f} +- {float(ais_result.stderr):.3f}"
)
print(f"bracket: {bounds}")

# %% [markdown]
# ## 2. The VAE: an importance-weighted bound, ancestral samples
#
# A Bernoulli VAE with an 8-dimensional latent space and one hidden layer of 256 units,
# trained by SVI (tutorial 4). Its likelihood is only available as a lower bound; the
# importance-weighted bound with many samples is close to the true value, and the ELBO is
# looser still. Samples are one pass through the decoder.

# %%
pyro.clear_param_store()
torch.manual_seed(0)
vae = VAE(64, 8, hidden=(256,))
tic = time.perf_counter()
fit_vae(vae, train, epochs=VAE_EPOCHS, seed=0, progress=PROGRESS)
vae_train_s = time.perf_counter() - tic
vae_iwae = float(log_likelihood(vae, test, num_samples=IWAE_SAMPLES, seed=0).mean())
vae_elbo = float(elbo(vae, test, num_samples=10, seed=0).mean())
tic = time.perf_counter()
vae_samples = vae.sample(n_test, generator=torch.Generator().manual_seed(1))
vae_sample_s = time.perf_counter() - tic
results["VAE z=8"] = {
    "log-lik": vae_iwae,
    "how": f"IWAE bound, K={IWAE_SAMPLES}",
    "train s": vae_train_s,
    "sample s": vae_sample_s,
    "parameters": count_parameters(vae),
    "samples": vae_samples,
}
print(f"held-out IWAE bound {vae_iwae:.3f} (ELBO {vae_elbo:.3f})")

# %% [markdown]
# ## 3. The GAN: samples without a density
#
# The MLP GAN the `pyrogen tour` uses (`pyrogen.tour.models.digits_gan`: 8-dimensional
# latent, two hidden layers of 256 units in each network, a sigmoid output so that samples
# are grey levels in $[0, 1]$), trained with the non-saturating loss (tutorial 5). The
# binarized digits are point masses, where plain gradient play on the GAN game does not
# converge (Mescheder et al., 2018): the discriminator wins outright and the generator
# collapses onto one image. The recipe `DIGITS_GAN_FIT` therefore adds the R1 penalty
# $\frac{\gamma}{2} \mathbb E_{p_{data}} \lVert \nabla_x \operatorname{logit} D(x) \rVert^2$,
# which vanishes at the equilibrium $p_g = p_{data}$ and so does not move it. There is no
# log-likelihood to report: the generator's samples lie on an 8-dimensional surface in the
# 64-dimensional pixel space, where a density does not exist.

# %%
torch.manual_seed(0)
gan = digits_gan(latent_dim=8)
tic = time.perf_counter()
gan_history = fit_gan(gan, train, steps=GAN_STEPS, seed=0, progress=PROGRESS, **DIGITS_GAN_FIT)
gan_train_s = time.perf_counter() - tic
gan.requires_grad_(False)
tic = time.perf_counter()
gan_samples = gan.generator.sample(n_test, generator=torch.Generator().manual_seed(1))
gan_sample_s = time.perf_counter() - tic
results["GAN z=8"] = {
    "log-lik": None,
    "how": "implicit: none",
    "train s": gan_train_s,
    "sample s": gan_sample_s,
    "parameters": count_parameters(gan),
    "samples": gan_samples,
}
print(f"{GAN_STEPS} steps; final V-hat {gan_history.last('value'):.3f}")

# %% [markdown]
# ## 4. The comparison, measured
#
# The Fréchet distance fits a Gaussian to classifier features of each sample set and of the
# held-out digits and measures
#
# $$d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}\big(\Sigma_1 + \Sigma_2 -
#   2 (\Sigma_1^{1/2} \Sigma_2 \Sigma_1^{1/2})^{1/2}\big) ,$$
#
# the FID recipe with a digits classifier instead of Inception. It is biased upwards by
# finite samples, so every set has the same size, 360; the floor is set by 360 *real*
# training digits against the test digits.

# %%
features = digits_features()
reference_fd = frechet_distance(train[:n_test], test, features)
for row in results.values():
    row["Fréchet"] = frechet_distance(row["samples"], test, features)

header = f"{'model':10s} {'log-lik':>8s}  {'likelihood by':22s} {'Fréchet':>8s} "
header += f"{'train s':>8s} {'sample s':>9s} {'params':>8s}"
print(header)
for name, row in results.items():
    ll = f"{row['log-lik']:8.2f}" if row["log-lik"] is not None else f"{'-':>8s}"
    print(
        f"{name:10s} {ll}  {row['how']:22s} {row['Fréchet']:8.2f} {row['train s']:8.1f} "
        f"{row['sample s']:9.3f} {row['parameters']:8d}"
    )
print(f"{'real data':10s} {'':8s}  {'(floor)':22s} {reference_fd:8.2f}")
print(f"independent pixels: log-lik {baseline:.2f}")

fig, axes = plt.subplots(1, 4, figsize=(14, 3.8))
image_grid(axes[0], test[:36], 6, "held-out digits")
for ax, (name, row) in zip(axes[1:], results.items(), strict=True):
    image_grid(ax, row["samples"][:36], 6, f"{name}: FD {row['Fréchet']:.1f}")
fig.tight_layout()
show(fig)

# %% [markdown]
# ## 5. Back to the slide
#
# * **RBM: intractable likelihood, approximate gradients, a Markov chain.** On this small
#   model the likelihood is exact only because 16 hidden units can be enumerated; the AIS /
#   reverse-AIS bracket holds it within a fraction of a nat, and is what a larger RBM would
#   need (one AIS number alone can be optimistic by many nats on a peaked model). Training
#   used CD-1, a biased stand-in for the gradient, and every sample above cost a few hundred
#   Gibbs sweeps, by far the slowest sampler of the three.
# * **VAE: a bound, not asymptotically consistent.** Its figure is a lower bound (the IWAE
#   value sits above the ELBO, both below the true $\log P(X)$), and the factorised encoder
#   leaves a gap even at the optimum (tutorial 4). Samples are one decoder pass. Binary
#   samples from a Bernoulli decoder look noisy pixel by pixel, which the Fréchet features
#   notice.
# * **GAN: no Markov chain, no likelihood.** One generator pass per sample and nothing to
#   report in the likelihood column. Its quality can only be judged from samples, here by
#   the Fréchet distance, and in the short smoke run its training has barely started: GANs
#   need the most careful training of the three (and "consistent" only describes the
#   optimum of the game, not what a finite run reaches).
#
# The numbers depend on the run's length; in the full run each model trains for a minute
# or two. What does not change is the *shape* of the table: which columns each model can
# fill in and at which cost.
#
# ## Closing checks

# %%
rbm_row, vae_row, gan_row = results["RBM 64x16"], results["VAE z=8"], results["GAN z=8"]
assert rbm_row["parameters"] == 64 * 16 + 64 + 16
assert vae_row["parameters"] == (64 * 256 + 256 + 256 * 16 + 16) + (8 * 256 + 256 + 256 * 64 + 64)
assert gan_row["log-lik"] is None
assert rbm_row["log-lik"] > baseline + 1.0 and vae_row["log-lik"] > baseline + 1.0
assert abs(ais_log_lik - rbm_row["log-lik"]) < max(4 * float(ais_result.stderr), 0.05)
slack = 4 * max(bounds.lower_stderr, bounds.upper_stderr) + 0.05
assert bounds.lower - slack < rbm_row["log-lik"] < bounds.upper + slack, bounds
assert vae_iwae > vae_elbo
for name, row in results.items():
    assert row["Fréchet"] > reference_fd, name  # no model beats real data
    assert 0 < row["Fréchet"] < 1e4, name
    assert row["samples"].shape == test.shape, name
assert reference_fd < 5.0
assert rbm_row["sample s"] > vae_row["sample s"]  # a Markov chain against one pass
print("all checks passed")
