r"""Single-site Gibbs sampling of the discrete latent sites of any Pyro model.

Coordinate :math:`d` (one entry of a discrete site, :math:`k_d` values) is redrawn from its
full conditional, computed from the model's log joint at every value of the coordinate:

.. math:: P(x_d = j \mid x_{-d}) =
          \frac{p(x_{-d}, x_d = j)}{\sum_{i < k_d} p(x_{-d}, x_d = i)}
          = \operatorname{softmax}_j \log p(x_{-d}, x_d = j).

All :math:`k_d` values of the coordinate go through the model as one batch; chains updating
coordinates of different cardinalities are evaluated in one batch per cardinality, so a sweep
costs :math:`\sum_d k_d` evaluations per chain. A step is a sweep of ``D``
coordinate updates, in one of three orders:

* ``scan="permutation"`` (the default): every coordinate once, in a fresh uniformly random
  order per chain and sweep (random scan without replacement). The sweep kernel
  :math:`K = \frac{1}{D!}\sum_\sigma P_{\sigma(1)} \cdots P_{\sigma(D)}` is reversible,
  since reversing a uniform permutation gives a uniform permutation, so its adjoint
  :math:`\frac{1}{D!}\sum_\sigma P_{\sigma(D)} \cdots P_{\sigma(1)}` is :math:`K` itself;
  and no coordinate is left out of a sweep, which mixes better per sweep than drawing with
  replacement (a coordinate is missed with probability :math:`(1 - 1/D)^D \approx e^{-1}`);
* ``scan="random"``: ``D`` coordinates drawn uniformly with replacement, independently per
  chain (each update, hence the sweep, is reversible);
* ``scan="systematic"``: in order :math:`1..D` (invariant, not reversible).

**Blocks** (``blocks="auto"``, the default): the elements of a discrete site inside
``pyro.plate`` that are conditionally independent along the plate (a mixture's assignments)
form one update unit, redrawn together from one batched model call, and a user colouring
(``blocks={"x": colours}``) makes each colour a unit (:mod:`pyrogen.infer.gibbs_blocks`). A
sweep then visits every *unit* once (in the scan order above), so a plate of ``N`` assignments
costs one model call per sweep instead of ``N``. Each unit update is the exact Gibbs update of
its coordinates, so the sweep keeps the reversibility and invariance stated above.

References: Geman & Geman (1984); Liu, *Monte Carlo Strategies in Scientific Computing*
(2001), section 6.1; Roberts & Sahu (1997) on scan orders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, cast

import torch

from pyrogen._validation import check_choice, check_positive_int
from pyrogen.infer.base import ChainKernel
from pyrogen.infer.gibbs_blocks import (
    BLOCKS,
    GibbsPlan,
    colour_block_groups,
    coordinates_log_conditional,
    draw_block,
    gibbs_plan,
    gumbel_max,
    plate_block_log_conditional,
)
from pyrogen.infer.integer_draws import integer_transforms
from pyrogen.infer.pyro_target import ChainLogJoint, PyroTarget, discrete_target, restrict_chains
from pyrogen.infer.site_layout import SiteLayout

__all__ = [
    "DiscreteGibbs",
    "DiscreteGibbsState",
    "coordinate_log_conditional",
    "gibbs_update",
    "gibbs_update_carrying",
    "coordinate_log_joints",
    "normalise_joints",
    "SCANS",
    "scan_order",
    "discrete_gibbs_sweep",
    "blocked_gibbs_sweep",
    "posterior_dependencies",
    "initial_discrete_state",
    "MAX_INIT_ATTEMPTS",
]

#: The coordinate orders of a sweep (see the module docstring); the first is the default.
SCANS = ("permutation", "random", "systematic")

#: Random restarts tried for chains that start where the density is zero.
MAX_INIT_ATTEMPTS = 100

#: ``log_joint_fn(discrete)``: value indices ``(K, C, D)`` -> log joint ``(K, C)``.
LogJointFn = Callable[[torch.Tensor], torch.Tensor]


class DiscreteGibbsState(NamedTuple):
    """Value indices of every discrete coordinate, shape ``(C, D)`` (long)."""

    discrete: torch.Tensor


def coordinate_log_joints(
    discrete: torch.Tensor,
    coordinate: torch.Tensor,
    log_joint_fn: LogJointFn,
    cardinalities: torch.Tensor,
    current: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Unnormalised :math:`\log p(x_{-d}, x_d = j)` of chain ``c``'s coordinate
    ``d = coordinate[c]`` for ``j < K = max_d k_d``; shape ``(C, K)``, ``-inf`` for
    ``j >= k_d``.

    ``discrete`` ``(C, D)``: current value indices; ``coordinate`` ``(C,)``;
    ``cardinalities`` ``(D,)``; ``current`` ``(C,)``: the log joint at ``discrete`` when the
    caller knows it (a sweep carries it from one update to the next). Candidates are the
    current state shifted, :math:`x_d \leftarrow (x_d + s) \bmod k_d` for
    :math:`s = 1, \dots, k_d - 1`, plus the current state itself unless ``current`` is given:
    a bit costs one model evaluation per chain instead of two. Chains are grouped by the
    cardinality :math:`k` of the coordinate they update, one call of ``log_joint_fn`` per group
    (so ``log_joint_fn`` must accept any subset of the chains).
    """
    num_chains, num_coords = discrete.shape
    k = cardinalities[coordinate]  # (C,)
    groups = sorted(set(k.tolist()))  # (torch.unique can deadlock in forked workers)
    width = int(cardinalities.max())
    # Column s holds shift s; without ``current`` shift 0 (the state itself) joins the call.
    first = 0 if current is None else 1
    shifted = torch.full((num_chains, width), -torch.inf, device=discrete.device)
    for card in groups:
        if card == first:
            continue
        if len(groups) == 1:
            rows, sub, coord = slice(None), discrete, coordinate
        else:
            rows = (k == card).nonzero().squeeze(-1)
            sub, coord = discrete[rows], coordinate[rows]
        n = sub.shape[0]
        value = sub.gather(1, coord.unsqueeze(-1))  # (C_k, 1)
        shifts = torch.arange(first, card, device=discrete.device).unsqueeze(-1)
        moved = (value.T + shifts) % card  # (k - first, C_k)
        candidates = sub.unsqueeze(0).expand(card - first, n, num_coords).clone()
        candidates.scatter_(2, coord.expand(card - first, n).unsqueeze(-1), moved.unsqueeze(-1))
        out = restrict_chains(log_joint_fn, rows)(candidates).T  # (C_k, k - first)
        shifted = shifted.to(out.dtype)
        shifted[rows, first:card] = out
    if current is not None:
        shifted = shifted.to(current.dtype)
        shifted[:, 0] = current
    # Column s holds shift s; put value j = (x_d + s) mod k_d in column j.
    value = discrete.gather(1, coordinate.unsqueeze(-1))  # (C, 1)
    columns = torch.arange(width, device=discrete.device)
    target = torch.where(columns < k.unsqueeze(-1), (value + columns) % k.unsqueeze(-1), columns)
    return torch.empty_like(shifted).scatter_(1, target, shifted)


def coordinate_log_conditional(
    discrete: torch.Tensor,
    coordinate: torch.Tensor,
    log_joint_fn: LogJointFn,
    cardinalities: torch.Tensor,
    current: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Full conditional :math:`\log P(x_d = j | x_{-d})` of chain ``c``'s coordinate
    ``d = coordinate[c]``, for ``j < K = max_d k_d``; shape ``(C, K)``, ``-inf`` for
    ``j >= k_d``: the log-softmax of :func:`coordinate_log_joints` (arguments as there).

    A sweep evaluates :math:`\sum_d (k_d - 1)` states per chain, plus one for the start. A
    chain whose conditional is ``-inf`` (or NaN) at every value gets a row of NaN:
    :func:`gibbs_update` turns that into an error naming the coordinate.

    Example (two bits and a three-valued coordinate; independent uniform prior):
        >>> fn = lambda d: torch.zeros(d.shape[:-1])
        >>> cond = coordinate_log_conditional(
        ...     torch.zeros(1, 3, dtype=torch.long), torch.tensor([2]), fn,
        ...     torch.tensor([2, 2, 3]))
        >>> cond.exp()
        tensor([[0.3333, 0.3333, 0.3333]])
    """
    joints = coordinate_log_joints(discrete, coordinate, log_joint_fn, cardinalities, current)
    return normalise_joints(joints)


def normalise_joints(joints: torch.Tensor) -> torch.Tensor:
    """Log conditionals ``(C, K)`` from the unnormalised log joints of a coordinate's values
    (a log-softmax over the values)."""
    return torch.log_softmax(joints, dim=-1)


def gibbs_update(
    discrete: torch.Tensor,
    coordinate: torch.Tensor,
    log_joint_fn: LogJointFn,
    cardinalities: torch.Tensor,
    generator: torch.Generator,
    coordinate_names: Sequence[str] | None = None,
) -> torch.Tensor:
    """Redraw coordinate ``coordinate[c]`` of every chain ``c`` from its full conditional;
    returns the new ``(C, D)`` value indices.

    Raises ``ValueError`` naming the coordinate (``coordinate_names[d]`` when given) when a
    chain's conditional has no value with finite density."""
    new, _ = gibbs_update_carrying(
        discrete, None, coordinate, log_joint_fn, cardinalities, generator, coordinate_names
    )
    return new


def gibbs_update_carrying(
    discrete: torch.Tensor,
    current: torch.Tensor | None,
    coordinate: torch.Tensor,
    log_joint_fn: LogJointFn,
    cardinalities: torch.Tensor,
    generator: torch.Generator,
    coordinate_names: Sequence[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`gibbs_update` that also takes and returns the log joint ``(C,)`` of the chains'
    state (``current``: at ``discrete``, ``None`` when unknown; returned: at the new state),
    so that consecutive updates do not evaluate the current state again."""
    with torch.no_grad():
        joints = coordinate_log_joints(discrete, coordinate, log_joint_fn, cardinalities, current)
        log_p = normalise_joints(joints)
        bad = ~(log_p.amax(-1) > -torch.inf)  # NaN anywhere, or -inf everywhere
        if bool(bad.any()):
            chain = int(bad.nonzero()[0, 0])
            d = int(coordinate[chain])
            name = coordinate_names[d] if coordinate_names is not None else f"coordinate {d}"
            raise ValueError(
                f"the full conditional of discrete site {name} is -inf (or NaN) at every value "
                f"in chain {chain}: the model has zero density whatever that site's value, given "
                "the other sites. Start the chains inside the support (initial_params) or check "
                "the model's constraints"
            )
        new = gumbel_max(log_p, generator).unsqueeze(-1)  # (C, 1)
    return discrete.scatter(1, coordinate.unsqueeze(-1), new), joints.gather(1, new).squeeze(-1)


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
    if scan == "permutation":
        keys = torch.rand((num_chains, num_coordinates), generator=generator, device=device)
        return keys.argsort(-1).T
    return torch.randint(
        num_coordinates, (num_coordinates, num_chains), generator=generator, device=device
    )


def discrete_gibbs_sweep(
    state: DiscreteGibbsState,
    log_joint_fn: LogJointFn,
    cardinalities: torch.Tensor,
    generator: torch.Generator,
    scan: str = "permutation",
    coordinate_names: Sequence[str] | None = None,
) -> DiscreteGibbsState:
    """One sweep of ``D`` single-coordinate Gibbs updates of every chain (pure)."""
    discrete = state.discrete
    num_chains, num_coords = discrete.shape
    current: torch.Tensor | None = None
    for coordinate in scan_order(num_chains, num_coords, scan, generator, discrete.device):
        discrete, current = gibbs_update_carrying(
            discrete, current, coordinate, log_joint_fn, cardinalities, generator,
            coordinate_names,
        )  # fmt: skip
    return DiscreteGibbsState(discrete)


def blocked_gibbs_sweep(
    state: DiscreteGibbsState,
    plan: GibbsPlan,
    log_joint_fn: Callable[..., torch.Tensor],
    cardinalities: torch.Tensor,
    generator: torch.Generator,
    scan: str = "permutation",
    coordinate_names: Sequence[str] | None = None,
) -> DiscreteGibbsState:
    """One sweep over the update units of ``plan`` (plate-block rows, colours, single
    coordinates), each visited once per chain in the ``scan`` order (pure).

    ``log_joint_fn(discrete (*batch, D), plate_dims=())`` is the log joint (per plate element
    when ``plate_dims`` is given). Chains that reach the same kind of unit at the same update
    share one model call: a sweep costs at most (plate-blocked sites + colours +
    distinct cardinalities) calls per unit position, and a plan of single coordinates is
    exactly :func:`discrete_gibbs_sweep`."""
    if not plan.plate and not plan.colour:
        return discrete_gibbs_sweep(
            state, log_joint_fn, cardinalities, generator, scan, coordinate_names
        )
    discrete = state.discrete.clone()  # updated in place below; the input stays as it was
    num_chains = discrete.shape[0]
    names = list(coordinate_names) if coordinate_names is not None else None
    starts, start = [], 0
    for block in plan.plate:
        starts.append(start)
        start += int(block.coordinates.shape[0])
    colour_start = start
    single_start = colour_start + len(plan.colour)
    colour_groups = plan.colour_groups
    if colour_groups is None:  # a plan built by hand
        colour_groups = colour_block_groups(plan.colour, discrete.device)
    order = scan_order(num_chains, plan.num_units, scan, generator, discrete.device)
    # The log joint (C,) at the chains' state, carried through single-coordinate updates
    # (so each costs k - 1 evaluations) and forgotten when a block moves.
    current: torch.Tensor | None = None
    for units in order:
        every = bool((units == units[0]).all()) if num_chains > 1 else True
        for block, lo in zip(plan.plate, starts, strict=True):
            hi = lo + int(block.coordinates.shape[0])
            if every:
                if not lo <= int(units[0]) < hi:
                    continue
                rows: torch.Tensor | slice = slice(None)
                picked = units
            else:
                selected = ((units >= lo) & (units < hi)).nonzero().squeeze(-1)
                if selected.numel() == 0:
                    continue
                rows = selected
                picked = units[selected]
            coords = block.coordinates[picked - lo]
            sub = discrete[rows]
            fn = restrict_chains(log_joint_fn, rows)
            log_block = plate_block_log_conditional(sub, coords, block, fn)
            discrete[rows] = draw_block(sub, coords, log_block, generator, names)
            current = None
        for members, table, k in colour_groups:
            # Chains on any colour of one group (same size and cardinality) share a call.
            index = members[(units - colour_start).clamp(0, len(plan.colour) - 1)]
            mask = (units >= colour_start) & (units < single_start) & (index >= 0)
            if not bool(mask.any()):
                continue
            rows = slice(None) if bool(mask.all()) else mask.nonzero().squeeze(-1)
            sub = discrete[rows]
            coords = table[index[rows]]  # (C_g, m)
            fn = restrict_chains(log_joint_fn, rows)
            log_p = coordinates_log_conditional(sub, coords, k, fn)
            discrete[rows] = draw_block(sub, coords, log_p, generator, names)
            current = None
        mask = units >= single_start
        if bool(mask.any()):
            rows = slice(None) if bool(mask.all()) else mask.nonzero().squeeze(-1)
            sub = discrete[rows]
            coordinate = plan.singles[units[rows] - single_start]
            fn = restrict_chains(log_joint_fn, rows)
            known = None if current is None else current[rows]
            discrete[rows], log_joint = gibbs_update_carrying(
                sub, known, coordinate, fn, cardinalities, generator, coordinate_names
            )
            if current is not None:
                current[rows] = log_joint
            elif isinstance(rows, slice):
                current = log_joint
    return DiscreteGibbsState(discrete)


def posterior_dependencies(
    model: Callable[..., Any], model_args: Sequence[Any], model_kwargs: dict[str, Any]
) -> dict[str, dict[str, set[str]]] | None:
    """Pyro's ``posterior_dependencies`` of the model
    (:func:`pyro.infer.inspect.get_dependencies`), or ``None`` when the analysis fails (then
    no plate blocks are used). Runs on a fork of the global RNG."""
    import pyro.poutine as poutine
    from pyro.infer.inspect import get_dependencies

    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with poutine.block(), torch.random.fork_rng(devices=cuda):
            found = get_dependencies(model, tuple(model_args), dict(model_kwargs))
    except Exception:  # provenance tracking does not support every model
        return None
    # Pyro types the result as dict[str, object]; this entry is {site: {site: {plates}}}.
    return cast("dict[str, dict[str, set[str]]]", found["posterior_dependencies"])


def initial_discrete_state(
    target: SiteLayout,
    num_chains: int,
    log_joint_fn: LogJointFn,
    generator: torch.Generator,
    given: torch.Tensor | None = None,
) -> torch.Tensor:
    """Starting value indices ``(C, D)`` where ``log_joint_fn`` is finite.

    ``given`` (value indices from ``initial_params``) is used as it is and must have finite
    density; otherwise each coordinate starts uniformly at random over its values and chains
    that land where the density is zero are redrawn, up to 100 times (as
    :class:`~pyrogen.infer.MetropolisHastings` does). Raises ``ValueError`` when chains still
    have zero density.
    """
    discrete = given if given is not None else target.initial_state(num_chains, generator)[0]
    with torch.no_grad():
        bad = ~torch.isfinite(log_joint_fn(discrete))
        for _ in range(0 if given is not None else MAX_INIT_ATTEMPTS):
            if not bool(bad.any()):
                break
            fresh = target.initial_state(num_chains, generator)[0]
            discrete = torch.where(bad.unsqueeze(-1), fresh, discrete)
            bad = ~torch.isfinite(log_joint_fn(discrete))
    if bool(bad.any()):
        where = (
            "initial_params give"
            if given is not None
            else (
                f"after {MAX_INIT_ATTEMPTS} uniformly random restarts, {int(bad.sum())} chains have"
            )
        )
        raise ValueError(
            f"{where} a discrete state where the model's log density is -inf or NaN; pass "
            "initial_params inside the support (all discrete sites)"
        )
    return discrete


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
        scan: ``"permutation"`` (default), ``"random"`` or ``"systematic"`` order of the
            update units (see the module docstring).
        blocks: ``"auto"`` (default): conditionally independent plate elements are updated
            together (detected from the plates and Pyro's dependency analysis, then checked
            numerically; :attr:`plan` shows the result); ``"none"``: one coordinate at a time;
            or ``{site: colours}``, an integer tensor of the site's coordinate shape whose
            colours are conditionally independent sets (checked at a random state; sites not
            named are treated as ``"auto"``).
        model_args, model_kwargs: model arguments for :meth:`init_chains` without ``MCMC``
            (``MCMC.run(*args, **kwargs)`` overrides them).

    One step is one sweep over the update units: a plate block or a colour is one batched
    model call, a single coordinate one call over ``(k_d, chains)`` per distinct cardinality
    :math:`k_d` among the chains' coordinates. Chains start where the model's density is
    finite.

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

    model: Callable[..., Any]  # always given (ChainKernel's may be None)

    def __init__(
        self,
        model: Callable[..., Any],
        scan: Literal["permutation", "random", "systematic"] = "permutation",
        *,
        blocks: str | Mapping[str, Any] | None = "auto",
        model_args: Sequence[Any] = (),
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model, got {type(model).__name__}")
        self.model = model
        self.scan = check_choice(scan, "scan", SCANS)
        if not (blocks is None or isinstance(blocks, (str, Mapping))):
            raise TypeError(
                "blocks must be 'auto', 'none' or a mapping of site names to colours, got "
                f"{type(blocks).__name__}"
            )
        if isinstance(blocks, str):
            check_choice(blocks, "blocks", BLOCKS)
        self.blocks = blocks
        super().__init__(model_args, model_kwargs)
        self._target: PyroTarget | None = None
        self._plan: GibbsPlan | None = None

    @property
    def target(self) -> PyroTarget:
        """The model as a batched target (built from the constructor's model arguments
        unless ``setup`` rebuilt it from ``MCMC.run``'s)."""
        if self._target is None:
            self._prepare(self.model_args, self.model_kwargs)
        return self._target  # type: ignore[return-value]

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        target = discrete_target(self.model, model_args, model_kwargs, "DiscreteGibbs")
        self._target = target
        # Integer draws (Categorical) reach mcmc.get_samples() as long (integer_draws).
        self.transforms = integer_transforms(target.discrete_sites)
        blocks = self.blocks if target.vectorized else "none"
        # The checks draw random states from their own generator: building the kernel leaves
        # every user-visible random stream alone.
        checks = torch.Generator(device=target.device).manual_seed(0)
        self._plan = gibbs_plan(
            target,
            blocks,
            self.log_joint_fn,
            checks,
            lambda: posterior_dependencies(self.model, model_args, model_kwargs),
        )

    @property
    def plan(self) -> GibbsPlan:
        """The update units of a sweep (plate blocks, colours, single coordinates)."""
        if self._plan is None:
            self._prepare(self.model_args, self.model_kwargs)
        return self._plan  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.target.device

    def log_joint_fn(
        self, discrete: torch.Tensor, plate_dims: tuple[int, ...] = ()
    ) -> torch.Tensor:
        """The model's log joint at value indices ``(*batch, D)``; shape ``batch`` (or
        ``(*batch, *plate_shape)`` per element of the plates ``plate_dims``)."""
        values = self.target.discrete_values(discrete)
        return self.target.log_joint(values, discrete.dim() - 1, plate_dims=plate_dims)

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
        given = None
        if initial_params:
            given, _ = target.initial_from_values(initial_params, num_chains)
        discrete = initial_discrete_state(target, num_chains, self.log_joint_fn, generator, given)
        return DiscreteGibbsState(discrete)

    def step_chains(
        self, state: DiscreteGibbsState, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[DiscreteGibbsState, dict[str, torch.Tensor]]:
        """One sweep; ``info["accept_prob"]`` is ones. ``warmup`` changes nothing.

        Chains tempered one by one (``target.beta``, set by
        :class:`~pyrogen.infer.ReplicaExchange`) keep their own inverse temperature when a
        sweep updates some of them only."""
        target = self.target
        log_joint_fn: Callable[..., torch.Tensor] = self.log_joint_fn
        if isinstance(target.beta, torch.Tensor) and target.beta.dim() == 1:
            log_joint_fn = ChainLogJoint(target, target.beta)
        new = blocked_gibbs_sweep(
            state,
            self.plan,
            log_joint_fn,
            target.cardinalities,
            generator,
            self.scan,
            target.coordinate_names,
        )
        ones = torch.ones(new.discrete.shape[0], dtype=target.dtype, device=target.device)
        return new, {"accept_prob": ones}

    def chain_values(self, state: DiscreteGibbsState) -> dict[str, torch.Tensor]:
        return self.target.discrete_values(state.discrete)
