r"""Metropolis-within-Gibbs for mixed models: discrete sites by Gibbs, continuous by HMC/NUTS.

Each step alternates two kernels that each leave :math:`p(x, \theta \mid y)` invariant
(so their composition does; Tierney, 1994):

1. a sweep of single-site Gibbs updates of the discrete sites :math:`x` given the
   continuous :math:`\theta` (:mod:`pyrogen.infer.discrete_gibbs`, the model's log joint
   at all values of a coordinate in one batched call);
2. one transition of the user's Pyro ``HMC``/``NUTS`` kernel on :math:`\theta` given
   :math:`x`.

This is what NumPyro's ``DiscreteHMCGibbs`` does. The trap in Pyro: ``initialize_model``
wraps the model in ``poutine.enum``, so an HMC kernel on the raw model would *marginalise*
the discrete sites. Here the inner kernel gets the model **conditioned** on a dict of current
discrete values that this kernel updates in place, and its potential energy is replaced by
one that reads those values on every call:

.. math:: U(\phi; x) = -\log p\big(T^{-1}(\phi), x, y\big)
          - \log\big|\det \partial T^{-1}(\phi) / \partial \phi\big|,

with :math:`\phi` the unconstrained continuous values and :math:`T` Pyro's bijection to the
unconstrained space. With ``jit_compile=True`` the discrete values are *inputs* of the traced
function (Pyro's own JIT potential would trace them in as constants, and HMC would go on
sampling :math:`\theta \mid x_0` for the first :math:`x_0`). After each Gibbs sweep the inner
kernel's cached potential energy and gradient are cleared, so it recomputes them (one extra
gradient evaluation per step) instead of re-running its whole ``setup``. As for any traced
potential, Python control flow on the values (``if z == 1:``) is frozen at trace time: write
such models with tensor operations (``torch.where``, indexing) to use JIT.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import pyro
import pyro.poutine as poutine
import torch
from pyro.infer.mcmc import HMC
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel
from pyro.util import ignore_jit_warnings

from pyrogen._validation import check_choice, check_positive_int
from pyrogen.infer.base import new_generator
from pyrogen.infer.discrete_gibbs import (
    SCANS,
    DiscreteGibbsState,
    blocked_gibbs_sweep,
    initial_discrete_state,
    posterior_dependencies,
)
from pyrogen.infer.gibbs_blocks import BLOCKS, GibbsPlan, gibbs_plan
from pyrogen.infer.integer_draws import integer_transforms
from pyrogen.infer.pyro_target import PyroTarget

__all__ = ["GibbsWithinHMC"]


class _ConditionedModel:
    """``model`` with the sites in ``values`` observed at their *current* values.

    ``values`` is shared with (and mutated by) :class:`GibbsWithinHMC`; a class rather than a
    closure so that the kernel pickles for Pyro's multiprocessing chains.
    """

    def __init__(self, model: Callable[..., Any], values: dict[str, torch.Tensor]) -> None:
        self.model = model
        self.values = values

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with poutine.condition(data=self.values):
            return self.model(*args, **kwargs)


class _GibbsPotential:
    r"""Potential energy :math:`U(\phi; x)` of the continuous sites at the current discrete
    values ``discrete_values`` (a dict shared with, and updated in place by,
    :class:`GibbsWithinHMC`), called as Pyro's ``potential_fn(params)`` with unconstrained
    ``params``.

    With ``jit`` the function of ``(*continuous values, *discrete values)``, each group
    sorted by site name, is traced once by ``torch.jit.trace``; the discrete values are inputs
    of the trace, so later Gibbs updates reach it. A class, not a closure, so that the kernel
    pickles for Pyro's multiprocessing chains (the compiled trace is dropped and rebuilt).
    """

    def __init__(
        self,
        model: Callable[..., Any],
        model_args: tuple[Any, ...],
        model_kwargs: dict[str, Any],
        transforms: dict[str, Any],
        discrete_values: dict[str, torch.Tensor],
        jit: bool = False,
        jit_options: dict[str, Any] | None = None,
        ignore_warnings: bool = False,
    ) -> None:
        self.model = model
        self.model_args = model_args
        self.model_kwargs = model_kwargs
        self.transforms = transforms
        self.discrete_values = discrete_values
        self.jit = jit
        self.jit_options = {"check_trace": False} if jit_options is None else dict(jit_options)
        self.ignore_warnings = ignore_warnings
        self._compiled: Any = None
        self._compiled_key: tuple[Any, ...] | None = None

    def energy(
        self, params: dict[str, torch.Tensor], discrete: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """:math:`U` at unconstrained ``params`` and discrete site values ``discrete``."""
        constrained = {k: self.transforms[k].inv(v) for k, v in params.items()}
        conditioned = poutine.condition(self.model, data={**discrete, **constrained})
        trace = poutine.trace(conditioned).get_trace(*self.model_args, **self.model_kwargs)
        log_joint = trace.log_prob_sum()
        for name, t in self.transforms.items():
            log_joint = log_joint - t.log_abs_det_jacobian(constrained[name], params[name]).sum()
        # Pyro types log_prob_sum() as Tensor | float (0.0 for a trace without sites); the
        # model has latent sites here, so it is a tensor.
        return -log_joint  # type: ignore[return-value]

    def __call__(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        if not self.jit or not params:
            return self.energy(params, self.discrete_values)
        names = tuple(sorted(params))
        values = tuple(params[k] for k in names)
        discrete_names = tuple(sorted(self.discrete_values))
        discrete = tuple(self.discrete_values[k] for k in discrete_names)
        key = (names, discrete_names)
        if self._compiled is None or self._compiled_key != key:
            self._compiled = self._trace(names, discrete_names, values + discrete)
            self._compiled_key = key
        return self._compiled(*values, *discrete)

    def _trace(
        self, names: tuple[str, ...], discrete_names: tuple[str, ...], inputs: tuple[Any, ...]
    ) -> Any:
        split = len(names)

        def energy(*args: torch.Tensor) -> torch.Tensor:
            return self.energy(
                dict(zip(names, args[:split], strict=True)),
                dict(zip(discrete_names, args[split:], strict=True)),
            )

        if self.ignore_warnings:
            energy = ignore_jit_warnings()(energy)
        with pyro.validation_enabled(False):
            # As Pyro does: parameters in the param store that require grad would be traced
            # in as constants.
            frozen = [v for _, v in pyro.get_param_store().named_parameters() if v.requires_grad]
            for v in frozen:
                v.requires_grad_(False)
            try:
                return torch.jit.trace(energy, inputs, **self.jit_options)
            finally:
                for v in frozen:
                    v.requires_grad_(True)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_compiled"] = state["_compiled_key"] = None
        return state


class GibbsWithinHMC(MCMCKernel):
    """Gibbs for the discrete latent sites, ``inner_kernel`` (HMC/NUTS) for the continuous.

    Args:
        inner_kernel: a ``pyro.infer.HMC`` or ``NUTS`` built from the model (``model=``,
            not ``potential_fn=``). Its settings (step size, adaptation, mass matrix) are used
            as they are; its ``model`` attribute is replaced by the conditioned model.
        gibbs_sites: names of the discrete sites to Gibbs-sample; default all latent sites
            with enumerable support. Every discrete latent site must be included (leaving
            some for the inner kernel to enumerate out is not supported).
        scan: order of the Gibbs sweep's update units: ``"permutation"`` (default),
            ``"random"`` or ``"systematic"`` (see :mod:`pyrogen.infer.discrete_gibbs`).
        blocks: ``"auto"`` (default), ``"none"`` or a colouring, as for
            :class:`~pyrogen.infer.DiscreteGibbs`: with ``"auto"`` the conditionally
            independent elements of a discrete site in a plate (a mixture's assignments given
            its parameters) are redrawn together from one model call per sweep.

    ``kernel.model`` is the original model. Values follow Pyro's conventions (continuous
    sites unconstrained in ``initial_params``); diagnostics (incl. divergences) and logging
    are the inner kernel's. The Gibbs part draws from a generator seeded in ``setup`` from
    torch's global RNG, the inner kernel from that global RNG itself (as Pyro's kernels do):
    ``pyro.set_rng_seed`` makes both reproducible. One step costs one traced model call per
    update unit of the Gibbs sweep (a whole plate block is one unit; see ``plan``) plus the
    inner transition (and one extra gradient evaluation).

    Example:
        >>> import pyro, pyro.distributions as dist
        >>> from pyro.infer import MCMC, NUTS
        >>> def model(y):
        ...     loc = pyro.sample("loc", dist.Normal(torch.tensor([-1.0, 1.0]), 1.0).to_event(1))
        ...     with pyro.plate("data", len(y)):
        ...         z = pyro.sample("z", dist.Categorical(torch.ones(2) / 2))
        ...         pyro.sample("y", dist.Normal(loc[z], 1.0), obs=y)
        >>> kernel = GibbsWithinHMC(NUTS(model))
        >>> mcmc = MCMC(kernel, num_samples=20, warmup_steps=20, disable_progbar=True)
        >>> mcmc.run(torch.tensor([-1.2, 0.9, 1.4]))
        >>> sorted(mcmc.get_samples())
        ['loc', 'z']
    """

    def __init__(
        self,
        inner_kernel: HMC,
        gibbs_sites: Sequence[str] | None = None,
        scan: Literal["permutation", "random", "systematic"] = "permutation",
        blocks: str | Mapping[str, Any] | None = "auto",
    ) -> None:
        if not isinstance(inner_kernel, HMC):
            raise TypeError(
                f"inner_kernel must be a pyro.infer.HMC or NUTS, got {type(inner_kernel).__name__}"
            )
        if inner_kernel.model is None:
            raise ValueError(
                "inner_kernel must be built from a model (HMC(model)/NUTS(model)), not from "
                "potential_fn: GibbsWithinHMC conditions the model on the discrete values"
            )
        if gibbs_sites is not None:
            if isinstance(gibbs_sites, str) or not all(isinstance(s, str) for s in gibbs_sites):
                raise TypeError(f"gibbs_sites must be a list of site names, got {gibbs_sites!r}")
            gibbs_sites = list(gibbs_sites)
            if not gibbs_sites:
                raise ValueError("gibbs_sites is empty: use the inner kernel on its own")
        self.gibbs_sites = gibbs_sites
        self.scan = check_choice(scan, "scan", SCANS)
        if not (blocks is None or isinstance(blocks, (str, Mapping))):
            raise TypeError(
                "blocks must be 'auto', 'none' or a mapping of site names to colours, got "
                f"{type(blocks).__name__}"
            )
        if isinstance(blocks, str):
            check_choice(blocks, "blocks", BLOCKS)
        self.blocks = blocks
        self.plan: GibbsPlan | None = None
        model = inner_kernel.model
        if isinstance(model, _ConditionedModel):  # the inner kernel was wrapped before
            model = model.model
        self.model = model
        self.inner_kernel = inner_kernel
        self._discrete_values: dict[str, torch.Tensor] = {}
        inner_kernel.model = _ConditionedModel(model, self._discrete_values)
        self.transforms: dict[str, Any] | None = None
        self._pending_initial_params: dict[str, torch.Tensor] | None = None
        self._target: PyroTarget | None = None
        self._discrete: DiscreteGibbsState | None = None
        self._generator: torch.Generator | None = None

    # ----------------------------------------------------------------- setup
    def _check_sites(self, target: PyroTarget) -> None:
        discrete = [s.name for s in target.discrete_sites]
        if not discrete:
            raise ValueError(
                "the model has no latent discrete sites with enumerable support; use the "
                "inner HMC/NUTS kernel on its own"
            )
        if not target.continuous_sites:
            raise ValueError(
                f"the model has no continuous latent sites (only {discrete}); use "
                "DiscreteGibbs instead"
            )
        if self.gibbs_sites is not None:
            unknown = sorted(set(self.gibbs_sites) - set(discrete))
            if unknown:
                raise ValueError(
                    f"gibbs_sites {unknown} are not latent discrete sites of the model "
                    f"(those are {discrete})"
                )
            missing = sorted(set(discrete) - set(self.gibbs_sites))
            if missing:
                raise ValueError(
                    f"discrete sites {missing} are not in gibbs_sites; GibbsWithinHMC samples "
                    "every discrete latent site by Gibbs"
                )

    def setup(self, warmup_steps: int, *args: Any, **kwargs: Any) -> None:
        """Build the target, start the discrete chain, then set up the inner kernel."""
        check_positive_int(warmup_steps, "warmup_steps", minimum=0)
        target = PyroTarget(self.model, args, kwargs)
        self._check_sites(target)
        target.check_vectorized(batch_continuous=False)
        self._target = target
        self._generator = new_generator(target.device)
        pending = self._pending_initial_params or {}
        discrete_names = {s.name for s in target.discrete_sites}
        given = {k: v for k, v in pending.items() if k in discrete_names}
        continuous = {k: v for k, v in pending.items() if k not in discrete_names}
        idx = target.initial_from_values(given, 1)[0] if given else None
        start_fn = self._start_log_joint_fn(target, continuous)
        checks = torch.Generator(device=target.device).manual_seed(0)
        self.plan = gibbs_plan(
            target,
            self.blocks if target.vectorized else "none",
            start_fn,
            checks,
            lambda: posterior_dependencies(self.model, args, kwargs),
        )
        self._discrete = DiscreteGibbsState(
            initial_discrete_state(target, 1, start_fn, self._generator, idx)
        )
        self._set_discrete_values()
        inner = self.inner_kernel
        if continuous:
            inner.initial_params = continuous
        # Pyro's JIT potential would freeze the discrete values of its trace: set up without
        # it, then install a potential that takes the discrete values as inputs.
        jit = inner._jit_compile
        inner._jit_compile = False
        try:
            inner.setup(warmup_steps, *args, **kwargs)
        finally:
            inner._jit_compile = jit
        # Integer draws (Categorical) reach mcmc.get_samples() as long (integer_draws).
        self.transforms = {**integer_transforms(target.discrete_sites), **inner.transforms}
        inner.potential_fn = _GibbsPotential(
            self.model,
            tuple(args),
            dict(kwargs),
            dict(inner.transforms),
            self._discrete_values,
            jit=bool(jit),
            jit_options=inner._jit_options,
            ignore_warnings=bool(inner._ignore_jit_warnings),
        )
        inner.clear_cache()

    def _start_log_joint_fn(
        self, target: PyroTarget, continuous: dict[str, torch.Tensor]
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """Log joint of discrete value indices ``(C, D)`` for the start: continuous sites at
        their unconstrained ``initial_params`` when all are given, else at a uniform random
        unconstrained point in (-2, 2) (the discrete start is drawn before HMC's)."""
        if all(s.name in continuous for s in target.continuous_sites):
            flat = torch.cat(
                [
                    torch.as_tensor(continuous[s.name], dtype=target.dtype).reshape(-1)
                    for s in target.continuous_sites
                ]
            )
        else:
            flat = target.initial_state(1, self._generator)[1][0]  # type: ignore[arg-type]
        fixed, _ = target.continuous_values(flat)

        def log_joint_fn(discrete: torch.Tensor, plate_dims: tuple[int, ...] = ()) -> torch.Tensor:
            values = target.discrete_values(discrete)
            return target.log_joint(values, discrete.dim() - 1, fixed=fixed, plate_dims=plate_dims)

        return log_joint_fn

    def _set_discrete_values(self) -> None:
        values = self._target.discrete_values(self._discrete.discrete[0])  # type: ignore[union-attr]
        self._discrete_values.clear()  # in place: the conditioned model holds this dict
        self._discrete_values.update(values)

    # ---------------------------------------------------------------- sample
    def gibbs_log_joint_fn(
        self, unconstrained: dict[str, torch.Tensor]
    ) -> Callable[..., torch.Tensor]:
        """The log joint as a function of discrete value indices ``(*batch, D)`` (shape
        ``batch``, or ``(*batch, *plate_shape)`` with ``plate_dims``), continuous sites held at
        ``unconstrained`` (Pyro's space): what each Gibbs update evaluates. Available after
        ``setup``."""
        target = self._target
        if target is None or self.transforms is None:
            raise RuntimeError("call setup() (pyro.infer.MCMC does) first")
        with torch.no_grad():
            fixed = {k: self.transforms[k].inv(v) for k, v in unconstrained.items()}

        def log_joint_fn(discrete: torch.Tensor, plate_dims: tuple[int, ...] = ()) -> torch.Tensor:
            values = target.discrete_values(discrete)
            return target.log_joint(values, discrete.dim() - 1, fixed=fixed, plate_dims=plate_dims)

        return log_joint_fn

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A Gibbs sweep of the discrete sites, then one inner transition."""
        target = self._target
        if target is None or self._discrete is None:
            raise RuntimeError("call setup() (pyro.infer.MCMC does) before sample()")
        unconstrained = {s.name: params[s.name] for s in target.continuous_sites}
        self._discrete = blocked_gibbs_sweep(
            self._discrete,
            self.plan,  # type: ignore[arg-type]
            self.gibbs_log_joint_fn(unconstrained),
            target.cardinalities,
            self._generator,  # type: ignore[arg-type]
            self.scan,
        )
        self._set_discrete_values()
        # The inner kernel caches the potential energy and its gradient at its current
        # point; both changed with the discrete values.
        self.inner_kernel.clear_cache()
        continuous = self.inner_kernel.sample(unconstrained)
        return {**self._discrete_values, **continuous}

    # ------------------------------------------------------------ Pyro glue
    @property
    def initial_params(self) -> dict[str, torch.Tensor] | None:
        if self._discrete is None:
            return self._pending_initial_params
        return {**self._discrete_values, **self.inner_kernel.initial_params}

    @initial_params.setter
    def initial_params(self, params: dict[str, torch.Tensor] | None) -> None:
        if params is not None and not isinstance(params, dict):
            raise TypeError(f"initial_params must be a dict, got {type(params).__name__}")
        self._pending_initial_params = params
        self._discrete = None

    def cleanup(self) -> None:
        self.inner_kernel.cleanup()
        self._pending_initial_params = None

    def logging(self) -> OrderedDict[str, str]:
        return self.inner_kernel.logging()

    def diagnostics(self) -> dict[str, Any]:
        return self.inner_kernel.diagnostics()
