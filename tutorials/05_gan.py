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
# # Tutorial 5 — Generative adversarial nets
#
# A GAN never writes down a density. A generator $G$ turns noise $z$ into samples, and a
# discriminator $D$ is trained to tell them from data; the generator improves by fooling it.
# The lecture reaches GANs through adversarial examples, and so does this notebook, in its
# own order:
#
# 1. the minimax game, the optimal discriminator $D^* = p_{data} / (p_{data} + p_g)$ and
#    $C(G) = -\log 4 + 2\,\mathrm{JSD}(p_{data} \Vert p_g)$, checked to rounding error on
#    tabulated densities with `pyrogen.gan.optimal_discriminator`, `game_value` and
#    `jensen_shannon`;
# 2. why practice uses the *non-saturating* generator loss;
# 3. training with `pyrogen.gan.fit` on a 2-D ring of eight Gaussians, scored by
#    `pyrogen.data.toy.mode_metrics` (modes covered, share of high-quality samples);
# 4. the discriminator as an energy: discriminator-driven latent sampling (DDLS) by MCMC
#    over $z$ with `pyrogen.gan.discriminator_energy`;
# 5. adversarial examples on a digits classifier: FGSM, PGD, the linear explanation, and
#    adversarial training with `pyrogen.adversarial`.
#
# Under the environment variable `CI` every size shrinks so that the notebook runs in
# seconds; the closing assertions hold in both modes.

# %%
import math
import os
import sys
import warnings

SMOKE_TEST = "CI" in os.environ

import matplotlib

if "ipykernel" not in sys.modules:
    matplotlib.use("Agg")  # run as a script: draw off-screen, no display needed
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

from pyrogen import adversarial
from pyrogen.data import load_digits
from pyrogen.data.toy import mode_metrics, ring
from pyrogen.gan import (
    GAN,
    ImplicitModel,
    discriminator_energy,
    fit,
    game_value,
    jensen_shannon,
    mlp_discriminator,
    mlp_generator,
    optimal_discriminator,
)
from pyrogen.infer import MetropolisHastings, sample

PROGRESS = not SMOKE_TEST
GAN_STEPS = 1_000 if SMOKE_TEST else 5_000
CALIBRATION_STEPS = 300 if SMOKE_TEST else 1_000
DDLS_CHAINS, DDLS_STEPS = (2_000, 50) if SMOKE_TEST else (5_000, 100)
CLASSIFIER_EPOCHS = 12 if SMOKE_TEST else 60
RING_STD = 0.05


def show(fig):
    """Display a figure in a notebook; as a script just release it (nothing is saved)."""
    if "ipykernel" in sys.modules:
        plt.show()
    plt.close(fig)


# %% [markdown]
# ## 1. The game and its optimum, exactly
#
# The discriminator $D(\mathbf x) \in (0, 1)$ is the probability that $\mathbf x$ came from
# the data. The two players optimise one value,
#
# $$\min_G \max_D V(G, D) = E_{\mathbf x \sim p_{data}}[\log D(\mathbf x)]
#   + E_{\mathbf z \sim p_{\mathbf z}}[\log(1 - D(G(\mathbf z)))] ,$$
#
# $D$ ascending it (classify well), $G$ descending it (make its samples look real). Writing
# $p_g$ for the law of $G(\mathbf z)$, the value is an integral over $\mathbf x$,
# $V = \int p_{data}(\mathbf x) \log D(\mathbf x) + p_g(\mathbf x) \log(1 - D(\mathbf x))\,
# d\mathbf x$, and pointwise $a \log y + b \log(1 - y)$ peaks at $y = a / (a + b)$. So for
# fixed $G$ the best discriminator is
#
# $$D^*(\mathbf x) = \frac{p_{data}(\mathbf x)}{p_{data}(\mathbf x) + p_g(\mathbf x)} ,$$
#
# and substituting it gives the generator's objective
#
# $$C(G) = \max_D V(G, D) = E_{p_{data}}\Big[\log \frac{p_{data}}{p_{data} + p_g}\Big]
#   + E_{p_g}\Big[\log \frac{p_g}{p_{data} + p_g}\Big]
#   = -\log 4 + \mathrm{KL}\Big(p_{data} \Big\Vert \frac{p_{data} + p_g}{2}\Big)
#   + \mathrm{KL}\Big(p_g \Big\Vert \frac{p_{data} + p_g}{2}\Big)
#   = -\log 4 + 2\, \mathrm{JSD}(p_{data} \Vert p_g) .$$
#
# The Jensen-Shannon divergence is zero only when the two laws agree, so $C(G) \ge -\log 4$
# with equality exactly at $p_g = p_{data}$, where $D^* \equiv 1/2$.
#
# On a fine grid, densities times the cell width are probability tables, and
# `pyrogen.gan.theory` evaluates each side. The data: a two-component Gaussian mixture on
# the line; the generator: a single Gaussian $\mathcal N(\mu_g, 1)$.

# %%
# [-6, 6] keeps p_g / p_data above float64's epsilon wherever p_g > 0, so that 1 - D*
# does not round to 0 (game_value would then return -inf for a negligible cell).
grid = torch.linspace(-6, 6, 3_001, dtype=torch.float64)


def table(density):
    """A density on the grid as a probability table (times the cell width, renormalised)."""
    return density / density.sum()


def normal(mean, std):
    return torch.exp(-0.5 * ((grid - mean) / std) ** 2) / std


p_data = table(0.3 * normal(-2.0, 0.5) + 0.7 * normal(1.5, 0.8))
p_g = table(normal(0.0, 1.0))
d_star = optimal_discriminator(p_data, p_g)
c_of_g = float(game_value(p_data, p_g, d_star))
jsd = float(jensen_shannon(p_data, p_g))
minus_log_4 = -math.log(4.0)
theorem_error = abs(c_of_g - (minus_log_4 + 2 * jsd))
print(f"C(G) = V(G, D*) = {c_of_g:.12f};  -log 4 + 2 JSD = {minus_log_4 + 2 * jsd:.12f}")
print(f"difference {theorem_error:.1e}; JSD = {jsd:.4f} nats (at most log 2 = {math.log(2):.4f})")

# D* beats every other discriminator: perturb its logit at random, 200 times.
gen = torch.Generator().manual_seed(0)
logit_star = torch.logit(d_star.clamp(1e-12, 1 - 1e-12))
perturbed = [
    float(
        game_value(
            p_data,
            p_g,
            torch.sigmoid(
                logit_star + 0.3 * torch.randn(grid.shape, generator=gen, dtype=torch.float64)
            ),
        )
    )
    for _ in range(200)
]
print(f"best of 200 perturbed discriminators: V = {max(perturbed):.6f} < V(D*) = {c_of_g:.6f}")

# At p_g = p_data the game is at its optimum.
d_equal = optimal_discriminator(p_data, p_data)
equilibrium_error = abs(float(game_value(p_data, p_data, d_equal)) - minus_log_4)
print(
    f"p_g = p_data: |C(G) + log 4| = {equilibrium_error:.1e}, "
    f"D* between {float(d_equal.min())} and {float(d_equal.max())}"
)

# C(G) along a family of generators N(mu_g, 1).
means = torch.linspace(-3, 3, 61)
c_curve = [
    float(game_value(p_data, q := table(normal(float(m), 1.0)), optimal_discriminator(p_data, q)))
    for m in means
]

fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
axes[0].plot(grid, p_data / (grid[1] - grid[0]), label="$p_{data}$")
axes[0].plot(grid, p_g / (grid[1] - grid[0]), label="$p_g$")
axes[0].plot(grid, d_star, "k--", label="$D^*$")
axes[0].set(xlim=(-5, 5), xlabel="x", title="the optimal discriminator")
axes[0].legend()
axes[1].plot(means, c_curve, label="$C(G)$ for $p_g = N(\\mu_g, 1)$")
axes[1].axhline(minus_log_4, color="grey", ls="--", label="$-\\log 4$")
axes[1].set(xlabel="$\\mu_g$", title="the generator's objective")
axes[1].legend()
fig.tight_layout()
show(fig)

# %% [markdown]
# A single Gaussian cannot match a bimodal $p_{data}$, so the best $C(G)$ in this family stays
# above $-\log 4$: the theorem promises convergence only to a generator with enough capacity.
#
# ## 2. The non-saturating generator loss
#
# Early in training $D$ rejects the fakes confidently, $D(G(\mathbf z)) \approx 0$. In terms of
# the discriminator's logit $d$, with $D = \sigma(d)$, the generator's term
# $\log(1 - \sigma(d))$ has derivative $-\sigma(d)$: nearly zero exactly when the generator
# is worst. Goodfellow et al. therefore let $G$ *maximise* $\log D(G(\mathbf z))$ instead,
# whose derivative $1 - \sigma(d)$ is largest there; both losses have the same fixed point.
# `pyrogen.gan.fit(..., loss="nonsaturating")` (the default) trains this way, and every loss
# is computed through `logsigmoid` so that it stays finite when $D$ saturates.

# %%
logits = torch.linspace(-8, 4, 200, requires_grad=True)
(grad_minimax,) = torch.autograd.grad(F.logsigmoid(-logits).sum(), logits)  # log(1 - D)
(grad_nonsaturating,) = torch.autograd.grad(F.logsigmoid(logits).sum(), logits)  # log D
confident = logits.detach() < -4  # D(G(z)) < 0.018
print(
    "where D(G(z)) < 0.018: |d/dd log(1-D)| <= "
    f"{float(grad_minimax[confident].abs().max()):.3f}, |d/dd log D| >= "
    f"{float(grad_nonsaturating[confident].abs().min()):.3f}"
)

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.plot(torch.sigmoid(logits.detach()), grad_minimax.abs(), label="minimax: $\\log(1-D)$")
ax.plot(torch.sigmoid(logits.detach()), grad_nonsaturating.abs(), label="non-saturating: $\\log D$")
ax.set(xlabel="$D(G(z))$", ylabel="|gradient w.r.t. the logit|", xscale="log")
ax.legend()
show(fig)

# %% [markdown]
# ## 3. Training on a ring of Gaussians
#
# Eight Gaussians of standard deviation 0.05 on a circle of radius 2 (`pyrogen.data.toy.ring`)
# are the classic test of *mode collapse*: a generator that covers only some modes is easy to
# spot. `mode_metrics` assigns each sample to its nearest centre and calls it high quality
# when it lies within three standard deviations; it reports the number of modes holding at
# least 1% of the high-quality samples and the KL divergence of their histogram from uniform.
#
# Generator and discriminator are MLPs with two hidden layers of 128 units; $z \in
# \mathbb R^2$ is standard normal. The estimate $\hat V$ of the value on each batch is
# recorded: at the game's optimum it would be $-\log 4$.

# %%
data, centers = ring(4_096, std=RING_STD, seed=0)
torch.manual_seed(0)
gan = GAN(
    ImplicitModel(mlp_generator(2, 2, hidden=(128, 128)), latent_dim=2),
    mlp_discriminator(2, hidden=(128, 128)),
)
history = fit(gan, data, steps=GAN_STEPS, batch_size=128, lr=1e-3, seed=0, progress=PROGRESS)
eval_gen = torch.Generator().manual_seed(1)
gan_samples = gan.generator.sample(DDLS_CHAINS, generator=eval_gen)
gan_metrics = mode_metrics(gan_samples, centers, std=RING_STD)
data_metrics = mode_metrics(ring(DDLS_CHAINS, std=RING_STD, seed=1)[0], centers, std=RING_STD)
print(
    f"after {GAN_STEPS} steps ({history.last('wall_time'):.1f} s): V-hat "
    f"{history.last('value'):.3f} (-log 4 = {minus_log_4:.3f}), "
    f"D(real) {history.last('d_real'):.2f}, D(fake) {history.last('d_fake'):.2f}"
)
for name, m in (("data", data_metrics), ("GAN", gan_metrics)):
    print(
        f"{name:5s}: modes {m['modes']}/8, high quality {m['high_quality']:.3f}, "
        f"KL to uniform {m['kl']:.4f}"
    )

# %% [markdown]
# ## 4. The discriminator knows more: latent MCMC
#
# If $D$ were optimal for the trained $G$, its logit would be $d(\mathbf x) = \log
# p_{data}(\mathbf x) - \log p_g(\mathbf x)$, so reweighting generator samples by $e^{d}$
# would give the data distribution. Che et al. (2020) turn this into a sampler: the
# reweighted law is the image under $G$ of the latent density
#
# $$p_t(\mathbf z) \propto p(\mathbf z)\, e^{d(G(\mathbf z))}, \qquad
#   E(\mathbf z) = -\log p(\mathbf z) - d(G(\mathbf z)),$$
#
# an explicit, smooth energy that gradient-based MCMC can sample (DDLS,
# discriminator-driven latent sampling). `pyrogen.gan.discriminator_energy(gan)` is that
# target as a Pyro model. We first train the discriminator alone against the final
# generator (`train_generator=False`) so that it is closer to optimal, then run many short
# MALA chains with pyrogen's vectorised `MetropolisHastings`, started from the prior, and
# push each chain's last $\mathbf z$ through $G$.

# %%
calibration = fit(
    gan,
    data,
    steps=CALIBRATION_STEPS,
    batch_size=128,
    lr=1e-3,
    seed=1,
    train_generator=False,
    progress=PROGRESS,
)
gan.requires_grad_(False)
kernel = MetropolisHastings(
    discriminator_energy(gan), proposal="mala", step_size=0.05, adapt_step_size=False
)
start = gan.generator.sample_latent(DDLS_CHAINS, torch.Generator().manual_seed(1))  # as above
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    idata = sample(
        kernel,
        num_chains=DDLS_CHAINS,
        num_samples=1,
        warmup_steps=DDLS_STEPS - 1,
        seed=0,
        progress=PROGRESS,
        initial_params={"z": start},
    )
z_final = torch.as_tensor(idata.posterior["z"].values[:, -1])
with torch.no_grad():
    ddls_samples = gan.generator.generator(z_final)
ddls_metrics = mode_metrics(ddls_samples, centers, std=RING_STD)
ddls_accept = float(idata.sample_stats["acceptance_rate"].mean())
print(f"MALA acceptance {ddls_accept:.2f} over {DDLS_STEPS} steps of {DDLS_CHAINS} chains")
print(
    f"DDLS : modes {ddls_metrics['modes']}/8, high quality {ddls_metrics['high_quality']:.3f}, "
    f"KL to uniform {ddls_metrics['kl']:.4f}"
)

fig, axes = plt.subplots(1, 4, figsize=(15, 3.6))
steps = history["step"]
axes[0].plot(steps, history["value"], label="$\\hat V$")
axes[0].axhline(minus_log_4, color="grey", ls="--", label="$-\\log 4$")
axes[0].plot(steps, history["d_real"], label="D(real)")
axes[0].plot(steps, history["d_fake"], label="D(fake)")
axes[0].set(xlabel="step", title="training")
axes[0].legend(fontsize=7)
for ax, (title, points) in zip(
    axes[1:],
    [
        ("data", data[:DDLS_CHAINS]),
        ("GAN samples G(z)", gan_samples),
        ("DDLS samples", ddls_samples),
    ],
    strict=True,
):
    ax.plot(*points.T, ".", ms=1, alpha=0.5)
    ax.plot(*centers.T, "r+", ms=8)
    ax.set(title=title, xlim=(-2.8, 2.8), ylim=(-2.8, 2.8), aspect="equal")
fig.tight_layout()
show(fig)

# %% [markdown]
# The GAN covers all eight modes but spreads some mass between them (the generator is a
# continuous map from a connected latent space, so it must bridge the gaps); the
# discriminator has noticed, and DDLS moves those samples back onto the modes. The
# discriminator, usually thrown away after training, is a useful energy model in its own
# right.
#
# ## 5. Adversarial examples
#
# The lecture's panda becomes a gibbon with 99% confidence after adding
# $\epsilon\, \operatorname{sign}(\nabla_{\mathbf x} J(\theta, \mathbf x, y))$ for a tiny
# $\epsilon$: the **fast gradient sign method** (FGSM; Goodfellow, Shlens & Szegedy 2014).
# Their explanation is linearity, not overfitting: for a linear score,
# $\mathbf w^\top \tilde{\mathbf x} = \mathbf w^\top \mathbf x + \mathbf w^\top \boldsymbol\eta$,
# and $\boldsymbol\eta = \epsilon \operatorname{sign}(\mathbf w)$ changes the score by
# $\epsilon \lVert \mathbf w \rVert_1$, which grows with the dimension while each pixel
# moves by only $\epsilon$.
#
# For softmax regression, logits $W\mathbf x + \mathbf b$, the input gradient of the
# cross-entropy is $W^\top(\mathbf p - \mathbf e_y)$, so FGSM has a closed form; we check
# `pyrogen.adversarial.fgsm` against it. Then a small MLP on the grey-level digits (pixels in
# $[0, 1]$) is attacked with FGSM and with the stronger projected gradient descent (PGD,
# Madry et al. 2018), and retrained on Goodfellow et al.'s objective
#
# $$\tilde J(\theta, \mathbf x, y) = \alpha J(\theta, \mathbf x, y) + (1 - \alpha)
#   J\big(\theta, \mathbf x + \epsilon \operatorname{sign}(\nabla_{\mathbf x} J(\theta,
#   \mathbf x, y)), y\big)$$
#
# (`adversarial_loss`, used by `fit_classifier(adversarial_eps=...)`).

# %%
grey_train, grey_test, y_train, y_test = load_digits(binarize=False, return_labels=True)
torch.manual_seed(0)
softmax_regression = nn.Linear(64, 10)
EPS = 0.1
x_adv = adversarial.fgsm(softmax_regression, grey_test, y_test, eps=EPS, clamp=None)
with torch.no_grad():
    probs = torch.softmax(softmax_regression(grey_test), -1)
    by_hand = grey_test + EPS * torch.sign(
        (probs - F.one_hot(y_test, 10)) @ softmax_regression.weight
    )
fgsm_closed_form_error = float((x_adv - by_hand).abs().max())
print(f"FGSM on softmax regression vs the closed form: largest error {fgsm_closed_form_error:.1e}")

# The linear argument: eta = eps sign(w) moves each pixel by eps but the score by eps ||w||_1.
with torch.no_grad():
    w = softmax_regression.weight[0] - softmax_regression.weight[1]  # a logit difference
    score_change = float(w @ (grey_test[0] + EPS * torch.sign(w)) - w @ grey_test[0])
linear_error = abs(score_change - EPS * float(w.abs().sum()))
print(
    f"w^T eta = {score_change:.3f} = eps * ||w||_1 over {w.numel()} pixels, "
    f"each moved by only {EPS}"
)


def make_classifier():
    torch.manual_seed(0)  # the same initial weights for the plain and the robust model
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


classifiers = {"plain": make_classifier(), "adversarially trained": make_classifier()}
for name, net in classifiers.items():
    adversarial.fit_classifier(
        net,
        grey_train,
        y_train,
        epochs=CLASSIFIER_EPOCHS,
        lr=3e-3,
        weight_decay=1e-4,
        adversarial_eps=EPS if name != "plain" else None,
        seed=0,
    )

# The objective's two ends: alpha = 1 is the clean loss, alpha = 0 the loss at FGSM inputs.
plain = classifiers["plain"].eval()
batch_x, batch_y = grey_test[:64], y_test[:64]
with torch.no_grad():
    clean_loss = F.cross_entropy(plain(batch_x), batch_y)
    fgsm_loss = F.cross_entropy(plain(adversarial.fgsm(plain, batch_x, batch_y, eps=EPS)), batch_y)
objective_error = max(
    abs(float(adversarial.adversarial_loss(plain, batch_x, batch_y, EPS, alpha=a).detach()) - b)
    for a, b in ((1.0, float(clean_loss)), (0.0, float(fgsm_loss)))
)
print(f"adversarial_loss at alpha = 1 and 0 vs direct computation: {objective_error:.1e}")

epsilons = [0.0, 0.05, 0.1, 0.2]
robustness = {}
for name, net in classifiers.items():
    robustness[name] = {
        "FGSM": [
            adversarial.accuracy(net, adversarial.fgsm(net, grey_test, y_test, eps=e), y_test)
            for e in epsilons
        ],
        "PGD": [
            adversarial.accuracy(
                net, adversarial.pgd(net, grey_test, y_test, eps=e, steps=10, seed=0), y_test
            )
            for e in epsilons
        ],
    }
print(f"{'model':22s} {'attack':5s} " + " ".join(f"eps={e:<5}" for e in epsilons))
for name, rows in robustness.items():
    for attack, accs in rows.items():
        print(f"{name:22s} {attack:5s} " + " ".join(f"{a:9.3f}" for a in accs))

fig, axes = plt.subplots(2, 8, figsize=(10, 2.8))
attacked = adversarial.fgsm(plain, grey_test[:8], y_test[:8], eps=EPS)
with torch.no_grad():
    before, after = plain(grey_test[:8]).argmax(-1), plain(attacked).argmax(-1)
for k in range(8):
    axes[0, k].imshow(grey_test[k].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    axes[0, k].set_title(f"says {int(before[k])}", fontsize=8)
    axes[1, k].imshow(attacked[k].reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    axes[1, k].set_title(f"says {int(after[k])}", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.suptitle(f"test digits (top) and FGSM with eps = {EPS} (bottom), plain MLP", fontsize=9)
fig.tight_layout()
show(fig)

# %% [markdown]
# A perturbation of 0.1 per pixel (on a 0-1 scale) destroys most of the plain network's
# accuracy. Training on the adversarial objective costs little clean accuracy and buys much
# of it back, against FGSM and also against PGD, the stronger attack that any claim of
# robustness must be measured with (FGSM alone flatters models trained on FGSM examples).
# Adversarial examples and GANs share the same idea: a model is probed by an opponent that
# follows its gradients.
#
# ## Closing checks

# %%
assert theorem_error < 1e-10
assert max(perturbed) < c_of_g
assert equilibrium_error < 1e-12 and float((d_equal - 0.5).abs().max()) < 1e-12
assert 0 < jsd < math.log(2)
assert min(c_curve) > minus_log_4  # one Gaussian cannot match two modes
assert (
    float(grad_minimax[confident].abs().max())
    < 0.02
    < 0.98
    < float(grad_nonsaturating[confident].abs().min())
)
assert data_metrics["modes"] == 8 and data_metrics["high_quality"] > 0.98
assert gan_metrics["modes"] == 8 and gan_metrics["high_quality"] > 0.5
assert history.last("value") < -0.9  # D cannot tell the samples apart with confidence
assert ddls_metrics["modes"] == 8
assert ddls_metrics["high_quality"] > gan_metrics["high_quality"]
assert 0.5 < ddls_accept < 1.0
assert fgsm_closed_form_error < 1e-6 and linear_error < 1e-5
assert objective_error < 1e-5
plain_fgsm, robust_fgsm = robustness["plain"]["FGSM"], robustness["adversarially trained"]["FGSM"]
plain_pgd, robust_pgd = robustness["plain"]["PGD"], robustness["adversarially trained"]["PGD"]
assert plain_fgsm[0] > 0.9 and robust_fgsm[0] > 0.85  # clean accuracy, chance is 0.1
assert plain_fgsm[2] < plain_fgsm[0] - 0.2  # eps = 0.1 breaks the plain model
assert robust_fgsm[2] > plain_fgsm[2] + 0.1 and robust_pgd[2] > plain_pgd[2] + 0.1
assert all(p <= f + 1e-9 for p, f in zip(plain_pgd, plain_fgsm, strict=True))  # PGD is stronger
print("all checks passed")
