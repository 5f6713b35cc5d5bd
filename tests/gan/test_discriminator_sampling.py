"""MH-GAN, discriminator rejection sampling and Platt calibration against known density ratios.

Test problems where :math:`p_{data}` and :math:`p_g` are known and the "discriminator" is the
exact log ratio :math:`l = \\log p_{data} - \\log p_g` (plus an arbitrary constant):

* a 6-state discrete space: the exact transition matrix of the independence sampler
  (stationarity, detailed balance to 1e-12) and chi-square tests of chain final states;
* 1-D Gaussians, :math:`p_{data} = N(0, 1)`, :math:`p_g = N(0.5, 1.5^2)` (a linear generator
  :math:`G(z) = 0.5 + 1.5 z`), for which :math:`\\sup p_{data}/p_g = M \\approx 1.66`: MH-GAN
  and DRS samples are compared with :math:`N(0, 1)` by Kolmogorov-Smirnov tests, and the
  acceptance rates with their exact values within 4 Monte Carlo standard errors.

Calibration: Platt parameters recovered from synthetic logits (sandwich standard errors)
and from a deliberately distorted discriminator; clamping of logits no real sample reached.

Every goodness-of-fit test uses level :math:`10^{-3}`, below 1 / (number of such tests) even
if the seeds were not fixed. Mutation check done once by hand: flipping the sign of the
ratio (``l -> -l``) makes the MH-GAN and DRS KS tests fail with p-values below 1e-100.
"""

import math
import warnings

import pytest
import torch
from scipy import stats

from pyrogen import ConvergenceWarning
from pyrogen.gan import (
    GAN,
    ImplicitModel,
    PlattCalibration,
    calibrate_discriminator,
    discriminator_rejection_sample,
    drs_log_acceptance,
    independence_sampler,
    mh_gan_sample,
    mh_log_acceptance,
    platt_scaling,
)

ALPHA = 1e-3
MU_G, SIGMA_G = 0.5, 1.5  # generator N(0.5, 1.5^2); data N(0, 1)
# Discrete problem: target p, proposal q, with sup p / q = 2.2 (fast mixing).
P = torch.tensor([0.05, 0.10, 0.15, 0.20, 0.22, 0.28], dtype=torch.float64)
Q = torch.tensor([0.20, 0.10, 0.20, 0.15, 0.10, 0.25], dtype=torch.float64)


def _exact_max_ratio() -> float:
    """sup_x N(x; 0, 1) / N(x; MU_G, SIGMA_G^2), at the stationary point of the log ratio."""
    x = -MU_G / (SIGMA_G**2 - 1)
    return math.exp(_log_ratio(torch.tensor(x, dtype=torch.float64)).item())


def _log_ratio(x: torch.Tensor) -> torch.Tensor:
    log_data = -0.5 * x.square()
    log_gen = -0.5 * ((x - MU_G) / SIGMA_G).square() - math.log(SIGMA_G)
    return log_data - log_gen


class RatioDiscriminator(torch.nn.Module):
    """Logit ``scale * (log N(x; 0, 1) - log N(x; MU_G, SIGMA_G^2)) + shift``."""

    def __init__(self, scale: float = 1.0, shift: float = 0.0, spike: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float64))
        self.shift = shift
        self.spike = spike  # added on [4, 5]: where G puts 0.85% of its mass, data 3e-5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[..., 0]
        bump = self.spike * ((x > 4.0) & (x < 5.0))
        return self.scale * _log_ratio(x) + self.shift + bump


def _gaussian_gan(scale: float = 1.0, shift: float = 0.0, spike: float = 0.0) -> GAN:
    net = torch.nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        net.weight.fill_(SIGMA_G)
        net.bias.fill_(MU_G)
    return GAN(ImplicitModel(net, latent_dim=1), RatioDiscriminator(scale, shift, spike))


def _ks_normal(x: torch.Tensor) -> float:
    return float(stats.kstest(x.reshape(-1).numpy(), "norm").pvalue)


# ---------------------------------------------------------------------------- MH: exact
def test_independence_transition_matrix_has_data_as_stationary_law() -> None:
    # The ratio is known up to a constant only; 3.7 must not matter.
    log_ratio = P.log() - Q.log() + 3.7
    accept = mh_log_acceptance(log_ratio[:, None], log_ratio[None, :]).exp()
    transition = Q[None, :] * accept
    transition.fill_diagonal_(0.0)
    transition += torch.diag(1.0 - transition.sum(1))
    assert bool((transition >= 0).all())
    torch.testing.assert_close(transition.sum(1), torch.ones(6, dtype=torch.float64))
    flow = P[:, None] * transition
    torch.testing.assert_close(flow, flow.T, rtol=0.0, atol=1e-12)  # detailed balance
    torch.testing.assert_close(P @ transition, P, rtol=0.0, atol=1e-12)  # stationarity


def test_mh_log_acceptance_values() -> None:
    current = torch.tensor([0.0, 0.0, 2.0, -math.inf])
    proposal = torch.tensor([1.0, -1.5, 2.0, 0.0])
    assert mh_log_acceptance(current, proposal).tolist() == [0.0, -1.5, 0.0, 0.0]


@pytest.mark.parametrize("start", ["generator", "data"])
def test_independence_sampler_final_states_follow_target(start: str) -> None:
    chains, steps = 20000, 30
    rng = torch.Generator().manual_seed(11 if start == "generator" else 12)
    log_ratio = P.log() - Q.log()
    initial = torch.multinomial(Q if start == "generator" else P, chains, True, generator=rng)
    proposals = torch.multinomial(Q, chains * steps, True, generator=rng).reshape(chains, steps)
    out = independence_sampler(log_ratio[initial], log_ratio[proposals], rng)
    final = torch.where(out.index >= 0, proposals.gather(1, out.index.clamp(min=0)[:, None])[:, 0],
                        initial)  # fmt: skip
    torch.testing.assert_close(out.log_ratio, log_ratio[final])
    counts = torch.bincount(final, minlength=6).double()
    # Started from q the law after K steps is within (1 - 1/2.2)^30 < 1e-7 of p in TV.
    assert stats.chisquare(counts.numpy(), (chains * P).numpy()).pvalue > ALPHA
    if start == "data":  # stationary from step 0: E[acceptance] is exact at every step
        accept = mh_log_acceptance(log_ratio[:, None], log_ratio[None, :]).exp()
        expected = float(P @ accept @ Q)
        rate = out.num_accepted.double() / steps
        se = float(rate.std()) / math.sqrt(chains)
        assert abs(float(rate.mean()) - expected) < 4 * se


def test_independence_sampler_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="initial_log_ratio has 3 chains"):
        independence_sampler(torch.zeros(3), torch.zeros(2, 5))
    with pytest.raises(ValueError, match="proposal_log_ratio must have 2 dimensions"):
        independence_sampler(torch.zeros(3), torch.zeros(3))


# ---------------------------------------------------------------------------- MH-GAN
@pytest.mark.parametrize("start", ["generator", "data"])
def test_mh_gan_samples_data_distribution(start: str) -> None:
    gan = _gaussian_gan(shift=-0.8)  # a constant offset cancels in l(x') - l(x)
    n = 3000
    initial = None
    if start == "data":
        initial = torch.randn(n, 1, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    before = None if initial is None else initial.clone()
    out = mh_gan_sample(gan, n, num_proposals=30, initial=initial, seed=3)
    assert out.samples.shape == (n, 1)
    assert _ks_normal(out.samples) > ALPHA
    if initial is not None:
        assert torch.equal(initial, before)  # not mutated
    # The expected acceptance at stationarity is E_{p x q} min(1, w'/w) in [1/M, 1].
    assert 1 / _exact_max_ratio() < out.acceptance_rate < 1.0
    assert out.num_never_accepted == 0
    assert out.num_proposals >= n * 30


def test_mh_gan_reproducible_and_restores_modes() -> None:
    gan = _gaussian_gan()
    gan.train()
    a = mh_gan_sample(gan, 50, num_proposals=5, seed=7)
    b = mh_gan_sample(gan, 50, num_proposals=5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.samples, b.samples)
    assert gan.generator.training and gan.discriminator.training


def test_mh_gan_restarts_chains_that_never_move_and_warns() -> None:
    # A real start at the mode of a very sharp ratio accepts nothing: every chain restarts.
    gan = _gaussian_gan(scale=1e6)
    initial = torch.full((40, 1), -0.4, dtype=torch.float64)  # argmax of the ratio
    with pytest.warns(ConvergenceWarning, match="never accepted"):
        out = mh_gan_sample(gan, 40, num_proposals=3, initial=initial, seed=0)
    assert out.num_restarted == 40
    assert not bool((out.samples == -0.4).any())  # a real sample is never returned
    assert out.num_proposals == 40 * 3 + 40 * 4


def test_mh_gan_validation() -> None:
    gan = _gaussian_gan()
    with pytest.raises(TypeError, match=r"gan must be a pyrogen.gan.GAN"):
        mh_gan_sample(gan.generator, 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_samples"):
        mh_gan_sample(gan, 0)
    with pytest.raises(ValueError, match="num_proposals"):
        mh_gan_sample(gan, 10, num_proposals=0)
    with pytest.raises(ValueError, match="one real sample per chain"):
        mh_gan_sample(gan, 10, initial=torch.zeros(9, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="last dimension 1"):
        mh_gan_sample(gan, 10, initial=torch.zeros(10, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="initial has dtype"):
        mh_gan_sample(gan, 10, initial=torch.zeros(10, 1))
    with pytest.raises(TypeError, match="calibration must be a PlattCalibration"):
        mh_gan_sample(gan, 10, calibration=(1.0, 0.0))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at most one of seed and generator"):
        mh_gan_sample(gan, 10, seed=0, generator=torch.Generator())
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        mh_gan_sample(gan, 10, generator=0)  # type: ignore[arg-type]
    bad = GAN(gan.generator, RatioDiscriminator(shift=math.nan))
    with pytest.raises(ValueError, match="discriminator logits"):
        mh_gan_sample(bad, 10, seed=0)


# ---------------------------------------------------------------------------- DRS
def test_drs_log_acceptance_is_rejection_sampling_without_shift() -> None:
    s = torch.linspace(-700.0, 0.0, 2001, dtype=torch.float64)
    log_p = drs_log_acceptance(s + 4.0, 4.0, epsilon=0.0, gamma=0.0)
    torch.testing.assert_close(log_p, s, rtol=0.0, atol=1e-12)  # p = exp(l - l_M)
    # epsilon keeps p < 1 at the envelope; gamma > 0 lowers p everywhere, most in the tail.
    at_max = drs_log_acceptance(torch.tensor([0.0]), 0.0, epsilon=1e-6)
    assert -1e-5 < float(at_max) < 0.0
    l = torch.tensor([-5.0, -1.0, -0.1], dtype=torch.float64)
    ratio = drs_log_acceptance(l, 0.0, gamma=2.0) - drs_log_acceptance(l, 0.0, gamma=0.0)
    assert bool((ratio < 0).all()) and bool((ratio[:-1] <= ratio[1:]).all())


def test_drs_log_acceptance_stable_at_extreme_logits() -> None:
    l = torch.tensor([-1e4, -1.0, 0.0, 1e4, math.inf, -math.inf], dtype=torch.float64)
    for envelope in (1e4, 0.0, -1e4):
        for epsilon, gamma in ((1e-6, 0.0), (0.0, 0.0), (1e-6, 30.0), (0.0, -30.0)):
            log_p = drs_log_acceptance(l, envelope, epsilon=epsilon, gamma=gamma)
            assert not bool(log_p.isnan().any()), (envelope, epsilon, gamma, log_p)
            assert bool((log_p <= 0).all())
    log_p = drs_log_acceptance(l, 1e4, epsilon=1e-6)
    assert float(log_p[0]) == pytest.approx(-2e4, rel=1e-12)
    assert float(log_p[3]) == pytest.approx(-1e-6, rel=1e-3)  # at the envelope
    assert float(log_p[5]) == -math.inf


def test_drs_samples_data_distribution_with_exact_acceptance() -> None:
    gan = _gaussian_gan(shift=2.5)  # the envelope absorbs any constant
    n = 4000
    out = discriminator_rejection_sample(
        gan, n, burn_in=20000, batch_size=2000, epsilon=1e-9, seed=1
    )
    assert out.complete and out.samples.shape == (n, 1) and out.gamma == 0.0
    assert _ks_normal(out.samples) > ALPHA
    # Accepting with prob. w / M, the acceptance rate is 1/M (binomial standard error).
    expected = 1 / _exact_max_ratio()
    se = math.sqrt(expected * (1 - expected) / out.num_proposals)
    assert abs(out.acceptance_rate - expected) < 4 * se + 2e-3  # + envelope underestimate
    assert out.max_log_ratio == pytest.approx(math.log(_exact_max_ratio()) + 2.5, abs=1e-3)


def test_drs_gamma_quantile_lowers_acceptance_and_sharpens() -> None:
    gan = _gaussian_gan()
    plain = discriminator_rejection_sample(gan, 2000, burn_in=5000, seed=2)
    sharp = discriminator_rejection_sample(gan, 2000, burn_in=5000, gamma_quantile=0.9, seed=2)
    assert sharp.gamma > 0.0 and sharp.acceptance_rate < plain.acceptance_rate
    # Concentrates on high-ratio points (around the ratio's argmax -0.4): a smaller spread.
    assert float(sharp.samples.std()) < float(plain.samples.std())


def test_drs_cap_warns_and_returns_fewer_samples() -> None:
    gan = _gaussian_gan(scale=1e4)  # logits of order -1e4: almost everything is rejected
    with pytest.warns(ConvergenceWarning, match="only"):
        out = discriminator_rejection_sample(
            gan, 1000, burn_in=1000, batch_size=500, max_proposals=2000, seed=0
        )
    assert not out.complete and out.samples.shape[0] < 1000 and out.num_proposals == 2000
    assert bool(torch.isfinite(out.samples).all())


def test_drs_reproducible_and_validation() -> None:
    gan = _gaussian_gan()
    a = discriminator_rejection_sample(gan, 100, burn_in=500, seed=4)
    b = discriminator_rejection_sample(
        gan, 100, burn_in=500, generator=torch.Generator().manual_seed(4)
    )
    assert torch.equal(a.samples, b.samples)
    with pytest.raises(ValueError, match="gamma must be a finite number"):
        discriminator_rejection_sample(gan, 10, gamma=math.inf)
    with pytest.raises(ValueError, match="gamma_quantile must lie in"):
        discriminator_rejection_sample(gan, 10, gamma_quantile=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        discriminator_rejection_sample(gan, 10, epsilon=-1.0)
    with pytest.raises(ValueError, match="max_proposals"):
        discriminator_rejection_sample(gan, 10, max_proposals=0)
    with pytest.raises(ValueError, match="burn_in"):
        discriminator_rejection_sample(gan, 10, burn_in=0)
    with pytest.raises(TypeError, match=r"log_ratio must be a torch.Tensor"):
        drs_log_acceptance([0.0], 0.0)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- calibration
def _sandwich_se(real: torch.Tensor, fake: torch.Tensor, cal: PlattCalibration) -> torch.Tensor:
    """Standard errors of (slope, intercept) of the class-weighted fit (sandwich estimator)."""
    d = torch.cat([real, fake])
    y = torch.cat([torch.ones_like(real), torch.zeros_like(fake)])
    w = torch.cat([torch.full_like(real, 0.5 / len(real)), torch.full_like(fake, 0.5 / len(fake))])
    x = torch.stack([d, torch.ones_like(d)], 1)
    p = torch.sigmoid(cal.slope * d + cal.intercept)
    hessian = (x * (w * p * (1 - p))[:, None]).T @ x
    scores = x * (w * (p - y))[:, None]
    inv = torch.linalg.inv(hessian)
    return (inv @ (scores.T @ scores) @ inv).diagonal().sqrt()


def test_platt_scaling_recovers_known_parameters_with_unequal_classes() -> None:
    # Real logits ~ N(1, 2^2), fake ~ N(-1, 2^2): log N(d;1,4)/N(d;-1,4) = 0.5 d exactly,
    # so the balanced fit must find (0.5, 0) although there are 3x more real than fake.
    rng = torch.Generator().manual_seed(0)
    real = 1.0 + 2.0 * torch.randn(60000, generator=rng, dtype=torch.float64)
    fake = -1.0 + 2.0 * torch.randn(20000, generator=rng, dtype=torch.float64)
    cal = platt_scaling(real, fake)
    assert cal.converged and (cal.num_real, cal.num_fake) == (60000, 20000)
    se = _sandwich_se(real, fake, cal)
    assert abs(cal.slope - 0.5) < 4 * float(se[0])
    assert abs(cal.intercept) < 4 * float(se[1])
    assert cal.log_loss_after <= cal.log_loss_before
    assert cal.brier_after <= cal.brier_before
    # First-order optimality of the balanced log loss, to round-off.
    d = torch.cat([real, fake])
    p = torch.sigmoid(cal.slope * d + cal.intercept)
    residual = torch.cat([p[:60000] - 1, p[60000:]])
    w = torch.cat([torch.full_like(real, 0.5 / 60000), torch.full_like(fake, 0.5 / 20000)])
    grad = torch.stack([(w * residual * d).sum(), (w * residual).sum()])
    assert float(grad.abs().max()) < 1e-10
    torch.testing.assert_close(cal.log_ratio(torch.tensor([2.0])), torch.tensor([2.0 * cal.slope +
                               cal.intercept], dtype=torch.float64))  # fmt: skip


def test_calibrate_discriminator_undoes_a_known_distortion() -> None:
    # The discriminator reports 3 l - 1 for the exact ratio l: Platt must give (1/3, 1/3).
    gan = _gaussian_gan(scale=3.0, shift=-1.0)
    real = torch.randn(40000, 1, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    cal = calibrate_discriminator(gan, real, num_fake=30000, seed=10)
    fake = gan.generator.sample(30000, torch.Generator().manual_seed(10))
    se = _sandwich_se(gan.logits(real), gan.logits(fake), cal)
    assert abs(cal.slope - 1 / 3) < 4 * float(se[0])
    assert abs(cal.intercept - 1 / 3) < 4 * float(se[1])
    assert cal.log_loss_after < cal.log_loss_before


def test_platt_scaling_separable_classes_warn() -> None:
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        cal = platt_scaling(torch.linspace(1, 2, 50), torch.linspace(-2, -1, 50), max_steps=20)
    assert not cal.converged and cal.slope > 1.0


def test_calibration_validation() -> None:
    with pytest.raises(ValueError, match="all equal"):
        platt_scaling(torch.ones(5), torch.ones(5))
    with pytest.raises(ValueError, match="real_logits must have 1 dimensions"):
        platt_scaling(torch.zeros(5, 1), torch.zeros(5))
    with pytest.raises(ValueError, match="fake_logits"):
        platt_scaling(torch.zeros(5), torch.tensor([0.0, math.nan]))
    gan = _gaussian_gan()
    with pytest.raises(TypeError, match="real has dtype"):
        calibrate_discriminator(gan, torch.zeros(5, 1))
    with pytest.raises(ValueError, match="real must have last dimension 1"):
        calibrate_discriminator(gan, torch.zeros(5, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="num_fake"):
        calibrate_discriminator(gan, torch.zeros(5, 1, dtype=torch.float64), num_fake=0)
    with pytest.raises(TypeError, match=r"gan must be a pyrogen.gan.GAN"):
        calibrate_discriminator(None, torch.zeros(5, 1))  # type: ignore[arg-type]


def test_calibrated_samplers_use_the_calibration() -> None:
    # Distorted discriminator + its calibration samples p_data; without it, it would not.
    gan = _gaussian_gan(scale=3.0, shift=-1.0)
    real = torch.randn(20000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        cal = calibrate_discriminator(gan, real, seed=2)
        mh = mh_gan_sample(gan, 3000, num_proposals=40, calibration=cal, seed=3)
        drs = discriminator_rejection_sample(gan, 3000, calibration=cal, burn_in=20000, seed=4)
    assert _ks_normal(mh.samples) > ALPHA and _ks_normal(drs.samples) > ALPHA
    raw = mh_gan_sample(gan, 3000, num_proposals=40, seed=3)
    assert _ks_normal(raw.samples) < ALPHA  # the cubed ratio over-sharpens


def test_calibration_clamps_logits_beyond_the_real_data() -> None:
    # An extrapolating discriminator: logit +40 on [4, 5], where no held-out real sample
    # lies. Unclamped, every chain that proposes there (~1% per proposal) is trapped.
    gan = _gaussian_gan(spike=40.0)
    real = torch.randn(5000, 1, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert float(real.max()) < 4.0
    cal = calibrate_discriminator(gan, real, seed=7)
    assert cal.logit_max == float(gan.logits(real).max())
    assert cal.logit_min <= float(gan.logits(real).min())
    torch.testing.assert_close(
        cal.log_ratio(torch.tensor([1e4, -1e4])),
        torch.tensor([cal.logit_max, cal.logit_min], dtype=torch.float64) * cal.slope
        + cal.intercept,
    )
    # Clamped, [4, 5] weighs at most sup w = M ~ 1.66 times its 0.85% generator mass: ~1.4%
    # of the output (the bias is bounded, not removed); unclamped the chains pile up there.
    clamped = mh_gan_sample(gan, 3000, num_proposals=40, calibration=cal, seed=8)
    assert float((clamped.samples > 4.0).double().mean()) < 0.025
    trapped = mh_gan_sample(gan, 3000, num_proposals=40, seed=8)
    assert float((trapped.samples > 4.0).double().mean()) > 0.2
