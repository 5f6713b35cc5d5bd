"""pyrogen.infer.sample: the vectorised chain driver.

First with tiny kernels written here (a deterministic counter, whose every draw is known
exactly, and a Gaussian AR(1) chain with a known stationary law), then with pyrogen's own
kernels against exact enumeration.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
import torch

from pyrogen import diagnostics
from pyrogen.infer.adaptation import adaptation_steps
from pyrogen.infer.base import VectorizedKernel
from pyrogen.infer.vectorized import sample


class CounterState(NamedTuple):
    count: torch.Tensor  # (C,)


class CounterKernel:
    """count <- count + 1 per step; accept_prob alternates 1, 0 (even / odd counts)."""

    def __init__(self, raise_at: int | None = None) -> None:
        self.raise_at = raise_at
        self.warmup_flags: list[bool] = []
        self.grad_enabled: list[bool] = []

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def init_chains(self, num_chains, *, generator, initial_params=None):
        start = torch.zeros(num_chains, dtype=torch.float64)
        if initial_params is not None:
            start = start + initial_params["count"]
        return CounterState(start)

    def step_chains(self, state, *, generator, warmup=False):
        if self.raise_at is not None and len(self.warmup_flags) == self.raise_at:
            raise KeyboardInterrupt
        self.warmup_flags.append(warmup)
        self.grad_enabled.append(torch.is_grad_enabled())
        count = state.count + 1
        info = {"accept_prob": (count % 2 == 0).double(), "ignored": torch.zeros(3, 3)}
        return CounterState(count), info

    def chain_values(self, state):
        block = state.count[:, None, None] * torch.ones(2, 3, dtype=torch.float64)
        return {"count": state.count, "block": block}


class AR1Kernel:
    """x' = rho x + sqrt(1 - rho^2) eps: stationary law N(0, 1), lag-k correlation rho^k."""

    def __init__(self, rho: float) -> None:
        self.rho = torch.nn.Parameter(torch.tensor(rho))  # requires grad, like model weights

    @property
    def device(self) -> torch.device:
        return self.rho.device

    def init_chains(self, num_chains, *, generator, initial_params=None):
        return torch.randn(num_chains, generator=generator) * 3.0  # overdispersed starts

    def step_chains(self, state, *, generator, warmup=False):
        noise = torch.randn(state.shape, generator=generator)
        new = self.rho * state + torch.sqrt(1 - self.rho**2) * noise
        return new, {"accept_prob": torch.ones_like(state)}

    def chain_values(self, state):
        return {"x": state}


def test_tiny_kernels_satisfy_the_protocol():
    assert isinstance(CounterKernel(), VectorizedKernel)
    assert isinstance(AR1Kernel(0.5), VectorizedKernel)


@pytest.mark.parametrize(("warmup_steps", "num_samples", "thin"), [(0, 6, 1), (3, 7, 2), (5, 9, 3)])
def test_every_draw_is_the_right_step(warmup_steps, num_samples, thin):
    kernel = CounterKernel()
    idata = sample(kernel, 3, num_samples, warmup_steps, seed=0, thin=thin, progress=False)
    kept = num_samples // thin
    expected = warmup_steps + thin * np.arange(1, kept + 1, dtype=np.float64)
    assert idata.posterior["count"].shape == (3, kept)
    np.testing.assert_array_equal(idata.posterior["count"].values, np.tile(expected, (3, 1)))
    np.testing.assert_array_equal(
        idata.posterior["block"].values, expected[None, :, None, None] * np.ones((3, 1, 2, 3))
    )
    # Adaptation (warmup=True) stops for the final fifth of warm-up.
    adapting = adaptation_steps(warmup_steps)
    assert kernel.warmup_flags == [True] * adapting + [False] * (
        warmup_steps - adapting + num_samples
    )
    # accept_prob of the kept draws, and the mean over *all* post-warmup steps.
    np.testing.assert_array_equal(idata.sample_stats["accept_prob"].values[0], expected % 2 == 0)
    post = warmup_steps + np.arange(1, num_samples + 1)
    assert idata.sample_stats["acceptance_rate"].dims == ("chain",)
    np.testing.assert_allclose(idata.sample_stats["acceptance_rate"].values, np.mean(post % 2 == 0))
    assert "ignored" not in idata.sample_stats  # not a per-chain quantity
    assert idata.posterior.attrs["interrupted"] == 0
    assert idata.posterior.attrs["seed"] == 0
    assert diagnostics.wall_time_of(idata) > 0


def test_initial_params_are_honoured():
    start = torch.tensor([10.0, 20.0], dtype=torch.float64)
    idata = sample(CounterKernel(), 2, 2, 1, initial_params={"count": start}, progress=False)
    np.testing.assert_array_equal(idata.posterior["count"].values, [[12, 13], [22, 23]])


def test_keyboard_interrupt_keeps_the_draws_so_far():
    idata = sample(CounterKernel(raise_at=7), 2, 10, 3, seed=0, progress=False)
    np.testing.assert_array_equal(idata.posterior["count"].values, [[4, 5, 6, 7]] * 2)
    assert idata.posterior.attrs["interrupted"] == 1
    np.testing.assert_allclose(idata.sample_stats["acceptance_rate"].values, 0.5)
    during_warmup = sample(CounterKernel(raise_at=1), 2, 10, 3, seed=0, progress=False)
    assert during_warmup.posterior["count"].shape == (2, 0)
    assert np.isnan(during_warmup.sample_stats["acceptance_rate"].values).all()


def test_loop_runs_without_autograd():
    kernel = CounterKernel()
    sample(kernel, 2, 3, 2, progress=False)
    assert kernel.grad_enabled == [False] * 5
    idata = sample(AR1Kernel(0.5), 2, 5, 0, seed=1, progress=False)  # parameters need grad
    assert idata.posterior["x"].dtype == np.float32


def test_same_seed_same_chains_and_progress_bar():
    a = sample(AR1Kernel(0.5), 4, 20, 5, seed=123, progress=True)
    b = sample(AR1Kernel(0.5), 4, 20, 5, seed=123, progress=False)
    c = sample(AR1Kernel(0.5), 4, 20, 5, seed=124, progress=False)
    np.testing.assert_array_equal(a.posterior["x"].values, b.posterior["x"].values)
    assert not np.array_equal(a.posterior["x"].values, c.posterior["x"].values)
    fresh = sample(AR1Kernel(0.5), 1, 5, 0, progress=False)  # seed=None: drawn and recorded
    again = sample(AR1Kernel(0.5), 1, 5, 0, seed=fresh.posterior.attrs["seed"], progress=False)
    np.testing.assert_array_equal(fresh.posterior["x"].values, again.posterior["x"].values)


def test_ar1_stationary_moments_within_mcse():
    # Truth N(0, 1); two comparisons at 4 MCSE: failure rate < 2 * 6.3e-5.
    idata = sample(AR1Kernel(0.5), 16, 1000, 50, seed=5, progress=False)
    row = diagnostics.summarize(idata).loc["x"]
    assert abs(row["mean"]) < 4 * row["mcse_mean"]
    assert abs(row["sd"] - 1.0) < 4 * row["mcse_sd"]
    assert row["r_hat"] < 1.01
    assert row["ess_bulk_per_s"] > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_chains": 0}, ValueError, "num_chains"),
        ({"num_chains": 2.0}, TypeError, "num_chains"),
        ({"num_samples": 0}, ValueError, "num_samples"),
        ({"warmup_steps": -1}, ValueError, "warmup_steps"),
        ({"thin": 20}, ValueError, "thin"),
        ({"seed": -3}, ValueError, "seed"),
        ({"device": "meta"}, ValueError, "device"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    args = {"num_chains": 2, "num_samples": 10, "warmup_steps": 0, **kwargs}
    with pytest.raises(error, match=match):
        sample(CounterKernel(), progress=False, **args)


def test_non_kernels_and_missing_accept_prob_raise():
    with pytest.raises(TypeError, match="VectorizedKernel"):
        sample(object(), 2, 10, 0, progress=False)

    class NoAccept(CounterKernel):
        def step_chains(self, state, *, generator, warmup=False):
            return CounterState(state.count + 1), {}

    with pytest.raises(ValueError, match="accept_prob"):
        sample(NoAccept(), 2, 10, 0, progress=False)


def test_wall_time_is_positive_and_finite():
    idata = sample(CounterKernel(), 2, 10, 0, progress=False)
    assert 0 < diagnostics.wall_time_of(idata) < math.inf


# -------------------------------------------------- pyrogen's kernels through sample()
# The law of every chain after t steps is mu_0 P^t, with P built here from the RBM's
# conditionals (independently of the kernels' code). All chains start at one state, so
# mu_0 is a point mass (through initial_params). A chi-square test of the draws at two
# steps against mu_t checks kernel, seeding, warmup and thinning together, with no
# assumption that the chains have mixed. Each test has failure rate 1e-4 per comparison.
P_VALUE_FLOOR = 1e-4


def chi_square_p_value(codes: np.ndarray, probs: np.ndarray) -> float:
    """Pearson chi-square of state codes against ``probs``; cells with expected count < 5
    are pooled into one (Cochran's rule)."""
    from scipy.stats import chi2

    expected = probs * codes.size
    observed = np.bincount(codes, minlength=probs.size).astype(np.float64)
    small = expected < 5
    exp_cells = np.append(expected[~small], expected[small].sum())
    obs_cells = np.append(observed[~small], observed[small].sum())
    keep = exp_cells > 0
    statistic = ((obs_cells[keep] - exp_cells[keep]) ** 2 / exp_cells[keep]).sum()
    return float(chi2.sf(statistic, keep.sum() - 1))


def small_rbm(n_visible=4, n_hidden=3, visible="bernoulli", scale=1.0, seed=0):
    from pyrogen.rbm import RBM

    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, likelihood=visible, dtype=torch.float64)
    with torch.no_grad():
        for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias):
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return rbm


def bernoulli_table(logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """P(x = state | logits) for every row of logits and every state: (rows, states)."""
    log_p = states @ torch.nn.functional.logsigmoid(logits).T
    log_p = log_p + (1 - states) @ torch.nn.functional.logsigmoid(-logits).T
    return log_p.T.exp()


def codes_of(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.int64) << np.arange(x.shape[-1])).sum(-1)


def single_site_matrices(log_target: torch.Tensor, num_bits: int, kind: str) -> torch.Tensor:
    """One step of bit-flip MH or of a random/systematic single-site Gibbs sweep."""
    n = 2**num_bits
    index = torch.arange(n)
    updates = []
    for d in range(num_bits):
        flipped = index ^ (1 << d)
        matrix = torch.zeros(n, n, dtype=torch.float64)
        if kind == "mh":
            accept = (log_target[flipped] - log_target).clamp(max=0).exp() / num_bits
            matrix[index, flipped] = accept
        else:
            other = torch.softmax(torch.stack([log_target, log_target[flipped]]), 0)[1]
            matrix[index, flipped] = other
        matrix[index, index] = 0.0
        matrix[index, index] = 1 - matrix.sum(1)
        updates.append(matrix)
    if kind == "mh":
        return torch.eye(n, dtype=torch.float64) + sum(
            m - torch.eye(n, dtype=torch.float64) for m in updates
        )
    if kind == "gibbs_random":
        return torch.linalg.matrix_power(sum(updates) / num_bits, num_bits)
    step = torch.eye(n, dtype=torch.float64)
    for matrix in updates:  # coordinates 0, 1, ..., D-1
        step = step @ matrix
    return step


@pytest.mark.parametrize("kind", ["block_gibbs", "mh", "gibbs_random", "gibbs_systematic"])
def test_pyrogen_kernels_follow_the_exact_law_of_the_chain(kind):
    from pyrogen.infer import BlockGibbs, DiscreteGibbs, MetropolisHastings
    from pyrogen.rbm.model import binary_states

    rbm = small_rbm(scale=2.0)  # strong couplings: the law still changes between steps
    vs, hs = binary_states(4, dtype=torch.float64), binary_states(3, dtype=torch.float64)
    v0 = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    v0_code = int(codes_of(v0.numpy()))
    if kind == "block_gibbs":
        kernel = BlockGibbs(rbm, "joint")
        h_given_v = bernoulli_table(rbm.hidden_bias + vs @ rbm.weight, hs).detach()  # (16, 8)
        v_given_h = bernoulli_table(rbm.visible_bias + hs @ rbm.weight.T, vs).detach()  # (8, 16)
        # Joint state (v, h) has code v + 16 h; P((v, h) -> (v', h')) = P(h'|v) P(v'|h'),
        # whatever h was (the sweep redraws it first).
        from_v = torch.einsum("vk,kw->vkw", h_given_v, v_given_h).reshape(16, 128)
        step = from_v.unsqueeze(0).expand(8, 16, 128).reshape(128, 128)
        mu = torch.zeros(128, dtype=torch.float64)
        mu[v0_code + 16 * torch.arange(8)] = h_given_v[v0_code]
    else:
        log_target = -rbm.free_energy(vs).detach()
        base = "mh" if kind == "mh" else kind
        step = single_site_matrices(log_target, 4, base)
        kernel = (
            MetropolisHastings(rbm.model)
            if kind == "mh"
            else DiscreteGibbs(rbm.model, scan=kind.split("_")[1])
        )
        mu = torch.zeros(16, dtype=torch.float64)
        mu[v0_code] = 1.0
    assert torch.allclose(step.sum(1), torch.ones(step.shape[0], dtype=torch.float64))
    num_chains = 5000
    idata = sample(
        kernel, num_chains, 4, 1, seed=11, thin=2, progress=False, initial_params={"v": v0}
    )
    codes = codes_of(idata.posterior["v"].values)
    if kind == "block_gibbs":
        codes = codes + 16 * codes_of(idata.posterior["h"].values)
    for draw, t in enumerate((3, 5)):  # warmup 1, then steps 2..5, every second kept
        law = mu @ torch.linalg.matrix_power(step, t)
        assert chi_square_p_value(codes[:, draw], law.numpy()) > P_VALUE_FLOOR


def test_mala_chains_match_gaussian_rbm_moments():
    """Gaussian-Bernoulli RBM: v | h ~ N(b + sigma W h, sigma^2), so E[v] and E[v^2] are
    exact sums over the 2^3 hidden states. 10 comparisons at 4 MCSE: failure < 7e-4."""
    from pyrogen.infer import MetropolisHastings
    from pyrogen.rbm.model import binary_states

    rbm = small_rbm(5, 3, visible="gaussian", scale=0.5, seed=2)
    hs = binary_states(3, dtype=torch.float64)
    with torch.no_grad():
        wh = hs @ rbm.weight.T  # (8, 5)
        log_ph = hs @ rbm.hidden_bias + wh @ rbm.visible_bias + 0.5 * (wh**2).sum(-1)
        ph = torch.softmax(log_ph, 0)
        means = rbm.visible_bias + wh
        mean = ph @ means
        sd = (ph @ (means**2 + 1.0) - mean**2).sqrt()
    kernel = MetropolisHastings(rbm.model, proposal="mala", step_size=0.5)
    idata = sample(kernel, 16, 1000, 300, seed=4, progress=False)
    table = diagnostics.summarize(idata)
    assert np.all(np.abs(table["mean"].values - mean.numpy()) < 4 * table["mcse_mean"].values)
    assert np.all(np.abs(table["sd"].values - sd.numpy()) < 4 * table["mcse_sd"].values)
    assert table["r_hat"].max() < 1.01
    rate = idata.sample_stats["acceptance_rate"].values
    assert rate.shape == (16,) and np.all((rate > 0.3) & (rate < 0.9))  # adapted towards 0.574


def test_sample_output_saves_and_summarises(tmp_path):
    from pyrogen.infer import MetropolisHastings

    rbm = small_rbm(6, 2)
    idata = sample(MetropolisHastings(rbm.model), 3, 20, 5, seed=0, progress=False)
    path = tmp_path / "chains.nc"
    diagnostics.save(idata, path)
    back = diagnostics.load(path)
    np.testing.assert_array_equal(back.posterior["v"].values, idata.posterior["v"].values)
    np.testing.assert_array_equal(
        back.sample_stats["accepted"].values, idata.sample_stats["accepted"].values
    )
    assert back.posterior.attrs["seed"] == 0
    assert diagnostics.wall_time_of(back) == diagnostics.wall_time_of(idata)
    assert list(diagnostics.summarize(back).index) == [f"v[{i}]" for i in range(6)]
