"""pyrogen.rbm.functional against brute force: energies, conditionals and the one sweep.

Energies and conditionals are written out here from the model's definition (not through the
library) and compared in float64 on RBMs small enough to enumerate. The sweep's exact
conditionals are read off the library's own code by making its Bernoulli draws return their
probabilities (and its normal noise return 0 or 1), so that the exact transition matrix of
the real sweep can be checked for invariance.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import pytest
import torch

from pyrogen.infer import BlockGibbs
from pyrogen.infer.block_gibbs import BlockGibbsState, block_gibbs_step
from pyrogen.rbm import RBM, base_rate_bias, binary_states, fit, functional, standardize
from tests.common import DT, chi_square_pvalue, make_rbm

TOL = 1e-10
ALPHA = 1e-4  # per goodness-of-fit test, well below 1 / (number of such tests)
REPO = Path(__file__).resolve().parents[2]


def gaussian_rbm(n_visible: int, n_hidden: int, sigma: float, seed: int = 0) -> RBM:
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, "gaussian", sigma=sigma, dtype=DT)
    with torch.no_grad():
        rbm.weight.copy_(0.8 * torch.randn(n_visible, n_hidden, generator=g, dtype=DT))
        rbm.visible_bias.copy_(0.5 * torch.randn(n_visible, generator=g, dtype=DT))
        rbm.hidden_bias.copy_(0.5 * torch.randn(n_hidden, generator=g, dtype=DT))
    return rbm


def model_and_states(visible: str) -> tuple[RBM, torch.Tensor, torch.Tensor]:
    """A 4 x 3 RBM, visible states (every binary one, or 16 real ones) and every h."""
    if visible == "bernoulli":
        return make_rbm(4, 3), binary_states(4, dtype=DT), binary_states(3, dtype=DT)
    g = torch.Generator().manual_seed(1)
    v = 1.5 * torch.randn(16, 4, generator=g, dtype=DT)
    return gaussian_rbm(4, 3, sigma=0.7), v, binary_states(3, dtype=DT)


def brute_energy(rbm: RBM, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """E(v, h) from the definition in pyrogen.rbm.model's docstring."""
    w, b, c = rbm.weight.detach(), rbm.visible_bias.detach(), rbm.hidden_bias.detach()
    if rbm.is_gaussian:
        s = rbm.sigma
        return ((v - b) ** 2).sum(-1) / (2 * s**2) - h @ c - ((v / s) @ w * h).sum(-1)
    return -(v @ b) - h @ c - (v @ w * h).sum(-1)


def bernoulli_table(probs: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """P(state) = prod_i p_i^s_i (1 - p_i)^(1 - s_i): ``probs`` (n, d), ``states`` (m, d)."""
    p = probs.unsqueeze(1)
    return (p * states + (1 - p) * (1 - states)).prod(-1)


@pytest.fixture
def exact_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    """The samplers return their Bernoulli probabilities instead of draws."""
    monkeypatch.setattr(functional, "_bernoulli", lambda probs, generator, rows: probs)


# ------------------------------------------------------------ (d) deterministic identities
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_free_energy_and_energy_match_brute_force(visible):
    rbm, V, H = model_and_states(visible)
    E = brute_energy(rbm, V[:, None], H[None])  # (n_v states, 8)
    torch.testing.assert_close(functional.energy(rbm, V[:, None], H[None]), E, rtol=0, atol=TOL)
    brute_f = -torch.logsumexp(-E, -1)
    torch.testing.assert_close(functional.free_energy(rbm, V), brute_f, rtol=0, atol=TOL)
    torch.testing.assert_close(rbm.free_energy(V), brute_f, rtol=0, atol=TOL)
    # One state, and a (2, 8) batch, as the (16,) batch.
    torch.testing.assert_close(functional.free_energy(rbm, V[3]), brute_f[3], rtol=0, atol=TOL)
    torch.testing.assert_close(
        functional.free_energy(rbm, V.reshape(2, 8, 4)), brute_f.reshape(2, 8), rtol=0, atol=TOL
    )
    zeros = torch.zeros(3, dtype=DT)
    torch.testing.assert_close(
        functional.visible_term(rbm, V), brute_energy(rbm, V, zeros), rtol=0, atol=TOL
    )
    scaled = V / rbm.sigma if visible == "gaussian" else V
    torch.testing.assert_close(functional.scaled_visible(rbm, V), scaled, rtol=0, atol=0)
    # Given an RBM, the maths stays differentiable in every parameter.
    functional.free_energy(rbm, V).sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in rbm.parameters())


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_conditionals_match_enumeration(visible):
    rbm, V, H = model_and_states(visible)
    E = brute_energy(rbm, V[:, None], H[None])
    p_h_given_v = torch.softmax(-E, -1)  # (n, 8)
    torch.testing.assert_close(
        torch.sigmoid(functional.hidden_logits(rbm, V)), p_h_given_v @ H, rtol=0, atol=TOL
    )
    w, b = rbm.weight.detach(), rbm.visible_bias.detach()
    stat = functional.visible_statistic(rbm, H)
    if visible == "bernoulli":  # P(v_i = 1 | h) from the joint over every v
        p_v_given_h = torch.softmax(-E.T, -1)  # (8, 16)
        torch.testing.assert_close(torch.sigmoid(stat), p_v_given_h @ V, rtol=0, atol=TOL)
    else:  # completing the square in E: v | h ~ N(b + sigma W h, sigma^2)
        torch.testing.assert_close(stat, b + rbm.sigma * H @ w.T, rtol=0, atol=TOL)


# ------------------------------------------------------------------- (a) the exact sweep
def test_half_steps_at_beta_one_are_the_exact_conditionals(exact_draws):
    rbm, V, H = model_and_states("bernoulli")
    E = brute_energy(rbm, V[:, None], H[None])
    probs_h = functional.sample_hidden(rbm, V)
    torch.testing.assert_close(probs_h, torch.softmax(-E, -1) @ H, rtol=0, atol=TOL)
    probs_v = functional.sample_visible(rbm, H)
    torch.testing.assert_close(probs_v, torch.softmax(-E.T, -1) @ V, rtol=0, atol=TOL)


@pytest.mark.parametrize("per_chain", [False, True])
@pytest.mark.parametrize("base", [False, True])
@pytest.mark.parametrize("beta", [0.0, 0.35, 0.8, 1.0])
def test_tempered_sweep_leaves_p_beta_invariant(exact_draws, beta, base, per_chain):
    """The exact transition matrix of one sweep of a 3 x 2 RBM on its 32 joint states leaves
    p_beta(v, h) ~ p_base(v)^(1 - beta) exp(-beta E(v, h)) invariant, with and without a base
    (b_A = 0), for a number beta and for one beta per chain."""
    rbm = make_rbm(3, 2)
    V, H = binary_states(3, dtype=DT), binary_states(2, dtype=DT)
    base_bias = torch.tensor([0.7, -1.2, 0.3], dtype=DT) if base else None
    b_a = base_bias if base else torch.zeros(3, dtype=DT)

    def beta_of(n: int) -> float | torch.Tensor:
        return torch.full((n,), beta, dtype=DT) if per_chain else beta

    k_h = bernoulli_table(functional.sample_hidden(rbm, V, None, beta_of(8)), H)  # (8, 4)
    k_v = bernoulli_table(functional.sample_visible(rbm, H, None, beta_of(4), base_bias), V)
    log_p = (1 - beta) * (V @ b_a)[:, None] - beta * brute_energy(rbm, V[:, None], H[None])
    # The conditionals are those of p_beta ...
    torch.testing.assert_close(k_h, torch.softmax(log_p, -1), rtol=0, atol=TOL)
    torch.testing.assert_close(k_v, torch.softmax(log_p.T, -1), rtol=0, atol=TOL)
    # ... and the sweep's matrix K[(v, h), (v', h')] = P(h' | v) P(v' | h') keeps p_beta.
    k = (k_h[:, :, None] * k_v[None]).permute(0, 2, 1)  # (v, v', h')
    K = k[:, None].expand(8, 4, 8, 4).reshape(32, 32)
    pi = torch.softmax(log_p.flatten(), 0)  # state (v, h) at index 4 v + h
    torch.testing.assert_close(K.sum(-1), torch.ones(32, dtype=DT), rtol=0, atol=TOL)
    assert float((pi @ K - pi).abs().max()) < TOL


@pytest.mark.parametrize("per_chain", [False, True])
@pytest.mark.parametrize("base", [False, True])
def test_tempered_gaussian_conditionals(monkeypatch, exact_draws, base, per_chain):
    """Gaussian units: P_beta(v | h) from the exponent (1 - beta) a(v) - beta E(v, h), with
    a(v) = -|v - b_A|^2 / 2 sigma^2 (or 0 without a base), completed to a square."""
    beta, sigma = 0.4, 0.6
    rbm = gaussian_rbm(3, 2, sigma)
    H = binary_states(2, dtype=DT)
    base_bias = torch.tensor([0.5, -1.0, 2.0], dtype=DT) if base else None
    beta_h = torch.full((4,), beta, dtype=DT) if per_chain else beta
    noise = {"value": 0.0}

    def fixed_noise(like, generator, rows):
        return torch.full_like(like, noise["value"])

    monkeypatch.setattr(functional, "_standard_normal", fixed_noise)
    mean = functional.sample_visible(rbm, H, None, beta_h, base_bias)
    noise["value"] = 1.0
    sd = functional.sample_visible(rbm, H, None, beta_h, base_bias) - mean
    # Exponent in v: -(lam / 2) |v|^2 + v . eta with lam = (w_A + beta) / sigma^2.
    w_a = (1 - beta) if base else 0.0
    b, w = rbm.visible_bias.detach(), rbm.weight.detach()
    b_a = base_bias if base else torch.zeros(3, dtype=DT)
    eta = (w_a * b_a + beta * b) / sigma**2 + beta * (H @ w.T) / sigma
    lam = (w_a + beta) / sigma**2
    torch.testing.assert_close(mean, eta / lam, rtol=0, atol=TOL)
    torch.testing.assert_close(sd, torch.full_like(sd, 1 / math.sqrt(lam)), rtol=0, atol=TOL)
    # P_beta(h | v) at real v: the hidden half-step.
    v = torch.randn(5, 3, generator=torch.Generator().manual_seed(2), dtype=DT)
    log_p = -beta * brute_energy(rbm, v[:, None], H[None])
    beta_v = torch.full((5,), beta, dtype=DT) if per_chain else beta
    probs = functional.sample_hidden(rbm, v, None, beta_v)
    torch.testing.assert_close(probs, torch.softmax(log_p, -1) @ H, rtol=0, atol=TOL)


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_sweep_is_the_two_half_steps_and_every_caller_uses_it(visible):
    rbm, V, _ = model_and_states(visible)
    v = V[:8]
    base_bias = torch.linspace(-1, 1, 4, dtype=DT)
    logits = functional.hidden_logits(rbm, v).detach()
    kept = logits.clone()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    v1, h1 = functional.gibbs_sweep(rbm, v, g1, 0.6, base_bias, logits)
    h2 = functional.sample_hidden(rbm, v, g2, 0.6)
    v2 = functional.sample_visible(rbm, h2, g2, 0.6, base_bias)
    assert torch.equal(h1, h2) and torch.equal(v1, v2)
    assert torch.equal(logits, kept)  # the caller's logits are left alone
    # RBM.gibbs_step and BlockGibbs' step are that sweep (the same draws in the same order).
    g1, g2 = torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    for a, b in zip(rbm.gibbs_step(v, g1), functional.gibbs_sweep(rbm, v, g2), strict=True):
        assert torch.equal(a, b)
    betas = torch.linspace(0.2, 1.0, 8, dtype=DT)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    state = BlockGibbsState(v, torch.zeros(8, 3, dtype=DT))
    new = block_gibbs_step(rbm, state, g1, beta=betas)
    v3, h3 = functional.gibbs_sweep(rbm, v, g2, betas)
    assert torch.equal(new.visible, v3) and torch.equal(new.hidden, h3)


def test_sweep_draws_match_the_exact_two_step_law():
    """(b) The real draws: 40,000 sweeps from one v give (h', v') with frequencies
    P_beta(h' | v) P_beta(v' | h') (chi-square), tempered and with a base."""
    rbm = make_rbm(3, 2)
    V, H = binary_states(3, dtype=DT), binary_states(2, dtype=DT)
    beta, base_bias = 0.5, torch.tensor([0.7, -1.2, 0.3], dtype=DT)
    log_p = beta * -brute_energy(rbm, V[:, None], H[None]) + (1 - beta) * (V @ base_bias)[:, None]
    start = 5
    probs = torch.softmax(log_p[start], -1)[:, None] * torch.softmax(log_p.T, -1)  # (h', v')
    n = 40_000
    v = V[start].expand(n, 3)
    g = torch.Generator().manual_seed(11)
    v_new, h = functional.gibbs_sweep(rbm, v, g, beta, base_bias)
    code = (h @ torch.tensor([1.0, 2.0], dtype=DT)) * 8 + v_new @ torch.tensor(
        [1.0, 2.0, 4.0], dtype=DT
    )
    assert chi_square_pvalue(code.long(), probs.flatten()) > ALPHA


def test_beta_is_validated():
    rbm, v = make_rbm(3, 2), torch.ones(2, 3, dtype=DT)
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="beta"):
            functional.gibbs_sweep(rbm, v, None, bad)
    with pytest.raises(TypeError, match="beta"):
        functional.gibbs_sweep(rbm, v, None, "1")  # type: ignore[arg-type]
    gauss = gaussian_rbm(3, 2, 0.5)
    with pytest.raises(ValueError, match="base_bias"):
        functional.gibbs_sweep(gauss, v, None, 0.0)
    v0, _ = functional.gibbs_sweep(gauss, v, torch.Generator().manual_seed(0), 0.0, torch.ones(3))
    assert v0.shape == (2, 3)  # beta = 0 with a base is the base itself


# --------------------------------------------------------------------------- RBM.sample
def test_rbm_sample_draws_the_model():
    rbm = make_rbm(3, 2)
    V = binary_states(3, dtype=DT)
    p_v = torch.softmax(-rbm.free_energy(V).detach(), 0)
    draws = rbm.sample(20_000, torch.Generator().manual_seed(0), burn_in=50)
    assert draws.shape == (20_000, 3) and draws.dtype == DT and not draws.requires_grad
    code = (draws @ torch.tensor([1.0, 2.0, 4.0], dtype=DT)).long()
    assert chi_square_pvalue(code, p_v) > ALPHA
    again = rbm.sample(20_000, torch.Generator().manual_seed(0), burn_in=50)
    assert torch.equal(draws, again)
    # burn_in=0: the start, the RBM without couplings (v_i ~ Bernoulli(sigmoid(b_i))).
    start = rbm.sample(20_000, torch.Generator().manual_seed(1), burn_in=0)
    p = torch.sigmoid(rbm.visible_bias.detach())
    assert bool(((start.mean(0) - p).abs() < 5 * (p * (1 - p) / 20_000).sqrt()).all())


def test_rbm_sample_gaussian_and_bad_arguments():
    rbm = RBM(5, 3, likelihood="gaussian", sigma=0.5, seed=0)
    draws = rbm.sample(7, torch.Generator().manual_seed(0), burn_in=3)
    assert draws.shape == (7, 5) and draws.dtype == torch.float32
    with pytest.raises(ValueError, match="n"):
        rbm.sample(0)
    with pytest.raises(ValueError, match="burn_in"):
        rbm.sample(3, burn_in=-1)
    with pytest.raises(TypeError, match="burn_in"):
        rbm.sample(3, burn_in=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="generator"):
        rbm.sample(3, 5)  # type: ignore[arg-type]


# --------------------------------------------------------------- the base-rate log-odds
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_fit_starts_from_the_base_rate_bias(visible):
    """fit's initial visible bias is base_rate_bias (one function for both): with a learning
    rate of 1e-12 one update leaves it in place."""
    g = torch.Generator().manual_seed(0)
    if visible == "bernoulli":
        data = torch.bernoulli(torch.full((40, 6), 0.3, dtype=DT), generator=g)
        data[:, 0] = 0.0  # a unit that is never on: large negative, finite
    else:
        data = standardize(torch.randn(40, 6, generator=g, dtype=DT))[0]
    rbm = RBM(6, 3, visible, dtype=DT, seed=0)
    expected = base_rate_bias(rbm, data)
    assert bool(torch.isfinite(expected).all())
    fit(
        rbm,
        data,
        epochs=1,
        batch_size=40,
        lr=1e-12,
        momentum=0.0,
        monitor=None,
        seed=0,
        progress=False,
    )
    torch.testing.assert_close(rbm.visible_bias.detach(), expected, rtol=0, atol=1e-9)


# ------------------------------------------------------------------- BlockGibbs' option
def test_block_gibbs_target_and_its_deprecated_name():
    rbm = make_rbm(3, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kernel = BlockGibbs(rbm, target="joint")
        assert BlockGibbs(rbm, "joint").target_kind == "joint"
    assert kernel.target_kind == kernel.model_kind == "joint" and callable(kernel.model)
    assert BlockGibbs(rbm).target_kind == "marginal"
    with pytest.warns(DeprecationWarning, match="target"):
        old = BlockGibbs(rbm, model="joint")
    assert old.target_kind == "joint" and callable(old.model)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="disagree"):
        BlockGibbs(rbm, "marginal", model="joint")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="model"):
        BlockGibbs(rbm, model="conditional")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="target"):
        BlockGibbs(rbm, target="conditional")  # type: ignore[arg-type]


def test_no_private_rbm_names_outside_the_rbm_model():
    """The RBM's maths is reached through its public methods or pyrogen.rbm.functional."""
    private = re.compile(
        r"\._(hidden_logits|visible_logits|visible_term|free_energy|sample_hidden|sample_visible"
        r"|scaled)\b"
    )
    allowed = {REPO / "pyrogen" / "rbm" / "model.py", REPO / "pyrogen" / "rbm" / "functional.py"}
    offenders = []
    for folder in ("pyrogen", "benchmarks", "tutorials", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path in allowed:
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if private.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
