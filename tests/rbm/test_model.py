"""Exact identities of the RBM energy model against brute-force enumeration."""

import math

import pyro
import pyro.poutine as poutine
import pytest
import torch

from pyrogen.rbm import RBM, binary_states
from pyrogen.rbm.model import MAX_ENUMERATION_BITS


def random_rbm(n_v, n_h, visible="bernoulli", sigma=1.0, scale=1.0, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    rbm = RBM(n_v, n_h, likelihood=visible, sigma=sigma, dtype=dtype)
    with torch.no_grad():
        rbm.weight.normal_(0.0, scale)
        rbm.visible_bias.normal_(0.0, scale)
        rbm.hidden_bias.normal_(0.0, scale)
    return rbm


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_equals_brute_force_over_hidden(visible):
    rbm = random_rbm(5, 4, visible, sigma=0.7)
    hs = binary_states(4, dtype=torch.float64)
    v = (
        binary_states(5, dtype=torch.float64)
        if visible == "bernoulli"
        else torch.randn(7, 5, dtype=torch.float64)
    )
    brute = -torch.logsumexp(-rbm.energy(v[:, None, :], hs[None, :, :]), dim=1)
    torch.testing.assert_close(rbm.free_energy(v), brute, rtol=0, atol=1e-12)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_hidden_conditional_equals_enumeration(visible):
    rbm = random_rbm(5, 4, visible, sigma=1.3)
    hs = binary_states(4, dtype=torch.float64)
    v = (
        torch.randn(6, 5, dtype=torch.float64)
        if visible == "gaussian"
        else binary_states(5, dtype=torch.float64)[:6]
    )
    weights = torch.softmax(-rbm.energy(v[:, None, :], hs[None]), dim=1)  # (6, 16)
    torch.testing.assert_close(rbm.hidden_probs(v), weights @ hs, rtol=0, atol=1e-12)


def test_visible_conditional_equals_enumeration_bernoulli():
    rbm = random_rbm(4, 5)
    vs = binary_states(4, dtype=torch.float64)
    h = binary_states(5, dtype=torch.float64)
    weights = torch.softmax(-rbm.energy(vs[None, :, :], h[:, None, :]), dim=1)  # (32, 16)
    torch.testing.assert_close(rbm.visible_mean(h), weights @ vs, rtol=0, atol=1e-12)


def test_visible_conditional_is_the_gaussian_of_the_energy():
    rbm = random_rbm(3, 4, "gaussian", sigma=0.6)
    h = binary_states(4, dtype=torch.float64)[5]
    v = torch.randn(50, 3, dtype=torch.float64)
    normal = torch.distributions.Normal(rbm.visible_mean(h), rbm.sigma)
    diff = normal.log_prob(v).sum(-1) + rbm.energy(v, h.expand(50, 4))
    # log N(v; b + sigma W h, sigma^2) = -E(v, h) + const(h): the difference is constant in v.
    assert float(diff.detach().std()) < 1e-12


@pytest.mark.parametrize("shape", [(4, 6), (6, 4), (5, 5)])
def test_exact_log_partition_equals_brute_force_binary(shape):
    n_v, n_h = shape
    rbm = random_rbm(n_v, n_h, scale=1.5)
    vs = binary_states(n_v, dtype=torch.float64)
    hs = binary_states(n_h, dtype=torch.float64)
    brute = torch.logsumexp((-rbm.energy(vs[:, None, :], hs[None])).flatten(), 0)
    torch.testing.assert_close(rbm.log_partition(), brute, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_visible", [1, 2])
def test_exact_log_partition_gaussian_by_quadrature(n_visible):
    rbm = random_rbm(n_visible, 3, "gaussian", sigma=0.8, scale=0.7)
    grid = torch.linspace(-12, 12, 1201 if n_visible == 2 else 20001, dtype=torch.float64)
    step = float(grid[1] - grid[0])
    if n_visible == 1:
        points = grid[:, None]
    else:
        points = torch.cartesian_prod(grid, grid)
    # exp(-F(v)) summed over h already; integrate over v on the grid (rectangle rule is
    # spectrally accurate for smooth integrands that vanish at the ends).
    log_z = torch.logsumexp(-rbm.free_energy(points), 0) + n_visible * math.log(step)
    torch.testing.assert_close(rbm.log_partition(), log_z, rtol=0, atol=1e-9)


def test_log_prob_normalises_binary():
    rbm = random_rbm(6, 3)
    vs = binary_states(6, dtype=torch.float64)
    total = torch.logsumexp(rbm.log_prob(vs), 0)
    torch.testing.assert_close(total, torch.zeros((), dtype=torch.float64), rtol=0, atol=1e-12)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_float32_and_float64_agree(visible):
    rbm64 = random_rbm(12, 8, visible, scale=0.5)
    rbm32 = RBM(12, 8, likelihood=visible, dtype=torch.float32)
    rbm32.load_state_dict({k: v.float() for k, v in rbm64.state_dict().items()})
    v = torch.bernoulli(torch.full((20, 12), 0.4, dtype=torch.float64))
    torch.testing.assert_close(
        rbm32.free_energy(v.float()).double(), rbm64.free_energy(v), rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(
        rbm32.log_partition().double(), rbm64.log_partition(), rtol=1e-6, atol=1e-5
    )


def test_no_nan_at_extreme_weights():
    rbm = random_rbm(6, 5, scale=1e4)
    v = binary_states(6, dtype=torch.float64)
    assert torch.isfinite(rbm.free_energy(v)).all()
    assert torch.isfinite(rbm.log_partition())
    assert torch.isfinite(rbm.log_prob(v)).all()


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_pyro_model_log_joint_is_minus_free_energy(visible):
    rbm = random_rbm(5, 3, visible)
    v = (
        binary_states(5, dtype=torch.float64)
        if visible == "bernoulli"
        else torch.randn(9, 5, dtype=torch.float64)
    )
    for x in v:
        trace = poutine.trace(poutine.condition(rbm.model, data={"v": x})).get_trace()
        # Exactly -F(v): the base log density cancels against the factor; the constant is 0.
        torch.testing.assert_close(trace.log_prob_sum(), -rbm.free_energy(x), rtol=0, atol=1e-12)
    trace = poutine.trace(rbm.model).get_trace()
    assert trace.nodes["v"]["value"].shape == (5,)
    assert trace.nodes["v_energy"]["type"] == "sample"  # pyro.factor is an observed site


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_pyro_joint_model_log_joint_is_minus_energy(visible):
    rbm = random_rbm(4, 3, visible)
    hs = binary_states(3, dtype=torch.float64)
    v = (
        binary_states(4, dtype=torch.float64)[3]
        if visible == "bernoulli"
        else torch.randn(4, dtype=torch.float64)
    )
    for h in hs:
        trace = poutine.trace(poutine.condition(rbm.joint_model, data={"v": v, "h": h})).get_trace()
        torch.testing.assert_close(trace.log_prob_sum(), -rbm.energy(v, h), rtol=0, atol=1e-12)


def test_model_composes_under_a_plate():
    rbm = random_rbm(5, 3)
    x = binary_states(5, dtype=torch.float64)[:7]

    def batch_model():
        with pyro.plate("data", 7):
            return rbm.model(obs=x)

    trace = poutine.trace(batch_model).get_trace()
    torch.testing.assert_close(trace.log_prob_sum(), -rbm.free_energy(x).sum(), rtol=0, atol=1e-12)


def test_log_partition_refuses_huge_models():
    rbm = RBM(30, MAX_ENUMERATION_BITS + 1)
    with pytest.raises(ValueError, match="ais"):
        rbm.log_partition()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_visible": 0, "n_hidden": 3}, ValueError),
        ({"n_visible": 3, "n_hidden": -1}, ValueError),
        ({"n_visible": 3.0, "n_hidden": 2}, TypeError),
        ({"n_visible": 3, "n_hidden": 2, "likelihood": "poisson"}, ValueError),
        ({"n_visible": 3, "n_hidden": 2, "likelihood": "gaussian", "sigma": 0.0}, ValueError),
        (
            {"n_visible": 3, "n_hidden": 2, "likelihood": "gaussian", "sigma": float("nan")},
            ValueError,
        ),
    ],
)
def test_bad_constructor_arguments(kwargs, error):
    with pytest.raises(error):
        RBM(**kwargs)


def test_bad_data_raises_naming_the_argument():
    rbm = RBM(4, 2)
    with pytest.raises(ValueError, match="binary"):
        rbm.free_energy(torch.full((3, 4), 0.5))
    with pytest.raises(ValueError, match="last dimension 4"):
        rbm.free_energy(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="NaN"):
        rbm.free_energy(torch.tensor([[0.0, 1.0, float("nan"), 0.0]]))
    with pytest.raises(ValueError, match="empty"):
        rbm.free_energy(torch.zeros(0, 4))
    with pytest.raises(TypeError, match="floating"):
        rbm.free_energy(torch.zeros(3, 4, dtype=torch.int64))
    gaussian = RBM(4, 2, likelihood="gaussian")
    with pytest.raises(ValueError, match="NaN or infinite"):
        gaussian.hidden_probs(torch.tensor([[0.0, float("inf"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="h must be binary"):
        rbm.visible_mean(torch.full((1, 2), 0.3))


def test_save_load_round_trip(tmp_path):
    rbm = random_rbm(7, 3, "gaussian", sigma=0.5)
    path = tmp_path / "model" / "rbm.safetensors"
    rbm.save(path)
    loaded = RBM.load(path)
    assert loaded.config() == rbm.config()
    for name, tensor in rbm.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    assert loaded.weight.dtype == torch.float64
    assert not list(path.parent.glob(".*")), "temporary files must not be left behind"


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        RBM.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        RBM.load(junk)
    from pyrogen.io import save_module

    save_module(torch.nn.Linear(2, 2), tmp_path / "other.safetensors", "VAE", {})
    with pytest.raises(ValueError, match="expected 'RBM'"):
        RBM.load(tmp_path / "other.safetensors")


def test_sampling_follows_generator_and_dtype():
    rbm = random_rbm(6, 4, dtype=torch.float32)
    v = torch.bernoulli(torch.full((5, 6), 0.5))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(rbm.sample_hidden(v, g1), rbm.sample_hidden(v, g2))
    h = rbm.sample_hidden(v)
    assert h.dtype == torch.float32 and h.shape == (5, 4)
    assert set(rbm.sample_visible(h).unique().tolist()) <= {0.0, 1.0}


def test_exact_path_is_chosen_by_cost_and_runs_in_bounded_blocks():
    """784 visible units: 2**13 hidden states are enumerated in blocks of 4,096 (32 MiB of
    float64) and agree with one unblocked sum; past MAX_ENUMERATION_COST the exact path is
    refused even though 2**22 states are far below the 2**25 state limit."""
    from pyrogen.rbm import MAX_ENUMERATION_COST, enumeration_cost

    torch.manual_seed(0)
    rbm = RBM(784, 13, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.normal_(0.0, 0.05)
        rbm.visible_bias.normal_(0.0, 1.0)
        rbm.hidden_bias.normal_(0.0, 1.0)
    h = binary_states(13, dtype=torch.float64)
    terms = h @ rbm.hidden_bias + torch.nn.functional.softplus(
        rbm.visible_bias + h @ rbm.weight.T
    ).sum(-1)
    torch.testing.assert_close(
        rbm.log_partition(), torch.logsumexp(terms, 0).detach(), rtol=0, atol=1e-9
    )
    assert enumeration_cost(784, 22) > MAX_ENUMERATION_COST
    with pytest.raises(ValueError, match="multiply-adds"):
        RBM(784, 22).log_partition()


def test_seed_fixes_the_initial_weights_and_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    a, b = RBM(7, 4, seed=3), RBM(7, 4, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the global stream did not move
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, RBM(7, 4, seed=4).weight)
    wide = RBM(7, 4, seed=3, dtype=torch.float64)
    assert wide.weight.dtype == torch.float64
    torch.testing.assert_close(wide.weight.float(), a.weight)
    with pytest.raises(TypeError, match="seed"):
        RBM(7, 4, seed=1.5)
