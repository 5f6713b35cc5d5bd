"""The converter for ``pyro.infer.MCMC`` runs: what ``arviz.from_pyro`` gave on ArviZ 0.x.

ArviZ 1.x has no ``from_pyro``; :func:`from_pyro` builds the same groups as a
``DataTree`` for any kernel under Pyro's driver (Pyro's NUTS/HMC/RandomWalkKernel and
pyrogen's kernels alike):

* ``posterior``: ``mcmc.get_samples(group_by_chain=True)``, ``(chain, draw, *site_shape)``;
* ``sample_stats``: ``diverging`` ``(chain, draw)`` when the kernel reports divergences, and
  every other entry of the kernel's ``diagnostics()`` that is a number or an array per chain
  (``acceptance_rate``, a ``step_size``, ``swap_rates`` of a tempering kernel, ...), with
  dims ``(chain, ...)``; spaces in the names become underscores;
* ``observed_data`` and ``log_likelihood`` (pointwise :math:`\\log p(y \\mid \\theta)` of each
  draw, summed over the site's event dimensions) for the *genuinely observed* sites;
* ``prior``, ``prior_predictive`` and ``posterior_predictive`` from dicts of draws
  (``pyro.infer.Predictive``).

``pyro.factor`` sites are observed ``Unit`` sites to Pyro and ``arviz.from_pyro`` files
them (e.g. an RBM's energy) as log-likelihood and observed data; here they are left out,
because a factor is part of the prior or the joint density, not a data likelihood.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pyro
import pyro.distributions as dist
import torch
import xarray as xr
from pyro import poutine
from pyro.infer.mcmc.api import MCMC

from pyrogen.diagnostics.arrays import as_numpy
from pyrogen.diagnostics.datatree import build, set_attr

__all__ = ["from_pyro"]


def from_pyro(
    mcmc: MCMC,
    *,
    log_likelihood: bool = True,
    prior: Mapping[str, Any] | None = None,
    posterior_predictive: Mapping[str, Any] | None = None,
    wall_time: float | None = None,
) -> xr.DataTree:
    """Convert a ``pyro.infer.MCMC`` that has run into an ArviZ 1.x ``DataTree``.

    Args:
        mcmc: the driver after ``mcmc.run(...)``; the model's arguments are those of the run.
        log_likelihood: compute the ``log_likelihood`` group (one vectorised model trace,
            or one trace per draw for models that do not vectorise).
        prior: site name -> draws of shape ``(draw, *site_shape)`` (e.g.
            ``Predictive(model, num_samples=n)(*args)``), one chain: latent sites go to the
            ``prior`` group, the others (simulated data) to ``prior_predictive``, as
            ``arviz.from_pyro`` split them.
        posterior_predictive: site name -> ``(chain * draw, *site_shape)`` draws (from
            ``Predictive(model, mcmc.get_samples())``) or ``(draw, *site_shape)``: the
            ``posterior_predictive`` group, split into the run's chains when the size fits.
        wall_time: sampling time in seconds, stored as the ``wall_time`` attribute.

    Returns:
        ``xarray.DataTree`` with the groups of the module docstring; attributes name Pyro
        and its version as the inference library.

    Example:
        >>> mcmc = MCMC(NUTS(model), num_samples=100, warmup_steps=100)  # doctest: +SKIP
        >>> mcmc.run(data)  # doctest: +SKIP
        >>> idata = from_pyro(mcmc)  # doctest: +SKIP
        >>> list(idata.children)  # doctest: +SKIP
        ['posterior', 'sample_stats', 'log_likelihood', 'observed_data']
    """
    if not isinstance(mcmc, MCMC):
        raise TypeError(f"mcmc must be a pyro.infer.MCMC, got {type(mcmc).__name__}")
    samples = mcmc.get_samples(group_by_chain=True)
    if not samples:
        raise ValueError("the MCMC object has no samples; call mcmc.run(...) first")
    posterior = {k: as_numpy(v, k) for k, v in samples.items()}
    num_chains, num_draws = next(iter(posterior.values())).shape[:2]
    per_draw, per_chain = _sample_stats(mcmc, set(posterior), num_chains, num_draws)
    groups: dict[str, dict[str, np.ndarray]] = {"posterior": posterior, "sample_stats": per_draw}
    model = getattr(mcmc.kernel, "model", None)
    if model is not None:
        # The model's arguments: private in Pyro, read the same way by arviz.from_pyro.
        args, kwargs = mcmc._args or (), mcmc._kwargs or {}
        trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(*args, **kwargs)
        observed = [name for name, site in trace.nodes.items() if _is_observed_data_site(site)]
        groups["observed_data"] = {
            name: as_numpy(trace.nodes[name]["value"], name) for name in observed
        }
        if log_likelihood and observed:
            groups["log_likelihood"] = _log_likelihood(
                model, args, kwargs, samples, observed, num_chains, num_draws
            )
    shapes = {k: v.shape[2:] for k, v in posterior.items()}
    shapes.update({k: v.shape for k, v in groups.get("observed_data", {}).items()})
    for name, value in (prior or {}).items():
        group = "prior" if name in posterior else "prior_predictive"
        where = f"prior[{name!r}]"
        groups.setdefault(group, {})[name] = _predictive(value, where, shapes.get(name))
    for name, value in (posterior_predictive or {}).items():
        where = f"posterior_predictive[{name!r}]"
        groups.setdefault("posterior_predictive", {})[name] = _predictive(
            value, where, shapes.get(name), num_chains, num_draws
        )
    tree = build(groups, per_chain, inference_library=pyro)
    if wall_time is not None:
        set_attr(tree, "wall_time", float(wall_time))
    return tree


def _predictive(
    value: Any,
    where: str,
    site_shape: tuple[int, ...] | None,
    num_chains: int = 1,
    num_draws: int | None = None,
) -> np.ndarray:
    """Draws of ``pyro.infer.Predictive`` as ``(chain, draw, *site_shape)``.

    ``(chain * draw, ...)`` draws are split into the run's chains; ``(chain, draw, ...)``
    draws stay; any other ``(n, ...)`` is one chain of ``n`` draws. Predictive keeps the
    size-1 dims of enclosing plates that a site outside them does not have (``(n, 1)`` for a
    scalar): the draws take the site's own shape when the sizes agree.
    """
    array = as_numpy(value, where)
    if array.ndim == 0:
        raise ValueError(f"{where} must have a leading draw dimension, got a scalar")
    if num_draws is not None and array.shape[0] == num_chains * num_draws:
        lead = (num_chains, num_draws)
        array = array.reshape((*lead, *array.shape[1:]))
    elif num_draws is not None and array.shape[:2] == (num_chains, num_draws):
        lead = (num_chains, num_draws)
    else:
        lead = (1, array.shape[0])
        array = array[None]
    rest = array.shape[2:]
    if site_shape is not None and rest != site_shape and math.prod(rest) == math.prod(site_shape):
        rest = site_shape
    return array.reshape((*lead, *rest))


def _is_observed_data_site(site: dict[str, Any]) -> bool:
    """True for ``pyro.sample(..., obs=...)`` data sites, false for factors and latents."""
    if site["type"] != "sample" or not site["is_observed"]:
        return False
    if site["infer"].get("is_auxiliary") or isinstance(site["fn"], dist.Unit):
        return False  # pyro.factor: an energy term, not data
    return True


def _sample_stats(
    mcmc: MCMC, site_names: set[str], num_chains: int, num_draws: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``diverging`` ``(chain, draw)`` and the kernel's per-chain diagnostics ``(chain, ...)``."""
    per_draw: dict[str, np.ndarray] = {}
    per_chain: dict[str, np.ndarray] = {}
    for key, by_chain in mcmc.diagnostics().items():
        if key in site_names or not isinstance(by_chain, dict):
            continue  # Pyro's own n_eff / r_hat per site: recomputed by summarize()
        values = [by_chain.get(f"chain {i}") for i in range(num_chains)]
        if key == "divergences":
            diverging = np.zeros((num_chains, num_draws), dtype=bool)
            for i, indices in enumerate(values):
                idx = np.asarray(list(indices or []), dtype=np.int64)
                diverging[i, idx[(idx >= 0) & (idx < num_draws)]] = True
            per_draw["diverging"] = diverging
            continue
        try:
            stacked = np.stack([as_numpy(v, key) for v in values]).astype(np.float64)
        except (TypeError, ValueError):
            continue  # not a number or an equal-shape array per chain: nothing ArviZ can use
        per_chain[key.replace(" ", "_")] = stacked
    return per_draw, per_chain


def _log_likelihood(
    model: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    samples: dict[str, torch.Tensor],
    observed: list[str],
    num_chains: int,
    num_draws: int,
) -> dict[str, np.ndarray]:
    """log p(obs | latents) per draw, summed over each site's event dimensions.

    Integer-valued sites (Categorical indices) arrive from ``mcmc.get_samples`` as integer
    tensors, so the model indexes with them as it did while sampling.
    """
    size = num_chains * num_draws
    flat = {k: v.reshape((size, *v.shape[2:])) for k, v in samples.items()}
    try:
        predictive = pyro.infer.Predictive(model, flat, return_sites=observed)
        trace = predictive.get_vectorized_trace(*args, **kwargs)
        per_site = {n: trace.nodes[n]["fn"].log_prob(trace.nodes[n]["value"]) for n in observed}
        if any(v.ndim == 0 or v.shape[0] != size for v in per_site.values()):
            raise ValueError("the vectorised trace lost the draw dimension")
    except Exception:  # models that do not vectorise: one trace per draw (slow but exact)
        per_site = {n: [] for n in observed}
        for i in range(size):
            draw = {k: v[i] for k, v in flat.items()}
            trace = poutine.trace(poutine.condition(model, data=draw)).get_trace(*args, **kwargs)
            for n in observed:
                site = trace.nodes[n]  # a traced sample site: a distribution and its value
                fn = cast(dist.TorchDistribution, site["fn"])
                per_site[n].append(fn.log_prob(cast(torch.Tensor, site["value"])))
        per_site = {n: torch.stack(v) for n, v in per_site.items()}
    return {
        n: as_numpy(v, n).reshape((num_chains, num_draws, *v.shape[1:]))
        for n, v in per_site.items()
    }
