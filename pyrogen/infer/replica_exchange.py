r"""Replica exchange (parallel tempering) over any of pyrogen's batched kernels.

A ladder of inverse temperatures :math:`1 = \beta_0 > \beta_1 > \dots > \beta_R > 0` defines
the tempered targets :math:`\pi_{\beta}(x) \propto p_{\text{prior}}(x)\, L(x)^{\beta}`:

* a **Pyro model** keeps the terms of its latent sites (the prior) and multiplies the
  log-likelihood of its observed sites *and* its ``pyro.factor`` terms by :math:`\beta`
  (:class:`~pyrogen.infer.pyro_target.PyroTarget`); a continuous site's
  :math:`\log\lvert\det J_T\rvert` belongs to the prior. A model with neither observed
  sites nor factors has nothing to temper (``ValueError``). An energy model written as a
  factor (``rbm.model()``, a discriminator energy) has its energy multiplied by
  :math:`\beta` and its base distribution kept;
* the **RBM** of :class:`~pyrogen.infer.BlockGibbs` has no separate prior: its whole
  Boltzmann density is tempered, :math:`\pi_\beta(v, h) \propto e^{-\beta E(v, h)}`
  (visible evidence included), i.e. block Gibbs with :math:`\beta W, \beta b, \beta c`;
  or, given ``BlockGibbs(rbm, base_bias=b_A)``, the path from independent units with the
  data's base rates, :math:`\pi_\beta \propto p_{base}(v)^{1-\beta} e^{-\beta E(v, h)}`,
  whose hot replicas look like blurred data rather than noise (the better ladder for a
  trained model: :mod:`pyrogen.infer.block_gibbs`). The swaps below use the joint energy
  of the chains' ``(v, h)`` (minus the base's log density), also for
  ``target="marginal"``, whose sweep leaves :math:`\sum_h e^{-\beta E(v, h)}` invariant.

:math:`\log L` is the untempered "tempered part" of the log density. The ``R + 1``
replicas of each of ``C`` chains are **one** batch of ``S = (R + 1) C`` chains for the inner
kernel, slot ``r C + c`` at :math:`\beta_r` (each slot carries its inverse temperature into
the target, and gradients, as in MALA, Gibbs-with-Gradients or DMALA, are those of the
tempered density). One step is

1. one step (``inner_steps`` steps) of the inner kernel on every slot; it leaves
   :math:`\prod_r \pi_{\beta_r}(x_r)` invariant;
2. a **swap phase**: neighbouring pairs :math:`(r, r + 1)` exchange their states with
   probability :math:`\min(1, e^{\log\alpha})`,

   .. math:: \log\alpha_r = (\beta_r - \beta_{r+1})
             \bigl(\log L(x_{r+1}) - \log L(x_r)\bigr),

   the Metropolis ratio of the exchange, which leaves the product invariant too (the prior
   terms cancel). With ``swap="deo"`` (the default) the pairs with even :math:`r` are
   proposed at even steps and those with odd :math:`r` at odd steps: the *deterministic
   even-odd* scheme, non-reversible, whose round trips grow linearly rather than
   diffusively in the number of temperatures (Syed, Bouchard-Côté, Deligiannidis & Doucet,
   2022, JRSS-B). ``swap="stochastic"`` picks even or odd pairs by a fair coin, per chain
   and step (reversible).

States move between temperatures; each temperature slot keeps what belongs to it (the
inner kernel's step-size adaptation, so a step size stays with its temperature), and
quantities cached by the inner kernel at its slot's temperature (the log density, its
gradient, neighbour ratios) are recomputed for the slots whose state changed. Replica
*labels* travel with the states; a **round trip** is a label going from :math:`\beta_0` to
:math:`\beta_R` and back.

**Adaptive ladder** (``adapt_ladder=True``, warm-up steps only, i.e. ``warmup=True``):
Syed et al.'s schedule update. Over a round of steps the mean swap rejection
:math:`\bar r_k = 1 - \bar\alpha_k` of each pair is estimated; the communication barrier
:math:`\Lambda(\beta) = \int_{\beta_R}^{\beta}\lambda`, piecewise linear through
:math:`\Lambda(\beta_k) = \sum_{j \ge k} \bar r_j`, is inverted at equally spaced levels, so
that every pair gets the same share of the barrier, and hence about the same rejection rate:
:math:`\beta'_k = \Lambda^{-1}\bigl(\Lambda(1)\,(R - k) / R\bigr)`. The end points
:math:`\beta_0 = 1` and :math:`\beta_R` stay; rounds double in length (16, 32, ... steps).
Once ``step_chains`` is called with ``warmup=False`` the ladder is frozen. The swap
statistics (per-pair acceptance rate, round trips) are counted since the ladder last changed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch

from pyrogen._validation import check_choice, check_positive_int
from pyrogen.infer.adaptation import DualAveragingState
from pyrogen.infer.base import ChainKernel
from pyrogen.infer.block_gibbs import BlockGibbs, BlockGibbsState
from pyrogen.infer.discrete_gibbs import DiscreteGibbs
from pyrogen.infer.discrete_langevin import DiscreteLangevin
from pyrogen.infer.locally_balanced import InformedKernel
from pyrogen.infer.metropolis import MetropolisHastings, MHState
from pyrogen.infer.proposal import metropolis_accept
from pyrogen.tempering import (
    equalised_ladder,
    geometric_ladder,
    swap_index,
    swap_log_accept_ratio,
    swap_pairs,
    update_round_trips,
)

__all__ = [
    "ReplicaExchange",
    "ReplicaExchangeState",
    "LadderState",
    "SwapSummary",
    "SWAPS",
    "geometric_ladder",
    "swap_log_accept_ratio",
    "swap_pairs",
    "swap_index",
    "update_round_trips",
    "equalised_ladder",
]

#: Swap schemes (see the module docstring); the first is the default.
SWAPS = ("deo", "stochastic")

#: Replicas when ``betas=None``, and the smallest inverse temperature of a ladder built from
#: a number of replicas (geometric spacing, a common default; the adaptation moves the rest).
DEFAULT_NUM_REPLICAS = 8
DEFAULT_MIN_BETA = 0.01

#: Steps of the first ladder-adaptation round (each next round is twice as long). With DEO
#: every pair is proposed every other step: 8 swap attempts per pair and chain.
FIRST_ROUND_LENGTH = 16


class LadderState(NamedTuple):
    """Ladder adaptation over the current round: rejection sums and attempts ``(R,)``
    (summed over chains), steps taken in the round and its length."""

    rejection_sum: torch.Tensor
    attempts: torch.Tensor
    round_step: int
    round_length: int


class ReplicaExchangeState(NamedTuple):
    """State of ``C`` chains of ``R + 1`` replicas each (slot ``r C + c`` at ``betas[r]``).

    ``inner``: the inner kernel's state of the ``S = (R + 1) C`` slots; ``log_likelihood``
    ``(R + 1, C)``: the untempered part :math:`\\log L` at each slot's state; ``betas``
    ``(R + 1,)``; ``labels`` ``(R + 1, C)``: the replica label at each slot; ``direction``
    ``(R + 1, C)`` of the label there: -1 not yet at :math:`\\beta_0`, 0 on the way from
    :math:`\\beta_0` to :math:`\\beta_R`, 1 on the way back; ``round_trips`` ``(C,)``,
    ``swap_accept_sum`` and ``swap_attempts`` ``(R, C)`` and ``num_steps`` count since the
    ladder last changed; ``step`` counts every step (the DEO parity); ``ladder``: adaptation.
    """

    inner: Any
    log_likelihood: torch.Tensor
    betas: torch.Tensor
    labels: torch.Tensor
    direction: torch.Tensor
    round_trips: torch.Tensor
    swap_accept_sum: torch.Tensor
    swap_attempts: torch.Tensor
    num_steps: int
    step: int
    ladder: LadderState


class SwapSummary(NamedTuple):
    """What the swaps did since the ladder last changed (see :meth:`ReplicaExchange.swap_summary`).

    ``betas`` ``(R + 1,)``; ``swap_accept_rate`` ``(R,)`` mean acceptance probability of each
    pair over chains and attempts; ``swap_accept_rate_per_chain`` ``(C, R)`` (0 before a
    pair's first attempt); ``round_trips``
    and ``round_trip_rate`` ``(C,)`` (round trips per step); ``num_steps``.
    """

    betas: torch.Tensor
    swap_accept_rate: torch.Tensor
    swap_accept_rate_per_chain: torch.Tensor
    round_trips: torch.Tensor
    round_trip_rate: torch.Tensor
    num_steps: int


# ------------------------------------------------------------------ inner kernels
class _Tempering:
    """How one kind of inner kernel is tempered: its target's log-likelihood part, the
    per-slot inverse temperature, and the cached fields to recompute after a swap."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel

    @property
    def dtype(self) -> torch.dtype:
        raise NotImplementedError

    def check(self) -> None:
        """Raise ``ValueError`` when tempering would change nothing."""

    def site_ndims(self) -> dict[str, int]:
        raise NotImplementedError

    @contextmanager
    def tempered(self, beta: torch.Tensor) -> Iterator[None]:
        raise NotImplementedError
        yield

    def log_likelihood(self, state: Any) -> torch.Tensor:
        raise NotImplementedError

    #: Whether the inner state caches quantities that depend on the temperature.
    caches = False

    def refresh(self, state: Any, rows: torch.Tensor) -> Any:
        """The state with the cached fields of the slots ``rows`` recomputed (under
        :meth:`tempered` of those slots' inverse temperatures)."""
        return state


class _ModelTempering(_Tempering):
    """Kernels of a Pyro model (a :class:`~pyrogen.infer.pyro_target.PyroTarget`)."""

    @property
    def target(self) -> Any:
        return self.kernel.target

    @property
    def dtype(self) -> torch.dtype:
        return self.target.dtype

    def check(self) -> None:
        if not self.target.likelihood_sites:
            raise ValueError(
                "the model has no observed sites and no pyro.factor terms: tempering keeps "
                "the prior and scales the likelihood, so every temperature would sample the "
                "same distribution. Replica exchange needs a likelihood (obs=... or "
                "pyro.factor) to temper"
            )

    def site_ndims(self) -> dict[str, int]:
        sites = [*self.target.discrete_sites, *self.target.continuous_sites]
        return {s.name: len(s.shape) for s in sites}

    @contextmanager
    def tempered(self, beta: torch.Tensor) -> Iterator[None]:
        with self.target.tempered(beta):
            yield

    def log_likelihood(self, state: Any) -> torch.Tensor:
        target = self.target
        values = target.discrete_values(state.discrete) if target.num_discrete else {}
        if target.num_continuous:
            values.update(target.continuous_values(state.continuous)[0])
        return target.log_likelihood(values, 1)


class _MetropolisTempering(_ModelTempering):
    caches = True

    def refresh(self, state: MHState, rows: torch.Tensor) -> MHState:
        log_p, grad = self.kernel._evaluate(state.discrete[rows], state.continuous[rows])
        return state._replace(
            log_density=state.log_density.index_copy(0, rows, log_p),
            grad=state.grad.index_copy(0, rows, grad),
        )


class _RatioTempering(_ModelTempering):
    """Locally balanced, Gibbs-with-Gradients and discrete Langevin: they keep the log
    density and the neighbour log-ratios of each chain's state."""

    caches = True

    def refresh(self, state: Any, rows: torch.Tensor) -> Any:
        kernel = self.kernel
        ratio_fn = kernel.ratio_fn
        ratios = ratio_fn(state.discrete[rows])
        return state._replace(
            log_density=state.log_density.index_copy(0, rows, ratios.log_density),
            log_ratios=state.log_ratios.index_copy(0, rows, ratios.log_ratios),
        )


class _RBMTempering(_Tempering):
    """:class:`~pyrogen.infer.BlockGibbs`: the whole Boltzmann density is tempered."""

    @property
    def dtype(self) -> torch.dtype:
        return self.kernel.rbm.weight.dtype

    def site_ndims(self) -> dict[str, int]:
        return {self.kernel.name: 1, self.kernel.hidden_name: 1}

    @contextmanager
    def tempered(self, beta: torch.Tensor) -> Iterator[None]:
        previous, self.kernel.beta = self.kernel.beta, beta
        try:
            yield
        finally:
            self.kernel.beta = previous

    def log_likelihood(self, state: BlockGibbsState) -> torch.Tensor:
        return self.kernel.tempered_log_likelihood(state)


def _tempering(kernel: Any) -> _Tempering:
    if isinstance(kernel, BlockGibbs):
        return _RBMTempering(kernel)
    if isinstance(kernel, MetropolisHastings):
        return _MetropolisTempering(kernel)
    if isinstance(kernel, (InformedKernel, DiscreteLangevin)):
        return _RatioTempering(kernel)
    if isinstance(kernel, DiscreteGibbs):
        return _ModelTempering(kernel)
    raise TypeError(
        "kernel must be one of pyrogen's vectorised kernels (BlockGibbs, DiscreteGibbs, "
        "MetropolisHastings, LocallyBalanced, GibbsWithGradients, DiscreteLangevin), got "
        f"{type(kernel).__name__}"
    )


def _map_slots(state: Any, fn: Callable[[torch.Tensor], torch.Tensor], num_slots: int) -> Any:
    """Apply ``fn`` to every tensor field of ``state`` with ``num_slots`` rows, except the
    step-size adaptation, which belongs to the slot (its temperature), not to the state."""
    fields = {}
    for name, value in state._asdict().items():
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == num_slots:
            fields[name] = fn(value)
    return state._replace(**fields)


def _cold_slots(state: Any, num_chains: int, num_slots: int) -> Any:
    """The first ``num_chains`` slots (:math:`\\beta_0 = 1`), adaptation included."""
    fields = {}
    for name, value in state._asdict().items():
        if isinstance(value, DualAveragingState):
            fields[name] = _map_slots(value, lambda t: t[:num_chains], num_slots)
        elif isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == num_slots:
            fields[name] = value[:num_chains]
    return state._replace(**fields)


# ------------------------------------------------------------------ the kernel
class ReplicaExchange(ChainKernel):
    r"""Replica exchange (parallel tempering) over a pyrogen kernel: a Pyro ``MCMCKernel``
    and a :class:`~pyrogen.infer.VectorizedKernel` (see the module docstring for the maths).

    Args:
        kernel: the inner kernel, one of :class:`~pyrogen.infer.BlockGibbs`,
            :class:`~pyrogen.infer.DiscreteGibbs`, :class:`~pyrogen.infer.MetropolisHastings`,
            :class:`~pyrogen.infer.LocallyBalanced`,
            :class:`~pyrogen.infer.GibbsWithGradients`,
            :class:`~pyrogen.infer.DiscreteLangevin`. It is stepped on all replicas at once.
        betas: the ladder: a strictly decreasing sequence starting at 1, all in (0, 1];
            or a number of replicas (a :func:`geometric_ladder` down to ``min_beta``);
            ``None``: 8 replicas.
        swap: ``"deo"`` (default, deterministic even-odd) or ``"stochastic"``.
        adapt_ladder: move the interior inverse temperatures during warm-up so that every
            pair's swap rate is about equal (module docstring); frozen after warm-up.
        min_beta: the hottest inverse temperature when ``betas`` is a number, in (0, 1).
        inner_steps: inner-kernel steps on every replica between two swap phases (default
            1). Each leaves the product of tempered targets invariant, so any number is exact;
            more lets a state's energy decorrelate at its temperature before the next swap,
            which the round trips need when one step moves it little (a 784-pixel RBM under
            block Gibbs: with one sweep per swap a state swapped hotter is mostly swapped
            straight back). One :meth:`step_chains` call costs ``inner_steps`` inner steps.

    A chain is ``R + 1`` replicas: :meth:`chain_values` and the draws that reach
    ``pyro.infer.MCMC`` are those at :math:`\beta_0 = 1` only. ``info`` of
    :meth:`step_chains` holds the inner kernel's entries at :math:`\beta = 1`
    (``accept_prob``, ...) and, with two or more replicas, ``swap_accept_rate_{r}`` for
    each pair ``(r, r + 1)``, ``round_trips`` and ``round_trip_rate``, all ``(C,)`` and
    counted since the ladder last changed, so that :func:`~pyrogen.infer.sample` stores
    them in ``sample_stats``.

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyrogen.infer import DiscreteGibbs, sample
        >>> def model():
        ...     x = pyro.sample("x", dist.Bernoulli(torch.full((6,), 0.5)).to_event(1))
        ...     pyro.factor("field", 4.0 * (2 * x - 1).sum(-1).abs())
        >>> kernel = ReplicaExchange(DiscreteGibbs(model), betas=4)
        >>> idata = sample(kernel, num_chains=4, num_samples=50, warmup_steps=50, seed=0,
        ...                progress=False, check=False)
        >>> sorted(k for k in idata.sample_stats.data_vars if k.startswith("swap"))
        ['swap_accept_rate_0', 'swap_accept_rate_1', 'swap_accept_rate_2']
    """

    def __init__(
        self,
        kernel: Any,
        betas: Sequence[float] | torch.Tensor | int | None = None,
        swap: str = "deo",
        adapt_ladder: bool = True,
        *,
        min_beta: float = DEFAULT_MIN_BETA,
        inner_steps: int = 1,
    ) -> None:
        if isinstance(kernel, ReplicaExchange) or not isinstance(kernel, ChainKernel):
            raise TypeError(
                "kernel must be a pyrogen kernel (BlockGibbs, DiscreteGibbs, "
                f"MetropolisHastings, ...), got {type(kernel).__name__}"
            )
        self._tempering = _tempering(kernel)
        self.kernel = kernel
        self.swap = check_choice(swap, "swap", SWAPS)
        if not isinstance(adapt_ladder, bool):
            raise TypeError(f"adapt_ladder must be a bool, got {type(adapt_ladder).__name__}")
        self.adapt_ladder = adapt_ladder
        self._initial_betas = _check_betas(betas, min_beta)
        #: Inner-kernel steps per swap phase.
        self.inner_steps = check_positive_int(inner_steps, "inner_steps")
        super().__init__(kernel.model_args, kernel.model_kwargs)
        self.model = kernel.model
        self.transforms = kernel.transforms
        self._last: ReplicaExchangeState | None = None

    # ---------------------------------------------------------------- ChainKernel
    @property
    def device(self) -> torch.device:
        return self.kernel.device

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        self.kernel._prepare(model_args, model_kwargs)
        self._tempering.check()
        self.transforms = self.kernel.transforms

    def _unconstrained_values(self, state: ReplicaExchangeState) -> dict[str, torch.Tensor]:
        return self.kernel._unconstrained_values(self._cold(state))

    def _logging_extra(self) -> dict[str, str]:
        if self._last is None or self.num_replicas < 2:
            return {}
        summary = self.swap_summary()
        return {
            "swap rate": f"{float(summary.swap_accept_rate.mean()):.3f}",
            "round trips": f"{int(summary.round_trips.sum())}",
        }

    # ---------------------------------------------------------------- public views
    @property
    def num_replicas(self) -> int:
        """``R + 1``, the number of temperatures."""
        return int(self._initial_betas.shape[0])

    @property
    def betas(self) -> torch.Tensor:
        """The current ladder ``(R + 1,)``: the initial one until chains have stepped, then
        that of the last state (adapted during warm-up, frozen after)."""
        if self._last is not None:
            return self._last.betas.clone()
        return self._initial_betas.clone()

    def swap_summary(self, state: ReplicaExchangeState | None = None) -> SwapSummary:
        """Swap acceptance rates and round trips of ``state`` (default: the last state)
        since its ladder last changed; see :class:`SwapSummary`."""
        state = self._last if state is None else state
        if state is None:
            raise RuntimeError("no chains yet: call init_chains/step_chains (or run MCMC) first")
        per_chain = (state.swap_accept_sum / state.swap_attempts.clamp(min=1)).T
        attempts = state.swap_attempts.sum(-1)
        rate = state.swap_accept_sum.sum(-1) / attempts.clamp(min=1)
        trips = state.round_trips
        return SwapSummary(
            state.betas.clone(),
            rate,
            per_chain,
            trips.clone(),
            trips / max(state.num_steps, 1),
            state.num_steps,
        )

    # ---------------------------------------------------------------- VectorizedKernel
    def init_chains(
        self,
        num_chains: int,
        *,
        generator: torch.Generator,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> ReplicaExchangeState:
        """Start ``num_chains`` chains of ``R + 1`` replicas; each replica of chain ``c``
        starts at ``initial_params`` (``(C, *shape)`` or ``shape``) if given, else where the
        inner kernel starts its chains (independently per replica)."""
        check_positive_int(num_chains, "num_chains")
        tempering = self._tempering
        tempering.check()
        num_temps = self.num_replicas
        num_slots = num_temps * num_chains
        betas = self._initial_betas.to(dtype=tempering.dtype, device=self.device)
        initial = None
        if initial_params:
            ndims = tempering.site_ndims()
            initial = {}
            for name, value in initial_params.items():
                value = torch.as_tensor(value)
                if name in ndims and value.dim() == ndims[name] + 1:
                    value = value.repeat((num_temps,) + (1,) * ndims[name])
                initial[name] = value
        with torch.no_grad(), tempering.tempered(betas.repeat_interleave(num_chains)):
            inner = self.kernel.init_chains(num_slots, generator=generator, initial_params=initial)
            log_lik = tempering.log_likelihood(inner).reshape(num_temps, num_chains)
        device, dtype = self.device, tempering.dtype
        labels = torch.arange(num_temps, device=device).unsqueeze(-1).expand(-1, num_chains)
        direction = torch.full((num_temps, num_chains), -1, dtype=torch.long, device=device)
        direction[0] = 0
        state = ReplicaExchangeState(
            inner=inner,
            log_likelihood=log_lik,
            betas=betas,
            labels=labels.clone(),
            direction=direction,
            round_trips=torch.zeros(num_chains, dtype=dtype, device=device),
            swap_accept_sum=torch.zeros(num_temps - 1, num_chains, dtype=dtype, device=device),
            swap_attempts=torch.zeros(num_temps - 1, num_chains, dtype=dtype, device=device),
            num_steps=0,
            step=0,
            ladder=_new_round(num_temps - 1, FIRST_ROUND_LENGTH, dtype, device),
        )
        self._last = state
        return state

    def step_chains(
        self, state: ReplicaExchangeState, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[ReplicaExchangeState, dict[str, torch.Tensor]]:
        """One inner step on every replica, then a swap phase (module docstring); with
        ``warmup`` (and ``adapt_ladder``) the ladder adapts, and the inner kernel adapts as
        it does alone."""
        tempering = self._tempering
        num_temps, num_chains = state.log_likelihood.shape
        num_slots = num_temps * num_chains
        slot_betas = state.betas.repeat_interleave(num_chains)
        inner = state.inner
        with tempering.tempered(slot_betas):
            for _ in range(self.inner_steps):
                inner, inner_info = self.kernel.step_chains(
                    inner, generator=generator, warmup=warmup
                )
        info = {
            name: value[:num_chains]
            for name, value in inner_info.items()
            if isinstance(value, torch.Tensor) and value.dim() == 1 and value.shape[0] == num_slots
        }
        with torch.no_grad():
            log_lik = tempering.log_likelihood(inner).reshape(num_temps, num_chains)
        state = state._replace(inner=inner, log_likelihood=log_lik)
        if num_temps > 1:
            with torch.no_grad():
                state = self._swap_phase(state, generator, warmup, slot_betas)
            summary = self.swap_summary(state)
            for r, rate in enumerate(summary.swap_accept_rate_per_chain.unbind(-1)):
                info[f"swap_accept_rate_{r}"] = rate
            info["round_trips"] = summary.round_trips
            info["round_trip_rate"] = summary.round_trip_rate
        state = state._replace(step=state.step + 1)
        self._last = state
        return state, info

    def chain_values(self, state: ReplicaExchangeState) -> dict[str, torch.Tensor]:
        """The sampled sites at :math:`\\beta_0 = 1`, shape ``(C, *site_shape)``."""
        return self.kernel.chain_values(self._cold(state))

    # ---------------------------------------------------------------- internals
    def _cold(self, state: ReplicaExchangeState) -> Any:
        num_temps, num_chains = state.log_likelihood.shape
        return _cold_slots(state.inner, num_chains, num_temps * num_chains)

    def _swap_phase(
        self,
        state: ReplicaExchangeState,
        generator: torch.Generator,
        warmup: bool,
        slot_betas: torch.Tensor,
    ) -> ReplicaExchangeState:
        tempering = self._tempering
        num_temps, num_chains = state.log_likelihood.shape
        num_slots = num_temps * num_chains
        device = state.betas.device
        attempted = swap_pairs(state.step, num_temps - 1, num_chains, self.swap, generator, device)
        log_ratio = swap_log_accept_ratio(state.betas, state.log_likelihood)
        accepted, prob = metropolis_accept(log_ratio, generator)
        accepted = accepted & attempted
        prob = prob * attempted
        index = swap_index(accepted)  # (R + 1, C)
        chains = torch.arange(num_chains, device=device)
        flat = (index * num_chains + chains).reshape(-1)
        inner = _map_slots(state.inner, lambda t: t.index_select(0, flat), num_slots)
        if tempering.caches:
            moved = (flat != torch.arange(num_slots, device=device)).nonzero().squeeze(-1)
            if moved.numel():
                with tempering.tempered(slot_betas[moved]):
                    inner = tempering.refresh(inner, moved)
        direction, round_trips = update_round_trips(
            state.direction.gather(0, index), state.round_trips
        )
        state = state._replace(
            inner=inner,
            log_likelihood=state.log_likelihood.gather(0, index),
            labels=state.labels.gather(0, index),
            direction=direction,
            round_trips=round_trips,
            swap_accept_sum=state.swap_accept_sum + prob,
            swap_attempts=state.swap_attempts + attempted.to(prob.dtype),
            num_steps=state.num_steps + 1,
        )
        if warmup and self.adapt_ladder and num_temps > 2:
            state = self._adapt(state, prob, attempted)
        return state

    def _adapt(
        self, state: ReplicaExchangeState, prob: torch.Tensor, attempted: torch.Tensor
    ) -> ReplicaExchangeState:
        ladder = state.ladder
        attempts = attempted.to(prob.dtype)
        ladder = ladder._replace(
            rejection_sum=ladder.rejection_sum + ((1 - prob) * attempts).sum(-1),
            attempts=ladder.attempts + attempts.sum(-1),
            round_step=ladder.round_step + 1,
        )
        if ladder.round_step < ladder.round_length:
            return state._replace(ladder=ladder)
        rejection = ladder.rejection_sum / ladder.attempts.clamp(min=1)
        betas = equalised_ladder(state.betas, rejection)
        num_temps, num_chains = state.log_likelihood.shape
        inner = state.inner
        tempering = self._tempering
        if tempering.caches:  # every slot's temperature changed
            rows = torch.arange(num_temps * num_chains, device=betas.device)
            with tempering.tempered(betas.repeat_interleave(num_chains)):
                inner = tempering.refresh(inner, rows)
        dtype, device = prob.dtype, prob.device
        return state._replace(
            inner=inner,
            betas=betas,
            round_trips=torch.zeros_like(state.round_trips),
            swap_accept_sum=torch.zeros_like(state.swap_accept_sum),
            swap_attempts=torch.zeros_like(state.swap_attempts),
            num_steps=0,
            ladder=_new_round(num_temps - 1, 2 * ladder.round_length, dtype, device),
        )


def _new_round(num_pairs: int, length: int, dtype: torch.dtype, device: Any) -> LadderState:
    zeros = torch.zeros(num_pairs, dtype=dtype, device=device)
    return LadderState(zeros, zeros.clone(), 0, length)


def _check_betas(betas: Sequence[float] | torch.Tensor | int | None, min_beta: float) -> Any:
    """The ladder as a float64 tensor, validated (module docstring)."""
    if isinstance(min_beta, bool) or not isinstance(min_beta, (int, float)):
        raise TypeError(f"min_beta must be a number in (0, 1), got {type(min_beta).__name__}")
    if not 0 < min_beta < 1:
        raise ValueError(f"min_beta must lie in (0, 1), got {min_beta}")
    if betas is None:
        betas = DEFAULT_NUM_REPLICAS
    if isinstance(betas, bool):
        raise TypeError("betas must be a sequence of inverse temperatures or an int, got bool")
    if isinstance(betas, int):
        check_positive_int(betas, "betas (number of replicas)")
        return geometric_ladder(betas, min_beta, dtype=torch.float64)
    if isinstance(betas, (str, bytes)) or not isinstance(betas, (Sequence, torch.Tensor)):
        raise TypeError(
            "betas must be a sequence of inverse temperatures, an int (number of replicas) or "
            f"None, got {type(betas).__name__}"
        )
    ladder = torch.as_tensor(betas, dtype=torch.float64).detach().cpu()
    if ladder.dim() != 1 or ladder.numel() == 0:
        raise ValueError(f"betas must be a non-empty 1-D sequence, got shape {tuple(ladder.shape)}")
    values = ladder.tolist()
    if not all(math.isfinite(b) and 0 < b <= 1 for b in values):
        raise ValueError(f"betas must all lie in (0, 1], got {values}")
    if values[0] != 1:
        raise ValueError(f"betas must start at 1 (the target itself), got {values[0]}")
    if any(b >= a for a, b in itertools.pairwise(values)):
        raise ValueError(f"betas must be strictly decreasing, got {values}")
    return ladder
