"""The kernel contract and the base class that implements it for ``pyro.infer.MCMC``.

Two pieces, both here:

* :class:`VectorizedKernel`, the *protocol* between pyrogen's kernels and the vectorised
  chain driver :func:`pyrogen.infer.sample`: the batched functional core.
* :class:`ChainKernel`, the *base class* of pyrogen's kernels: a thin ``MCMCKernel`` adapter
  that runs that core with one chain under Pyro's driver. Subclass it to write a kernel
  (tutorial 03); :func:`new_generator` is the generator it seeds.

(``ChainKernel`` used to live in ``pyrogen.infer.chain_kernel``, which still re-exports it
with a ``DeprecationWarning``.)

The protocol
------------

Every pyrogen kernel has a *functional core*: a pure batched step over tensors whose leading
dimension is the chain. The :class:`VectorizedKernel` protocol exposes that core so that
:func:`pyrogen.infer.sample` can run thousands of chains as one batch, while each kernel's
``MCMCKernel`` side wires the same step into ``pyro.infer.MCMC`` (one chain per call).

State objects are NamedTuples whose tensors all carry the chain dimension first; they hold
only what the next step needs. Per-step diagnostics go into the ``info`` dict.

The base class
--------------

A subclass supplies the batched core (``init_chains``/``step_chains``/``chain_values`` of the
:class:`VectorizedKernel` protocol) and ``_prepare`` (build the target from the model
arguments). This class runs that core with one chain under Pyro's driver and
handles the driver's traps:

* ``MCMC`` never calls ``end_warmup``: steps are counted against ``warmup_steps`` here, and
  ``step_chains`` gets ``warmup=True`` (adapt) only for the first
  :func:`~pyrogen.infer.adaptation.adaptation_steps` of them.
* ``MCMC`` re-uses one kernel object for sequential chains: ``setup`` rebuilds all state, and
  ``cleanup`` forgets initial parameters so the next chain draws its own.
* ``logging()`` is JSON-serialised every step: it returns strings only.
* ``arviz.from_pyro`` reads ``diagnostics()["divergences"]``: always present (empty).
* ``MCMC`` stores the draws in one flat float tensor and applies ``transforms[name].inv``
  per site: integer-valued sites (Categorical) have an
  :class:`~pyrogen.infer.integer_draws.IntegerCast` there, so ``mcmc.get_samples()`` gives
  them as ``long`` :class:`~pyrogen.infer.integer_draws.IntegerDraws` that index models
  (``Predictive``) and still average in ``mcmc.summary()``.
* Randomness: a ``torch.Generator`` owned by the kernel, seeded in ``setup`` from torch's
  global RNG, so ``pyro.set_rng_seed`` makes every chain reproducible (in Pyro's forked
  workers too, which re-seed per chain).

Pyro's conventions for parameters hold: ``initial_params`` and the values passed between
``sample`` calls are *unconstrained* for continuous sites (``kernel.transforms`` maps
constrained to unconstrained, ``MCMC`` applies ``.inv`` to the stored draws); discrete sites
are their values. ``sample`` continues from the kernel's own state (like Pyro's HMC cache):
the ``params`` argument must be what the previous call returned.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import torch
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

from pyrogen._validation import check_positive_int
from pyrogen.infer.adaptation import adaptation_steps

__all__ = ["ChainKernel", "VectorizedKernel", "new_generator"]


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


def new_generator(device: torch.device, seed: int | None = None) -> torch.Generator:
    """A generator on ``device``; seeded from torch's global RNG when ``seed`` is None."""
    if seed is None:
        # Drawn from the global generator that pyro.set_rng_seed / torch.manual_seed seed.
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator(device=device).manual_seed(seed)


class ChainKernel(MCMCKernel):
    """Base class: runs a batched pyrogen core as a one-chain ``MCMCKernel``.

    Example:
        >>> from pyrogen.infer import MetropolisHastings
        >>> issubclass(MetropolisHastings, ChainKernel)
        True
    """

    model: Callable[..., Any] | None = None

    def __init__(
        self, model_args: Sequence[Any] = (), model_kwargs: dict[str, Any] | None = None
    ) -> None:
        if not isinstance(model_args, (tuple, list)):
            raise TypeError(f"model_args must be a tuple, got {type(model_args).__name__}")
        if model_kwargs is not None and not isinstance(model_kwargs, dict):
            raise TypeError(f"model_kwargs must be a dict, got {type(model_kwargs).__name__}")
        self.model_args = tuple(model_args)
        self.model_kwargs = dict(model_kwargs or {})
        self.transforms: dict[str, Any] | None = None
        self._pending_initial_params: dict[str, torch.Tensor] | None = None
        self._state: Any = None
        self._generator: torch.Generator | None = None
        self._warmup_steps = 0
        self._last_info: dict[str, torch.Tensor] = {}
        self._reset_statistics()

    # ------------------------------------------------------------ for subclasses
    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        """Build whatever depends on the model arguments; must set ``self.transforms``."""
        raise NotImplementedError

    def init_chains(
        self,
        num_chains: int,
        *,
        generator: torch.Generator,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> Any:
        raise NotImplementedError

    def step_chains(
        self, state: Any, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def chain_values(self, state: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def _unconstrained_values(self, state: Any) -> dict[str, torch.Tensor]:
        """Values in Pyro's unconstrained space, shape ``(C, ...)`` (default: no transforms)."""
        return self.chain_values(state)

    def _logging_extra(self) -> dict[str, str]:
        return {}

    # ------------------------------------------------------------- MCMCKernel
    def _reset_statistics(self) -> None:
        self._t = 0
        self._mean_accept_prob = 0.0
        self._accept_count = 0.0

    def _ensure_prepared(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Arguments given to MCMC.run win over those given to the constructor.
        if args or kwargs:
            self._prepare(tuple(args), dict(kwargs))
        else:
            self._prepare(self.model_args, self.model_kwargs)

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        """Build the target from the model arguments and start one chain."""
        self._warmup_steps = check_positive_int(warmup_steps, "warmup_steps", minimum=0)
        self._ensure_prepared(args, kwargs)
        self._generator = new_generator(self.device)
        initial = None
        if self._pending_initial_params is not None:
            initial = {
                name: self._constrain(name, torch.as_tensor(v, device=self.device)).unsqueeze(0)
                for name, v in self._pending_initial_params.items()
            }
        self._state = self.init_chains(1, generator=self._generator, initial_params=initial)
        self._reset_statistics()

    def _constrain(self, name: str, value: torch.Tensor) -> torch.Tensor:
        transforms = self.transforms or {}
        return transforms[name].inv(value) if name in transforms else value

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One transition of the chain; ``params`` is ignored (the kernel keeps its state)."""
        if self._state is None or self._generator is None:
            raise RuntimeError("call setup() (pyro.infer.MCMC does) before sample()")
        warmup = self._t < self._warmup_steps
        # Adaptation stops before warm-up ends (pyrogen.infer.adaptation.adaptation_steps).
        adapt = self._t < adaptation_steps(self._warmup_steps)
        self._state, info = self.step_chains(
            self._state,
            generator=self._generator,
            warmup=adapt,
        )
        self._t += 1
        self._last_info = info
        self._record(info, warmup)
        return self._pyro_params()

    @property
    def last_info(self) -> dict[str, torch.Tensor]:
        """The ``info`` of the last transition (``accept_prob``, ``step_size``, ... of shape
        ``(1,)``): read it from ``MCMC(..., hook_fn=...)`` to follow a run step by step."""
        return dict(self._last_info)

    def _record(self, info: dict[str, torch.Tensor], warmup: bool) -> None:
        if "accepted" in info:
            prob = float(info["accept_prob"].mean())
            accepted = float(info["accepted"].float().mean())
        else:  # Gibbs: every move is accepted; skip the device sync
            prob = accepted = 1.0
        n = self._t if warmup else self._t - self._warmup_steps
        if n == 1:
            self._mean_accept_prob = 0.0
        self._mean_accept_prob += (prob - self._mean_accept_prob) / n
        if not warmup:
            self._accept_count += accepted

    def _pyro_params(self) -> dict[str, torch.Tensor]:
        # Pyro's MCMC.summary()/diagnostics() (and so arviz.from_pyro) take means of the
        # stored draws, which fails for integer tensors: integer-valued sites (Categorical)
        # reach the driver as floating-point tensors holding exact integers.
        return {
            k: v[0] if v.is_floating_point() else v[0].to(torch.get_default_dtype())
            for k, v in self._unconstrained_values(self._state).items()
        }

    @property
    def initial_params(self) -> dict[str, torch.Tensor] | None:
        """The chain's current (after ``setup``: initial) values, Pyro's unconstrained space."""
        if self._state is None:
            return self._pending_initial_params
        return self._pyro_params()

    @initial_params.setter
    def initial_params(self, params: dict[str, torch.Tensor] | None) -> None:
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"initial_params must be a dict, got {type(params).__name__}")
        self._pending_initial_params = params
        self._state = None

    def cleanup(self) -> None:
        # The next sequential chain draws its own initial values unless MCMC sets new ones.
        self._pending_initial_params = None

    def logging(self) -> OrderedDict[str, str]:
        out = OrderedDict(self._logging_extra())
        out["acc. prob"] = f"{self._mean_accept_prob:.3f}"
        return out

    def diagnostics(self) -> dict[str, Any]:
        num_samples = max(self._t - self._warmup_steps, 1)
        return {"divergences": [], "acceptance rate": self._accept_count / num_samples}
