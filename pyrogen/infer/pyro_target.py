r"""A Pyro model seen as a batched target density over flat tensors.

:class:`PyroTarget` adds to the :class:`~pyrogen.infer.site_layout.SiteLayout` of a model's
latent sites its log joint

.. math:: \log p(x) = \sum_{\text{sites } s} \log p_s(x_s \mid \text{parents}),
          \qquad \log \tilde p(z) = \log p(T(z)) + \log \lvert \det J_T(z) \rvert

for all leading (chain and candidate) dimensions in **one** traced model call: every value
gets its leading dimensions followed by singleton dimensions up to the model's plate nesting,
exactly as Pyro vectorises particles, so any model that broadcasts over extra leading batch
dimensions works. :meth:`PyroTarget.check_vectorized` verifies this against unbatched calls;
models that fail are evaluated one batch element at a time instead.

**Tempering.** The sites split into the *latent* ones (the prior terms) and the rest, the
observed sites and ``pyro.factor`` terms (the likelihood :math:`L`). At inverse temperature
:math:`\beta \in (0, 1]` the tempered log joint is

.. math:: \log p_\beta(x) = \log p_{\text{prior}}(x) + \beta \log L(x),

prior times likelihood to the power :math:`\beta`, for
:class:`~pyrogen.infer.ReplicaExchange`. :attr:`PyroTarget.beta` holds one
:math:`\beta` per chain (the last batch dimension of every :meth:`PyroTarget.log_joint`
call) while a tempered kernel steps (:meth:`PyroTarget.tempered`); its default ``None``
is :math:`\beta = 1`, the model itself, computed exactly as without tempering.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample

from pyrogen.infer.site_layout import ContinuousSite, DiscreteSite, SiteLayout, sites_from_trace

__all__ = ["PyroTarget", "ChainLogJoint", "discrete_target", "restrict_chains"]


def discrete_target(
    model: Callable[..., Any],
    model_args: Sequence[Any],
    model_kwargs: dict[str, Any],
    kernel: str,
) -> PyroTarget:
    """The target of a kernel for models whose latent sites are all discrete: built, checked
    (``ValueError`` naming ``kernel`` when there is no discrete site or a continuous one) and
    tested for broadcasting over leading batch dims."""
    target = PyroTarget(model, model_args, model_kwargs)
    if not target.num_discrete:
        raise ValueError(
            "the model has no latent discrete sites with enumerable support "
            f"(Bernoulli, Categorical, OneHotCategorical, ...): nothing for {kernel} to sample"
        )
    if target.num_continuous:
        raise ValueError(
            f"{kernel} samples discrete sites only; the model has continuous latent sites "
            f"{[s.name for s in target.continuous_sites]}. Use GibbsWithinHMC or "
            "MetropolisHastings"
        )
    target.check_vectorized(batch_continuous=False)
    # Candidate states are built from the enumerated supports, so they are valid by
    # construction; the prototype trace and the broadcasting check above ran with Pyro's
    # validation as the user set it. Skipping it in the batched calls saves about a sixth.
    target.validate = False
    return target


class PyroTarget(SiteLayout):
    """The latent-site layout and the batched log joint of a Pyro model.

    Args:
        model: Pyro model; every latent site must be present in each run (no stochastic
            control flow).
        model_args, model_kwargs: passed to every model call.

    Attributes (besides :class:`~pyrogen.infer.site_layout.SiteLayout`'s):
        max_plate_nesting: the largest number of batch dims of any site's log-probability.
        vectorized: whether :meth:`log_joint` batches in one model call.
        likelihood_sites: names of the observed sample sites and ``pyro.factor`` terms of
            the prototype trace (``pyro.deterministic`` sites left out): the terms that
            tempering scales (see the module docstring).
        beta: ``None`` (the model, :math:`\beta = 1`) or the inverse temperature of each
            chain, shape ``(C,)``, used by :meth:`log_joint` when it is given no ``beta``;
            set it with :meth:`tempered`.
        validate: whether the batched model calls of :meth:`log_joint` run with Pyro's
            argument and support validation (``None``, the default: as set globally);
            ``False`` for discrete-only targets, whose values are in the support by
            construction.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        model_args: Sequence[Any] = (),
        model_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not callable(model):
            raise TypeError(f"model must be a callable Pyro model, got {type(model).__name__}")
        self.model = model
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        # The prototype's values only give shapes and supports: draw them on a fork of the
        # global RNG so that building a kernel leaves the user's random stream where it was.
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        with poutine.block(), torch.random.fork_rng(devices=cuda):
            trace = poutine.trace(model).get_trace(*self.model_args, **self.model_kwargs)
        trace.compute_log_prob()
        self.max_plate_nesting = max(
            (site["log_prob"].dim() for site in self._scored_sites(trace)), default=0
        )
        # (name, dim, size) of each vectorised plate a latent site sits in, for Gibbs blocks.
        self.plate_frames: dict[str, tuple[tuple[str, int, int], ...]] = {
            # (a frame is vectorised exactly when it has a dim: CondIndepStackFrame.vectorized)
            name: tuple(
                (f.name, f.dim, f.size) for f in site["cond_indep_stack"] if f.dim is not None
            )
            for name, site in trace.nodes.items()
            if site["type"] == "sample"
        }
        discrete, continuous = sites_from_trace(trace)
        latent_sites: list[DiscreteSite | ContinuousSite] = [*discrete, *continuous]
        # Pyro types a message's value as optional; a sample site of a trace always has one.
        values = [cast(torch.Tensor, trace.nodes[s.name]["value"]) for s in latent_sites]
        device = values[0].device if values else torch.device("cpu")
        floats = [v.dtype for v in values if torch.is_floating_point(v)]
        super().__init__(
            discrete, continuous, device, floats[0] if floats else torch.get_default_dtype()
        )
        self.vectorized = True
        self.likelihood_sites = tuple(
            site["name"]
            for site in self._scored_sites(trace)
            if site["is_observed"] and not site["infer"].get("_deterministic", False)
        )
        self._latent_names = frozenset(self.site_names)
        self.beta: torch.Tensor | None = None
        self.validate: bool | None = None

    @contextmanager
    def tempered(self, beta: torch.Tensor | None) -> Iterator[None]:
        """Within the block, :meth:`log_joint` tempers chain ``c`` with ``beta[c]``
        (``beta`` shape ``(C,)``, ``C`` the last batch dim of every call; ``None``: untempered).

        Example:
            >>> with target.tempered(torch.tensor([1.0, 0.5])):  # doctest: +SKIP
            ...     target.log_joint(values, 1)  # chain 1 at half the likelihood
        """
        previous, self.beta = self.beta, beta
        try:
            yield
        finally:
            self.beta = previous

    @staticmethod
    def _scored_sites(trace: Any) -> list[dict[str, Any]]:
        return [
            site
            for site in trace.nodes.values()
            if site["type"] == "sample" and not site_is_subsample(site)
        ]

    # --------------------------------------------------------------- log joint
    def log_joint(
        self,
        values: dict[str, torch.Tensor],
        batch_ndim: int,
        fixed: dict[str, torch.Tensor] | None = None,
        plate_dims: tuple[int, ...] = (),
        beta: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        """Log joint of the model for a batch of latent values, in one traced call.

        Args:
            values: ``{name: (*batch, *shape)}`` for batched latent sites.
            batch_ndim: ``len(batch)``.
            fixed: ``{name: shape-valued tensor}`` for latent sites shared by the whole batch.
            plate_dims: negative plate dims (as in ``pyro.plate(..., dim=-1)``) *not* summed
                over: the result then keeps all :attr:`max_plate_nesting` plate dims, those
                summed over with size 1, so entry ``i`` of a kept dim holds the terms of plate
                index ``i`` (plus every term outside that plate, broadcast).
            beta: inverse temperature of the likelihood terms (observed sites and factors):
                a number, or one per chain, shape ``(C,)`` with ``C = batch[-1]``. ``None``
                uses :attr:`beta` (``None`` there too: untempered).

        Returns the (tempered) log joint, shape ``batch`` (observed sites and factors
        included), or ``(*batch, *plate_shape)`` with ``plate_dims``.
        """
        if beta is None:
            beta = self.beta
        if plate_dims and not self.vectorized:
            raise ValueError("plate_dims needs a model that broadcasts (vectorized)")
        if batch_ndim and not self.vectorized:
            return self._log_joint_loop(values, batch_ndim, fixed, beta)
        return self._log_terms(values, batch_ndim, fixed, plate_dims, beta, prior=True)

    def log_likelihood(
        self,
        values: dict[str, torch.Tensor],
        batch_ndim: int,
        fixed: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        r"""The untempered likelihood part :math:`\log L(x)` of :meth:`log_joint` (observed
        sites and factors, no latent site's term), shape ``batch``: the tempered log joint is
        ``prior + beta * log_likelihood``."""
        if batch_ndim and not self.vectorized:
            flat = {k: v.reshape((-1, *v.shape[batch_ndim:])) for k, v in values.items()}
            batch_shape = next(iter(values.values())).shape[:batch_ndim]
            out = []
            for i in range(batch_shape.numel()):
                single = dict(fixed or {})
                single.update({k: v[i] for k, v in flat.items()})
                out.append(self._log_terms({}, 0, single, (), None, prior=False))
            return torch.stack(out).reshape(batch_shape)
        return self._log_terms(values, batch_ndim, fixed, (), None, prior=False)

    def _log_terms(
        self,
        values: dict[str, torch.Tensor],
        batch_ndim: int,
        fixed: dict[str, torch.Tensor] | None,
        plate_dims: tuple[int, ...],
        beta: torch.Tensor | float | None,
        prior: bool,
    ) -> torch.Tensor:
        """:meth:`_site_terms` under Pyro's validation setting :attr:`validate`."""
        if self.validate is None:
            return self._site_terms(values, batch_ndim, fixed, plate_dims, beta, prior)
        with pyro.validation_enabled(self.validate):
            return self._site_terms(values, batch_ndim, fixed, plate_dims, beta, prior)

    def _site_terms(
        self,
        values: dict[str, torch.Tensor],
        batch_ndim: int,
        fixed: dict[str, torch.Tensor] | None,
        plate_dims: tuple[int, ...],
        beta: torch.Tensor | float | None,
        prior: bool,
    ) -> torch.Tensor:
        """The sum of the site terms: ``prior=True`` all of them, the likelihood ones scaled
        by ``beta``; ``prior=False`` the likelihood ones only, unscaled."""
        data = dict(fixed or {})
        batch_shape: torch.Size = torch.Size()
        nesting = self.max_plate_nesting
        sites: dict[str, DiscreteSite | ContinuousSite] = {s.name: s for s in self.discrete_sites}
        sites.update({s.name: s for s in self.continuous_sites})
        for name, value in values.items():
            layout = sites[name]
            batch_shape = value.shape[:batch_ndim]
            pad = (1,) * (nesting - layout.batch_rank)
            data[name] = value.reshape(batch_shape + pad + layout.shape)
        with poutine.block():
            conditioned = poutine.condition(self.model, data=data)
            trace = poutine.trace(conditioned).get_trace(*self.model_args, **self.model_kwargs)
        keep = {nesting + d for d in plate_dims}  # positions among the plate dims
        if any(not 0 <= k < nesting for k in keep):
            raise ValueError(
                f"plate_dims {plate_dims} must be negative dims within max_plate_nesting={nesting}"
            )
        shape = batch_shape + (1,) * nesting if keep else batch_shape
        total = torch.zeros(shape, dtype=self.dtype, device=self.device)
        scale = _beta_view(beta, batch_shape, nesting if keep else 0)
        latent = self._latent_names.union(fixed or ())
        for site in self._scored_sites(trace):
            if not site["is_observed"]:
                raise ValueError(
                    f"latent site {site['name']!r} was not in the prototype trace; models "
                    "with stochastic control flow are not supported"
                )
            is_latent = site["name"] in latent
            if not prior and is_latent:
                continue
            log_p = scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])
            tempered_scale = None if is_latent else scale  # None: not tempered
            if not isinstance(log_p, torch.Tensor) or log_p.dim() == 0:
                total = total + (tempered_scale * log_p if tempered_scale is not None else log_p)
                continue
            rank = batch_ndim + nesting
            if log_p.dim() > rank:
                raise ValueError(
                    f"site {site['name']!r} has log_prob shape {tuple(log_p.shape)}, more than "
                    f"{batch_ndim} leading batch dims + max_plate_nesting={nesting}: the model "
                    "does not broadcast over leading dimensions"
                )
            log_p = log_p.reshape((1,) * (rank - log_p.dim()) + log_p.shape)
            summed = tuple(k - nesting for k in range(nesting) if k not in keep)
            if summed:
                log_p = log_p.sum(summed, keepdim=bool(keep))
            # Tempered after the plate sums, so that the chain dim is where beta expects it.
            if tempered_scale is not None:
                log_p = tempered_scale * log_p
            total = total + log_p
        return total

    def _log_joint_loop(
        self,
        values: dict[str, torch.Tensor],
        batch_ndim: int,
        fixed: dict[str, torch.Tensor] | None,
        beta: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        """:meth:`log_joint` one batch element at a time, for models that do not broadcast."""
        if not values:
            return self.log_joint({}, 0, fixed, beta=beta)
        batch_shape = next(iter(values.values())).shape[:batch_ndim]
        flat = {k: v.reshape((-1, *v.shape[batch_ndim:])) for k, v in values.items()}
        per_element = None
        if isinstance(beta, torch.Tensor) and beta.dim() == 1:
            # Element i of the flattened batch belongs to chain i mod C (chains last).
            _beta_view(beta, batch_shape, 0)  # checks the chain dimension
            per_element = beta.repeat(batch_shape.numel() // beta.shape[0])
        out = []
        for i in range(batch_shape.numel()):
            single = dict(fixed or {})
            single.update({k: v[i] for k, v in flat.items()})
            element_beta = beta if per_element is None else per_element[i]
            out.append(self.log_joint({}, 0, single, beta=element_beta))
        return torch.stack(out).reshape(batch_shape)

    def log_density(
        self,
        discrete: torch.Tensor,
        continuous: torch.Tensor,
        fixed: dict[str, torch.Tensor] | None = None,
        jacobian: bool = True,
    ) -> torch.Tensor:
        r"""Target density in flat coordinates, :math:`\log p(x, T(z)) + \log|\det J_T(z)|`.

        ``discrete`` has shape ``(*batch, D)`` and ``continuous`` ``(*batch, D_c)`` with the
        same ``batch`` (either may have a zero-sized last dimension). Returns shape ``batch``.
        ``jacobian=False`` leaves out :math:`\log|\det J_T|`: the density of the constrained
        values, for proposals made in constrained space.
        """
        batch = discrete.shape[:-1] if self.num_discrete else continuous.shape[:-1]
        values = self.discrete_values(discrete) if self.num_discrete else {}
        ladj: torch.Tensor | float = 0.0
        if self.num_continuous:
            cont, ladj = self.continuous_values(continuous)
            values.update(cont)
        log_p = self.log_joint(values, len(batch), fixed)
        return log_p + ladj if jacobian else log_p

    def check_vectorized(self, batch_continuous: bool = True) -> bool:
        """Test whether batched calls agree with unbatched ones; set :attr:`vectorized`.

        Two distinct latent states go through the model as a batch of 2 and one at a time.
        ``batch_continuous=False`` batches only the discrete sites and holds the continuous
        ones fixed (all :class:`~pyrogen.infer.GibbsWithinHMC` needs), so models indexing a
        continuous site by a discrete one (``loc[z]``) qualify. When the model fails, a
        ``UserWarning`` says so and :meth:`log_joint` falls back to one model call per batch
        element: correct, but slow for many chains or values.
        """
        self.vectorized = True
        if not self.site_names:
            return True
        if self.num_discrete:
            discrete = torch.stack([torch.zeros_like(self.cardinalities), self.cardinalities - 1])
        else:
            discrete = torch.zeros(2, 0, dtype=torch.long, device=self.device)
        continuous = torch.linspace(
            -0.5, 0.7, 2 * self.num_continuous, dtype=self.dtype, device=self.device
        ).reshape(2, self.num_continuous)
        if not batch_continuous:
            continuous = continuous[:1].expand(2, self.num_continuous)
        problem = None
        ladj: torch.Tensor | float
        with torch.no_grad():
            try:
                if batch_continuous or not self.num_continuous:
                    batched = self.log_density(discrete, continuous)
                else:
                    fixed, ladj = self.continuous_values(continuous[0])
                    values = self.discrete_values(discrete) if self.num_discrete else {}
                    batched = self.log_joint(values, 1, fixed=fixed) + ladj
            except (ValueError, RuntimeError, IndexError) as error:
                problem = str(error)
            for i in range(2):
                values = self.discrete_values(discrete[i]) if self.num_discrete else {}
                ladj = 0.0
                if self.num_continuous:
                    cont, ladj = self.continuous_values(continuous[i])
                    values.update(cont)
                single = self.log_joint({}, 0, fixed=values) + ladj
                if problem is None and not torch.allclose(
                    batched[i], single, rtol=1e-4, atol=1e-4, equal_nan=True
                ):
                    problem = (
                        f"a batch of 2 latent states gave log joint {batched.tolist()}, one at "
                        f"a time {float(single)} for state {i}"
                    )
        if problem is not None:
            self.vectorized = False
            warnings.warn(
                "the model does not broadcast over leading batch dimensions "
                f"({problem}); pyrogen evaluates it once per chain and value instead, which "
                "is slow. To vectorise it, reduce with .sum(-1) over event dims (not .sum()), "
                "use .to_event / pyro.plate with negative dims, and index with [..., i] or "
                "pyro.ops.indexing.Vindex",
                UserWarning,
                stacklevel=3,
            )
        return self.vectorized


def _beta_view(
    beta: torch.Tensor | float | None, batch_shape: torch.Size, trailing: int
) -> torch.Tensor | float | None:
    """``beta`` shaped to multiply a term of shape ``(*batch, *(1,) * trailing)``: a number
    as it is, a ``(C,)`` tensor along the last batch dim (which must have size ``C``)."""
    if beta is None or not isinstance(beta, torch.Tensor) or beta.dim() == 0:
        return beta
    if beta.dim() != 1 or not batch_shape or batch_shape[-1] != beta.shape[0]:
        raise ValueError(
            f"beta has shape {tuple(beta.shape)}: one inverse temperature per chain needs the "
            f"chains as the last batch dim of the values, got batch shape {tuple(batch_shape)}"
        )
    return beta.reshape(beta.shape + (1,) * trailing)


class ChainLogJoint:
    """The log joint over value indices ``(*batch, C, D)`` of chains tempered one by one.

    ``log_joint_fn(discrete, plate_dims=())`` of a kernel whose chains carry their own
    inverse temperature ``beta`` ``(C,)``: kernels that update a subset of the chains take
    :func:`restrict_chains` of it, so each chain keeps its ``beta``.
    """

    def __init__(self, target: PyroTarget, beta: torch.Tensor) -> None:
        self.target, self.beta = target, beta

    def __call__(self, discrete: torch.Tensor, plate_dims: tuple[int, ...] = ()) -> torch.Tensor:
        target = self.target
        values = target.discrete_values(discrete)
        return target.log_joint(values, discrete.dim() - 1, plate_dims=plate_dims, beta=self.beta)

    def restrict(self, rows: torch.Tensor) -> ChainLogJoint:
        """The same log joint for the chains ``rows`` (indices into ``C``)."""
        return ChainLogJoint(self.target, self.beta[rows])


def restrict_chains(log_joint_fn: Callable[..., Any], rows: torch.Tensor | slice) -> Any:
    """``log_joint_fn`` evaluated on the chains ``rows`` of the batch: the function itself
    unless it carries per-chain parameters (a :class:`ChainLogJoint`)."""
    if isinstance(rows, slice) or not isinstance(log_joint_fn, ChainLogJoint):
        return log_joint_fn
    return log_joint_fn.restrict(rows)
