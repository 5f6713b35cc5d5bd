r"""Single-site Gibbs sampling of the discrete latent sites of any Pyro model.

Coordinate :math:`d` (one entry of a discrete site, :math:`k_d` values) is redrawn from its
full conditional, computed from the model's log joint at every value of the coordinate:

.. math:: P(x_d = j \mid x_{-d}) =
          \frac{p(x_{-d}, x_d = j)}{\sum_{i < k_d} p(x_{-d}, x_d = i)}
          = \operatorname{softmax}_j \log p(x_{-d}, x_d = j).

All :math:`k_d` values of every chain's coordinate go through the model as one batch of shape
``(K, C)`` (``K = max k_d``; padding values get probability 0). A step is a sweep of ``D``
coordinate updates: in order :math:`1..D` (``scan="systematic"``; invariant, not reversible)
or ``D`` coordinates drawn uniformly with replacement, independently per chain
(``scan="random"``; each update, hence the sweep, is reversible). References: Geman & Geman
(1984); Liu, *Monte Carlo Strategies in Scientific Computing* (2001), section 6.1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import torch

from pyrogen._validation import check_choice, check_positive_int
from pyrogen.infer.chain_kernel import ChainKernel
from pyrogen.infer.pyro_target import PyroTarget

__all__ = [
    "DiscreteGibbs",
    "DiscreteGibbsState",
    "coordinate_log_conditional",
    "gibbs_update",
    "scan_order",
    "discrete_gibbs_sweep",
]

#: ``log_joint_fn(discrete)``: value indices ``(K, C, D)`` -> log joint ``(K, C)``.
LogJointFn = Callable[[torch.Tensor], torch.Tensor]


class DiscreteGibbsState(NamedTuple):
    """Value indices of every discrete coordinate, shape ``(C, D)`` (long)."""

    discrete: torch.Tensor


def coordinate_log_conditional(
    discrete: torch.Tensor,
    coordinate: torch.Tensor,
    log_joint_fn: LogJointFn,
    cardinalities: torch.Tensor,
) -> torch.Tensor:
    r"""Full conditional :math:`\log P(x_d = j | x_{-d})` of chain ``c``'s coordinate
    ``d = coordinate[c]``, for ``j < K``; shape ``(C, K)``, ``-inf`` for ``j >= k_d``.

    ``discrete`` ``(C, D)``: current value indices; ``coordinate`` ``(C,)``;
    ``cardinalities`` ``(D,)``. One call of ``log_joint_fn`` on ``(K, C, D)`` candidates.
    """
    num_chains, num_coords = discrete.shape
    k = cardinalities[coordinate]  # (C,)
    values = torch.arange(int(cardinalities.max()), device=discrete.device).unsqueeze(-1)
    candidates = discrete.unsqueeze(0).expand(values.shape[0], num_chains, num_coords).clone()
    # Padding values (j >= k_d) are evaluated at a valid value and then masked out.
    column = torch.minimum(values, k - 1).unsqueeze(-1)  # (K, C, 1)
    candidates.scatter_(2, coordinate.expand(values.shape[0], num_chains).unsqueeze(-1), column)
    logits = log_joint_fn(candidates).masked_fill(values >= k, -torch.inf)
    return torch.log_softmax(logits.T, dim=-1)


def gibbs_update(
    discrete: torch.Tensor,
    coordinate: torch.Tensor,
    log_joint_fn: LogJointFn,
    cardinalities: torch.Tensor,
    generator: torch.Generator,
) -> torch.Tensor:
    """Redraw coordinate ``coordinate[c]`` of every chain ``c`` from its full conditional;
    returns the new ``(C, D)`` value indices."""
    with torch.no_grad():
        log_p = coordinate_log_conditional(discrete, coordinate, log_joint_fn, cardinalities)
        new = torch.multinomial(log_p.exp(), 1, generator=generator)
    return discrete.scatter(1, coordinate.unsqueeze(-1), new)


def scan_order(
    num_chains: int,
    num_coordinates: int,
    scan: str,
    generator: torch.Generator,
    device: torch.device,
) -> torch.Tensor:
    """The coordinates a sweep updates, shape ``(D, C)``: row ``t`` is update ``t``."""
    if scan == "systematic":
        order = torch.arange(num_coordinates, device=device)
        return order.unsqueeze(-1).expand(num_coordinates, num_chains)
    return torch.randint(
        num_coordinates, (num_coordinates, num_chains), generator=generator, device=device
    )


def discrete_gibbs_sweep(
    state: DiscreteGibbsState,
    log_joint_fn: LogJointFn,
    cardinalities: torch.Tensor,
    generator: torch.Generator,
    scan: str = "random",
) -> DiscreteGibbsState:
    """One sweep of ``D`` single-coordinate Gibbs updates of every chain (pure)."""
    discrete = state.discrete
    num_chains, num_coords = discrete.shape
    for coordinate in scan_order(num_chains, num_coords, scan, generator, discrete.device):
        discrete = gibbs_update(discrete, coordinate, log_joint_fn, cardinalities, generator)
    return DiscreteGibbsState(discrete)


class DiscreteGibbs(ChainKernel):
    r"""Single-site Gibbs for Pyro models whose latent sites are all discrete and enumerable.

    A Pyro ``MCMCKernel`` and a :class:`~pyrogen.infer.VectorizedKernel`.

    Args:
        model: a Pyro model. Its latent sites (found from a prototype trace) must be
            Bernoulli / Categorical / OneHotCategorical or any distribution with
            ``has_enumerate_support``, of any batch/event shape, possibly wrapped in
            ``.to_event``/``.mask``/``.expand``. Continuous latent sites are rejected: use
            :class:`~pyrogen.infer.GibbsWithinHMC` or
            :class:`~pyrogen.infer.MetropolisHastings`. The model must broadcast over extra
            leading batch dimensions (checked).
        scan: ``"random"`` or ``"systematic"`` coordinate order (see the module docstring).
        model_args, model_kwargs: model arguments for :meth:`init_chains` without ``MCMC``
            (``MCMC.run(*args, **kwargs)`` overrides them).

    One step is one sweep of ``D`` coordinate updates, each one batched model call over
    ``(max cardinality, chains)``.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyro.infer import MCMC
        >>> def model():
        ...     x = pyro.sample("x", dist.Bernoulli(torch.full((3,), 0.5)).to_event(1))
        ...     pyro.factor("coupling", 1.5 * (x[..., 0] * x[..., 1]))
        >>> mcmc = MCMC(DiscreteGibbs(model), num_samples=50, warmup_steps=10,
        ...             disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["x"].shape
        torch.Size([50, 3])
    """

    def __init__(
        self,
        model: Callable[..., Any],
        scan: Literal["random", "systematic"] = "random",
        *,
        model_args: Sequence[Any] = (),
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model, got {type(model).__name__}")
        self.model = model
        self.scan = check_choice(scan, "scan", ("random", "systematic"))
        super().__init__(model_args, model_kwargs)
        self._target: PyroTarget | None = None

    @property
    def target(self) -> PyroTarget:
        """The model as a batched target (built from the constructor's model arguments
        unless ``setup`` rebuilt it from ``MCMC.run``'s)."""
        if self._target is None:
            self._prepare(self.model_args, self.model_kwargs)
        return self._target  # type: ignore[return-value]

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        target = PyroTarget(self.model, model_args, model_kwargs)
        if not target.num_discrete:
            raise ValueError(
                "the model has no latent discrete sites with enumerable support "
                "(Bernoulli, Categorical, OneHotCategorical, ...): nothing for DiscreteGibbs "
                "to sample"
            )
        if target.num_continuous:
            raise ValueError(
                "DiscreteGibbs samples discrete sites only; the model has continuous latent "
                f"sites {[s.name for s in target.continuous_sites]}. Use GibbsWithinHMC or "
                "MetropolisHastings"
            )
        target.check_vectorized(batch_continuous=False)
        self._target = target
        self.transforms = {}

    @property
    def device(self) -> torch.device:
        return self.target.device

    def log_joint_fn(self, discrete: torch.Tensor) -> torch.Tensor:
        """The model's log joint at value indices ``(*batch, D)``; shape ``batch``."""
        return self.target.log_joint(self.target.discrete_values(discrete), discrete.dim() - 1)

    # -------------------------------------------------------- VectorizedKernel
    def init_chains(
        self,
        num_chains: int,
        *,
        generator: torch.Generator,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> DiscreteGibbsState:
        """Chains start at ``initial_params`` (site values, ``(C, *shape)`` or ``shape``) or
        uniformly at random over each coordinate's values."""
        check_positive_int(num_chains, "num_chains")
        target = self.target
        discrete, _ = target.initial_state(num_chains, generator)
        if initial_params:
            given, _ = target.initial_from_values(initial_params, num_chains)
            if given is not None:
                discrete = given
        return DiscreteGibbsState(discrete)

    def step_chains(
        self, state: DiscreteGibbsState, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[DiscreteGibbsState, dict[str, torch.Tensor]]:
        """One sweep; ``info["accept_prob"]`` is ones. ``warmup`` changes nothing."""
        target = self.target
        new = discrete_gibbs_sweep(
            state, self.log_joint_fn, target.cardinalities, generator, self.scan
        )
        ones = torch.ones(new.discrete.shape[0], dtype=target.dtype, device=target.device)
        return new, {"accept_prob": ones}

    def chain_values(self, state: DiscreteGibbsState) -> dict[str, torch.Tensor]:
        return self.target.discrete_values(state.discrete)
