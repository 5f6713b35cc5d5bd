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
discrete values that this kernel updates in place; after each Gibbs sweep the inner kernel's
cached potential energy and gradient are cleared, so it recomputes them (one extra gradient
evaluation per step) instead of re-running its whole ``setup``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Literal

import pyro.poutine as poutine
import torch
from pyro.infer.mcmc import HMC
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

from pyrogen._validation import check_choice, check_positive_int
from pyrogen.infer.chain_kernel import new_generator
from pyrogen.infer.discrete_gibbs import DiscreteGibbsState, discrete_gibbs_sweep
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


class GibbsWithinHMC(MCMCKernel):
    """Gibbs for the discrete latent sites, ``inner_kernel`` (HMC/NUTS) for the continuous.

    Args:
        inner_kernel: a ``pyro.infer.HMC`` or ``NUTS`` built from the model (``model=``,
            not ``potential_fn=``). Its settings (step size, adaptation, mass matrix) are used
            as they are; its ``model`` attribute is replaced by the conditioned model.
        gibbs_sites: names of the discrete sites to Gibbs-sample; default all latent sites
            with enumerable support. Every discrete latent site must be included (leaving
            some for the inner kernel to enumerate out is not supported).
        scan: coordinate order of the Gibbs sweep, ``"random"`` or ``"systematic"``.

    ``kernel.model`` is the original model. Values follow Pyro's conventions (continuous
    sites unconstrained in ``initial_params``); diagnostics (incl. divergences) and logging
    are the inner kernel's. The Gibbs part draws from a generator seeded in ``setup`` from
    torch's global RNG, the inner kernel from that global RNG itself (as Pyro's kernels do):
    ``pyro.set_rng_seed`` makes both reproducible. One step costs one traced model call per
    discrete coordinate plus the inner transition (and one extra gradient evaluation).

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
        scan: Literal["random", "systematic"] = "random",
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
        self.scan = check_choice(scan, "scan", ("random", "systematic"))
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
        if given:
            idx, _ = target.initial_from_values(given, 1)
        else:
            idx, _ = target.initial_state(1, self._generator)
        self._discrete = DiscreteGibbsState(idx)
        self._set_discrete_values()
        continuous = {k: v for k, v in pending.items() if k not in discrete_names}
        if continuous:
            self.inner_kernel.initial_params = continuous
        self.inner_kernel.setup(warmup_steps, *args, **kwargs)
        self.transforms = dict(self.inner_kernel.transforms)

    def _set_discrete_values(self) -> None:
        values = self._target.discrete_values(self._discrete.discrete[0])  # type: ignore[union-attr]
        self._discrete_values.clear()  # in place: the conditioned model holds this dict
        self._discrete_values.update(values)

    # ---------------------------------------------------------------- sample
    def gibbs_log_joint_fn(
        self, unconstrained: dict[str, torch.Tensor]
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """The log joint as a function of discrete value indices ``(*batch, D)`` (shape
        ``batch``), continuous sites held at ``unconstrained`` (Pyro's space): what each
        Gibbs update evaluates. Available after ``setup``."""
        target = self._target
        if target is None or self.transforms is None:
            raise RuntimeError("call setup() (pyro.infer.MCMC does) first")
        with torch.no_grad():
            fixed = {k: self.transforms[k].inv(v) for k, v in unconstrained.items()}

        def log_joint_fn(discrete: torch.Tensor) -> torch.Tensor:
            values = target.discrete_values(discrete)
            return target.log_joint(values, discrete.dim() - 1, fixed=fixed)

        return log_joint_fn

    def sample(self, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A Gibbs sweep of the discrete sites, then one inner transition."""
        target = self._target
        if target is None or self._discrete is None:
            raise RuntimeError("call setup() (pyro.infer.MCMC does) before sample()")
        unconstrained = {s.name: params[s.name] for s in target.continuous_sites}
        self._discrete = discrete_gibbs_sweep(
            self._discrete,
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
