r"""How much the target changes when one discrete coordinate changes: the rates behind
locally informed proposals.

For a state :math:`x` of ``D`` discrete coordinates and every coordinate :math:`d` and value
:math:`j < k_d` the *neighbour log-ratio* is

.. math:: r_{dj}(x) = \log \pi(x_{d \leftarrow j}) - \log \pi(x), \qquad r_{d x_d} = 0,

stored as a ``(C, D, K)`` tensor (``K = max_d k_d``, ``-inf`` for :math:`j \ge k_d`). Two
estimators, picked once by the kernels:

* :class:`ExactRatios`: all :math:`\sum_d (k_d - 1)` neighbours go through the model in
  batched calls (chunked to bound memory), the locally balanced proposals of Zanella (2020);
* :class:`GradientRatios`: one forward and backward pass of the log joint at the current
  state, with the site values as differentiable tensors, and the first-order estimate
  (Grathwohl, Swersky, Hashemi, Duvenaud & Maddison, ICML 2021)

  .. math:: \tilde r_{dj}(x) = \langle \nabla_{x_d} \log \pi(x),\, s_j - s_{x_d} \rangle,

  :math:`s_j` the value ``j`` of the coordinate (a number for Bernoulli-like sites, a one-hot
  vector for ``OneHotCategorical``). ``Categorical`` sites hold integer indices, which have no
  gradient: their coordinates get exact ratios (their neighbours evaluated in one batch).

A model that uses a value in a non-differentiable way (``x.long()`` indexing, comparisons)
gives zero or wrong gradients there: the proposal is then less informed, never wrong, because
the kernels correct every move with its exact Metropolis-Hastings ratio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch

__all__ = ["NeighbourRatios", "ExactRatios", "GradientRatios", "MAX_STATES_PER_CALL"]

#: Candidate states per model call of :class:`ExactRatios` (bounds the memory of a call).
MAX_STATES_PER_CALL = 16384


class NeighbourRatios(NamedTuple):
    """``log_density`` ``(C,)`` at the states and their neighbour log-ratios ``(C, D, K)``."""

    log_density: torch.Tensor
    log_ratios: torch.Tensor


def _exact_columns(
    discrete: torch.Tensor,
    coordinates: torch.Tensor,
    log_joint_fn: Callable[[torch.Tensor], torch.Tensor],
    cardinalities: torch.Tensor,
    log_density: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Fill ``out[:, d, j]`` (for ``d`` in ``coordinates``) with exact log-ratios."""
    num_chains, num_coords = discrete.shape
    width = int(cardinalities.max())
    per_coordinate = width * num_chains
    chunk = max(1, MAX_STATES_PER_CALL // max(per_coordinate, 1))
    for start in range(0, coordinates.numel(), chunk):
        coords = coordinates[start : start + chunk]  # (n,)
        n = coords.numel()
        candidates = discrete.unsqueeze(0).unsqueeze(0).expand(n, width, num_chains, num_coords)
        candidates = candidates.clone()
        values = torch.arange(width, device=discrete.device)
        # value j of coordinate coords[i]; values past k_d are clamped to k_d - 1 and masked.
        limit = (cardinalities[coords] - 1).unsqueeze(-1)
        clamped = torch.minimum(values.unsqueeze(0), limit)  # (n, K)
        index = coords.view(n, 1, 1, 1).expand(n, width, num_chains, 1)
        candidates.scatter_(3, index, clamped.view(n, width, 1, 1).expand(n, width, num_chains, 1))
        log_p = log_joint_fn(candidates.reshape(n * width, num_chains, num_coords))
        ratio = (log_p.reshape(n, width, num_chains) - log_density).permute(2, 0, 1)
        valid = values.unsqueeze(0) <= limit  # (n, K)
        ratio = torch.where(valid, ratio, torch.full_like(ratio, -torch.inf))
        out[:, coords] = ratio
    current = discrete[:, coordinates].unsqueeze(-1)
    out[:, coordinates] = out[:, coordinates].scatter(2, current, 0.0)


class ExactRatios:
    """Exact neighbour log-ratios from batched model calls.

    Args:
        log_joint_fn: ``discrete (*batch, D) -> (*batch)``, the model's log joint.
        cardinalities: ``(D,)``.

    Calling it on ``discrete`` ``(C, D)`` returns :class:`NeighbourRatios`, at a cost of
    :math:`C (1 + D \\max_d k_d)` model evaluations in calls of at most
    :data:`MAX_STATES_PER_CALL` states.

    Example (two independent bits with log-odds 1 and -2):
        >>> logits = torch.tensor([1.0, -2.0])
        >>> fn = lambda d: (d.float() * logits).sum(-1)
        >>> ExactRatios(fn, torch.tensor([2, 2]))(torch.tensor([[0, 1]])).log_ratios
        tensor([[[0., 1.],
                 [2., 0.]]])
    """

    def __init__(
        self, log_joint_fn: Callable[[torch.Tensor], torch.Tensor], cardinalities: torch.Tensor
    ) -> None:
        self.log_joint_fn = log_joint_fn
        self.cardinalities = cardinalities

    def __call__(self, discrete: torch.Tensor) -> NeighbourRatios:
        with torch.no_grad():
            log_density = self.log_joint_fn(discrete)
            num_chains, num_coords = discrete.shape
            width = int(self.cardinalities.max())
            out = log_density.new_full((num_chains, num_coords, width), -torch.inf)
            coords = torch.arange(num_coords, device=discrete.device)
            _exact_columns(
                discrete, coords, self.log_joint_fn, self.cardinalities, log_density, out
            )
        return NeighbourRatios(log_density, out)


class GradientRatios:
    """First-order neighbour log-ratios from one backward pass (exact for integer sites).

    Args:
        target: a :class:`~pyrogen.infer.pyro_target.PyroTarget` with discrete sites only.

    Calling it on ``discrete`` ``(C, D)`` returns :class:`NeighbourRatios` with the exact
    ``log_density`` and the estimated (see the module docstring) ``log_ratios``.
    """

    def __init__(self, target: Any) -> None:
        self.target = target
        self.differentiable = [s for s in target.discrete_sites if s.support.is_floating_point()]
        integer = [s for s in target.discrete_sites if not s.support.is_floating_point()]
        self.integer_coordinates = torch.cat(
            [
                torch.arange(s.offset, s.offset + s.num_coordinates, device=target.device)
                for s in integer
            ]
            or [torch.zeros(0, dtype=torch.long, device=target.device)]
        )

    def log_joint_fn(self, discrete: torch.Tensor) -> torch.Tensor:
        target = self.target
        return target.log_joint(target.discrete_values(discrete), discrete.dim() - 1)

    def __call__(self, discrete: torch.Tensor) -> NeighbourRatios:
        target = self.target
        num_chains, num_coords = discrete.shape
        width = int(target.cardinalities.max())
        values = target.discrete_values(discrete)
        leaves = {}
        for s in self.differentiable:
            leaves[s.name] = values[s.name].detach().to(target.dtype).requires_grad_(True)
            values[s.name] = leaves[s.name]
        with torch.enable_grad():
            log_density = target.log_joint(values, 1)
            grads = (
                torch.autograd.grad(log_density.sum(), list(leaves.values()), allow_unused=True)
                if leaves
                else []
            )
        log_density = log_density.detach()
        out = log_density.new_full((num_chains, num_coords, width), -torch.inf)
        for s, grad in zip(self.differentiable, grads, strict=True):
            k = s.support.shape[0]
            value = leaves[s.name].detach().reshape(num_chains, s.num_coordinates, -1)
            g = (
                torch.zeros_like(value)
                if grad is None
                else grad.reshape(num_chains, s.num_coordinates, -1)
            )
            support = s.support.to(target.dtype).reshape(k, -1)  # (k, E)
            change = support.view(1, 1, k, -1) - value.unsqueeze(2)  # (C, n, k, E)
            ratio = (g.unsqueeze(2) * change).sum(-1)
            columns = slice(s.offset, s.offset + s.num_coordinates)
            out[:, columns, :k] = ratio
            current = discrete[:, columns].unsqueeze(-1)
            out[:, columns] = out[:, columns].scatter(2, current, 0.0)
        if self.integer_coordinates.numel():
            with torch.no_grad():
                _exact_columns(
                    discrete,
                    self.integer_coordinates,
                    self.log_joint_fn,
                    target.cardinalities,
                    log_density,
                    out,
                )
        return NeighbourRatios(log_density, out)
