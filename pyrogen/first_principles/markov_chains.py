r"""Finite-state Markov chains: exact transition matrices and the algorithms that realise them.

A chain on ``range(S)`` is given by its explicit transition matrix :math:`P` (row :math:`i` is
the distribution of the next state given state :math:`i`), so every property is checkable
exactly: :func:`metropolis_hastings_matrix` / :func:`metropolis_hastings_chain` and
:func:`gibbs_matrix` / :func:`gibbs_chain` build the exact :math:`P` and simulate the
algorithm itself; :func:`stationary_distribution` solves :math:`\pi P = \pi` and
:func:`detailed_balance_violation` measures :math:`\max_{ij} |\pi_i P_{ij} - \pi_j P_{ji}|`.

The ``*_chain`` functions take their randomness from a ``generator`` that is either a
``torch.Generator`` or a :class:`~pyrogen.first_principles.generators.LinearCongruential`,
so a whole sampler can be driven by a hand-written generator.

References:
    W. K. Hastings, "Monte Carlo sampling methods using Markov chains and their
    applications", Biometrika 57 (1970).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from pyrogen._validation import check_choice, check_finite, check_positive_int, check_tensor
from pyrogen.first_principles.generators import LinearCongruential

__all__ = [
    "FiniteChain",
    "metropolis_hastings_matrix",
    "metropolis_hastings_chain",
    "gibbs_matrix",
    "gibbs_chain",
    "stationary_distribution",
    "detailed_balance_violation",
]

# Rows of a transition matrix must sum to one up to this tolerance (float64 rounding of a
# few hundred terms stays far below it).
_ROW_SUM_TOL = 1e-9


class FiniteChain(NamedTuple):
    """What the ``*_chain`` samplers return.

    Attributes:
        transition_matrix: the exact one-step transition matrix of the algorithm, float64
            ``(S, S)``; row ``i`` is the law of the next state given state ``i``.
        states: the simulated chains, int64 ``(num_chains, num_steps + 1)``; column 0 is the
            initial state, column ``t`` the state after ``t`` steps.
    """

    transition_matrix: torch.Tensor
    states: torch.Tensor


def _check_distribution(p: object, name: str, ndim: int | None = 1) -> torch.Tensor:
    p = check_tensor(p, name, ndim=ndim)
    check_finite(p, name)
    if bool((p < 0).any()):
        raise ValueError(f"{name} must be non-negative, got a minimum of {float(p.min())}")
    # Finite-chain work is tiny and exact: it runs on the CPU in float64 whatever the input.
    return p.to(device="cpu", dtype=torch.float64)


def _check_transition_matrix(P: object, name: str = "P") -> torch.Tensor:
    P = _check_distribution(P, name, ndim=2)
    if P.shape[0] != P.shape[1]:
        raise ValueError(f"{name} must be square, got shape {tuple(P.shape)}")
    worst = float((P.sum(-1) - 1).abs().max())
    if worst > _ROW_SUM_TOL:
        raise ValueError(f"rows of {name} must sum to 1, the worst is off by {worst:.3g}")
    return P


def _uniforms(
    generator: torch.Generator | LinearCongruential | None, shape: tuple[int, ...]
) -> torch.Tensor:
    """float64 uniforms on (0, 1) (CPU) from whichever source the caller chose."""
    if isinstance(generator, LinearCongruential):
        return generator.uniform(shape).cpu()
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(
            "generator must be a torch.Generator, a LinearCongruential or None, "
            f"got {type(generator).__name__}"
        )
    # torch.rand can return exactly 0; 1 - rand lies in (0, 1], which is all the samplers need
    # (they compare u < p and search cumulative sums).
    return 1.0 - torch.rand(shape, generator=generator, dtype=torch.float64)


def _initial_states(initial_state: int | torch.Tensor, num_chains: int, S: int) -> torch.Tensor:
    if isinstance(initial_state, torch.Tensor):
        if initial_state.dtype != torch.int64 or initial_state.shape not in ((), (num_chains,)):
            raise ValueError(
                f"initial_state must be an int or an int64 tensor of shape ({num_chains},), "
                f"got {initial_state.dtype} of shape {tuple(initial_state.shape)}"
            )
        states = initial_state.cpu().expand(num_chains).clone()
    elif isinstance(initial_state, int) and not isinstance(initial_state, bool):
        states = torch.full((num_chains,), initial_state, dtype=torch.int64)
    else:
        raise TypeError(f"initial_state must be an int or a tensor, got {initial_state!r}")
    if bool(((states < 0) | (states >= S)).any()):
        raise ValueError(f"initial_state must lie in [0, {S}), got {states.tolist()}")
    return states


def _categorical(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from each row of ``probs`` (batch, K) with uniforms ``u`` (batch,)."""
    cdf = probs.cumsum(-1)
    cdf = cdf / cdf[:, -1:]
    index = torch.searchsorted(cdf, u.unsqueeze(-1) * (1 - 1e-15)).squeeze(-1)
    return index.clamp(max=probs.shape[-1] - 1)


def _mh_acceptance(target: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    r"""Acceptance matrix :math:`\alpha_{ij} = \min(1, \pi_j Q_{ji} / (\pi_i Q_{ij}))`.

    Pairs with :math:`\pi_j Q_{ji} = 0` (a move that could never be reversed) get 0; pairs
    with :math:`\pi_i Q_{ij} = 0` are never proposed from a state the chain visits, so their
    value (1) does not matter.
    """
    forward = target.unsqueeze(-1) * Q
    backward = forward.transpose(0, 1)
    ratio = torch.where(forward > 0, backward / forward.clamp(min=1e-300), torch.ones_like(Q))
    return ratio.clamp(max=1.0)


def _check_mh_inputs(target_probs: object, proposal_matrix: object) -> tuple:
    target = _check_distribution(target_probs, "target_probs")
    if float(target.sum()) <= 0:
        raise ValueError("target_probs must have a positive sum")
    target = target / target.sum()
    Q = _check_transition_matrix(proposal_matrix, "proposal_matrix")
    if Q.shape[0] != target.shape[0]:
        raise ValueError(
            f"proposal_matrix must be ({target.shape[0]}, {target.shape[0]}) to match "
            f"target_probs, got {tuple(Q.shape)}"
        )
    return target, Q


def metropolis_hastings_matrix(
    target_probs: torch.Tensor, proposal_matrix: torch.Tensor
) -> torch.Tensor:
    r"""Exact transition matrix of Metropolis-Hastings on a finite state space.

    .. math:: P_{ij} = Q_{ij} \min\Big(1, \frac{\pi_j Q_{ji}}{\pi_i Q_{ij}}\Big)
              \ (i \ne j), \qquad P_{ii} = 1 - \sum_{j \ne i} P_{ij}

    It satisfies detailed balance :math:`\pi_i P_{ij} = \pi_j P_{ji}` for any proposal
    (Hastings, 1970), hence :math:`\pi P = \pi`.

    Args:
        target_probs: unnormalised target :math:`\pi`, shape ``(S,)``, non-negative.
        proposal_matrix: proposal :math:`Q`, shape ``(S, S)``, rows summing to 1.

    Returns:
        float64 ``(S, S)``.

    Example:
        >>> target = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
        >>> P = metropolis_hastings_matrix(target, torch.full((3, 3), 1 / 3, dtype=torch.float64))
        >>> [round(p, 6) for p in stationary_distribution(P).tolist()]
        [0.25, 0.5, 0.25]
    """
    target, Q = _check_mh_inputs(target_probs, proposal_matrix)
    P = Q * _mh_acceptance(target, Q)
    P.fill_diagonal_(0.0)
    P += torch.diag(1.0 - P.sum(-1))
    return P


def metropolis_hastings_chain(
    target_probs: torch.Tensor,
    proposal_matrix: torch.Tensor,
    num_steps: int,
    *,
    num_chains: int = 1,
    initial_state: int | torch.Tensor = 0,
    generator: torch.Generator | LinearCongruential | None = None,
) -> FiniteChain:
    """Run Metropolis-Hastings on ``range(S)``: propose ``j ~ Q[i]``, accept w.p. ``alpha_ij``.

    Each step uses two uniforms per chain (one for the proposal by inverse CDF, one for the
    accept test). ``num_chains`` independent chains run as one batch.

    Args:
        target_probs, proposal_matrix: as in :func:`metropolis_hastings_matrix`.
        num_steps: number of transitions.
        num_chains: number of independent chains.
        initial_state: a state index, or an int64 tensor ``(num_chains,)``.
        generator: a ``torch.Generator``, a :class:`LinearCongruential`, or None for torch's
            global generator.

    Returns:
        :class:`FiniteChain` with the exact matrix and ``states`` ``(num_chains,
        num_steps + 1)``.

    Example:
        >>> from pyrogen.first_principles.generators import LinearCongruential
        >>> target = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
        >>> Q = torch.full((3, 3), 1 / 3, dtype=torch.float64)
        >>> run = metropolis_hastings_chain(
        ...     target, Q, 100, num_chains=4, generator=LinearCongruential(seed=1)
        ... )
        >>> tuple(run.states.shape), tuple(run.transition_matrix.shape)
        ((4, 101), (3, 3))
    """
    target, Q = _check_mh_inputs(target_probs, proposal_matrix)
    check_positive_int(num_steps, "num_steps", minimum=0)
    check_positive_int(num_chains, "num_chains")
    states = _initial_states(initial_state, num_chains, target.shape[0])
    acceptance = _mh_acceptance(target, Q)
    path = [states]
    for _ in range(num_steps):
        u = _uniforms(generator, (2, num_chains))
        proposal = _categorical(Q[states], u[0])
        accept = u[1] < acceptance[states, proposal]
        states = torch.where(accept, proposal, states)
        path.append(states)
    return FiniteChain(metropolis_hastings_matrix(target, Q), torch.stack(path, dim=1))


def _coordinate_kernel(joint: torch.Tensor, k: int) -> torch.Tensor:
    """Transition matrix that redraws coordinate ``k`` from its full conditional."""
    shape = joint.shape
    S = joint.numel()
    stride = math.prod(shape[k + 1 :])
    flat = torch.arange(S)
    coord = (flat // stride) % shape[k]
    base = flat - coord * stride  # the state with coordinate k set to 0
    # Neighbours of each state along coordinate k, shape (S, K_k).
    neighbours = base.unsqueeze(-1) + torch.arange(shape[k]) * stride
    weights = joint.reshape(-1)[neighbours]
    total = weights.sum(-1, keepdim=True)
    conditional = weights / total.clamp(min=1e-300)
    G = torch.zeros(S, S, dtype=torch.float64)
    G.scatter_(1, neighbours, conditional)
    # A state of zero probability whose whole line is empty has no conditional; it is never
    # visited from the support, and staying put keeps the matrix stochastic.
    empty = total.squeeze(-1) == 0
    G[empty] = 0.0
    G[empty, flat[empty]] = 1.0
    return G


def _check_joint(joint_probs: object) -> torch.Tensor:
    joint = _check_distribution(joint_probs, "joint_probs", ndim=None)
    if joint.dim() < 1:
        raise ValueError("joint_probs must have one dimension per variable")
    if float(joint.sum()) <= 0:
        raise ValueError("joint_probs must have a positive sum")
    return joint / joint.sum()


def gibbs_matrix(joint_probs: torch.Tensor, scan: str = "random") -> torch.Tensor:
    r"""Exact transition matrix of Gibbs sampling for a joint table of discrete variables.

    ``joint_probs`` has one dimension per variable, shape ``(K_1, ..., K_d)``; states are the
    row-major flat indices ``0 .. S - 1`` with :math:`S = \prod_k K_k`. With :math:`G_k` the
    matrix that redraws variable :math:`k` from :math:`\pi(x_k | x_{-k})`:

    * ``scan="random"``: :math:`P = \frac1d \sum_k G_k` (pick a variable uniformly). Each
      :math:`G_k` is reversible, so :math:`P` satisfies detailed balance.
    * ``scan="systematic"``: :math:`P = G_1 G_2 \cdots G_d` (one sweep). Stationary for
      :math:`\pi` but not reversible in general.

    Returns:
        float64 ``(S, S)``.

    Example:
        >>> joint = torch.tensor([[0.4, 0.1], [0.1, 0.4]], dtype=torch.float64)
        >>> P = gibbs_matrix(joint, scan="systematic")
        >>> [round(p, 6) for p in stationary_distribution(P).tolist()]
        [0.4, 0.1, 0.1, 0.4]
    """
    joint = _check_joint(joint_probs)
    check_choice(scan, "scan", ("random", "systematic"))
    kernels = [_coordinate_kernel(joint, k) for k in range(joint.dim())]
    if scan == "random":
        return torch.stack(kernels).mean(0)
    P = kernels[0]
    for G in kernels[1:]:
        P = P @ G
    return P


def gibbs_chain(
    joint_probs: torch.Tensor,
    num_steps: int,
    *,
    scan: str = "random",
    num_chains: int = 1,
    initial_state: int | torch.Tensor = 0,
    generator: torch.Generator | LinearCongruential | None = None,
) -> FiniteChain:
    """Run Gibbs sampling on the table ``joint_probs`` (see :func:`gibbs_matrix`).

    A random-scan step uses two uniforms per chain (which variable, then its new value); a
    systematic step redraws every variable in order, one uniform each. States are flat
    row-major indices; ``numpy.unravel_index(state, joint_probs.shape)`` gives the variables.

    Returns:
        :class:`FiniteChain` with the exact matrix and ``states`` ``(num_chains,
        num_steps + 1)``.

    Example:
        >>> joint = torch.tensor([[0.4, 0.1], [0.1, 0.4]], dtype=torch.float64)
        >>> run = gibbs_chain(joint, 50, num_chains=3, generator=torch.Generator().manual_seed(0))
        >>> tuple(run.states.shape), tuple(run.transition_matrix.shape)
        ((3, 51), (4, 4))
    """
    joint = _check_joint(joint_probs)
    check_choice(scan, "scan", ("random", "systematic"))
    check_positive_int(num_steps, "num_steps", minimum=0)
    check_positive_int(num_chains, "num_chains")
    d = joint.dim()
    states = _initial_states(initial_state, num_chains, joint.numel())
    kernels = torch.stack([_coordinate_kernel(joint, k) for k in range(d)])
    path = [states]
    for _ in range(num_steps):
        if scan == "random":
            u = _uniforms(generator, (2, num_chains))
            which = (u[0] * d).long().clamp(max=d - 1)
            rows = kernels[which, states]
            states = _categorical(rows, u[1])
        else:
            u = _uniforms(generator, (d, num_chains))
            for k in range(d):
                states = _categorical(kernels[k][states], u[k])
        path.append(states)
    return FiniteChain(gibbs_matrix(joint, scan), torch.stack(path, dim=1))


def stationary_distribution(P: torch.Tensor) -> torch.Tensor:
    r"""The unique :math:`\pi` with :math:`\pi P = \pi`, :math:`\sum_i \pi_i = 1`, in float64.

    :math:`\pi^\top` spans the null space of :math:`(I - P)^\top`; it is read off the singular
    value decomposition, which also tells whether that null space is one-dimensional.

    Raises:
        ValueError: ``P`` is not a transition matrix, or its stationary distribution is not
            unique (the chain has more than one closed class).
    """
    P = _check_transition_matrix(P)
    S = P.shape[0]
    A = (torch.eye(S, dtype=torch.float64) - P).T
    _, singular, Vh = torch.linalg.svd(A)
    # Rounding leaves the zero singular value at a few eps * ||A||; the margin of 1e3 * S keeps
    # that well apart from the next singular value of any chain that is not nearly reducible.
    tol = 1e3 * S * torch.finfo(torch.float64).eps * max(1.0, float(singular[0]))
    nullity = int((singular <= tol).sum())
    if nullity != 1:
        raise ValueError(
            f"P has {nullity} independent stationary distributions; a unique one needs a "
            "single closed communicating class"
        )
    pi = Vh[-1]
    pi = pi / pi.sum()
    # Perron-Frobenius: the stationary vector has one sign; what is left is rounding.
    return pi.clamp(min=0.0) / pi.clamp(min=0.0).sum()


def detailed_balance_violation(P: torch.Tensor, pi: torch.Tensor) -> float:
    r""":math:`\max_{ij} |\pi_i P_{ij} - \pi_j P_{ji}|` in float64 (0 for a reversible chain).

    Example:
        >>> P = torch.tensor([[0.5, 0.5], [0.25, 0.75]], dtype=torch.float64)
        >>> pi = stationary_distribution(P)
        >>> [round(p, 6) for p in pi.tolist()], detailed_balance_violation(P, pi) < 1e-12
        ([0.333333, 0.666667], True)
    """
    P = _check_transition_matrix(P)
    pi = _check_distribution(pi, "pi")
    if pi.shape[0] != P.shape[0]:
        raise ValueError(f"pi must have length {P.shape[0]} to match P, got {pi.shape[0]}")
    flow = pi.unsqueeze(-1) * P
    return float((flow - flow.T).abs().max())
