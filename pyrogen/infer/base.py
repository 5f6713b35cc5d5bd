"""The contract between pyrogen's kernels and the vectorised chain driver.

Every pyrogen kernel has a *functional core*: a pure batched step over tensors whose leading
dimension is the chain. The :class:`VectorizedKernel` protocol exposes that core so that
:func:`pyrogen.infer.sample` can run thousands of chains as one batch, while each kernel's
``MCMCKernel`` side wires the same step into ``pyro.infer.MCMC`` (one chain per call).

State objects are NamedTuples whose tensors all carry the chain dimension first; they hold
only what the next step needs. Per-step diagnostics go into the ``info`` dict.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

__all__ = ["VectorizedKernel"]


@runtime_checkable
class VectorizedKernel(Protocol):
    """What :func:`pyrogen.infer.sample` needs from a kernel.

    * ``init_chains(num_chains, generator=..., initial_params=None)`` returns the initial
      state of ``num_chains`` chains on the kernel's device; ``initial_params`` maps site
      names to tensors of shape ``(num_chains, *site_shape)`` (or ``site_shape``, broadcast).
    * ``step_chains(state, generator=..., warmup=False)`` returns ``(state, info)``; ``info``
      holds at least ``"accept_prob"`` with shape ``(num_chains,)`` (ones for Gibbs).
      Kernels that adapt (step sizes) do so only when ``warmup`` is true, and move with
      their final (averaged) step size when it is false. Drivers pass ``warmup=True`` for
      the adapting part of warm-up only, not for its final fixed-step window.
    * ``chain_values(state)`` maps each sampled site to its value, shape
      ``(num_chains, *site_shape)``.
    * ``device`` is where the chains live.
    """

    @property
    def device(self) -> torch.device: ...

    def init_chains(
        self,
        num_chains: int,
        *,
        generator: torch.Generator,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> Any: ...

    def step_chains(
        self, state: Any, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[Any, dict[str, torch.Tensor]]: ...

    def chain_values(self, state: Any) -> dict[str, torch.Tensor]: ...
