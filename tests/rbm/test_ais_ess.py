"""AIS reliability: the effective sample size of the importance weights, stored on the result
and checked, with a ConvergenceWarning when it is below 10% of the runs."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from pyrogen.convergence import ConvergenceWarning
from pyrogen.rbm import ESS_FRACTION_MIN, RBM, AISResult, ais, effective_sample_size
from pyrogen.seeding import forked_global_rng, make_generator


def random_rbm(scale: float, seed: int = 0) -> RBM:
    """A 20 x 10 binary RBM with N(0, scale^2) weights (exact log Z: 2**10 states)."""
    with forked_global_rng(seed):
        rbm = RBM(20, 10, dtype=torch.float64)
    g = make_generator(seed)
    with torch.no_grad():
        for param in rbm.parameters():
            param.copy_(scale * torch.randn(param.shape, generator=g, dtype=torch.float64))
    return rbm


def test_ess_is_kish_formula_by_hand():
    # w = (1, 2, 3, 4): (sum w)^2 / sum w^2 = 100 / 30.
    log_w = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64).log()
    assert float(effective_sample_size(log_w)) == pytest.approx(10 / 3, rel=1e-14)
    # Normalised weights: a common factor (a shift of the logs) changes nothing.
    assert float(effective_sample_size(log_w + 123.0)) == pytest.approx(10 / 3, rel=1e-14)
    assert float(effective_sample_size(torch.zeros(7))) == pytest.approx(7.0, rel=1e-14)
    assert float(effective_sample_size(torch.tensor([5.0]))) == 1.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ess_has_no_overflow_at_extreme_log_weights(dtype):
    # exp(1e4) overflows in any dtype; the log-space form does not. By hand: weights
    # proportional to (1, e^-1, 0), ESS = (1 + e^-1)^2 / (1 + e^-2).
    log_w = torch.tensor([1e4, 1e4 - 1.0, -1e4], dtype=dtype)
    expected = (1 + math.exp(-1)) ** 2 / (1 + math.exp(-2))
    ess = effective_sample_size(log_w)
    assert ess.dtype == torch.float64
    assert float(ess) == pytest.approx(expected, rel=1e-6)
    assert float(effective_sample_size(torch.tensor([-1e4, -1e4], dtype=dtype))) == 2.0
    assert float(effective_sample_size(torch.tensor([1e4, -1e4], dtype=dtype))) == 1.0


def test_ess_without_a_finite_weight_is_nan():
    for log_w in ([-math.inf, -math.inf], [0.0, math.nan], [0.0, math.inf]):
        assert math.isnan(float(effective_sample_size(torch.tensor(log_w))))
    # A zero weight among finite ones is fine.
    assert float(effective_sample_size(torch.tensor([0.0, 0.0, -math.inf]))) == 2.0


def test_ais_result_carries_the_ess_after_its_old_fields():
    rbm = random_rbm(0.1)
    result = ais(rbm, num_chains=50, num_temperatures=100, seed=0)
    log_z, stderr, log_weights = result[:3]  # the old positions are unchanged
    assert AISResult._fields == ("log_z", "stderr", "log_weights", "ess", "log_z_floor")
    assert log_z is result.log_z and stderr is result.stderr and log_weights is result.log_weights
    torch.testing.assert_close(result.ess, effective_sample_size(result.log_weights))
    assert 1.0 <= float(result.ess) <= 50.0
    assert result.ess_fraction == pytest.approx(float(result.ess) / 50)


def test_good_ais_does_not_warn():
    rbm = random_rbm(0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        result = ais(rbm, num_chains=100, num_temperatures=100, seed=0)
    assert result.ess_fraction > 0.9
    assert abs(float(result.log_z - rbm.log_partition())) < 4.5 * float(result.stderr)


def test_poor_ais_warns_naming_the_numbers():
    """Weights of sd 3 and 3 temperatures: a few runs carry all the weight. The warning is
    deserved: the estimate is about 9 nats low while its stderr claims under 1."""
    rbm = random_rbm(3.0)
    with pytest.warns(ConvergenceWarning, match="effective sample size") as record:
        result = ais(rbm, num_chains=100, num_temperatures=3, seed=0)
    assert result.ess_fraction < ESS_FRACTION_MIN
    message = str(record[0].message)
    assert "AIS estimate of log Z" in message and "of 100 runs" in message
    assert f"{float(result.ess):.3g}" in message and "threshold 10%" in message
    assert record[0].filename == __file__  # points at the caller of ais
    error = float(rbm.log_partition() - result.log_z)
    assert error > 5 * float(result.stderr)  # the stderr understates the error


def test_a_single_run_never_warns():
    # One run has ESS 1 = 100% of the runs: the stderr (infinite) already says enough.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        result = ais(random_rbm(3.0), num_chains=1, num_temperatures=3, seed=0)
    assert float(result.ess) == 1.0 and math.isinf(float(result.stderr))


def test_coarse_schedule_is_unbiased_within_its_error():
    """A short schedule on a strongly coupled RBM: AIS is still unbiased for Z, so log Z lies
    within a few standard errors of the exact value (one sweep per temperature, at *that*
    temperature: sweeping one temperature behind biases log Z by about -0.8 here, 30 standard
    errors, while the long schedules of the other tests hide it). 4.5 standard errors: a
    correct AIS fails with probability below 1e-5."""
    rbm = random_rbm(1.0, seed=3)
    exact = float(rbm.log_partition())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = ais(rbm, num_chains=5000, num_temperatures=10, seed=4)
    assert abs(float(result.log_z) - exact) < 4.5 * float(result.stderr), (
        float(result.log_z),
        exact,
        float(result.stderr),
    )
