r"""Latent sites of a Pyro model laid out in two flat per-chain tensors.

Kernels work on ``discrete`` of shape ``(..., C, D)``, holding for each of the ``D`` discrete
*coordinates* the index of its value in the site's support, and ``continuous`` of shape
``(..., C, D_c)``, holding the continuous sites in unconstrained space
(:func:`torch.distributions.biject_to` of each site's support, as Pyro's HMC does).
:class:`SiteLayout` converts between these and site values.

A discrete coordinate is one entry of a site's batch shape: a ``Bernoulli(p).to_event(1)``
site of shape ``(6,)`` has 6 binary coordinates; a ``OneHotCategorical`` site of shape
``(4, 3)`` has 4 coordinates with 3 values each.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from pyro.distributions.torch_distribution import ExpandedDistribution, MaskedDistribution
from pyro.poutine.util import site_is_subsample
from torch.distributions import Independent, biject_to
from torch.distributions.transforms import Transform

__all__ = ["DiscreteSite", "ContinuousSite", "SiteLayout", "sites_from_trace"]

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


def sites_from_trace(trace: Any) -> tuple[list[DiscreteSite], list[ContinuousSite]]:
    """The latent sites of a prototype trace, laid out one after another in trace order.

    Discrete: distribution (under ``Independent``/``Masked``/``Expanded`` wrappers) with
    ``has_enumerate_support``; continuous: everything else with a non-discrete support.
    Raises ``ValueError`` for discrete sites whose support cannot be enumerated.
    """
    discrete: list[DiscreteSite] = []
    continuous: list[ContinuousSite] = []
    offset = offset_c = 0
    for name, site in trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        value, fn = site["value"], site["fn"]
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
            discrete.append(DiscreteSite(name, value.shape, batch_rank, support, offset, num))
            offset += num
        else:
            transform = biject_to(fn.support)
            shape_u = transform.inverse_shape(value.shape)
            continuous.append(
                ContinuousSite(
                    name, value.shape, batch_rank, transform, shape_u, offset_c, shape_u.numel()
                )
            )
            offset_c += shape_u.numel()
    return discrete, continuous


class SiteLayout:
    """Latent sites laid out in the flat ``discrete`` ``(..., D)`` / ``continuous``
    ``(..., D_c)`` tensors the kernels work on (see the module docstring).

    Attributes:
        discrete_sites, continuous_sites: the sites, in trace order.
        cardinalities: ``(D,)`` long tensor, the number of values of each coordinate.
        num_discrete (``D``), num_continuous (``D_c``), device, dtype.
        transforms: ``{name: constrained -> unconstrained}`` (Pyro's convention).
    """

    def __init__(
        self,
        discrete_sites: list[DiscreteSite],
        continuous_sites: list[ContinuousSite],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.discrete_sites = discrete_sites
        self.continuous_sites = continuous_sites
        self.device, self.dtype = device, dtype
        self.num_discrete = sum(s.num_coordinates for s in discrete_sites)
        self.num_continuous = sum(s.numel for s in continuous_sites)
        self.cardinalities = torch.tensor(
            [s.support.shape[0] for s in discrete_sites for _ in range(s.num_coordinates)],
            dtype=torch.long,
            device=device,
        )
        self.transforms = {s.name: s.transform.inv for s in continuous_sites}
        # Sites whose support is 0, 1, ..., k-1 (Bernoulli, Categorical): the value is the
        # index itself, so discrete_values casts instead of gathering.
        self._index_valued = {
            s.name: s.support.dim() == 1
            and torch.equal(s.support.cpu(), torch.arange(s.support.shape[0]).to(s.support.dtype))
            for s in discrete_sites
        }

    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.discrete_sites] + [s.name for s in self.continuous_sites]

    @property
    def coordinate_names(self) -> list[str]:
        """A name for each of the ``D`` discrete coordinates: ``'x'`` for a site with one
        coordinate, ``'x'[i]`` (flat index) otherwise; used in error messages."""
        return [
            repr(s.name) if s.num_coordinates == 1 else f"{s.name!r}[{i}]"
            for s in self.discrete_sites
            for i in range(s.num_coordinates)
        ]

    def discrete_values(self, discrete: torch.Tensor) -> dict[str, torch.Tensor]:
        """Site values from value indices: ``(*batch, D)`` -> ``{name: (*batch, *shape)}``."""
        batch = discrete.shape[:-1]
        out = {}
        for s in self.discrete_sites:
            idx = discrete[..., s.offset : s.offset + s.num_coordinates]
            value = idx.to(s.support.dtype) if self._index_valued[s.name] else s.support[idx]
            out[s.name] = value.reshape(batch + s.shape)
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
