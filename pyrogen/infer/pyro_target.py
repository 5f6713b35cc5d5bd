r"""A Pyro model seen as a batched target density over flat tensors.

Kernels work on two flat per-chain tensors: ``discrete`` of shape ``(..., C, D)`` holding, for
each of the ``D`` discrete *coordinates*, the index of its value in the site's support, and
``continuous`` of shape ``(..., C, D_c)`` holding the continuous sites in unconstrained space
(:func:`torch.distributions.biject_to` of each site's support, as Pyro's HMC does).
:class:`PyroTarget` maps these to site values and evaluates the model's log joint

.. math:: \log p(x) = \sum_{\text{sites } s} \log p_s(x_s \mid \text{parents}),
          \qquad \log \tilde p(z) = \log p(T(z)) + \log \lvert \det J_T(z) \rvert

for all leading (chain and candidate) dimensions in **one** traced model call: every value
gets its leading dimensions followed by singleton dimensions up to the model's plate nesting,
exactly as Pyro vectorises particles, so any model that broadcasts over extra leading batch
dimensions works. This is checked once, against unbatched calls, when the target is built.

A discrete coordinate is one entry of a site's batch shape: a ``Bernoulli(p).to_event(1)``
site of shape ``(6,)`` has 6 binary coordinates; a ``OneHotCategorical`` site of shape
``(4, 3)`` has 4 coordinates with 3 values each. Sites are discrete when their distribution
(under ``Independent``/``Masked``/``Expanded`` wrappers) has ``has_enumerate_support``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import pyro.poutine as poutine
import torch
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample
from torch.distributions import Independent, biject_to
from torch.distributions.transforms import Transform

__all__ = ["DiscreteSite", "ContinuousSite", "PyroTarget"]

# Continuous chains start uniformly in (-2, 2) in unconstrained space: Pyro's default
# (init_to_uniform) for HMC/NUTS, far enough from 0 to spread chains for R-hat.
_INIT_RADIUS = 2.0


class DiscreteSite(NamedTuple):
    """A latent site with enumerable support, as laid out in the flat ``discrete`` tensor."""

    name: str
    shape: torch.Size  # value shape in one model run
    batch_rank: int  # dims of `shape` that are batch (not event) dims of the site's fn
    support: torch.Tensor  # (k, *base_event_shape): every value of one coordinate
    offset: int  # first column in the flat layout
    num_coordinates: int


class ContinuousSite(NamedTuple):
    """A latent continuous site, laid out unconstrained in the flat ``continuous`` tensor."""

    name: str
    shape: torch.Size
    batch_rank: int
    transform: Transform  # unconstrained -> constrained (biject_to(support))
    unconstrained_shape: torch.Size
    offset: int
    numel: int


def _base_distribution(fn: Any) -> Any:
    """Strip the wrappers that only reshape or mask a distribution."""
    while isinstance(fn, (Independent, MaskedDistribution, ExpandedDistribution)):
        fn = fn.base_dist
    return fn


class PyroTarget:
    """Sites, flat layouts and the batched log joint of a Pyro model.

    Args:
        model: Pyro model; every latent site must be present in each run (no stochastic
            control flow) and the model must broadcast over extra leading dimensions.
        model_args, model_kwargs: passed to every model call.

    Attributes:
        discrete_sites, continuous_sites: the latent sites, in trace order.
        cardinalities: ``(D,)`` long tensor, the number of values of each coordinate.
        num_discrete (``D``), num_continuous (``D_c``), max_plate_nesting, device, dtype.
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
        with poutine.block():
            trace = poutine.trace(model).get_trace(*self.model_args, **self.model_kwargs)
        trace.compute_log_prob()
        self.max_plate_nesting = max(
            (site["log_prob"].dim() for site in self._scored_sites(trace)), default=0
        )
        self.discrete_sites: list[DiscreteSite] = []
        self.continuous_sites: list[ContinuousSite] = []
        values = []
        offset = offset_c = 0
        for name, site in trace.nodes.items():
            if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
                continue
            value, fn = site["value"], site["fn"]
            values.append(value)
            batch_rank = value.dim() - fn.event_dim
            base = _base_distribution(fn)
            if fn.support.is_discrete:
                if not base.has_enumerate_support:
                    raise ValueError(
                        f"latent site {name!r} is discrete but {type(base).__name__} cannot "
                        "enumerate its support; pyrogen kernels need enumerable discrete sites "
                        "(Bernoulli, Categorical, OneHotCategorical, ...)"
                    )
                base_event = base.event_shape
                support = base.enumerate_support(expand=False).reshape(-1, *base_event)
                num = value.shape[: value.dim() - len(base_event)].numel()
                self.discrete_sites.append(
                    DiscreteSite(name, value.shape, batch_rank, support, offset, num)
                )
                offset += num
            else:
                transform = biject_to(fn.support)
                unconstrained_shape = transform.inverse_shape(value.shape)
                num = unconstrained_shape.numel()
                self.continuous_sites.append(
                    ContinuousSite(
                        name,
                        value.shape,
                        batch_rank,
                        transform,
                        unconstrained_shape,
                        offset_c,
                        num,
                    )
                )
                offset_c += num
        self.num_discrete = offset
        self.num_continuous = offset_c
        self.device = values[0].device if values else torch.device("cpu")
        floats = [v.dtype for v in values if torch.is_floating_point(v)]
        self.dtype = floats[0] if floats else torch.get_default_dtype()
        self.cardinalities = torch.tensor(
            [s.support.shape[0] for s in self.discrete_sites for _ in range(s.num_coordinates)],
            dtype=torch.long,
            device=self.device,
        )
        self.transforms = {s.name: s.transform.inv for s in self.continuous_sites}
        #: whether :meth:`log_joint` batches in one model call (see :meth:`check_vectorized`)
        self.vectorized = True

    # ------------------------------------------------------------------ layout
    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.discrete_sites] + [s.name for s in self.continuous_sites]

    @staticmethod
    def _scored_sites(trace: Any) -> list[dict[str, Any]]:
        return [
            site
            for site in trace.nodes.values()
            if site["type"] == "sample" and not site_is_subsample(site)
        ]

    def discrete_values(self, discrete: torch.Tensor) -> dict[str, torch.Tensor]:
        """Site values from value indices: ``(*batch, D)`` -> ``{name: (*batch, *shape)}``."""
        batch = discrete.shape[:-1]
        out = {}
        for s in self.discrete_sites:
            idx = discrete[..., s.offset : s.offset + s.num_coordinates]
            out[s.name] = s.support[idx].reshape(batch + s.shape)
        return out

    def encode_discrete(
        self, values: dict[str, torch.Tensor], batch_shape: torch.Size
    ) -> torch.Tensor:
        """Inverse of :meth:`discrete_values`: value indices, shape ``(*batch_shape, D)``.

        Raises ``ValueError`` naming the site when a value is not in its support.
        """
        columns = []
        for s in self.discrete_sites:
            value = torch.as_tensor(values[s.name], device=self.device)
            event_rank = s.support.dim() - 1
            value = value.expand(batch_shape + s.shape)
            flat = value.reshape((*batch_shape, s.num_coordinates, *s.support.shape[1:]))
            eq = flat.unsqueeze(-1 - event_rank) == s.support
            if event_rank:
                eq = eq.flatten(-event_rank).all(-1)
            if not bool(eq.any(-1).all()):
                raise ValueError(
                    f"initial or proposed value of site {s.name!r} is not in its support "
                    f"(values allowed per coordinate: {s.support.tolist()})"
                )
            columns.append(eq.to(torch.uint8).argmax(-1))
        if not columns:
            return torch.zeros(*batch_shape, 0, dtype=torch.long, device=self.device)
        return torch.cat(columns, -1)

    def continuous_values(
        self, continuous: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Constrained site values and :math:`\\log|\\det J|` from ``(*batch, D_c)``.

        Returns ``({name: (*batch, *shape)}, log_abs_det_jacobian of shape batch)``.
        """
        batch = continuous.shape[:-1]
        out = {}
        ladj = torch.zeros(batch, dtype=continuous.dtype, device=continuous.device)
        for s in self.continuous_sites:
            u = continuous[..., s.offset : s.offset + s.numel].reshape(
                batch + s.unconstrained_shape
            )
            x = s.transform(u)
            out[s.name] = x
            term = s.transform.log_abs_det_jacobian(u, x)
            if term.dim() > len(batch):
                term = term.reshape((*term.shape[: len(batch)], -1)).sum(-1)
            ladj = ladj + term
        return out, ladj

    def unconstrain(self, values: dict[str, torch.Tensor], batch_shape: torch.Size) -> torch.Tensor:
        """Flat unconstrained ``(*batch_shape, D_c)`` from constrained continuous site values."""
        pieces = []
        for s in self.continuous_sites:
            value = torch.as_tensor(values[s.name], device=self.device, dtype=self.dtype)
            u = s.transform.inv(value.expand(batch_shape + s.shape))
            pieces.append(u.reshape((*batch_shape, s.numel)))
        if not pieces:
            return torch.zeros(*batch_shape, 0, dtype=self.dtype, device=self.device)
        return torch.cat(pieces, -1)

    # --------------------------------------------------------------- log joint
    def log_joint(
        self,
        values: dict[str, torch.Tensor],
        batch_ndim: int,
        fixed: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Log joint of the model for a batch of latent values, in one traced call.

        Args:
            values: ``{name: (*batch, *shape)}`` for batched latent sites.
            batch_ndim: ``len(batch)``.
            fixed: ``{name: shape-valued tensor}`` for latent sites shared by the whole batch.

        Returns the log joint, shape ``batch`` (observed sites and factors included).
        """
        if batch_ndim and not self.vectorized:
            return self._log_joint_loop(values, batch_ndim, fixed)
        data = dict(fixed or {})
        batch_shape: torch.Size = torch.Size()
        nesting = self.max_plate_nesting
        sites = {s.name: s for s in self.discrete_sites}
        sites.update({s.name: s for s in self.continuous_sites})
        for name, value in values.items():
            site = sites[name]
            batch_shape = value.shape[:batch_ndim]
            pad = (1,) * (nesting - site.batch_rank)
            data[name] = value.reshape(batch_shape + pad + site.shape)
        with poutine.block():
            conditioned = poutine.condition(self.model, data=data)
            trace = poutine.trace(conditioned).get_trace(*self.model_args, **self.model_kwargs)
        total = torch.zeros(batch_shape, dtype=self.dtype, device=self.device)
        for site in self._scored_sites(trace):
            if not site["is_observed"]:
                raise ValueError(
                    f"latent site {site['name']!r} was not in the prototype trace; models "
                    "with stochastic control flow are not supported"
                )
            log_p = scale_and_mask(site["fn"].log_prob(site["value"]), site["scale"], site["mask"])
            if not isinstance(log_p, torch.Tensor) or log_p.dim() == 0:
                total = total + log_p
                continue
            rank = batch_ndim + nesting
            if log_p.dim() > rank:
                raise ValueError(
                    f"site {site['name']!r} has log_prob shape {tuple(log_p.shape)}, more than "
                    f"{batch_ndim} leading batch dims + max_plate_nesting={nesting}: the model "
                    "does not broadcast over leading dimensions"
                )
            log_p = log_p.reshape((1,) * (rank - log_p.dim()) + log_p.shape)
            if nesting:
                log_p = log_p.sum(tuple(range(-nesting, 0)))
            total = total + log_p
        return total

    def _log_joint_loop(
        self,
        values: dict[str, torch.Tensor],
        batch_ndim: int,
        fixed: dict[str, torch.Tensor] | None,
    ) -> torch.Tensor:
        """:meth:`log_joint` one batch element at a time, for models that do not broadcast."""
        if not values:
            return self.log_joint({}, 0, fixed)
        batch_shape = next(iter(values.values())).shape[:batch_ndim]
        flat = {k: v.reshape((-1, *v.shape[batch_ndim:])) for k, v in values.items()}
        out = []
        for i in range(batch_shape.numel()):
            single = dict(fixed or {})
            single.update({k: v[i] for k, v in flat.items()})
            out.append(self.log_joint({}, 0, single))
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
        ladj = 0.0
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

    # ------------------------------------------------------------ initial state
    def initial_state(
        self, num_chains: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Uniform random starting points ``(discrete (C, D), continuous (C, D_c))``: each
        coordinate uniform over its values, unconstrained continuous values in (-2, 2)."""
        u = torch.rand(
            num_chains,
            self.num_discrete,
            generator=generator,
            device=self.device,
            dtype=torch.float64,
        )
        discrete = (u * self.cardinalities).long().clamp(max=self.cardinalities - 1)
        continuous = torch.rand(
            num_chains,
            self.num_continuous,
            generator=generator,
            device=self.device,
            dtype=self.dtype,
        )
        return discrete, (2 * continuous - 1) * _INIT_RADIUS

    def initial_from_values(
        self, values: dict[str, torch.Tensor], num_chains: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Flat starting points from constrained site values of shape ``(C, *shape)`` or
        ``shape`` (broadcast). Sites not in ``values`` get ``None`` for their whole part
        when *no* site of that kind is given; a partial dict is an error."""
        unknown = set(values) - set(self.site_names)
        if unknown:
            raise ValueError(
                f"initial_params has unknown sites {sorted(unknown)}; latent sites are "
                f"{self.site_names}"
            )
        batch = torch.Size([num_chains])
        discrete = continuous = None
        for kind, sites in (
            ("discrete", self.discrete_sites),
            ("continuous", self.continuous_sites),
        ):
            names = [s.name for s in sites]
            given = [n for n in names if n in values]
            if not given:
                continue
            if len(given) != len(names):
                raise ValueError(
                    f"initial_params must give all {kind} sites {names} or none, got {given}"
                )
            for s in sites:
                v = torch.as_tensor(values[s.name])
                if v.shape not in (s.shape, batch + s.shape):
                    raise ValueError(
                        f"initial_params[{s.name!r}] must have shape {tuple(s.shape)} or "
                        f"{tuple(batch + s.shape)}, got {tuple(v.shape)}"
                    )
            if kind == "discrete":
                discrete = self.encode_discrete(values, batch)
            else:
                continuous = self.unconstrain(values, batch)
        return discrete, continuous
