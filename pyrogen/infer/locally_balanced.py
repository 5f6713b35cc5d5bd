r"""Locally informed Metropolis-Hastings over single-coordinate changes: the locally balanced
proposal (Zanella, 2020) and Gibbs-with-Gradients (Grathwohl et al., ICML 2021).

From state :math:`x`, a neighbour :math:`y = x_{d \leftarrow j}` (one coordinate changed) is
proposed with probability

.. math:: q(y \mid x) = \frac{g\big(e^{r_{dj}(x)}\big)}{\sum_{d', j' \ne x_{d'}}
          g\big(e^{r_{d'j'}(x)}\big)}, \qquad
          \alpha = \min\Big(1, \frac{\pi(y)\, q(x \mid y)}{\pi(x)\, q(y \mid x)}\Big),

where :math:`r_{dj}(x)` estimates :math:`\log \pi(y) - \log \pi(x)`
(:mod:`pyrogen.infer.neighbours`) and :math:`g` is a *balancing function*,
:math:`g(t) = t\, g(1/t)`: ``"sqrt"`` (:math:`\sqrt t`) or ``"barker"`` (:math:`t / (1 + t)`).
With exact ratios this is Zanella's locally balanced proposal; with the first-order
gradient estimate and ``"sqrt"`` it is Gibbs-with-Gradients. The Metropolis-Hastings
correction uses the reverse proposal computed at :math:`y` with the same estimator, so the
chain is reversible with respect to :math:`\pi` whatever the estimate's error: the estimate
only decides how often moves are accepted.

Cost per move: one estimator call at the proposed state (the current state's ratios are kept
in the state): one forward and backward pass for gradients, :math:`\sum_d (k_d - 1)` model
evaluations in batches for exact ratios.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, cast

import torch
import torch.nn.functional as F

from pyrogen._validation import check_choice, check_positive_int
from pyrogen.infer.base import ChainKernel
from pyrogen.infer.discrete_gibbs import initial_discrete_state
from pyrogen.infer.integer_draws import integer_transforms
from pyrogen.infer.neighbours import ExactRatios, GradientRatios, NeighbourRatios
from pyrogen.infer.proposal import log_accept_ratio, metropolis_accept, select
from pyrogen.infer.pyro_target import PyroTarget, discrete_target

__all__ = [
    "BALANCING",
    "InformedKernel",
    "InformedState",
    "informed_init",
    "informed_step",
    "proposal_log_probs",
    "LocallyBalanced",
    "GibbsWithGradients",
]

#: ``ratio_fn(discrete (C, D)) -> NeighbourRatios``.
RatioFn = Callable[[torch.Tensor], NeighbourRatios]


def _sqrt(log_ratio: torch.Tensor) -> torch.Tensor:
    return 0.5 * log_ratio


def _barker(log_ratio: torch.Tensor) -> torch.Tensor:
    return F.logsigmoid(log_ratio)


#: :math:`\log g(e^r)` for each balancing function.
BALANCING: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sqrt": _sqrt,
    "barker": _barker,
}


class InformedState(NamedTuple):
    """``discrete`` ``(C, D)`` value indices, ``log_density`` ``(C,)``, and ``log_ratios``
    ``(C, D, K)`` at those states (the proposal's rates)."""

    discrete: torch.Tensor
    log_density: torch.Tensor
    log_ratios: torch.Tensor


def proposal_log_probs(
    discrete: torch.Tensor,
    log_ratios: torch.Tensor,
    balance: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """:math:`\\log q(x_{d \\leftarrow j} \\mid x)`, shape ``(C, D * K)`` (flat ``d * K + j``);
    ``-inf`` at the current values and past each coordinate's cardinality."""
    logits = balance(log_ratios)
    logits = logits.scatter(2, discrete.unsqueeze(-1), -torch.inf)
    logits = torch.nan_to_num(logits, nan=-torch.inf)
    return torch.log_softmax(logits.flatten(1), dim=-1)


def informed_init(discrete: torch.Tensor, ratio_fn: RatioFn) -> InformedState:
    """The state at ``discrete`` ``(C, D)``."""
    ratios = ratio_fn(discrete)
    return InformedState(discrete, ratios.log_density, ratios.log_ratios)


def informed_step(
    generator: torch.Generator,
    state: InformedState,
    ratio_fn: RatioFn,
    balance: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[InformedState, dict[str, torch.Tensor]]:
    """One locally informed Metropolis-Hastings move of every chain (pure).

    Returns the new state and ``info`` with ``accept_prob`` and ``accepted`` ``(C,)``."""
    discrete = state.discrete
    num_chains, _ = discrete.shape
    width = state.log_ratios.shape[-1]
    log_q = proposal_log_probs(discrete, state.log_ratios, balance)
    choice = torch.multinomial(log_q.exp(), 1, generator=generator).squeeze(-1)  # (C,)
    coordinate, value = choice // width, choice % width
    proposed = discrete.scatter(1, coordinate.unsqueeze(-1), value.unsqueeze(-1))
    new = ratio_fn(proposed)
    log_q_back = proposal_log_probs(proposed, new.log_ratios, balance)
    back = coordinate * width + discrete.gather(1, coordinate.unsqueeze(-1)).squeeze(-1)
    rows = torch.arange(num_chains, device=discrete.device)
    log_r = log_accept_ratio(
        new.log_density, state.log_density, log_q[rows, choice], log_q_back[rows, back]
    )
    accepted, prob = metropolis_accept(log_r, generator)
    out = InformedState(
        select(accepted, proposed, discrete),
        select(accepted, new.log_density, state.log_density),
        select(accepted, new.log_ratios, state.log_ratios),
    )
    return out, {"accept_prob": prob, "accepted": accepted}


class InformedKernel(ChainKernel):
    """The Pyro adapter shared by the two kernels of this module."""

    name = "LocallyBalanced"
    model: Callable[..., Any]  # set in __init__ (ChainKernel declares it optional)

    def __init__(
        self,
        model: Callable[..., Any],
        balancing: str,
        moves_per_step: int,
        model_args: Sequence[Any],
        model_kwargs: dict[str, Any] | None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model, got {type(model).__name__}")
        self.model = model
        self.balancing = check_choice(balancing, "balancing", tuple(BALANCING))
        self._balance = BALANCING[self.balancing]  # picked once
        self.moves_per_step = check_positive_int(moves_per_step, "moves_per_step")
        super().__init__(model_args, model_kwargs)
        self._target: PyroTarget | None = None
        self._ratio_fn: RatioFn | None = None

    def _make_ratio_fn(self, target: PyroTarget) -> RatioFn:
        raise NotImplementedError

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        target = discrete_target(self.model, model_args, model_kwargs, type(self).__name__)
        self._target = target
        self._ratio_fn = self._make_ratio_fn(target)
        self.transforms = integer_transforms(target.discrete_sites)

    @property
    def target(self) -> PyroTarget:
        """The model as a batched target."""
        if self._target is None:
            self._prepare(self.model_args, self.model_kwargs)
        return cast(PyroTarget, self._target)  # _prepare set it

    @property
    def ratio_fn(self) -> RatioFn:
        """The neighbour log-ratio estimator the proposal uses."""
        _ = self.target
        return cast(RatioFn, self._ratio_fn)  # _prepare set it

    @property
    def device(self) -> torch.device:
        return self.target.device

    def log_joint_fn(self, discrete: torch.Tensor) -> torch.Tensor:
        """The model's log joint at value indices ``(*batch, D)``; shape ``batch``."""
        return self.target.log_joint(self.target.discrete_values(discrete), discrete.dim() - 1)

    def init_chains(
        self,
        num_chains: int,
        *,
        generator: torch.Generator,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> InformedState:
        """Chains start at ``initial_params`` or uniformly at random, where the density is
        finite."""
        check_positive_int(num_chains, "num_chains")
        target = self.target
        given = (
            target.initial_from_values(initial_params, num_chains)[0] if initial_params else None
        )
        discrete = initial_discrete_state(target, num_chains, self.log_joint_fn, generator, given)
        return informed_init(discrete, self.ratio_fn)

    def step_chains(
        self, state: InformedState, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[InformedState, dict[str, torch.Tensor]]:
        """``moves_per_step`` moves; ``info`` holds the mean acceptance probability and
        acceptance rate of those moves. ``warmup`` changes nothing."""
        probs, accepts = [], []
        for _ in range(self.moves_per_step):
            state, info = informed_step(generator, state, self.ratio_fn, self._balance)
            probs.append(info["accept_prob"])
            accepts.append(info["accepted"].to(info["accept_prob"].dtype))
        prob = torch.stack(probs).mean(0)
        # "accepted": the chain moved in at least one of the step's moves.
        moved = torch.stack(accepts).amax(0) > 0
        return state, {"accept_prob": prob, "accepted": moved}

    def chain_values(self, state: InformedState) -> dict[str, torch.Tensor]:
        return self.target.discrete_values(state.discrete)


class LocallyBalanced(InformedKernel):
    r"""Locally balanced Metropolis-Hastings (Zanella, 2020) for Pyro models whose latent sites
    are all discrete: every single-coordinate neighbour evaluated exactly.

    A Pyro ``MCMCKernel`` and a :class:`~pyrogen.infer.VectorizedKernel`.

    Args:
        model: a Pyro model with enumerable discrete latent sites only (as for
            :class:`~pyrogen.infer.DiscreteGibbs`); it must broadcast over leading batch dims.
        balancing: ``"sqrt"`` (default) or ``"barker"`` (see the module docstring).
        moves_per_step: Metropolis-Hastings moves per step (each changes at most one
            coordinate).
        model_args, model_kwargs: model arguments (``MCMC.run``'s override them).

    Each move evaluates all :math:`\sum_d (k_d - 1)` neighbours of the proposed state in
    batched model calls: the best proposals for cheap models or few coordinates, and a costly
    one for large models (then :class:`GibbsWithGradients`).

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyrogen.infer import sample
        >>> def model():
        ...     x = pyro.sample("x", dist.Bernoulli(torch.full((4,), 0.5)).to_event(1))
        ...     pyro.factor("coupling", 2.0 * (x[..., 0] * x[..., 1]))
        >>> idata = sample(LocallyBalanced(model), num_chains=4, num_samples=50,
        ...                warmup_steps=10, seed=0, progress=False, check=False)
        >>> idata.posterior["x"].shape
        (4, 50, 4)
    """

    def __init__(
        self,
        model: Callable[..., Any],
        balancing: Literal["sqrt", "barker"] = "sqrt",
        *,
        moves_per_step: int = 1,
        model_args: Sequence[Any] = (),
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, balancing, moves_per_step, model_args, model_kwargs)

    def _make_ratio_fn(self, target: PyroTarget) -> RatioFn:
        return ExactRatios(self.log_joint_fn, target.cardinalities)


class GibbsWithGradients(InformedKernel):
    r"""Gibbs-with-Gradients (Grathwohl, Swersky, Hashemi, Duvenaud & Maddison, ICML 2021) for
    Pyro models whose latent sites are all discrete.

    A Pyro ``MCMCKernel`` and a :class:`~pyrogen.infer.VectorizedKernel`. The rates of the
    locally balanced proposal come from one gradient of the log joint with respect to the
    site values (Bernoulli values as numbers, ``OneHotCategorical`` as one-hot vectors;
    ``Categorical`` coordinates get exact rates), so a move costs one forward and backward
    pass whatever the number of coordinates. Exact: every move is corrected by its
    Metropolis-Hastings ratio.

    Args:
        model: as for :class:`LocallyBalanced`; the log joint should be differentiable in the
            site values (write ``x * a`` rather than ``a[x.long()]``).
        balancing: ``"sqrt"`` (default, the paper's) or ``"barker"``.
        moves_per_step: Metropolis-Hastings moves per step (each changes one coordinate at
            most); e.g. a few percent of the coordinates.
        model_args, model_kwargs: model arguments.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyro.infer import MCMC
        >>> def model():
        ...     x = pyro.sample("x", dist.Bernoulli(torch.full((4,), 0.5)).to_event(1))
        ...     pyro.factor("coupling", 2.0 * (x[..., 0] * x[..., 1]))
        >>> mcmc = MCMC(GibbsWithGradients(model, moves_per_step=2), num_samples=30,
        ...             warmup_steps=10, disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["x"].shape
        torch.Size([30, 4])
    """

    def __init__(
        self,
        model: Callable[..., Any],
        balancing: Literal["sqrt", "barker"] = "sqrt",
        *,
        moves_per_step: int = 1,
        model_args: Sequence[Any] = (),
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, balancing, moves_per_step, model_args, model_kwargs)

    def _make_ratio_fn(self, target: PyroTarget) -> RatioFn:
        return GradientRatios(target)
