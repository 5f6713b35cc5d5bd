"""Tiny targets with exactly enumerable posteriors, shared by the tests of pyrogen.infer.

Every model is written to broadcast over leading batch dimensions, and every exact
log-probability here is written out by hand (not through the kernels' code), so that the tests
compare two independent computations. Everything is float64.
"""

from __future__ import annotations

import itertools

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from scipy import stats

from pyrogen.infer.block_gibbs import BlockGibbsState, log_transition_prob
from pyrogen.infer.discrete_gibbs import coordinate_log_conditional
from pyrogen.infer.proposal import accept_prob, log_accept_ratio
from pyrogen.rbm import RBM, binary_states

DT = torch.float64


def make_rbm(n_visible: int, n_hidden: int, visible: str = "bernoulli", seed: int = 0) -> RBM:
    """An RBM with weights N(0, 1) and biases N(0, 0.5^2): strongly coupled but enumerable."""
    g = torch.Generator().manual_seed(seed)
    rbm = RBM(n_visible, n_hidden, visible, dtype=DT)  # type: ignore[arg-type]
    with torch.no_grad():
        rbm.weight.copy_(torch.randn(n_visible, n_hidden, generator=g, dtype=DT))
        rbm.visible_bias.copy_(0.5 * torch.randn(n_visible, generator=g, dtype=DT))
        rbm.hidden_bias.copy_(0.5 * torch.randn(n_hidden, generator=g, dtype=DT))
    return rbm


# ---------------------------------------------------------------- Ising model on 6 spins
ISING_EDGES = torch.tensor([[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 0], [0, 3]])
ISING_COUPLINGS = torch.tensor([0.8, -0.6, 0.9, 0.5, -0.7, 0.4, 0.6], dtype=DT)
ISING_FIELDS = torch.tensor([0.3, -0.2, 0.1, 0.0, -0.4, 0.25], dtype=DT)


def ising_model() -> None:
    """Spins s = 2x - 1 with p(x) ∝ exp(sum_edges J s_i s_j + sum_i f_i s_i)."""
    x = pyro.sample("x", dist.Bernoulli(torch.full((6,), 0.5, dtype=DT)).to_event(1))
    s = 2 * x - 1
    pair = s[..., ISING_EDGES[:, 0]] * s[..., ISING_EDGES[:, 1]]
    pyro.factor("ising", (ISING_COUPLINGS * pair).sum(-1) + (ISING_FIELDS * s).sum(-1))


def ising_log_prob(states: torch.Tensor) -> torch.Tensor:
    """Unnormalised log p of value-index states (S, 6) (the site's flat layout)."""
    s = 2 * states.to(DT) - 1
    pair = s[:, ISING_EDGES[:, 0]] * s[:, ISING_EDGES[:, 1]]
    return (ISING_COUPLINGS * pair).sum(-1) + (ISING_FIELDS * s).sum(-1)


# ------------------------------------------------------------ categorical / one-hot model
CAT_LOGITS_A = torch.tensor([0.2, -0.5, 0.7], dtype=DT)
CAT_LOGITS_C = torch.tensor([1.0, -1.5, 0.3], dtype=DT)  # Bernoulli logit of c given a
CAT_LOGITS_B = torch.tensor([-0.3, 0.4, 0.1], dtype=DT)
CAT_COUPLING = torch.tensor([[1.2, -0.8, 0.0], [-0.5, 0.9, 0.4], [0.3, 0.3, -1.1]], dtype=DT)


def categorical_model() -> None:
    """a ~ Cat(3); c | a ~ Bernoulli; b_i ~ OneHotCat(3) for i in a plate of 2, coupled to a."""
    a = pyro.sample("a", dist.Categorical(logits=CAT_LOGITS_A))
    pyro.sample("c", dist.Bernoulli(logits=CAT_LOGITS_C[a]))
    with pyro.plate("pair", 2):
        b = pyro.sample("b", dist.OneHotCategorical(logits=CAT_LOGITS_B))
        pyro.factor("coupling", (b * CAT_COUPLING[a]).sum(-1))


def categorical_log_prob(states: torch.Tensor) -> torch.Tensor:
    """Unnormalised log p of value-index states (S, 4) with columns (a, c, b_0, b_1)."""
    a, c, b0, b1 = states.unbind(-1)
    log_a = F.log_softmax(CAT_LOGITS_A, -1)[a]
    logit_c = CAT_LOGITS_C[a]
    log_c = torch.where(c == 1, F.logsigmoid(logit_c), F.logsigmoid(-logit_c))
    log_b = F.log_softmax(CAT_LOGITS_B, -1)
    return log_a + log_c + log_b[b0] + log_b[b1] + CAT_COUPLING[a, b0] + CAT_COUPLING[a, b1]


# ------------------------------------------------ composition: RBM prior, Gaussian noise
COMPOSITION_Y = torch.tensor([0.9, 0.1, 1.2, -0.2, 0.6, 0.45], dtype=DT)
COMPOSITION_NOISE = 0.5


def composition_model(rbm: RBM):
    """``rbm.model()`` as the prior of a binary vector observed through Gaussian noise."""

    def model(y: torch.Tensor) -> None:
        v = rbm.model()
        pyro.sample("y", dist.Normal(v, COMPOSITION_NOISE).to_event(1), obs=y)

    return model


def composition_log_prob(rbm: RBM, y: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """log p(v | y) + const = -F(v) + sum_i log N(y_i; v_i, s^2), for binary v (S, n)."""
    v = states.to(DT)
    with torch.no_grad():
        log_lik = -((y - v) ** 2).sum(-1) / (2 * COMPOSITION_NOISE**2)
        return -rbm.free_energy(v) + log_lik


def composition_log_odds(y: torch.Tensor) -> torch.Tensor:
    """Per-unit evidence log p(y|v=1) - log p(y|v=0) = (2y - 1) / (2 s^2)."""
    return (2 * y - 1) / (2 * COMPOSITION_NOISE**2)


# ------------------------------------------------------------------- exact machinery
def all_states(cardinalities: torch.Tensor) -> torch.Tensor:
    """Every value-index state, shape (prod k_d, D), in lexicographic order."""
    ranges = [range(int(k)) for k in cardinalities]
    return torch.tensor(list(itertools.product(*ranges)), dtype=torch.long)


def state_index(states: torch.Tensor, cardinalities: torch.Tensor) -> torch.Tensor:
    """Row of each state in :func:`all_states` (mixed radix, last coordinate fastest)."""
    index = torch.zeros(states.shape[:-1], dtype=torch.long)
    for d in range(states.shape[-1]):
        index = index * int(cardinalities[d]) + states[..., d]
    return index


def normalise(log_p: torch.Tensor) -> torch.Tensor:
    return (log_p - torch.logsumexp(log_p, 0)).exp()


@torch.no_grad()
def single_site_gibbs_matrices(log_joint_fn, cardinalities: torch.Tensor) -> list[torch.Tensor]:
    """P_d for every coordinate d, from the kernel's own full conditionals."""
    states = all_states(cardinalities)
    num_states, num_coords = states.shape
    matrices = []
    for d in range(num_coords):
        coordinate = torch.full((num_states,), d, dtype=torch.long)
        cond = coordinate_log_conditional(states, coordinate, log_joint_fn, cardinalities).exp()
        P = torch.zeros(num_states, num_states, dtype=DT)
        for j in range(int(cardinalities[d])):
            target = states.clone()
            target[:, d] = j
            P[torch.arange(num_states), state_index(target, cardinalities)] += cond[:, j]
        matrices.append(P)
    return matrices


@torch.no_grad()
def flip_mh_matrix(log_density: torch.Tensor, cardinalities: torch.Tensor) -> torch.Tensor:
    """MH with the single-coordinate uniform-other-value proposal, q = 1 / (D (k_d - 1))."""
    states = all_states(cardinalities)
    num_states, num_coords = states.shape
    P = torch.zeros(num_states, num_states, dtype=DT)
    rows = torch.arange(num_states)
    for d in range(num_coords):
        k = int(cardinalities[d])
        for shift in range(1, k):
            target = states.clone()
            target[:, d] = (states[:, d] + shift) % k
            cols = state_index(target, cardinalities)
            alpha = accept_prob(log_accept_ratio(log_density[cols], log_density))
            P[rows, cols] += alpha / (num_coords * (k - 1))
    P[rows, rows] += 1 - P.sum(-1)
    return P


def block_gibbs_matrix(rbm: RBM, visible_log_odds: torch.Tensor | None = None) -> torch.Tensor:
    """Transition matrix of one BlockGibbs sweep on (v, h), states ordered v-major."""
    V = binary_states(rbm.n_visible, dtype=DT)
    H = binary_states(rbm.n_hidden, dtype=DT)
    v = V.repeat_interleave(len(H), 0)
    h = H.repeat(len(V), 1)
    n = len(v)
    old = BlockGibbsState(v.repeat_interleave(n, 0), h.repeat_interleave(n, 0))
    new = BlockGibbsState(v.repeat(n, 1), h.repeat(n, 1))
    return log_transition_prob(rbm, old, new, visible_log_odds).exp().reshape(n, n)


def worst_total_variation(P: torch.Tensor, pi: torch.Tensor, steps: int) -> float:
    """max over starting states of TV(P^steps[s, :], pi): the mixing error of ``steps``."""
    Pt = torch.linalg.matrix_power(P, steps)
    return float(0.5 * (Pt - pi).abs().sum(-1).max())


def chi_square_pvalue(samples: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson chi-square p-value of state indices ``samples`` against ``probs``; bins
    expecting fewer than 5 counts are pooled (so the chi-square approximation holds)."""
    n = samples.numel()
    counts = torch.bincount(samples.flatten(), minlength=len(probs)).to(DT)
    expected = n * probs
    if bool((counts[probs == 0] > 0).any()):
        return 0.0  # a state of probability zero was visited
    small = expected < 5
    if bool(small.any()):
        counts = torch.cat([counts[~small], counts[small].sum().reshape(1)])
        expected = torch.cat([expected[~small], expected[small].sum().reshape(1)])
    keep = expected > 0
    stat = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    return float(stats.chi2.sf(stat, int(keep.sum()) - 1))
