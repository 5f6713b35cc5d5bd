"""Parallel-tempering PCD (pyrogen.rbm.parallel_tempering and fit(algorithm="pt")).

The invariance test draws many independent copies of the tempered product distribution
exactly (by enumerating a tiny RBM's joint states), applies one sweep and one exchange, and
compares the joint distribution of the three temperatures' states with the product by a
chi-square test at level 1e-3 (so a correct implementation fails it once in a thousand
seeds; the seed is fixed).
"""

from __future__ import annotations

import pytest
import torch
from scipy import stats

from pyrogen.data import load_digits
from pyrogen.rbm import RBM, fit
from pyrogen.rbm.model import binary_states
from pyrogen.rbm.parallel_tempering import TemperedChains, exchange, tempered_sweep

BETAS = torch.tensor([1.0, 0.6, 0.2], dtype=torch.float64)


def tiny_rbm() -> RBM:
    rbm = RBM(2, 1, dtype=torch.float64)
    with torch.no_grad():
        rbm.weight.copy_(torch.tensor([[3.0], [-2.5]]))
        rbm.visible_bias.copy_(torch.tensor([-1.0, 1.5]))
        rbm.hidden_bias.copy_(torch.tensor([0.5]))
    return rbm


@pytest.mark.parametrize("step", [0, 1])
def test_one_sweep_and_exchange_leave_the_tempered_product_invariant(step):
    rbm = tiny_rbm()
    joint = binary_states(3, dtype=torch.float64)  # (8, 3): v1, v2, h
    energy = rbm.energy(joint[:, :2], joint[:, 2:]).detach()
    probs = torch.softmax(-BETAS[:, None] * energy, -1)  # (3 temperatures, 8 states)
    n = 200_000
    g = torch.Generator().manual_seed(7 + step)
    index = torch.stack([torch.multinomial(p, n, replacement=True, generator=g) for p in probs])
    chains = TemperedChains(joint[index][..., :2], joint[index][..., 2:])
    chains = tempered_sweep(rbm, chains, BETAS, g)
    chains, prob, proposed = exchange(rbm, chains, BETAS, step, g)
    assert prob.shape == proposed.shape == (2, n)
    assert bool(proposed[step % 2].all()) and not bool(proposed[1 - step % 2].any())
    codes = (torch.cat([chains.visible, chains.hidden], -1) * torch.tensor([4.0, 2.0, 1.0])).sum(-1)
    codes = codes.long()  # (3, n) joint state of each temperature, code = 4 v1 + 2 v2 + h
    order = (joint * torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)).sum(-1).long()
    p_code = torch.zeros(3, 8, dtype=torch.float64)
    p_code[:, order] = probs
    expected = p_code[0][:, None, None] * p_code[1][None, :, None] * p_code[2][None, None, :]
    cell = codes[0] * 64 + codes[1] * 8 + codes[2]
    observed = torch.bincount(cell, minlength=512).double()
    result = stats.chisquare(observed.numpy(), (n * expected.reshape(-1)).numpy())
    assert result.pvalue > 1e-3, result


def test_exchange_with_one_temperature_is_the_identity():
    rbm = tiny_rbm()
    v = torch.ones(1, 4, 2, dtype=torch.float64)
    h = torch.zeros(1, 4, 1, dtype=torch.float64)
    chains, prob, proposed = exchange(rbm, TemperedChains(v, h), BETAS[:1], 0,
                                      torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(chains.visible, v) and prob.shape == (0, 4) and proposed.shape == (0, 4)


@pytest.mark.slow
def test_pt_pcd_trains_as_well_as_pcd_and_reports_swap_rates():
    train, test = load_digits()
    scores = {}
    for algorithm in ("pcd", "pt"):
        rbm = RBM(64, 16, seed=0)
        history = fit(rbm, train, algorithm=algorithm, epochs=15, seed=0, progress=False,
                      ais_every=None, validation=test, num_temperatures=6)  # fmt: skip
        scores[algorithm] = history["validation_log_likelihood"][-1]  # exact (16 hidden)
        if algorithm == "pt":
            rates = history["pt_min_swap_rate"]
            assert len(rates) == 15 and 0.05 < rates[-1] <= 1.0
    assert scores["pt"] > scores["pcd"] - 1.0, scores
    assert scores["pt"] > -22.0  # the independent-pixel baseline is about -29 nats


def test_pt_validation():
    train, _ = load_digits()
    with pytest.raises(ValueError, match="num_temperatures"):
        fit(RBM(64, 4), train[:50], algorithm="pt", epochs=1, num_temperatures=1, progress=False)
    gaussian = RBM(64, 4, likelihood="gaussian")
    with pytest.raises(ValueError, match="Bernoulli"):
        fit(gaussian, train[:50], algorithm="pt", epochs=1, progress=False)
