r"""Metropolis-Hastings for any Pyro model: discrete flips, random walk and MALA.

Every step of every chain applies, in this order,

1. for discrete sites, a **single-coordinate move**: a coordinate :math:`d` uniformly among
   the :math:`D`, and a new value uniformly among its :math:`k_d - 1` other values (a bit flip
   for binary sites). The proposal is symmetric, :math:`q = 1 / (D (k_d - 1))` both ways;
2. for continuous sites, in unconstrained space :math:`z` (target
   :math:`\tilde\pi(z) = \pi(T(z)) |\det J_T(z)|`), either a **Gaussian random walk**
   :math:`z' = z + \epsilon \xi` (symmetric) or **MALA** (Roberts & Tweedie, 1996)

   .. math:: z' = z + \tfrac{\epsilon^2}{2} \nabla \log \tilde\pi(z) + \epsilon \xi, \qquad
             \log q(z' | z) = -\frac{\lVert z' - z - \tfrac{\epsilon^2}{2}
             \nabla \log\tilde\pi(z)\rVert^2}{2 \epsilon^2} + \text{const},

each accepted with the Metropolis-Hastings probability (:mod:`pyrogen.infer.proposal`).
Each move leaves the target invariant, so their composition does. During warmup each chain
adapts its own :math:`\epsilon` by dual averaging (:mod:`pyrogen.infer.adaptation`) towards
an acceptance of 0.234 (random walk) or 0.574 (MALA), the asymptotically optimal rates
(Roberts, Gelman & Gilks, 1997; Roberts & Rosenthal, 1998).

A user proposal replaces all of this with one joint move (see :class:`MetropolisHastings`).

Each move is a pure kernel in its own module: :mod:`pyrogen.infer.flip` (single-coordinate
moves), :mod:`pyrogen.infer.random_walk`, :mod:`pyrogen.infer.mala` and
:mod:`pyrogen.infer.user_proposal`; :class:`MetropolisHastings` only picks and composes them
once (when it builds its target) and wires them to Pyro. The functions this module exported
before that split (:func:`flip_proposal`, :func:`random_walk_proposal`,
:func:`mala_log_proposal_density`) are re-exported from there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal, NamedTuple, cast

import torch

from pyrogen._validation import check_choice, check_positive_float, check_positive_int
from pyrogen.infer import flip, mala, random_walk, user_proposal
from pyrogen.infer.adaptation import (
    DualAveragingState,
    adaptation_steps,
    dual_averaging_init,
    dual_averaging_update,
    step_size,
)
from pyrogen.infer.base import ChainKernel
from pyrogen.infer.flip import flip_proposal
from pyrogen.infer.integer_draws import integer_transforms
from pyrogen.infer.mala import log_proposal_density as mala_log_proposal_density
from pyrogen.infer.proposal import select
from pyrogen.infer.pyro_target import PyroTarget
from pyrogen.infer.random_walk import random_walk_proposal

__all__ = [
    "MetropolisHastings",
    "MHState",
    "flip_proposal",
    "random_walk_proposal",
    "mala_log_proposal_density",
    "discrete_mh_update",
    "continuous_mh_update",
    "value_and_grad",
]

#: ``log_density_fn(discrete (C, D), continuous (C, D_c)) -> (C,)``.
LogDensityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Targets of the step-size adaptation (see the module docstring).
TARGET_ACCEPT = {"random_walk": 0.234, "mala": 0.574}

# Stan's initialisation retries: chains whose random start has zero density are redrawn.
_MAX_INIT_ATTEMPTS = 100


class MHState(NamedTuple):
    """State of ``C`` chains; ``D`` discrete coordinates, ``D_c`` unconstrained dims."""

    discrete: torch.Tensor  # (C, D) long: value indices
    continuous: torch.Tensor  # (C, D_c): unconstrained continuous sites
    log_density: torch.Tensor  # (C,): log target at the current state
    grad: torch.Tensor  # (C, D_c) gradient of log_density (MALA), else (C, 0)
    adaptation: DualAveragingState  # per-chain step sizes


#: One move of :class:`MetropolisHastings` on the joint state:
#: ``move(state, log_density_fn, generator, warmup) -> (state, accept_prob, accepted)``.
Move = Callable[
    [MHState, LogDensityFn, torch.Generator, bool], tuple[MHState, torch.Tensor, torch.Tensor]
]


def value_and_grad(
    log_density_fn: LogDensityFn, discrete: torch.Tensor, continuous: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log density ``(C,)`` and its gradient with respect to ``continuous`` ``(C, D_c)``
    (:func:`pyrogen.infer.mala.log_density_and_grad` at fixed ``discrete``).

    Example:
        >>> fn = lambda d, z: -0.5 * (z**2).sum(-1) + d.sum(-1)
        >>> value_and_grad(fn, torch.ones(2, 1), torch.ones(2, 3))[0]
        tensor([-0.5000, -0.5000])
    """
    return mala.log_density_and_grad(partial(log_density_fn, discrete), continuous)


def _value_only(
    log_density_fn: LogDensityFn, discrete: torch.Tensor, continuous: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log density ``(C,)`` and an empty ``(C, 0)`` gradient (no gradient-based move)."""
    with torch.no_grad():
        log_p = log_density_fn(discrete, continuous)
    return log_p, continuous.new_zeros(continuous.shape[0], 0)


def discrete_mh_update(
    state: MHState,
    log_density_fn: LogDensityFn,
    cardinalities: torch.Tensor,
    generator: torch.Generator,
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    """One :func:`pyrogen.infer.flip.step` (a single-coordinate move) per chain on the
    discrete block, the continuous block fixed.

    Returns ``(state, accept_prob, accepted)``; ``state.grad`` is *not* refreshed (the caller
    recomputes it when a gradient-based move follows).
    """
    block = flip.FlipState(state.discrete, state.log_density)
    block, info = flip.step(
        generator, block, lambda d: log_density_fn(d, state.continuous), cardinalities
    )
    new = state._replace(discrete=block.position, log_density=block.log_density)
    return new, info.accept_prob, info.accepted


def _flip_move(
    cardinalities: torch.Tensor,
    state: MHState,
    log_density_fn: LogDensityFn,
    generator: torch.Generator,
    warmup: bool,
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    return discrete_mh_update(state, log_density_fn, cardinalities, generator)


def _flip_move_before_mala(
    cardinalities: torch.Tensor,
    state: MHState,
    log_density_fn: LogDensityFn,
    generator: torch.Generator,
    warmup: bool,
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    state, prob, accepted = discrete_mh_update(state, log_density_fn, cardinalities, generator)
    # The gradient at the current point changed with the discrete values.
    log_p, grad = value_and_grad(log_density_fn, state.discrete, state.continuous)
    return state._replace(log_density=log_p, grad=grad), prob, accepted


def _random_walk_block(
    state: MHState, log_density_fn: LogDensityFn, generator: torch.Generator, eps: torch.Tensor
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    block = random_walk.RandomWalkState(state.continuous, state.log_density)
    block, info = random_walk.step(
        generator, block, partial(log_density_fn, state.discrete), random_walk.RandomWalkParams(eps)
    )
    new = state._replace(continuous=block.position, log_density=block.log_density)
    return new, info.accept_prob, info.accepted


def _mala_block(
    state: MHState, log_density_fn: LogDensityFn, generator: torch.Generator, eps: torch.Tensor
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    block = mala.MALAState(state.continuous, state.log_density, state.grad)
    block, info = mala.step(
        generator, block, partial(log_density_fn, state.discrete), mala.MALAParams(eps)
    )
    new = state._replace(continuous=block.position, log_density=block.log_density, grad=block.grad)
    return new, info.accept_prob, info.accepted


_CONTINUOUS_BLOCKS = {"random_walk": _random_walk_block, "mala": _mala_block}


def _adapted_move(
    block: Callable[..., tuple[MHState, torch.Tensor, torch.Tensor]],
    adapt_step_size: bool,
    target_accept: float,
    state: MHState,
    log_density_fn: LogDensityFn,
    generator: torch.Generator,
    warmup: bool,
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    """``block``'s move with the chains' current step sizes, which dual averaging then
    updates when ``warmup and adapt_step_size``."""
    eps = step_size(state.adaptation, warmup).to(state.continuous.dtype)
    state, prob, accepted = block(state, log_density_fn, generator, eps)
    if warmup and adapt_step_size:
        state = state._replace(
            adaptation=dual_averaging_update(state.adaptation, prob, target_accept)
        )
    return state, prob, accepted


def continuous_mh_update(
    state: MHState,
    log_density_fn: LogDensityFn,
    generator: torch.Generator,
    proposal: str,
    warmup: bool,
    adapt_step_size: bool,
    target_accept: float,
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    """One random-walk (:func:`pyrogen.infer.random_walk.step`) or MALA
    (:func:`pyrogen.infer.mala.step`) move per chain on the continuous block, the discrete
    block fixed; adapts the step size when ``warmup and adapt_step_size``. Returns
    ``(state, accept_prob, accepted)``."""
    check_choice(proposal, "proposal", tuple(_CONTINUOUS_BLOCKS))
    move = _CONTINUOUS_BLOCKS[proposal]
    return _adapted_move(
        move, adapt_step_size, target_accept, state, log_density_fn, generator, warmup
    )


def _moves_step(
    moves: tuple[Move, ...],
    kernel: MetropolisHastings,
    state: MHState,
    generator: torch.Generator,
    warmup: bool,
) -> tuple[MHState, dict[str, torch.Tensor]]:
    """The composition of ``moves`` (a flip move, then a continuous move, when present)."""
    log_density_fn = kernel.log_density_fn
    info: dict[str, torch.Tensor] = {}
    for move in moves:
        if "accept_prob" in info:
            info["discrete_accept_prob"] = info["accept_prob"]
        state, prob, accepted = move(state, log_density_fn, generator, warmup)
        info.update(accept_prob=prob, accepted=accepted)
    info["step_size"] = step_size(state.adaptation, warmup)
    return state, info


def _unprepared_step(
    kernel: MetropolisHastings, state: MHState, generator: torch.Generator, warmup: bool
) -> tuple[MHState, dict[str, torch.Tensor]]:
    """The step before ``_prepare`` ran (chains built by hand, not by ``init_chains``)."""
    kernel._prepare(kernel.model_args, kernel.model_kwargs)
    return kernel._step(kernel, state, generator, warmup)


def _user_step(
    kernel: MetropolisHastings, state: MHState, generator: torch.Generator, warmup: bool
) -> tuple[MHState, dict[str, torch.Tensor]]:
    """One joint move of the user's proposal (:func:`pyrogen.infer.user_proposal.step`)."""
    block = user_proposal.UserProposalState((state.discrete, state.continuous), state.log_density)
    block, info = user_proposal.step(
        generator, block, kernel.log_density_fn, kernel._flat_user_proposal
    )
    discrete, continuous = block.position
    new = state._replace(discrete=discrete, continuous=continuous, log_density=block.log_density)
    return new, {"accept_prob": info.accept_prob, "accepted": info.accepted}


class MetropolisHastings(ChainKernel):
    r"""Metropolis-Hastings for any Pyro model (discrete and/or continuous latent sites).

    A Pyro ``MCMCKernel`` and a :class:`~pyrogen.infer.VectorizedKernel`.

    Args:
        model: a Pyro model; latent sites are discrete with enumerable support or
            continuous (constrained ones are moved in unconstrained space, as Pyro's HMC).
            Vectorised chains need a model that broadcasts over a leading dimension.
        proposal: for continuous sites ``"random_walk"`` (= ``"auto"``) or ``"mala"``;
            discrete sites always get single-coordinate moves. Or a callable
            ``proposal(values, generator) -> (new_values, log_q_forward, log_q_backward)``
            making one joint move of all sites: ``values`` maps every latent site to its
            current *constrained* value ``(C, *shape)``; ``new_values`` must give all of them
            (in their supports); ``log_q_forward`` :math:`= \log q(new | old)` and
            ``log_q_backward`` :math:`= \log q(old | new)` have shape ``(C,)`` (zeros for a
            symmetric proposal). The target is then the model's log joint in constrained
            space (no Jacobian) and no step size is used.
        step_size: initial random-walk / MALA step size :math:`\epsilon` (> 0).
        adapt_step_size: adapt :math:`\epsilon` per chain during warmup.
        target_accept: acceptance the adaptation aims at, in (0, 1); default 0.234 for the
            random walk, 0.574 for MALA.
        model_args, model_kwargs: model arguments for :meth:`init_chains` without ``MCMC``.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyro.infer import MCMC
        >>> def model(y):
        ...     mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        ...     pyro.sample("y", dist.Normal(mu, 1.0), obs=y)
        >>> kernel = MetropolisHastings(model, proposal="mala", step_size=0.5)
        >>> mcmc = MCMC(kernel, num_samples=100, warmup_steps=50, disable_progbar=True)
        >>> mcmc.run(torch.tensor(1.0))
        >>> mcmc.get_samples()["mu"].shape
        torch.Size([100])
    """

    model: Callable[..., Any]  # set in __init__ (ChainKernel declares it optional)

    def __init__(
        self,
        model: Callable[..., Any],
        proposal: Literal["auto", "random_walk", "mala"] | Callable[..., Any] = "auto",
        step_size: float = 0.1,
        adapt_step_size: bool = True,
        target_accept: float | None = None,
        *,
        model_args: Sequence[Any] = (),
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model, got {type(model).__name__}")
        self.model = model
        if callable(proposal):
            self.proposal: str | Callable[..., Any] = proposal
        else:
            check_choice(proposal, "proposal", ("auto", "random_walk", "mala"))
            self.proposal = "random_walk" if proposal == "auto" else proposal
        # The strategy is fixed here and in _prepare, never looked up again per step.
        self._user_proposal = proposal if callable(proposal) else None
        # A user proposal moves constrained values: its target has no Jacobian term.
        self._jacobian = self._user_proposal is None
        self.step_size = check_positive_float(step_size, "step_size")
        if not isinstance(adapt_step_size, bool):
            raise TypeError(f"adapt_step_size must be a bool, got {type(adapt_step_size).__name__}")
        self.adapt_step_size = adapt_step_size and not callable(proposal)
        if target_accept is None:
            target_accept = (
                TARGET_ACCEPT.get(self.proposal, 0.234) if isinstance(self.proposal, str) else 0.234
            )
        target_accept = check_positive_float(target_accept, "target_accept")
        if target_accept >= 1:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
        self.target_accept = target_accept
        super().__init__(model_args, model_kwargs)
        self._target: PyroTarget | None = None
        # Set by _prepare: the step (a function of (kernel, state, generator, warmup)) and
        # the evaluation of new chains (with the gradient for MALA).
        self._step: Callable[..., tuple[MHState, dict[str, torch.Tensor]]] = _unprepared_step
        self._evaluate_fn: Callable[..., tuple[torch.Tensor, torch.Tensor]] = _value_only

    @property
    def target(self) -> PyroTarget:
        """The model as a batched target (see :class:`~pyrogen.infer.DiscreteGibbs`)."""
        if self._target is None:
            self._prepare(self.model_args, self.model_kwargs)
        return cast(PyroTarget, self._target)  # _prepare set it

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        target = PyroTarget(self.model, model_args, model_kwargs)
        if not target.site_names:
            raise ValueError("the model has no latent sites: nothing for MetropolisHastings")
        target.check_vectorized(batch_continuous=True)
        self._target = target
        # Integer draws (Categorical) reach mcmc.get_samples() as long (integer_draws).
        self.transforms = {**integer_transforms(target.discrete_sites), **target.transforms}
        gradient = self.proposal == "mala" and target.num_continuous > 0
        self._evaluate_fn = value_and_grad if gradient else _value_only
        if self._user_proposal is not None:
            self._step = _user_step
            return
        moves: list[Move] = []
        if target.num_discrete:
            flip_move = _flip_move_before_mala if gradient else _flip_move
            moves.append(partial(flip_move, target.cardinalities))
        if target.num_continuous:
            block = _CONTINUOUS_BLOCKS[cast(str, self.proposal)]  # a name: no user proposal
            moves.append(partial(_adapted_move, block, self.adapt_step_size, self.target_accept))
        self._step = partial(_moves_step, tuple(moves))

    @property
    def device(self) -> torch.device:
        return self.target.device

    def log_density_fn(self, discrete: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """The log target at flat coordinates ``(C, D)``, ``(C, D_c)``; shape ``(C,)``."""
        return self.target.log_density(discrete, continuous, jacobian=self._jacobian)

    def _evaluate(
        self, discrete: torch.Tensor, continuous: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log density ``(C,)`` and gradient (MALA; else ``(C, 0)``) of new chain states."""
        if self._target is None:
            self._prepare(self.model_args, self.model_kwargs)
        return self._evaluate_fn(self.log_density_fn, discrete, continuous)

    # -------------------------------------------------------- VectorizedKernel
    def init_chains(
        self,
        num_chains: int,
        *,
        generator: torch.Generator,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> MHState:
        """Chains start at ``initial_params`` (constrained site values, ``(C, *shape)`` or
        ``shape``) or uniformly at random (discrete values; unconstrained in (-2, 2));
        random starts with zero density are redrawn (up to 100 times)."""
        check_positive_int(num_chains, "num_chains")
        target = self.target
        discrete, continuous = target.initial_state(num_chains, generator)
        given_d = given_c = None
        if initial_params:
            given_d, given_c = target.initial_from_values(initial_params, num_chains)
            discrete = discrete if given_d is None else given_d
            continuous = continuous if given_c is None else given_c
        log_p, grad = self._evaluate(discrete, continuous)
        for _ in range(_MAX_INIT_ATTEMPTS):
            bad = ~torch.isfinite(log_p)
            if not bool(bad.any()) or (given_d is not None and given_c is not None):
                break
            fresh_d, fresh_c = target.initial_state(num_chains, generator)
            if given_d is None:
                discrete = select(bad, fresh_d, discrete)
            if given_c is None:
                continuous = select(bad, fresh_c, continuous)
            log_p, grad = self._evaluate(discrete, continuous)
        if not bool(torch.isfinite(log_p).all()):
            raise ValueError(
                f"{int((~torch.isfinite(log_p)).sum())} chains start where the model's log "
                "density is not finite; pass initial_params inside the support"
            )
        step = torch.full((num_chains,), self.step_size, dtype=target.dtype, device=target.device)
        return MHState(discrete, continuous, log_p, grad, dual_averaging_init(step))

    def step_chains(
        self, state: MHState, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[MHState, dict[str, torch.Tensor]]:
        """One step of every chain (see the module docstring). ``info`` holds
        ``accept_prob`` and ``accepted`` ``(C,)`` of the continuous move (of the discrete
        move when there are no continuous sites), ``discrete_accept_prob`` when both exist,
        and ``step_size`` ``(C,)``."""
        return self._step(self, state, generator, warmup)

    def _flat_user_proposal(
        self, position: user_proposal.Position, generator: torch.Generator
    ) -> tuple[user_proposal.Position, torch.Tensor | float, torch.Tensor | float]:
        """The user's proposal on site values, seen from the flat coordinates
        ``(discrete (C, D), continuous (C, D_c))`` of :func:`pyrogen.infer.user_proposal.step`."""
        target = self.target
        discrete, continuous = position
        num_chains = discrete.shape[0]
        values = self._values(discrete, continuous)
        proposal = self._user_proposal
        if proposal is None:  # _user_step is the step only with a user proposal
            raise RuntimeError("MetropolisHastings has no user proposal to call")
        out = proposal(values, generator)
        new_values, log_q_forward, log_q_backward = user_proposal.check_proposal_output(
            out, set(values), num_chains
        )
        batch = torch.Size([num_chains])
        new_position = (
            target.encode_discrete(new_values, batch),
            target.unconstrain(new_values, batch),
        )
        return new_position, log_q_forward, log_q_backward

    def chain_values(self, state: MHState) -> dict[str, torch.Tensor]:
        return self._values(state.discrete, state.continuous)

    def _values(self, discrete: torch.Tensor, continuous: torch.Tensor) -> dict[str, torch.Tensor]:
        target = self.target
        values = target.discrete_values(discrete) if target.num_discrete else {}
        if target.num_continuous:
            with torch.no_grad():
                values.update(target.continuous_values(continuous)[0])
        return values

    def _unconstrained_values(self, state: MHState) -> dict[str, torch.Tensor]:
        target = self.target
        values = target.discrete_values(state.discrete) if target.num_discrete else {}
        num_chains = state.continuous.shape[0]
        for s in target.continuous_sites:
            flat = state.continuous[:, s.offset : s.offset + s.numel]
            values[s.name] = flat.reshape(num_chains, *s.unconstrained_shape)
        return values

    def _logging_extra(self) -> dict[str, str]:
        if self._state is None or self._user_proposal is not None or not self.target.num_continuous:
            return {}
        warmup = self._t <= adaptation_steps(self._warmup_steps)  # the step just taken
        eps = float(step_size(self._state.adaptation, warmup).mean())
        return {"step size": f"{eps:.2e}"}
