r"""Discrete Langevin proposals (Zhang, Liu & Liu, ICML 2022): every coordinate may change in
one move, each independently given the gradient at the current state.

For state :math:`x`, neighbour log-ratio estimates :math:`r_{dj}(x)`
(:mod:`pyrogen.infer.neighbours`, first-order from one gradient) and step size
:math:`\alpha > 0`, every coordinate is redrawn independently from

.. math:: q_d(j \mid x) \propto \exp\Big(\tfrac12 r_{dj}(x)
          - \frac{\lVert s_j - s_{x_d}\rVert^2}{2\alpha}\Big),
          \qquad q(y \mid x) = \prod_d q_d(y_d \mid x),

with :math:`s_j` the value ``j`` of the coordinate (a number for Bernoulli-like sites; a
one-hot vector, so :math:`\lVert s_j - s_i \rVert^2 = 2`, for categorical ones). As
:math:`\alpha \to 0` the proposal stays put; large :math:`\alpha` changes many coordinates at
once. **DMALA** (the default, ``adjusted=True``) accepts :math:`y` with probability
:math:`\min(1, \pi(y) q(x \mid y) / (\pi(x) q(y \mid x)))`, which makes the chain exactly
reversible with respect to :math:`\pi`; **DULA** (``adjusted=False``) accepts every proposal
and samples a biased approximation of :math:`\pi`, whose error grows with :math:`\alpha`.

During warm-up each chain adapts its :math:`\alpha` by dual averaging
(:mod:`pyrogen.infer.adaptation`) towards ``target_accept`` (DMALA only).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import torch

from pyrogen._validation import check_positive_float, check_positive_int, check_probability
from pyrogen.infer.adaptation import (
    DualAveragingState,
    dual_averaging_init,
    dual_averaging_update,
    step_size,
)
from pyrogen.infer.base import ChainKernel
from pyrogen.infer.discrete_gibbs import initial_discrete_state
from pyrogen.infer.integer_draws import integer_transforms
from pyrogen.infer.neighbours import GradientRatios, NeighbourRatios
from pyrogen.infer.proposal import log_accept_ratio, metropolis_accept, select
from pyrogen.infer.pyro_target import PyroTarget, discrete_target

__all__ = [
    "DiscreteLangevin",
    "LangevinState",
    "langevin_init",
    "langevin_step",
    "langevin_log_proposal",
    "squared_distances",
]

#: ``ratio_fn(discrete (C, D)) -> NeighbourRatios``.
RatioFn = Callable[[torch.Tensor], NeighbourRatios]


class LangevinState(NamedTuple):
    """``discrete`` ``(C, D)``, ``log_density`` ``(C,)``, ``log_ratios`` ``(C, D, K)`` at the
    current states, and the per-chain step-size adaptation."""

    discrete: torch.Tensor
    log_density: torch.Tensor
    log_ratios: torch.Tensor
    adaptation: DualAveragingState


def squared_distances(target: PyroTarget) -> torch.Tensor:
    r""":math:`\lVert s_j - s_i \rVert^2` for every coordinate, shape ``(D, K, K)``: from the
    site's support values for floating-point supports, 2 for :math:`i \ne j` for integer
    (``Categorical``) ones, as for one-hot vectors."""
    width = int(target.cardinalities.max())
    out = torch.zeros(target.num_discrete, width, width, dtype=target.dtype, device=target.device)
    for s in target.discrete_sites:
        k = s.support.shape[0]
        if s.support.is_floating_point():
            flat = s.support.to(target.dtype).reshape(k, -1)
            d2 = (flat.unsqueeze(0) - flat.unsqueeze(1)).pow(2).sum(-1)
        else:
            d2 = 2.0 * (1 - torch.eye(k, dtype=target.dtype, device=target.device))
        out[s.offset : s.offset + s.num_coordinates, :k, :k] = d2
    return out


def langevin_log_proposal(
    discrete: torch.Tensor,
    log_ratios: torch.Tensor,
    distances: torch.Tensor,
    alpha: torch.Tensor,
) -> torch.Tensor:
    """:math:`\\log q_d(j \\mid x)`, shape ``(C, D, K)`` (``-inf`` past :math:`k_d`).

    ``distances`` ``(D, K, K)`` from :func:`squared_distances`; ``alpha`` ``(C,)``."""
    width = log_ratios.shape[-1]
    index = discrete.unsqueeze(-1).unsqueeze(-1).expand(*discrete.shape, 1, width)
    d2 = distances.expand(discrete.shape[0], *distances.shape).gather(2, index).squeeze(2)
    logits = 0.5 * log_ratios - d2 / (2 * alpha.view(-1, 1, 1))
    logits = torch.nan_to_num(logits, nan=-torch.inf)
    return torch.log_softmax(logits, dim=-1)


def langevin_init(
    discrete: torch.Tensor, ratio_fn: RatioFn, initial_step_size: float
) -> LangevinState:
    """The state at ``discrete`` ``(C, D)`` with step size ``initial_step_size``."""
    ratios = ratio_fn(discrete)
    alpha = torch.full(
        (discrete.shape[0],),
        initial_step_size,
        dtype=ratios.log_density.dtype,
        device=discrete.device,
    )
    return LangevinState(
        discrete, ratios.log_density, ratios.log_ratios, dual_averaging_init(alpha)
    )


def langevin_step(
    generator: torch.Generator,
    state: LangevinState,
    ratio_fn: RatioFn,
    distances: torch.Tensor,
    adjusted: bool,
    target_accept: float,
    warmup: bool,
) -> tuple[LangevinState, dict[str, torch.Tensor]]:
    """One discrete Langevin move of every chain (pure); ``info`` has ``accept_prob``,
    ``accepted``, ``step_size`` and ``num_changed`` ``(C,)``."""
    discrete = state.discrete
    num_chains, num_coords = discrete.shape
    alpha = step_size(state.adaptation, warmup)
    log_q = langevin_log_proposal(discrete, state.log_ratios, distances, alpha)
    width = log_q.shape[-1]
    proposed = torch.multinomial(log_q.exp().reshape(-1, width), 1, generator=generator).reshape(
        num_chains, num_coords
    )
    new = ratio_fn(proposed)
    if adjusted:
        forward = log_q.gather(2, proposed.unsqueeze(-1)).squeeze(-1).sum(-1)
        log_q_back = langevin_log_proposal(proposed, new.log_ratios, distances, alpha)
        backward = log_q_back.gather(2, discrete.unsqueeze(-1)).squeeze(-1).sum(-1)
        log_r = log_accept_ratio(new.log_density, state.log_density, forward, backward)
        accepted, prob = metropolis_accept(log_r, generator)
    else:
        accepted = torch.isfinite(new.log_density)
        prob = accepted.to(new.log_density.dtype)
    adaptation = state.adaptation
    if warmup and adjusted:
        adaptation = dual_averaging_update(adaptation, prob, target_accept)
    out = LangevinState(
        select(accepted, proposed, discrete),
        select(accepted, new.log_density, state.log_density),
        select(accepted, new.log_ratios, state.log_ratios),
        adaptation,
    )
    changed = (proposed != discrete).sum(-1) * accepted
    info = {
        "accept_prob": prob,
        "accepted": accepted,
        "step_size": alpha,
        "num_changed": changed.to(prob.dtype),
    }
    return out, info


class DiscreteLangevin(ChainKernel):
    r"""Discrete Langevin Metropolis-Hastings (DMALA; Zhang, Liu & Liu, ICML 2022) for Pyro
    models whose latent sites are all discrete.

    A Pyro ``MCMCKernel`` and a :class:`~pyrogen.infer.VectorizedKernel`. Each step proposes
    new values for all coordinates at once from one gradient of the log joint (see the
    module docstring) and corrects with the exact Metropolis-Hastings ratio.

    Args:
        model: Pyro model with enumerable discrete latent sites only, broadcasting over
            leading batch dims; its log joint should be differentiable in the site values.
        step_size: initial :math:`\alpha` (adapted during warm-up).
        adjusted: ``True`` (default): DMALA, exact. ``False``: DULA, every proposal accepted;
            biased (a ``UserWarning`` says so), for comparison only.
        target_accept: acceptance the step size adapts to (default 0.574, as for MALA).
        model_args, model_kwargs: model arguments.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyrogen.infer import sample
        >>> def model():
        ...     x = pyro.sample("x", dist.Bernoulli(torch.full((8,), 0.5)).to_event(1))
        ...     pyro.factor("field", (x * torch.linspace(-1, 1, 8)).sum(-1))
        >>> idata = sample(DiscreteLangevin(model), num_chains=4, num_samples=40,
        ...                warmup_steps=20, seed=0, progress=False, check=False)
        >>> idata.posterior["x"].shape
        (4, 40, 8)
    """

    model: Callable[..., Any]  # set in __init__ (ChainKernel declares it optional)

    def __init__(
        self,
        model: Callable[..., Any],
        step_size: float = 0.5,
        *,
        adjusted: bool = True,
        target_accept: float = 0.574,
        model_args: Sequence[Any] = (),
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model, got {type(model).__name__}")
        if not isinstance(adjusted, bool):
            raise TypeError(f"adjusted must be a bool, got {type(adjusted).__name__}")
        self.model = model
        self.step_size = check_positive_float(step_size, "step_size")
        self.adjusted = adjusted
        self.target_accept = check_probability(target_accept, "target_accept")
        if not adjusted:
            warnings.warn(
                "DiscreteLangevin(adjusted=False) is DULA: it accepts every proposal and its "
                "draws follow a biased approximation of the posterior; use adjusted=True "
                "(DMALA) for results",
                UserWarning,
                stacklevel=2,
            )
        super().__init__(model_args, model_kwargs)
        self._target: PyroTarget | None = None
        self._ratio_fn: GradientRatios | None = None
        self._distances: torch.Tensor | None = None

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        target = discrete_target(self.model, model_args, model_kwargs, "DiscreteLangevin")
        self._target = target
        self._ratio_fn = GradientRatios(target)
        self._distances = squared_distances(target)
        self.transforms = integer_transforms(target.discrete_sites)

    @property
    def target(self) -> PyroTarget:
        """The model as a batched target."""
        if self._target is None:
            self._prepare(self.model_args, self.model_kwargs)
        return cast(PyroTarget, self._target)  # _prepare set it

    @property
    def ratio_fn(self) -> GradientRatios:
        """The gradient estimate of the log ratios to every single-coordinate neighbour (the
        move's rates): what :class:`~pyrogen.infer.ReplicaExchange` recomputes at a swapped
        state."""
        if self._ratio_fn is None:
            self._prepare(self.model_args, self.model_kwargs)
        return cast(GradientRatios, self._ratio_fn)

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
    ) -> LangevinState:
        """Chains start at ``initial_params`` or uniformly at random, where the density is
        finite, all with step size ``step_size``."""
        check_positive_int(num_chains, "num_chains")
        target = self.target
        given = (
            target.initial_from_values(initial_params, num_chains)[0] if initial_params else None
        )
        discrete = initial_discrete_state(target, num_chains, self.log_joint_fn, generator, given)
        ratio_fn = cast(GradientRatios, self._ratio_fn)  # set by _prepare (self.target)
        return langevin_init(discrete, ratio_fn, self.step_size)

    def step_chains(
        self, state: LangevinState, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[LangevinState, dict[str, torch.Tensor]]:
        _ = self.target  # builds the two below on first use
        return langevin_step(
            generator,
            state,
            cast(GradientRatios, self._ratio_fn),
            cast(torch.Tensor, self._distances),
            self.adjusted,
            self.target_accept,
            warmup,
        )

    def chain_values(self, state: LangevinState) -> dict[str, torch.Tensor]:
        return self.target.discrete_values(state.discrete)

    def _logging_extra(self) -> dict[str, str]:
        alpha = self._last_info.get("step_size")
        return {} if alpha is None else {"step size": f"{float(alpha.mean()):.3g}"}
