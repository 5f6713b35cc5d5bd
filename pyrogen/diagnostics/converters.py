"""Chains from any source become one ArviZ 1.x ``xarray.DataTree``.

:func:`to_inference_data` is the single entry point: a ``pyro.infer.MCMC`` run (through
:func:`~pyrogen.diagnostics.pyro_mcmc.from_pyro`), the output of
:func:`pyrogen.infer.sample`, a dict of ``(chain, draw, ...)`` arrays (torch, numpy, jax,
...), one such array, an ``xarray.Dataset`` of draws, a ``DataTree`` or an ArviZ 0.x
``InferenceData``: chains from pyrogen, NumPyro (``arviz_base.from_numpyro``) or written by
hand go into the same reports.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from pyro.infer.mcmc.api import MCMC

from pyrogen.diagnostics.arrays import as_numpy, check_draws
from pyrogen.diagnostics.datatree import build, from_legacy, is_legacy_inference_data, set_attr
from pyrogen.diagnostics.pyro_mcmc import from_pyro

__all__ = ["to_inference_data"]

#: The name ArviZ gives the one variable of a bare array.
_ARRAY_NAME = "x"


def to_inference_data(
    source: Any,
    wall_time: float | None = None,
    *,
    sample_stats: Mapping[str, Any] | None = None,
    log_likelihood: bool = True,
    attrs: Mapping[str, int | float | str] | None = None,
) -> xr.DataTree:
    """Convert chains to an ArviZ 1.x ``xarray.DataTree``.

    Args:
        source: one of

            * a ``pyro.infer.MCMC`` that has run: the groups of
              :func:`~pyrogen.diagnostics.pyro_mcmc.from_pyro` (``posterior``,
              ``sample_stats`` with ``diverging`` and the kernel's per-chain diagnostics,
              ``log_likelihood`` and ``observed_data`` for genuinely observed sites);
            * an ``xarray.DataTree`` (e.g. from :func:`pyrogen.infer.sample`): returned as
              is, or as a shallow copy (data shared, attributes copied) carrying
              ``wall_time`` / ``attrs`` when they are given;
            * an ArviZ 0.x ``InferenceData``: a ``DataTree`` with the same groups;
            * an ``xarray.Dataset`` with dims ``(chain, draw, ...)``: the ``posterior``;
            * a dict mapping site names to ``(chain, draw, *site_shape)`` array-likes
              (torch tensors, numpy or jax arrays, nested lists);
            * one ``(chain, draw, ...)`` array-like: a posterior with one variable ``"x"``
              (ArviZ's name for it).
        wall_time: sampling time in seconds, stored as the ``wall_time`` attribute of
            ``posterior`` and ``sample_stats``; :func:`~pyrogen.diagnostics.summarize`
            divides the ESS by it.
        sample_stats: (array sources only) per-draw statistics of shape ``(chain, draw, ...)``
            or per-chain statistics of shape ``(chain,)`` (1-D arrays are per chain).
        log_likelihood: (MCMC source only) compute the pointwise log-likelihood group.
        attrs: extra attributes (ints, floats or strings, netCDF-safe) for the ``posterior``
            and ``sample_stats`` groups, e.g. the seed of the run.

    Returns:
        ``xarray.DataTree`` with one child per group; each draw variable has dims
        ``("chain", "draw", "<name>_dim_0", ...)``.

    Example:
        >>> import torch
        >>> idata = to_inference_data({"x": torch.randn(2, 100, 3)}, wall_time=0.5)
        >>> list(idata.children), idata.posterior["x"].shape
        (['posterior'], (2, 100, 3))
    """
    if wall_time is not None:
        wall_time = float(wall_time)
        if not math.isfinite(wall_time) or wall_time < 0:
            raise ValueError(f"wall_time must be a finite number >= 0 seconds, got {wall_time}")
    extra = _check_attrs(attrs)
    if sample_stats is not None and (
        isinstance(source, (MCMC, xr.DataTree, xr.Dataset)) or is_legacy_inference_data(source)
    ):
        raise ValueError("sample_stats applies to array sources only (a dict or an array)")
    if isinstance(source, xr.DataTree):
        if wall_time is None and not extra:
            return source
        tree = source.copy()
    elif is_legacy_inference_data(source):
        tree = from_legacy(source)
    elif isinstance(source, MCMC):
        tree = from_pyro(source, log_likelihood=log_likelihood)
    elif isinstance(source, xr.Dataset):
        if source.sizes.get("chain") is None or source.sizes.get("draw") is None:
            raise ValueError(f"a Dataset source needs dims (chain, draw), got {dict(source.sizes)}")
        # Kept as it is (names, dims, coordinates), sample dims first as ArviZ expects.
        tree = xr.DataTree.from_dict({"posterior": source.transpose("chain", "draw", ...)})
    elif isinstance(source, Mapping):
        tree = _from_arrays(source, sample_stats)
    else:
        try:
            array = as_numpy(source, "source")
        except TypeError:
            raise TypeError(
                "source must be a pyro.infer.MCMC, an xarray.DataTree, an arviz "
                "InferenceData, an xarray.Dataset, a dict of (chain, draw, ...) arrays or "
                f"one such array, got {type(source).__name__}"
            ) from None
        tree = _from_arrays({_ARRAY_NAME: array}, sample_stats)
    for key, value in {**extra, "wall_time": wall_time}.items():
        if value is not None:
            set_attr(tree, key, value)
    return tree


def _check_attrs(attrs: Mapping[str, Any] | None) -> dict[str, int | float | str]:
    """``attrs`` as netCDF-safe values; bools become ints (netCDF has no bool)."""
    out: dict[str, int | float | str] = {}
    for key, value in (attrs or {}).items():
        if isinstance(value, (bool, np.bool_)):
            out[key] = int(value)
        elif isinstance(value, numbers.Integral):
            out[key] = int(value)
        elif isinstance(value, numbers.Real):
            out[key] = float(value)
        elif isinstance(value, str):
            out[key] = value
        else:
            raise TypeError(
                f"attrs[{key!r}] must be an int, float or str (netCDF-safe), got "
                f"{type(value).__name__}"
            )
    return out


def _from_arrays(posterior: Mapping[str, Any], sample_stats: Mapping[str, Any] | None) -> Any:
    if not posterior:
        raise ValueError("source is an empty dict; expected site name -> (chain, draw, ...)")
    draws = {
        str(k): check_draws(as_numpy(v, f"source[{k!r}]"), f"source[{k!r}]")
        for k, v in posterior.items()
    }
    shapes = {k: v.shape[:2] for k, v in draws.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"sites disagree on (chain, draw): {shapes}")
    num_chains, num_draws = next(iter(shapes.values()))
    per_draw, per_chain = {}, {}
    for k, v in (sample_stats or {}).items():
        array = as_numpy(v, f"sample_stats[{k!r}]")
        if array.ndim == 0 or array.shape[0] != num_chains:
            raise ValueError(
                f"sample_stats[{k!r}] has shape {array.shape}, expected leading size "
                f"num_chains={num_chains}"
            )
        if array.ndim == 1:
            per_chain[str(k)] = array
        elif array.shape[1] != num_draws:
            raise ValueError(
                f"sample_stats[{k!r}] has shape {array.shape}, expected (chain, draw, ...) = "
                f"({num_chains}, {num_draws}, ...) or (chain,)"
            )
        else:
            per_draw[str(k)] = array
    return build({"posterior": draws, "sample_stats": per_draw}, per_chain)
