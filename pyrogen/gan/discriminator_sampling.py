r"""Sampling a GAN through its discriminator read as a density ratio: MH-GAN and DRS.

For a generator density :math:`p_g` and the discriminator that is optimal against it, the
logit is the log density ratio :math:`d^*(x) = \log p_{data}(x) - \log p_g(x)` (see
:mod:`pyrogen.gan.latent`). A trained discriminator is only an estimate of it, and usually a
mis-scaled one, so it is first *calibrated* on data it was not trained on: Platt scaling
(Platt 1999) fits :math:`l(x) = a\, d(x) + b` by logistic regression of the label (real = 1,
generated = 0) on the logit, with the two classes weighted equally, over held-out real data
and fresh generator draws (:func:`platt_scaling`, :func:`calibrate_discriminator`). With
balanced classes the fitted log-odds estimate :math:`\log p_{data}(x) / p_g(x)` directly.
Logits above the highest one seen on held-out real data are clamped to it: no evidence
supports a larger ratio, and a discriminator that extrapolates to huge logits in a corner
that generator draws rarely reach would otherwise trap MH-GAN chains there and blow up the
DRS envelope.

Given :math:`w(x) = e^{l(x)} \propto p_{data}(x) / p_g(x)`, two samplers draw from
:math:`p_g(x)\, w(x) \propto p_{data}(x)` using nothing but generator draws:

* **MH-GAN** (Turner, Hung, Frank, Saatci & Yosinski, ICML 2019): an independence
  Metropolis-Hastings sampler (Tierney 1994) whose proposals are fresh draws
  :math:`x' = G(z')`, :math:`z' \sim p(z)`, accepted with probability

  .. math:: \alpha(x, x') = \min\Bigl(1, \frac{p_{data}(x')\, p_g(x)}{p_{data}(x)\,
            p_g(x')}\Bigr) = \min\bigl(1, e^{l(x') - l(x)}\bigr);

  it needs the ratio only up to a constant (:func:`mh_gan_sample`).
* **DRS**, discriminator rejection sampling (Azadi, Olsson, Darrell, Goodfellow & Odena,
  ICLR 2019): rejection sampling with envelope :math:`M = \max_x w(x)`, the maximum
  estimated on a burn-in batch and raised whenever a larger value appears, with a shift
  :math:`\gamma` that trades acceptance against sample quality
  (:func:`discriminator_rejection_sample`).

Both are exact when :math:`l` is the true log ratio (MH-GAN in the limit of long chains, DRS
with :math:`\gamma = 0`, :math:`\epsilon \to 0` and the true maximum); with an estimated
:math:`l` they sample :math:`p_g e^{l}`, which is as good as the calibration. Unlike DDLS
(:func:`~pyrogen.gan.discriminator_energy`) they need no gradients and never leave the
generator's support: they can re-weight modes the generator covers, not create missing ones.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F

from pyrogen._validation import (
    check_finite,
    check_nonnegative_float,
    check_positive_int,
    check_probability,
    check_tensor,
)
from pyrogen.convergence import ACCEPT_MIN, warn_unreliable
from pyrogen.gan.implicit import module_dtype_device
from pyrogen.gan.model import GAN
from pyrogen.seeding import make_generator

__all__ = [
    "DRSSamples",
    "IndependenceChains",
    "MHGANSamples",
    "PlattCalibration",
    "calibrate_discriminator",
    "discriminator_rejection_sample",
    "drs_log_acceptance",
    "independence_sampler",
    "mh_gan_sample",
    "mh_log_acceptance",
    "platt_scaling",
]

#: Points pushed through G and D at once (bounds the memory of one forward pass).
_BLOCK = 65536
#: MH-GAN warns when more than this fraction of chains never accepted a proposal: their
#: output is their starting state, not a corrected sample.
_STUCK_MAX = 0.01
#: Newton steps of the Platt fit stop when half the squared Newton decrement (the predicted
#: decrease of the loss) falls below this; the loss is O(1), so this is float64 round-off.
_NEWTON_TOL = 1e-14


# ---------------------------------------------------------------------------- calibration
class PlattCalibration(NamedTuple):
    r"""A monotone calibration :math:`l = a\, d + b` of discriminator logits :math:`d`.

    Attributes:
        slope, intercept: :math:`a` and :math:`b`.
        log_loss_before, log_loss_after: class-balanced log loss (nats) of the raw logits
            (:math:`a = 1, b = 0`) and of the calibrated ones, on the fitting data.
            :math:`\log 2 \approx 0.693` is a coin; lower is better.
        brier_before, brier_after: class-balanced Brier score
            :math:`\tfrac12 \bar{(\sigma - 1)^2}_{real} + \tfrac12 \bar{\sigma^2}_{fake}`.
        num_real, num_fake: sizes of the two classes the fit used.
        converged: whether Newton's method met its tolerance (``False`` when the logit
            separates the classes perfectly, where the slope grows without bound).
        num_steps: Newton steps taken.
        logit_min, logit_max: the range the calibration trusts: raw logits are clamped to it
            before scaling. :func:`platt_scaling` sets the lowest logit of either class and
            the highest logit of a *real* sample. Above that a discriminator extrapolates:
            the rare generator draw in a region no real sample reached can get a logit far
            above any seen on data, which would trap MH-GAN chains there and inflate DRS's
            envelope until it rejects nearly everything. ``±inf``: no clamping.

    Example:
        >>> cal = PlattCalibration(2.0, -1.0, 0.6, 0.5, 0.2, 0.15, 10, 10, True, 3)
        >>> cal.log_ratio(torch.tensor([0.0, 1.0])).tolist()
        [-1.0, 1.0]
    """

    slope: float
    intercept: float
    log_loss_before: float
    log_loss_after: float
    brier_before: float
    brier_after: float
    num_real: int
    num_fake: int
    converged: bool
    num_steps: int
    logit_min: float = -math.inf
    logit_max: float = math.inf

    def log_ratio(self, logits: torch.Tensor) -> torch.Tensor:
        r"""Calibrated logits :math:`a\,\operatorname{clamp}(d, d_{min}, d_{max}) + b` (in
        float64), any shape: the estimate of :math:`\log p_{data}(x) / p_g(x)`."""
        clamped = logits.double().clamp(self.logit_min, self.logit_max)
        return self.slope * clamped + self.intercept


def _balanced_losses(
    eta: torch.Tensor, y: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted log loss and Brier score of log-odds ``eta`` for labels ``y``."""
    # -[y log s(eta) + (1 - y) log s(-eta)] = y softplus(-eta) + (1 - y) softplus(eta)
    log_loss = (w * torch.where(y > 0, F.softplus(-eta), F.softplus(eta))).sum()
    brier = (w * (torch.sigmoid(eta) - y).square()).sum()
    return log_loss, brier


def _check_logits(x: object, name: str) -> torch.Tensor:
    tensor = check_tensor(x, name, ndim=1)
    check_finite(tensor, name)
    return tensor.detach().double()


def platt_scaling(
    real_logits: torch.Tensor,
    fake_logits: torch.Tensor,
    *,
    max_steps: int = 100,
) -> PlattCalibration:
    r"""Fit :math:`P(\text{real} \mid d) = \sigma(a d + b)` by class-balanced maximum likelihood.

    Minimises, in float64 by damped Newton steps (backtracking line search) from the
    identity :math:`(a, b) = (1, 0)`,

    .. math:: L(a, b) = \frac{1}{2n_r}\sum_{i \in real} \operatorname{softplus}(-(a d_i + b))
              + \frac{1}{2n_f}\sum_{j \in fake} \operatorname{softplus}(a d_j + b),

    whose equal class weights make :math:`a d + b` estimate the log density ratio
    :math:`\log p_{data}/p_g` whatever :math:`n_r / n_f` is. :math:`L` is convex, so
    Newton's method converges (quadratically near the optimum) unless the classes are
    perfectly separated by :math:`d`. Logits above the highest real one are clamped to it,
    in the fit and afterwards (:attr:`PlattCalibration.logit_max`): the ratio is not
    extrapolated beyond what the real data support.

    Args:
        real_logits: discriminator logits on held-out real data, shape ``(n_r,)``.
        fake_logits: logits on fresh generator draws, shape ``(n_f,)``.
        max_steps: cap on Newton steps.

    Returns:
        :class:`PlattCalibration`.

    Warns:
        ConvergenceWarning: Newton's method did not converge within ``max_steps`` (the
            logit separates the classes); the calibration is then not a density ratio.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> real = 2.0 + torch.randn(200000, generator=g, dtype=torch.float64)  # N(2, 1)
        >>> fake = torch.randn(200000, generator=g, dtype=torch.float64)  # N(0, 1)
        >>> cal = platt_scaling(real, fake)  # log N(d; 2, 1) / N(d; 0, 1) = 2 d - 2
        >>> round(cal.slope, 1), round(cal.intercept, 1), cal.converged
        (2.0, -2.0, True)
    """
    real = _check_logits(real_logits, "real_logits")
    fake = _check_logits(fake_logits, "fake_logits")
    max_steps = check_positive_int(max_steps, "max_steps")
    # Fit on the logits as log_ratio will see them: clamped at the highest real logit (see
    # PlattCalibration), so that a few extrapolated fake logits cannot flatten the slope.
    d = torch.cat([real, fake]).clamp(max=float(real.max()))
    if bool((d == d[0]).all()):
        raise ValueError("the logits are all equal: a slope cannot be fitted to constant logits")
    n_r, n_f = real.numel(), fake.numel()
    y = torch.cat([torch.ones_like(real), torch.zeros_like(fake)])
    w = torch.cat([real.new_full((n_r,), 0.5 / n_r), fake.new_full((n_f,), 0.5 / n_f)])
    design = torch.stack([d, torch.ones_like(d)], dim=1)  # (n, 2)

    def loss(theta: torch.Tensor) -> torch.Tensor:
        return _balanced_losses(design @ theta, y, w)[0]

    theta = torch.tensor([1.0, 0.0], dtype=torch.float64)
    before = _balanced_losses(d, y, w)
    current = loss(theta)
    converged = False
    steps = 0
    while steps < max_steps:
        steps += 1
        p = torch.sigmoid(design @ theta)
        grad = design.T @ (w * (p - y))
        hessian = (design * (w * p * (1 - p))[:, None]).T @ design
        try:
            direction = torch.linalg.solve(hessian, grad)
        except RuntimeError:  # singular: the fitted probabilities saturated (separation)
            break
        decrement = float(grad @ direction) / 2
        if not math.isfinite(decrement):
            break
        if decrement < _NEWTON_TOL:
            # A last full step: too small for the line search to see in float64, it still
            # squares the gradient (quadratic convergence).
            theta = theta - direction
            converged = True
            break
        t = 1.0
        while t > 1e-12:  # Armijo backtracking keeps every step a descent step
            trial = theta - t * direction
            value = loss(trial)
            if value <= current - 1e-4 * t * 2 * decrement:
                break
            t /= 2
        else:
            break
        theta, current = trial, value
    after = _balanced_losses(design @ theta, y, w)
    result = PlattCalibration(
        slope=float(theta[0]),
        intercept=float(theta[1]),
        log_loss_before=float(before[0]),
        log_loss_after=float(after[0]),
        brier_before=float(before[1]),
        brier_after=float(after[1]),
        num_real=n_r,
        num_fake=n_f,
        converged=converged,
        num_steps=steps,
        logit_min=float(d.min()),
        logit_max=float(real.max()),
    )
    if not converged:
        warn_unreliable(
            f"Platt calibration did not converge in {steps} Newton steps (slope "
            f"{result.slope:.3g}, log loss {result.log_loss_after:.3g}): the discriminator "
            "logit (nearly) separates held-out real data from generator draws, so the "
            "calibrated logit is not a usable density ratio",
            stacklevel=2,
        )
    return result


@contextlib.contextmanager
def _eval_mode(gan: GAN) -> Iterator[None]:
    """Both networks in eval mode (no dropout, no BatchNorm updates), no gradients."""
    modes = (gan.generator.training, gan.discriminator.training)
    gan.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        gan.generator.train(modes[0])
        gan.discriminator.train(modes[1])


def _check_gan(gan: object) -> GAN:
    if not isinstance(gan, GAN):
        raise TypeError(f"gan must be a pyrogen.gan.GAN, got {type(gan).__name__}")
    return gan


def _rng(
    seed: int | None, generator: torch.Generator | None, device: torch.device
) -> torch.Generator:
    """The run's generator: ``generator`` if given, else one seeded by the package rule."""
    if generator is None:
        return make_generator(seed, device)
    if seed is not None:
        raise ValueError("give at most one of seed and generator")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


def _logits(gan: GAN, x: torch.Tensor) -> torch.Tensor:
    """Raw discriminator logits of ``x`` (n, out_dim) in float64, blockwise, checked finite."""
    out = torch.cat([gan.logits(block) for block in x.split(_BLOCK)]).double()
    return check_finite(out, "discriminator logits")


def calibrate_discriminator(
    gan: GAN,
    real: torch.Tensor,
    *,
    num_fake: int | None = None,
    max_steps: int = 100,
    seed: int | None = None,
    generator: torch.Generator | None = None,
) -> PlattCalibration:
    r"""Platt-calibrate ``gan``'s discriminator on held-out ``real`` data vs fresh draws of G.

    The real samples must be *held out*: data the discriminator was trained on sit where its
    logit is inflated by overfitting, and calibrating on them would keep that bias. The
    fake class is ``num_fake`` fresh draws :math:`G(z)`; both networks run in eval mode.
    See :func:`platt_scaling` for the fit.

    Args:
        gan: the trained GAN (not modified).
        real: held-out real samples, shape ``(n, out_dim)``, the networks' dtype.
        num_fake: generator draws for the fake class (default ``n``).
        max_steps: Newton steps cap.
        seed, generator: randomness of the generator draws (at most one; see
            :mod:`pyrogen.seeding`).

    Returns:
        :class:`PlattCalibration`; pass it to :func:`mh_gan_sample` or
        :func:`discriminator_rejection_sample`.

    Example:
        >>> from pyrogen.gan import ImplicitModel, mlp_discriminator, mlp_generator
        >>> _ = torch.manual_seed(0)
        >>> gan = GAN(ImplicitModel(mlp_generator(2, 2), 2), mlp_discriminator(2))
        >>> cal = calibrate_discriminator(gan, torch.randn(500, 2), seed=0)
        >>> cal.num_real, cal.num_fake, cal.log_loss_after <= cal.log_loss_before
        (500, 500, True)
    """
    gan = _check_gan(gan)
    dtype, device = module_dtype_device(gan.discriminator, gan.generator)
    check_tensor(real, "real", ndim=2, last_dim=gan.generator.out_dim)
    check_finite(real, "real")
    if real.dtype != dtype:
        raise TypeError(f"real has dtype {real.dtype} but the networks use {dtype}; convert it")
    num_fake = real.shape[0] if num_fake is None else check_positive_int(num_fake, "num_fake")
    rng = _rng(seed, generator, device)
    with _eval_mode(gan):
        fake = gan.generator.sample(num_fake, rng)
        real_logits = _logits(gan, real.to(device))
        fake_logits = _logits(gan, fake)
    return platt_scaling(real_logits, fake_logits, max_steps=max_steps)


def _log_ratio_fn(
    gan: GAN, calibration: PlattCalibration | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    if calibration is not None and not isinstance(calibration, PlattCalibration):
        raise TypeError(
            "calibration must be a PlattCalibration (from calibrate_discriminator) or None, "
            f"got {type(calibration).__name__}"
        )
    if calibration is None:
        return lambda x: _logits(gan, x)
    return lambda x: calibration.log_ratio(_logits(gan, x))


# ---------------------------------------------------------------------------- MH-GAN
def mh_log_acceptance(
    current_log_ratio: torch.Tensor, proposal_log_ratio: torch.Tensor
) -> torch.Tensor:
    r"""Log acceptance probability of the independence sampler, :math:`\min(0, l' - l)`.

    With proposals from :math:`p_g` and target :math:`p_{data} \propto p_g e^{l}`, the
    Metropolis-Hastings ratio :math:`\frac{p_{data}(x') p_g(x)}{p_{data}(x) p_g(x')}` is
    :math:`e^{l(x') - l(x)}`. Broadcasts; ``-inf`` for a proposal of zero target density.
    Inputs must not both be infinite with the same sign (the difference is undefined).

    Example:
        >>> mh_log_acceptance(torch.tensor([0.0, 0.0]), torch.tensor([1.0, -1.0])).tolist()
        [0.0, -1.0]
    """
    return (proposal_log_ratio - current_log_ratio).clamp(max=0.0)


class IndependenceChains(NamedTuple):
    """State of :func:`independence_sampler` after a run of proposals.

    Attributes:
        index: ``(C,)`` int64, each chain's final state as an index into its proposals, or
            ``-1`` when it is still at its initial state.
        log_ratio: ``(C,)`` float64, the log ratio :math:`l` of each chain's final state.
        num_accepted: ``(C,)`` int64, accepted proposals per chain.
    """

    # The public field shadows tuple.index, which mypy reports as an incompatible override.
    index: torch.Tensor  # type: ignore[assignment]
    log_ratio: torch.Tensor
    num_accepted: torch.Tensor


def independence_sampler(
    initial_log_ratio: torch.Tensor,
    proposal_log_ratio: torch.Tensor,
    generator: torch.Generator | None = None,
) -> IndependenceChains:
    r"""Run ``C`` independence Metropolis-Hastings chains over given proposals.

    The functional core of :func:`mh_gan_sample`, on log ratios only: chain ``c`` starts in
    a state with log ratio ``initial_log_ratio[c]`` and sees proposals ``k = 0..K-1`` with
    log ratios ``proposal_log_ratio[c, k]`` in order, accepting proposal ``k`` when
    :math:`\log u_{ck} < \min(0, l_{ck} - l_c)`, :math:`u_{ck} \sim U[0, 1)`
    (:func:`mh_log_acceptance`). If the proposals are draws from :math:`p_g` and
    :math:`l = \log p / p_g + \text{const}`, each chain is a Markov chain with stationary
    distribution :math:`p`.

    Args:
        initial_log_ratio: ``(C,)``.
        proposal_log_ratio: ``(C, K)``.
        generator: draws the uniforms (float64, on the inputs' device).

    Returns:
        :class:`IndependenceChains` ``(index, log_ratio, num_accepted)``.

    Example:
        >>> out = independence_sampler(torch.zeros(2), torch.tensor([[5.0, -50.0], [-50.0, -60.0]]))
        >>> out.index.tolist(), out.num_accepted.tolist()
        ([0, -1], [1, 0])
    """
    check_tensor(initial_log_ratio, "initial_log_ratio", ndim=1)
    check_tensor(proposal_log_ratio, "proposal_log_ratio", ndim=2)
    num_chains, num_proposals = proposal_log_ratio.shape
    if initial_log_ratio.shape[0] != num_chains:
        raise ValueError(
            f"initial_log_ratio has {initial_log_ratio.shape[0]} chains but "
            f"proposal_log_ratio has {num_chains} (shape {tuple(proposal_log_ratio.shape)})"
        )
    proposals = proposal_log_ratio.double()
    log_u = torch.rand(
        num_chains, num_proposals, generator=generator, dtype=torch.float64,
        device=proposals.device,
    ).log()  # fmt: skip
    current = initial_log_ratio.double().clone()
    index = torch.full((num_chains,), -1, dtype=torch.long, device=proposals.device)
    accepted = torch.zeros(num_chains, dtype=torch.long, device=proposals.device)
    for k in range(num_proposals):
        move = log_u[:, k] < mh_log_acceptance(current, proposals[:, k])
        current = torch.where(move, proposals[:, k], current)
        index = torch.where(move, k, index)
        accepted += move
    return IndependenceChains(index, current, accepted)


class MHGANSamples(NamedTuple):
    """What :func:`mh_gan_sample` returns.

    Attributes:
        samples: ``(num_samples, out_dim)``, each chain's final state.
        acceptance_rate: accepted / proposed over all chains (restarts included).
        num_accepted: ``(num_samples,)`` int64, accepted proposals of each chain's last run.
        num_never_accepted: chains whose output is their own starting state because no
            proposal was accepted (after the restart, if any): a plain generator draw.
        num_restarted: chains started from real data that accepted nothing and were rerun
            from a generator draw.
        num_proposals: generator draws used in all (proposals and starting draws).
    """

    samples: torch.Tensor
    acceptance_rate: float
    num_accepted: torch.Tensor
    num_never_accepted: int
    num_restarted: int
    num_proposals: int


def _run_chains(
    gan: GAN,
    log_ratio: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    num_proposals: int,
    rng: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Advance chains at ``x`` (C, D) by ``num_proposals`` fresh generator proposals each,
    a block of steps at a time; return final states and accepted counts."""
    num_chains, width = x.shape
    x = x.clone()
    current = log_ratio(x)
    accepted = torch.zeros(num_chains, dtype=torch.long, device=x.device)
    steps_per_block = max(1, _BLOCK // num_chains)
    rows = torch.arange(num_chains, device=x.device)
    done = 0
    while done < num_proposals:
        k = min(steps_per_block, num_proposals - done)
        proposals = gan.generator.sample(num_chains * k, rng)
        block = log_ratio(proposals).reshape(num_chains, k)
        out = independence_sampler(current, block, rng)
        moved = out.index >= 0
        chosen = proposals.reshape(num_chains, k, width)[rows, out.index.clamp(min=0)]
        x = torch.where(moved[:, None], chosen, x)
        current = out.log_ratio
        accepted += out.num_accepted
        done += k
    return x, accepted


def mh_gan_sample(
    gan: GAN,
    num_samples: int,
    *,
    num_proposals: int = 100,
    calibration: PlattCalibration | None = None,
    initial: torch.Tensor | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    warn: bool = True,
) -> MHGANSamples:
    r"""MH-GAN (Turner et al. 2019): independence Metropolis-Hastings over generator draws.

    Runs ``num_samples`` chains in parallel, each for ``num_proposals`` (the paper's
    :math:`K`) proposals :math:`x' = G(z')`, :math:`z' \sim p(z)`, accepted with probability
    :math:`\min(1, e^{l(x') - l(x)})` (:func:`independence_sampler`), where
    :math:`l` is the calibrated logit (``calibration``, or the raw logit when ``None``).
    Each chain's final state is one sample, as in the paper.

    Initialisation: with ``initial`` (held-out real samples, one per chain), chains start
    in the target :math:`p_{data}` itself, so with an exact ratio every state is
    distributed as :math:`p_{data}` and no burn-in is needed (the paper's choice). A real
    sample must never be returned, so a chain that accepted no proposal is restarted, as in
    the paper, from a generator draw for another ``num_proposals`` proposals
    (``num_restarted``; this conditioning biases the output slightly, in proportion to
    how many chains need it). Without ``initial`` chains start from generator draws, whose
    distance to the target shrinks like :math:`(1 - 1/\sup w)^K` for normalised
    :math:`w = p_{data}/p_g`.

    Args:
        gan: the GAN; both networks run in eval mode without gradients.
        num_samples: chains, hence output samples.
        num_proposals: proposals per chain, :math:`K`.
        calibration: from :func:`calibrate_discriminator`; ``None`` uses the raw logit.
        initial: ``(num_samples, out_dim)`` held-out real samples to start from, or
            ``None`` to start from generator draws.
        seed, generator: the run's randomness (at most one).
        warn: emit the :class:`~pyrogen.ConvergenceWarning` described below.

    Returns:
        :class:`MHGANSamples`.

    Warns:
        ConvergenceWarning: when the acceptance rate is below 5%
            (:data:`pyrogen.convergence.ACCEPT_MIN`) or more than 1% of the chains never
            accepted a proposal: the output is then mostly uncorrected generator draws.

    Example:
        >>> from pyrogen.gan import ImplicitModel, mlp_discriminator, mlp_generator
        >>> _ = torch.manual_seed(0)
        >>> gan = GAN(ImplicitModel(mlp_generator(2, 2), 2), mlp_discriminator(2))
        >>> out = mh_gan_sample(gan, 100, num_proposals=20, seed=0)
        >>> tuple(out.samples.shape), 0.0 < out.acceptance_rate <= 1.0
        ((100, 2), True)
    """
    gan = _check_gan(gan)
    num_samples = check_positive_int(num_samples, "num_samples")
    num_proposals = check_positive_int(num_proposals, "num_proposals")
    log_ratio = _log_ratio_fn(gan, calibration)
    dtype, device = module_dtype_device(gan.discriminator, gan.generator)
    out_dim = gan.generator.out_dim
    if initial is not None:
        check_tensor(initial, "initial", ndim=2, last_dim=out_dim)
        check_finite(initial, "initial")
        if initial.shape[0] != num_samples:
            raise ValueError(
                f"initial must hold one real sample per chain, shape ({num_samples}, "
                f"{out_dim}), got {tuple(initial.shape)}"
            )
        if initial.dtype != dtype:
            raise TypeError(f"initial has dtype {initial.dtype} but the networks use {dtype}")
    rng = _rng(seed, generator, device)
    with _eval_mode(gan):
        used = num_samples * num_proposals
        if initial is None:
            start, used = gan.generator.sample(num_samples, rng), used + num_samples
        else:
            start = initial.to(device)
        x, accepted = _run_chains(gan, log_ratio, start, num_proposals, rng)
        total_accepted = int(accepted.sum())
        restarted = torch.zeros(num_samples, dtype=torch.bool, device=device)
        if initial is not None:
            restarted = accepted == 0
            num = int(restarted.sum())
            if num:
                fresh = gan.generator.sample(num, rng)
                x_new, acc_new = _run_chains(gan, log_ratio, fresh, num_proposals, rng)
                x[restarted], accepted[restarted] = x_new, acc_new
                total_accepted += int(acc_new.sum())
                used += num * (num_proposals + 1)
    num_restarted = int(restarted.sum())
    proposed = num_samples * num_proposals + num_restarted * num_proposals
    rate = total_accepted / proposed
    stuck = int((accepted == 0).sum())
    if warn and (rate < ACCEPT_MIN or stuck > _STUCK_MAX * num_samples):
        warn_unreliable(
            f"MH-GAN: acceptance rate {rate:.3g} over {num_proposals} proposals per chain, "
            f"{stuck} of {num_samples} chains never accepted a proposal (their output is an "
            "uncorrected generator draw): the samples are not corrected by the discriminator; "
            "raise num_proposals or check the calibration",
            stacklevel=2,
        )
    return MHGANSamples(x, rate, accepted, stuck, num_restarted, used)


# ---------------------------------------------------------------------------- DRS
def _log1mexp(t: torch.Tensor) -> torch.Tensor:
    """:math:`\\log(1 - e^t)` for :math:`t \\le 0`, accurate at both ends (Mächler 2012)."""
    # Both branches are evaluated by torch.where; each is finite (or -inf at t = 0) on t <= 0.
    return torch.where(t > -math.log(2.0), torch.log(-torch.expm1(t)), torch.log1p(-torch.exp(t)))


def _check_gamma(gamma: object) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not math.isfinite(gamma):
        raise ValueError(f"gamma must be a finite number, got {gamma!r}")
    return float(gamma)


def _drs_score(
    log_ratio: torch.Tensor, max_log_ratio: torch.Tensor | float, epsilon: float
) -> torch.Tensor:
    """:math:`F + \\gamma` of :func:`drs_log_acceptance` (``+inf`` at the envelope when
    ``epsilon = 0``)."""
    s = (log_ratio.double() - max_log_ratio).clamp(max=0.0)
    return s - _log1mexp(s - epsilon)


def drs_log_acceptance(
    log_ratio: torch.Tensor,
    max_log_ratio: torch.Tensor | float,
    epsilon: float = 1e-6,
    gamma: float = 0.0,
) -> torch.Tensor:
    r"""Log acceptance probability of discriminator rejection sampling (Azadi et al. 2019).

    With :math:`s = \min(l - l_M, 0)` (``l_M`` = ``max_log_ratio``, the envelope),

    .. math:: F = s - \log\bigl(1 - e^{s - \epsilon}\bigr) - \gamma, \qquad
              \log p = \log \sigma(F).

    For :math:`\epsilon = \gamma = 0`, :math:`F` is the logit of :math:`e^{s}`, so
    :math:`p = e^{l - l_M}`: plain rejection sampling of :math:`p_g e^{l}` under the
    envelope :math:`e^{l_M}`. :math:`\epsilon > 0` keeps :math:`F` finite at
    :math:`l = l_M`; :math:`\gamma > 0` lowers every acceptance (relatively most for the
    lowest-ratio samples, which raises quality and costs diversity), :math:`\gamma < 0`
    raises them. :math:`\log(1 - e^{t})` is evaluated by the two-branch rule of Mächler
    (2012) and :math:`\log\sigma` by ``logsigmoid``: the result is finite or exactly
    ``-inf`` for any ``log_ratio`` (``±inf`` included), never NaN. ``log_ratio`` has any
    shape; so has the result.

    Example:
        >>> drs_log_acceptance(torch.tensor([0.0, -1.0]), 0.0, epsilon=0.0).exp().tolist()
        [1.0, 0.36787944117144233]
    """
    check_tensor(log_ratio, "log_ratio")
    epsilon = check_nonnegative_float(epsilon, "epsilon")
    gamma = _check_gamma(gamma)
    return F.logsigmoid(_drs_score(log_ratio, max_log_ratio, epsilon) - gamma)


class DRSSamples(NamedTuple):
    """What :func:`discriminator_rejection_sample` returns.

    Attributes:
        samples: ``(m, out_dim)`` accepted samples, ``m = num_samples`` unless the proposal
            cap was hit (then ``m < num_samples`` and ``complete`` is false).
        acceptance_rate: accepted / candidates (burn-in excluded).
        num_proposals: candidates drawn and tested (burn-in excluded).
        num_burn_in: generator draws used only to initialise the envelope.
        max_log_ratio: the envelope :math:`l_M` at the end (float64 scalar as float).
        gamma: the shift used.
        complete: whether ``num_samples`` samples were accepted.
    """

    samples: torch.Tensor
    acceptance_rate: float
    num_proposals: int
    num_burn_in: int
    max_log_ratio: float
    gamma: float
    complete: bool


def discriminator_rejection_sample(
    gan: GAN,
    num_samples: int,
    *,
    calibration: PlattCalibration | None = None,
    gamma: float = 0.0,
    gamma_quantile: float | None = None,
    epsilon: float = 1e-6,
    burn_in: int = 10000,
    batch_size: int = 10000,
    max_proposals: int | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    warn: bool = True,
) -> DRSSamples:
    r"""Discriminator rejection sampling (Azadi et al. 2019) of ``num_samples`` draws.

    1. Burn-in: :math:`l = ` calibrated logit on ``burn_in`` generator draws; the envelope
       :math:`l_M` is their maximum. With ``gamma_quantile = q`` the shift :math:`\gamma` is
       the ``q``-quantile of :math:`F` (:func:`drs_log_acceptance` with :math:`\gamma = 0`)
       on that batch, the paper's percentile rule: a fraction :math:`1 - q` of draws then has
       :math:`F - \gamma > 0`, acceptance above one half.
    2. Batches of ``batch_size`` candidates :math:`x = G(z)`: :math:`l_M` is raised to the
       batch maximum first (the paper's running maximum, so that :math:`s \le 0`), then
       each :math:`x` is kept with probability :math:`\sigma(F(x))`, until ``num_samples``
       are kept or ``max_proposals`` candidates were tested.

    With the true log ratio, :math:`\gamma = 0` and :math:`\epsilon \to 0`, the kept
    samples follow :math:`p_{data}` exactly once :math:`l_M` reached the true maximum
    (earlier, a low envelope over-accepts the highest-ratio points).

    Args:
        gan: the GAN; both networks in eval mode, no gradients.
        num_samples: samples to accept.
        calibration: from :func:`calibrate_discriminator`; ``None`` uses the raw logit.
        gamma: the shift :math:`\gamma` (ignored when ``gamma_quantile`` is given).
        gamma_quantile: set :math:`\gamma` from the burn-in batch (e.g. 0.95 in the paper).
        epsilon: the :math:`\epsilon` of :func:`drs_log_acceptance` (paper: 1e-6).
        burn_in: generator draws for the initial envelope.
        batch_size: candidates per batch.
        max_proposals: cap on candidates (default ``1000 * num_samples``).
        seed, generator: the run's randomness (at most one).
        warn: warn when the cap is hit.

    Returns:
        :class:`DRSSamples`.

    Warns:
        ConvergenceWarning: the cap was hit before ``num_samples`` were accepted; fewer
            samples are returned (``complete=False``).

    Example:
        >>> from pyrogen.gan import ImplicitModel, mlp_discriminator, mlp_generator
        >>> _ = torch.manual_seed(0)
        >>> gan = GAN(ImplicitModel(mlp_generator(2, 2), 2), mlp_discriminator(2))
        >>> out = discriminator_rejection_sample(gan, 100, burn_in=1000, seed=0)
        >>> tuple(out.samples.shape), out.complete, out.num_proposals >= 100
        ((100, 2), True, True)
    """
    gan = _check_gan(gan)
    num_samples = check_positive_int(num_samples, "num_samples")
    burn_in = check_positive_int(burn_in, "burn_in")
    batch_size = check_positive_int(batch_size, "batch_size")
    cap = (
        1000 * num_samples
        if max_proposals is None
        else check_positive_int(max_proposals, "max_proposals")
    )
    epsilon = check_nonnegative_float(epsilon, "epsilon")
    if gamma_quantile is not None:
        gamma_quantile = check_probability(gamma_quantile, "gamma_quantile")
    else:
        gamma = _check_gamma(gamma)
    log_ratio = _log_ratio_fn(gan, calibration)
    _, device = module_dtype_device(gan.discriminator, gan.generator)
    rng = _rng(seed, generator, device)
    kept: list[torch.Tensor] = []
    num_kept = tested = 0
    with _eval_mode(gan):
        ratio = log_ratio(gan.generator.sample(burn_in, rng))
        envelope = ratio.max()
        if gamma_quantile is not None:
            # F is +inf only at the envelope with epsilon = 0; beyond ~37, sigmoid(F) = 1 in
            # float64, so capping there changes no acceptance and keeps the quantile finite.
            scores = _drs_score(ratio, envelope, epsilon).clamp(max=40.0)
            gamma = float(torch.quantile(scores, gamma_quantile))
        while num_kept < num_samples and tested < cap:
            n = min(batch_size, cap - tested)
            x = gan.generator.sample(n, rng)
            ratio = log_ratio(x)
            envelope = torch.maximum(envelope, ratio.max())
            log_p = drs_log_acceptance(ratio, envelope, epsilon, gamma)
            keep = torch.rand(n, generator=rng, dtype=torch.float64, device=device).log() < log_p
            kept.append(x[keep])
            num_kept += int(keep.sum())
            tested += n
    samples = torch.cat(kept)[:num_samples]
    complete = samples.shape[0] == num_samples
    rate = num_kept / tested if tested else 0.0
    if warn and not complete:
        warn_unreliable(
            f"DRS: only {samples.shape[0]} of {num_samples} samples accepted in {tested} "
            f"proposals (acceptance {rate:.3g}, gamma {gamma:.3g}): raise max_proposals or "
            "lower gamma; the returned samples are fewer than asked",
            stacklevel=2,
        )
    return DRSSamples(samples, rate, tested, burn_in, float(envelope), gamma, complete)
