"""Reports: one row per scalar component with its posterior summary and its reliability.

The statistics come from ``arviz_stats`` (:mod:`pyrogen.diagnostics.statistics`); the
table is pyrogen's own so that its columns and component names stay the same whatever
ArviZ version made the chains, and so that it carries ESS per second of sampling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyro.infer.mcmc.api import MCMC

from pyrogen._validation import check_probability
from pyrogen.diagnostics.arrays import as_numpy, split_components
from pyrogen.diagnostics.converters import to_inference_data
from pyrogen.diagnostics.datatree import group_arrays, is_inference_data, wall_time_of
from pyrogen.diagnostics.statistics import array_statistic

__all__ = ["flatten_components", "summarize", "worst_case"]


def _draw_arrays(data: Any, group: str) -> dict[str, np.ndarray]:
    """``{name: (chain, draw, ...) array}`` of any source :func:`summarize` accepts."""
    if is_inference_data(data):
        return group_arrays(data, group)
    if isinstance(data, Mapping):
        return {str(k): as_numpy(v, f"data[{k!r}]") for k, v in data.items()}
    if isinstance(data, MCMC):
        return group_arrays(to_inference_data(data, log_likelihood=False), group)
    try:
        return {"x": as_numpy(data, "data")}
    except TypeError:
        raise TypeError(
            "data must be an xarray.DataTree, an arviz InferenceData, a pyro.infer.MCMC, a "
            f"dict of (chain, draw, ...) arrays or one such array, got {type(data).__name__}"
        ) from None


def flatten_components(
    data: Any,
    var_names: Sequence[str] | None = None,
    group: str = "posterior",
) -> dict[str, np.ndarray]:
    """Split every variable into scalar components, each a ``(chain, draw)`` float64 array.

    Component names follow ArviZ: ``"x"`` for a scalar site, ``"v[3]"``, ``"w[1, 2]"`` for
    vector and matrix sites (C order). ``data`` is a ``DataTree`` / ``InferenceData`` (its
    ``group``), a ``pyro.infer.MCMC``, a dict of ``(chain, draw, ...)`` array-likes, or one
    such array-like (named ``"x"``). Minima over components of the bulk and tail ESS are
    the "worst direction" figures used by the benchmarks (see :func:`worst_case`).
    """
    arrays = _draw_arrays(data, group)
    if var_names is not None:
        names = [var_names] if isinstance(var_names, str) else list(var_names)
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"var_names {missing} not in {group}; it holds {list(arrays)}")
        arrays = {n: arrays[n] for n in names}
    return split_components(arrays)


def summarize(
    idata: Any,
    var_names: Sequence[str] | None = None,
    *,
    hdi_prob: float = 0.94,
) -> pd.DataFrame:
    """Per-component posterior summary and convergence diagnostics, one row per scalar.

    Args:
        idata: anything :func:`flatten_components` takes (``DataTree``, ``InferenceData``,
            ``pyro.infer.MCMC``, dict of arrays, one ``(chain, draw, ...)`` array).
        var_names: the variables to include (default: every posterior variable).
        hdi_prob: mass of the highest density interval, in [0, 1].

    Returns:
        ``pandas.DataFrame`` indexed by component (:func:`flatten_components` names) with
        columns ``mean``, ``sd``, ``hdi_<lo>%``, ``hdi_<hi>%``, ``mcse_mean``, ``mcse_sd``,
        ``ess_bulk``, ``ess_tail``, ``r_hat`` (rank-normalised split R-hat; Vehtari et al.
        2021; see :mod:`pyrogen.diagnostics.statistics`), ``ess_bulk_per_s`` and
        ``ess_tail_per_s`` (ESS divided by the wall time stored in ``idata``; NaN without
        one).

    Example:
        >>> summarize(np.random.default_rng(0).normal(size=(4, 200, 2))).index.tolist()
        ['x[0]', 'x[1]']
    """
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    components = flatten_components(idata, var_names)
    if not components:
        raise ValueError("nothing to summarise: the posterior has no variables")
    names = list(components)
    draws = np.stack([components[n] for n in names], axis=-1)  # (chain, draw, K)
    if draws.shape[1] < 4:
        raise ValueError(f"need at least 4 draws per chain to summarise, got {draws.shape[1]}")
    hdi = array_statistic(draws, "hdi", prob=hdi_prob)
    lo = f"hdi_{100 * (1 - hdi_prob) / 2:g}%"
    hi = f"hdi_{100 * (1 + hdi_prob) / 2:g}%"
    table = pd.DataFrame(
        {
            "mean": draws.mean(axis=(0, 1)),
            "sd": draws.reshape(-1, len(names)).std(axis=0, ddof=1),
            lo: hdi[:, 0],
            hi: hdi[:, 1],
            "mcse_mean": array_statistic(draws, "mcse_mean"),
            "mcse_sd": array_statistic(draws, "mcse_sd"),
            "ess_bulk": array_statistic(draws, "ess_bulk"),
            "ess_tail": array_statistic(draws, "ess_tail"),
            "r_hat": array_statistic(draws, "r_hat"),
        },
        index=pd.Index(names, name="component"),
    )
    wall_time = wall_time_of(idata)
    per_second = wall_time if wall_time else math.nan
    table["ess_bulk_per_s"] = table["ess_bulk"] / per_second
    table["ess_tail_per_s"] = table["ess_tail"] / per_second
    return table


def worst_case(summary: pd.DataFrame) -> dict[str, float]:
    """Worst direction of a :func:`summarize` table.

    Returns ``min_ess_bulk``, ``min_ess_tail``, ``max_r_hat`` and the per-second minima.
    NaN propagates (a component stuck at one value has NaN ESS: that is the worst case).
    """
    return {
        "min_ess_bulk": float(summary["ess_bulk"].min(skipna=False)),
        "min_ess_tail": float(summary["ess_tail"].min(skipna=False)),
        "max_r_hat": float(summary["r_hat"].max(skipna=False)),
        "min_ess_bulk_per_s": float(summary["ess_bulk_per_s"].min(skipna=False)),
        "min_ess_tail_per_s": float(summary["ess_tail_per_s"].min(skipna=False)),
    }
