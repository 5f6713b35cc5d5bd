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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import torch

from pyrogen._validation import check_choice, check_positive_float, check_positive_int
from pyrogen.infer.adaptation import (
    DualAveragingState,
    adaptation_steps,
    dual_averaging_init,
    dual_averaging_update,
    step_size,
)
from pyrogen.infer.base import ChainKernel
from pyrogen.infer.integer_draws import integer_transforms
from pyrogen.infer.proposal import log_accept_ratio, metropolis_accept, select
from pyrogen.infer.pyro_target import PyroTarget

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


def value_and_grad(
    log_density_fn: LogDensityFn, discrete: torch.Tensor, continuous: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log density ``(C,)`` and its gradient with respect to ``continuous`` ``(C, D_c)``.

    Chains are independent, so the gradient of the sum is every chain's own gradient.
    """
    with torch.enable_grad():
        z = continuous.detach().requires_grad_(True)
        log_p = log_density_fn(discrete, z)
        (grad,) = torch.autograd.grad(log_p.sum(), z)
    return log_p.detach(), grad


def flip_proposal(
    discrete: torch.Tensor, cardinalities: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """Change one uniformly chosen coordinate per chain to a uniformly chosen *other* value.

    ``discrete`` ``(C, D)`` value indices, ``cardinalities`` ``(D,)``. Symmetric: the
    probability of proposing a given neighbour is :math:`1 / (D (k_d - 1))` both ways.
    """
    num_chains, num_coords = discrete.shape
    coordinate = torch.randint(
        num_coords, (num_chains,), generator=generator, device=discrete.device
    )
    k = cardinalities[coordinate]
    u = torch.rand(num_chains, generator=generator, device=discrete.device, dtype=torch.float64)
    shift = 1 + (u * (k - 1)).long().clamp(max=k - 2)  # uniform on {1, ..., k - 1}
    old = discrete.gather(1, coordinate.unsqueeze(-1)).squeeze(-1)
    new = (old + shift) % k
    return discrete.scatter(1, coordinate.unsqueeze(-1), new.unsqueeze(-1))


def random_walk_proposal(
    continuous: torch.Tensor, step: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """``z + step * xi`` with ``xi ~ N(0, I)``; ``step`` has shape ``(C,)``."""
    noise = torch.randn(
        continuous.shape, generator=generator, dtype=continuous.dtype, device=continuous.device
    )
    return continuous + step.unsqueeze(-1) * noise


def mala_log_proposal_density(
    z_to: torch.Tensor, z_from: torch.Tensor, grad_from: torch.Tensor, step: torch.Tensor
) -> torch.Tensor:
    r""":math:`\log q(z_{to} | z_{from})` of MALA up to a constant that is the same both ways
    (the step size is), shape ``(C,)``."""
    eps = step.unsqueeze(-1)
    mean = z_from + 0.5 * eps**2 * grad_from
    return -((z_to - mean) ** 2).sum(-1) / (2 * step**2)


def discrete_mh_update(
    state: MHState,
    log_density_fn: LogDensityFn,
    cardinalities: torch.Tensor,
    generator: torch.Generator,
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    """One :func:`flip_proposal` move per chain, accepted or rejected.

    Returns ``(state, accept_prob, accepted)``; ``state.grad`` is *not* refreshed (the caller
    recomputes it when a gradient-based move follows).
    """
    with torch.no_grad():
        proposed = flip_proposal(state.discrete, cardinalities, generator)
        log_p = log_density_fn(proposed, state.continuous)
        accepted, prob = metropolis_accept(log_accept_ratio(log_p, state.log_density), generator)
    new = state._replace(
        discrete=select(accepted, proposed, state.discrete),
        log_density=torch.where(accepted, log_p, state.log_density),
    )
    return new, prob, accepted


def continuous_mh_update(
    state: MHState,
    log_density_fn: LogDensityFn,
    generator: torch.Generator,
    proposal: str,
    warmup: bool,
    adapt_step_size: bool,
    target_accept: float,
) -> tuple[MHState, torch.Tensor, torch.Tensor]:
    """One random-walk or MALA move per chain, accepted or rejected; adapts the step size
    when ``warmup and adapt_step_size``. Returns ``(state, accept_prob, accepted)``."""
    eps = step_size(state.adaptation, warmup).to(state.continuous.dtype)
    z = state.continuous
    if proposal == "mala":
        noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        e = eps.unsqueeze(-1)
        proposed = z + 0.5 * e**2 * state.grad + e * noise
        log_p, grad = value_and_grad(log_density_fn, state.discrete, proposed)
        log_q_forward = mala_log_proposal_density(proposed, z, state.grad, eps)
        log_q_backward = mala_log_proposal_density(z, proposed, grad, eps)
        log_ratio = log_accept_ratio(log_p, state.log_density, log_q_forward, log_q_backward)
    else:
        with torch.no_grad():
            proposed = random_walk_proposal(z, eps, generator)
            log_p = log_density_fn(state.discrete, proposed)
        grad = state.grad
        log_ratio = log_accept_ratio(log_p, state.log_density)
    accepted, prob = metropolis_accept(log_ratio, generator)
    adaptation = state.adaptation
    if warmup and adapt_step_size:
        adaptation = dual_averaging_update(adaptation, prob, target_accept)
    new = MHState(
        discrete=state.discrete,
        continuous=select(accepted, proposed, z),
        log_density=torch.where(accepted, log_p, state.log_density),
        grad=select(accepted, grad, state.grad),
        adaptation=adaptation,
    )
    return new, prob, accepted


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
        self.step_size = check_positive_float(step_size, "step_size")
        if not isinstance(adapt_step_size, bool):
            raise TypeError(f"adapt_step_size must be a bool, got {type(adapt_step_size).__name__}")
        self.adapt_step_size = adapt_step_size and not callable(proposal)
        if target_accept is None:
            target_accept = TARGET_ACCEPT.get(self.proposal, 0.234)  # type: ignore[arg-type]
        target_accept = check_positive_float(target_accept, "target_accept")
        if target_accept >= 1:
            raise ValueError(f"target_accept must lie in (0, 1), got {target_accept}")
        self.target_accept = target_accept
        super().__init__(model_args, model_kwargs)
        self._target: PyroTarget | None = None

    @property
    def target(self) -> PyroTarget:
        """The model as a batched target (see :class:`~pyrogen.infer.DiscreteGibbs`)."""
        if self._target is None:
            self._prepare(self.model_args, self.model_kwargs)
        return self._target  # type: ignore[return-value]

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        target = PyroTarget(self.model, model_args, model_kwargs)
        if not target.site_names:
            raise ValueError("the model has no latent sites: nothing for MetropolisHastings")
        target.check_vectorized(batch_continuous=True)
        self._target = target
        # Integer draws (Categorical) reach mcmc.get_samples() as long (integer_draws).
        self.transforms = {**integer_transforms(target.discrete_sites), **target.transforms}

    @property
    def device(self) -> torch.device:
        return self.target.device

    def log_density_fn(self, discrete: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """The log target at flat coordinates ``(C, D)``, ``(C, D_c)``; shape ``(C,)``."""
        return self.target.log_density(discrete, continuous, jacobian=not callable(self.proposal))

    def _evaluate(
        self, discrete: torch.Tensor, continuous: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.proposal == "mala" and self.target.num_continuous:
            return value_and_grad(self.log_density_fn, discrete, continuous)
        with torch.no_grad():
            log_p = self.log_density_fn(discrete, continuous)
        return log_p, continuous.new_zeros(continuous.shape[0], 0)

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
        target = self.target
        if callable(self.proposal):
            return self._user_step(state, generator)
        info: dict[str, torch.Tensor] = {}
        if target.num_discrete:
            state, prob, accepted = discrete_mh_update(
                state, self.log_density_fn, target.cardinalities, generator
            )
            if self.proposal == "mala" and target.num_continuous:
                # The gradient at the current point changed with the discrete values.
                log_p, grad = value_and_grad(self.log_density_fn, state.discrete, state.continuous)
                state = state._replace(log_density=log_p, grad=grad)
            info.update(accept_prob=prob, accepted=accepted)
        if target.num_continuous:
            if "accept_prob" in info:
                info["discrete_accept_prob"] = info["accept_prob"]
            state, prob, accepted = continuous_mh_update(
                state,
                self.log_density_fn,
                generator,
                self.proposal,  # type: ignore[arg-type]
                warmup,
                self.adapt_step_size,
                self.target_accept,
            )
            info.update(accept_prob=prob, accepted=accepted)
        info["step_size"] = step_size(state.adaptation, warmup)
        return state, info

    def _user_step(
        self, state: MHState, generator: torch.Generator
    ) -> tuple[MHState, dict[str, torch.Tensor]]:
        target = self.target
        num_chains = state.log_density.shape[0]
        values = self.chain_values(state)
        out = self.proposal(values, generator)  # type: ignore[operator]
        if not (isinstance(out, tuple) and len(out) == 3):
            raise TypeError(
                "a proposal callable must return (new_values, log_q_forward, log_q_backward)"
            )
        new_values, log_q_forward, log_q_backward = out
        if not isinstance(new_values, dict) or set(new_values) != set(values):
            raise ValueError(
                f"the proposal must return values for exactly the sites {sorted(values)}"
            )
        for name, q in (("log_q_forward", log_q_forward), ("log_q_backward", log_q_backward)):
            q = torch.as_tensor(q)
            if q.dim() > 1 or (q.dim() == 1 and q.shape[0] != num_chains):
                raise ValueError(f"{name} must have shape ({num_chains},), got {tuple(q.shape)}")
        batch = torch.Size([num_chains])
        discrete = target.encode_discrete(new_values, batch)
        continuous = target.unconstrain(new_values, batch)
        with torch.no_grad():
            log_p = self.log_density_fn(discrete, continuous)
            log_ratio = log_accept_ratio(log_p, state.log_density, log_q_forward, log_q_backward)
            accepted, prob = metropolis_accept(log_ratio, generator)
        new = state._replace(
            discrete=select(accepted, discrete, state.discrete),
            continuous=select(accepted, continuous, state.continuous),
            log_density=torch.where(accepted, log_p, state.log_density),
        )
        return new, {"accept_prob": prob, "accepted": accepted}

    def chain_values(self, state: MHState) -> dict[str, torch.Tensor]:
        target = self.target
        values = target.discrete_values(state.discrete) if target.num_discrete else {}
        if target.num_continuous:
            with torch.no_grad():
                values.update(target.continuous_values(state.continuous)[0])
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
        if self._state is None or callable(self.proposal) or not self.target.num_continuous:
            return {}
        warmup = self._t <= adaptation_steps(self._warmup_steps)  # the step just taken
        eps = float(step_size(self._state.adaptation, warmup).mean())
        return {"step size": f"{eps:.2e}"}
