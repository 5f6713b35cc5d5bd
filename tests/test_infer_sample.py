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
    assert kernel.warmup_flags == [True] * warmup_steps + [False] * num_samples
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
