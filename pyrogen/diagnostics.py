r"""The one module that imports ArviZ: chains from any sampler become ``InferenceData``.

Layers, as in ArviZ itself: array statistics on ``(chain, draw, ...)`` arrays at the bottom
(:func:`flatten_components`, :func:`total_variation`), converters above them
(:func:`to_inference_data`), and reports on top (:func:`summarize`,
:func:`plot_diagnostics`, :func:`save` / :func:`load`).

Everything that differs between ArviZ 0.x (``InferenceData``, ``from_pyro``) and ArviZ 1.x
(``xarray.DataTree``, statistics in ``arviz_stats``, no ``from_pyro``) sits in the private
``_az_*`` functions at the end of this file; the rest of pyrogen never imports ArviZ.

Wall time: the sampling time in seconds is stored as the ``"wall_time"`` attribute of the
``posterior`` group (and of ``sample_stats`` when present); :func:`summarize` divides the
effective sample sizes by it. ESS, R-hat and MCSE are the rank-normalised estimators of
Vehtari, Gelman, Simpson, Carpenter & Bürkner, *Rank-normalization, folding, and
localization: an improved R-hat for assessing convergence of MCMC*, Bayesian Analysis (2021).
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.infer.mcmc.api import MCMC

from pyrogen._diagnostic_plots import plot_components
from pyrogen._validation import check_positive_int, check_probability
from pyrogen.io import atomic_path

with warnings.catch_warnings():
    # ArviZ 0.23 announces its 1.x refactor with a FutureWarning on import; say it once
    # here rather than in every user's session.
    warnings.simplefilter("ignore", FutureWarning)
    import arviz as az
import xarray as xr

__all__ = [
    "array_statistic",
    "flatten_components",
    "is_inference_data",
    "load",
    "plot_diagnostics",
    "sample_stats_arrays",
    "save",
    "summarize",
    "to_inference_data",
    "total_variation",
    "wall_time_of",
    "worst_case",
]

#: ArviZ major version: 0 (``InferenceData``) or 1 (``DataTree``); only ``_az_*`` reads it.
_AZ_MAJOR = int(az.__version__.split(".")[0])

#: ``arviz.InferenceData`` under ArviZ 0.x, ``xarray.DataTree`` under 1.x.
InferenceData = Any


# ----------------------------------------------------------------------------- converters
def to_inference_data(
    source: Any,
    wall_time: float | None = None,
    *,
    sample_stats: Mapping[str, Any] | None = None,
    log_likelihood: bool = True,
    attrs: Mapping[str, int | float | str] | None = None,
) -> InferenceData:
    """Convert chains to ArviZ ``InferenceData``.

    Args:
        source: one of

            * a ``pyro.infer.MCMC`` that has run: posterior from
              ``get_samples(group_by_chain=True)``; ``sample_stats`` with ``diverging``
              ``(chain, draw)`` when the kernel reports divergences and each per-chain scalar
              diagnostic (``acceptance_rate``, ...) with dims ``(chain,)``;
              ``log_likelihood`` and ``observed_data`` for the *genuinely observed* sites
              only. ``pyro.factor`` sites are observed ``Unit`` sites to Pyro, and
              ``arviz.from_pyro`` files them (e.g. an RBM's energy) as log-likelihood and
              observed data; here they are left out, because a factor is part of the prior
              or the joint density, not a data likelihood.
            * an ``InferenceData`` (e.g. from :func:`pyrogen.infer.sample`): returned as is,
              or as a copy carrying ``wall_time`` when one is given.
            * a dict mapping site names to ``(chain, draw, *site_shape)`` tensors or arrays.
        wall_time: sampling time in seconds, stored for ESS per second.
        sample_stats: (dict source only) per-draw statistics of shape ``(chain, draw)``, or
            per-chain statistics of shape ``(chain,)`` (1-D arrays are per-chain).
        log_likelihood: (MCMC source only) compute the pointwise log-likelihood group.
        attrs: extra attributes (numbers or strings, netCDF-safe) for the ``posterior``
            and ``sample_stats`` groups, e.g. the seed of the run.

    Example:
        >>> idata = to_inference_data({"x": torch.randn(2, 100, 3)}, wall_time=0.5)
        >>> summarize(idata).shape
        (3, 11)
    """
    if wall_time is not None:
        wall_time = float(wall_time)
        if not math.isfinite(wall_time) or wall_time < 0:
            raise ValueError(f"wall_time must be a finite number >= 0 seconds, got {wall_time}")
    # InferenceData is itself a Mapping of groups: test for it before the dict case.
    if _az_is_idata(source):
        if wall_time is None and not attrs:
            return source
        idata = copy.deepcopy(source)
    elif isinstance(source, MCMC):
        idata = _from_pyro_mcmc(source, log_likelihood)
    elif isinstance(source, Mapping):
        idata = _from_arrays(source, sample_stats)
    else:
        raise TypeError(
            "source must be a pyro.infer.MCMC, an arviz InferenceData or a dict of "
            f"(chain, draw, ...) tensors, got {type(source).__name__}"
        )
    for key, value in {**(attrs or {}), "wall_time": wall_time}.items():
        if value is not None:
            _az_set_attr(idata, key, value)
    return idata


def _to_numpy(value: Any, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")


def _from_arrays(posterior: Mapping[str, Any], sample_stats: Mapping[str, Any] | None) -> Any:
    if not posterior:
        raise ValueError("source is an empty dict; expected site name -> (chain, draw, ...)")
    draws = {k: _to_numpy(v, f"source[{k!r}]") for k, v in posterior.items()}
    shapes = {k: v.shape[:2] for k, v in draws.items()}
    for k, v in draws.items():
        if v.ndim < 2:
            raise ValueError(
                f"source[{k!r}] must have shape (chain, draw, ...), got {tuple(v.shape)}"
            )
    if len(set(shapes.values())) > 1:
        raise ValueError(f"sites disagree on (chain, draw): {shapes}")
    num_chains = next(iter(shapes.values()))[0]
    per_draw, per_chain = {}, {}
    for k, v in (sample_stats or {}).items():
        array = _to_numpy(v, f"sample_stats[{k!r}]")
        (per_chain if array.ndim == 1 else per_draw)[k] = array
        if array.shape[0] != num_chains:
            raise ValueError(
                f"sample_stats[{k!r}] has leading size {array.shape[0]}, expected "
                f"num_chains={num_chains}"
            )
    return _az_build({"posterior": draws, "sample_stats": per_draw}, per_chain)


def _is_observed_data_site(site: dict[str, Any]) -> bool:
    """True for ``pyro.sample(..., obs=...)`` data sites, false for factors and latents."""
    if site["type"] != "sample" or not site["is_observed"]:
        return False
    if site["infer"].get("is_auxiliary") or isinstance(site["fn"], dist.Unit):
        return False  # pyro.factor: an energy term, not data
    return True


def _from_pyro_mcmc(mcmc: MCMC, with_log_likelihood: bool) -> Any:
    samples = mcmc.get_samples(group_by_chain=True)
    if samples is None:
        raise ValueError("the MCMC object has no samples; call mcmc.run(...) first")
    posterior = {k: _to_numpy(v, k) for k, v in samples.items()}
    num_chains, num_draws = next(iter(posterior.values())).shape[:2]
    per_draw, per_chain = _pyro_sample_stats(mcmc, set(posterior), num_chains, num_draws)
    groups: dict[str, dict[str, np.ndarray]] = {"posterior": posterior, "sample_stats": per_draw}
    model = getattr(mcmc.kernel, "model", None)
    if model is not None:
        # The model's arguments: private in Pyro, read the same way by az.from_pyro.
        args, kwargs = mcmc._args or (), mcmc._kwargs or {}
        trace = poutine.trace(poutine.block(model, hide_types=["param"])).get_trace(*args, **kwargs)
        observed = [name for name, site in trace.nodes.items() if _is_observed_data_site(site)]
        groups["observed_data"] = {
            name: _to_numpy(trace.nodes[name]["value"], name) for name in observed
        }
        if with_log_likelihood and observed:
            groups["log_likelihood"] = _pyro_log_likelihood(
                model, args, kwargs, samples, observed, num_chains, num_draws
            )
    return _az_build(groups, per_chain)


def _pyro_sample_stats(
    mcmc: MCMC, site_names: set[str], num_chains: int, num_draws: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
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
            per_chain[key.replace(" ", "_")] = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            continue  # not a per-chain scalar: nothing ArviZ could use
    return per_draw, per_chain


def _pyro_log_likelihood(
    model: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    samples: dict[str, torch.Tensor],
    observed: list[str],
    num_chains: int,
    num_draws: int,
) -> dict[str, np.ndarray]:
    """log p(obs | latents) per draw, summed over each site's event dimensions."""
    flat = {k: v.reshape((num_chains * num_draws, *v.shape[2:])) for k, v in samples.items()}
    try:
        predictive = pyro.infer.Predictive(model, flat, return_sites=observed)
        trace = predictive.get_vectorized_trace(*args, **kwargs)
        per_site = {n: trace.nodes[n]["fn"].log_prob(trace.nodes[n]["value"]) for n in observed}
    except Exception:  # models that do not vectorise: one trace per draw (slow but exact)
        per_site = {n: [] for n in observed}
        for i in range(num_chains * num_draws):
            draw = {k: v[i] for k, v in flat.items()}
            trace = poutine.trace(poutine.condition(model, data=draw)).get_trace(*args, **kwargs)
            for n in observed:
                per_site[n].append(trace.nodes[n]["fn"].log_prob(trace.nodes[n]["value"]))
        per_site = {n: torch.stack(v) for n, v in per_site.items()}
    return {
        n: _to_numpy(v.detach(), n).reshape((num_chains, num_draws, *v.shape[1:]))
        for n, v in per_site.items()
    }


def is_inference_data(obj: Any) -> bool:
    """Whether ``obj`` is ArviZ's container (``InferenceData`` on 0.x, DataTree on 1.x)."""
    return _az_is_idata(obj)


def sample_stats_arrays(idata: Any) -> dict[str, np.ndarray]:
    """Every variable of ``idata``'s ``sample_stats`` group (any dims), or ``{}``."""
    if not _az_is_idata(idata):
        return {}
    dataset = _az_dataset(idata, "sample_stats")
    if dataset is None:
        return {}
    return {str(name): variable.values for name, variable in dataset.data_vars.items()}


def array_statistic(draws: np.ndarray, what: str, prob: float | None = None) -> np.ndarray:
    """One ArviZ statistic of ``(chain, draw, K)`` draws, shape ``(K,)`` (``(K, 2)`` for
    ``"hdi"``). ``what``: ``"r_hat"``, ``"ess_bulk"``, ``"ess_tail"``, ``"mcse_mean"``,
    ``"mcse_sd"`` or ``"hdi"`` (with ``prob``)."""
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 3:
        raise ValueError(f"draws must have shape (chain, draw, K), got {draws.shape}")
    if what not in ("r_hat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd", "hdi"):
        raise ValueError(f"unknown statistic {what!r}")
    return _az_stat(draws, what, prob)


def wall_time_of(idata: InferenceData) -> float | None:
    """The sampling wall time in seconds stored in ``idata``, or ``None``."""
    for group in ("posterior", "sample_stats"):
        attrs = _az_attrs(idata, group)
        for key in ("wall_time", "sampling_time"):  # "sampling_time": PyMC's name for it
            if key in attrs:
                return float(attrs[key])
    return None


# --------------------------------------------------------------------------- statistics
def flatten_components(
    data: InferenceData | Mapping[str, Any],
    var_names: Sequence[str] | None = None,
    group: str = "posterior",
) -> dict[str, np.ndarray]:
    """Split every variable into scalar components, each a ``(chain, draw)`` float64 array.

    Component names follow ArviZ: ``"x"`` for a scalar site, ``"v[3]"``, ``"w[1, 2]"`` for
    vector and matrix sites (C order). ``data`` is an ``InferenceData`` or a dict of
    ``(chain, draw, ...)`` tensors/arrays. Minima over components of the bulk and tail ESS
    are the "worst direction" figures used by the benchmarks (see :func:`worst_case`).
    """
    if _az_is_idata(data):
        arrays = _az_group_arrays(data, group)
    elif isinstance(data, Mapping):
        arrays = {k: _to_numpy(v, k) for k, v in data.items()}
    else:
        raise TypeError(
            f"data must be arviz InferenceData or a dict of arrays, got {type(data).__name__}"
        )
    if var_names is not None:
        names = [var_names] if isinstance(var_names, str) else list(var_names)
        missing = [n for n in names if n not in arrays]
        if missing:
            raise ValueError(f"var_names {missing} not in {group}; it holds {list(arrays)}")
        arrays = {n: arrays[n] for n in names}
    out: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        if array.ndim < 2:
            raise ValueError(f"{name} must have shape (chain, draw, ...), got {array.shape}")
        array = np.asarray(array, dtype=np.float64)
        if array.ndim == 2:
            out[name] = array
            continue
        for index in np.ndindex(*array.shape[2:]):
            out[f"{name}[{', '.join(map(str, index))}]"] = array[(slice(None), slice(None), *index)]
    return out


def summarize(
    idata: InferenceData | Mapping[str, Any],
    var_names: Sequence[str] | None = None,
    *,
    hdi_prob: float = 0.94,
) -> pd.DataFrame:
    """Per-component posterior summary and convergence diagnostics, one row per scalar.

    Columns: ``mean``, ``sd``, ``hdi_<lo>%``, ``hdi_<hi>%`` (highest density interval of
    mass ``hdi_prob``), ``mcse_mean``, ``mcse_sd``, ``ess_bulk``, ``ess_tail``, ``r_hat``
    (rank-normalised split R-hat; Vehtari et al. 2021), ``ess_bulk_per_s`` and
    ``ess_tail_per_s`` (ESS divided by the wall time stored in ``idata``; NaN without one).
    The index holds the component names of :func:`flatten_components`.
    """
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    components = flatten_components(idata, var_names)
    if not components:
        raise ValueError("nothing to summarise: the posterior has no variables")
    names = list(components)
    draws = np.stack([components[n] for n in names], axis=-1)  # (chain, draw, K)
    if draws.shape[1] < 4:
        raise ValueError(f"need at least 4 draws per chain to summarise, got {draws.shape[1]}")
    hdi = _az_stat(draws, "hdi", prob=hdi_prob)
    lo = f"hdi_{100 * (1 - hdi_prob) / 2:g}%"
    hi = f"hdi_{100 * (1 + hdi_prob) / 2:g}%"
    table = pd.DataFrame(
        {
            "mean": draws.mean(axis=(0, 1)),
            "sd": draws.reshape(-1, len(names)).std(axis=0, ddof=1),
            lo: hdi[:, 0],
            hi: hdi[:, 1],
            "mcse_mean": _az_stat(draws, "mcse_mean"),
            "mcse_sd": _az_stat(draws, "mcse_sd"),
            "ess_bulk": _az_stat(draws, "ess_bulk"),
            "ess_tail": _az_stat(draws, "ess_tail"),
            "r_hat": _az_stat(draws, "r_hat"),
        },
        index=pd.Index(names, name="component"),
    )
    wall_time = wall_time_of(idata) if _az_is_idata(idata) else None
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


def total_variation(samples: torch.Tensor | np.ndarray, exact_probs: Any) -> float:
    r"""Total variation distance between the empirical law of ``samples`` and a table.

    .. math:: \mathrm{TV}(\hat p, p) = \tfrac12 \sum_{k=0}^{K-1} |\hat p_k - p_k|,
              \quad \hat p_k = \#\{s = k\} / n

    Args:
        samples: either *state indices*: an integer tensor/array of any shape whose entries
            lie in ``[0, K)`` (every entry is one draw), or *binary vectors*: a floating or
            bool tensor/array of shape ``(..., d)`` with entries in {0, 1} and
            ``K = 2**d``; vector ``x`` is state :math:`\sum_i x_i 2^i` (least significant
            bit first, the order of :func:`pyrogen.rbm.model.binary_states`).
        exact_probs: the exact probabilities, shape ``(K,)``, non-negative, summing to 1.

    Returns a float in [0, 1]. Even an exact sampler gives TV > 0 with finitely many draws:
    for ``n`` independent draws :math:`E|\hat p_k - p_k| \approx \sqrt{2p_k(1-p_k)/(\pi n)}`,
    so compare against that floor (or against i.i.d. draws), not against zero.

    Example:
        >>> total_variation(torch.tensor([0, 1, 1, 1]), torch.tensor([0.25, 0.75]))
        0.0
    """
    if isinstance(exact_probs, (list, tuple)):
        exact_probs = np.asarray(exact_probs)
    probs = _to_numpy(exact_probs, "exact_probs").astype(np.float64)
    if probs.ndim != 1 or probs.size == 0:
        raise ValueError(f"exact_probs must have shape (K,), got {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("exact_probs must be finite and non-negative")
    if abs(probs.sum() - 1.0) > 1e-6:
        raise ValueError(f"exact_probs must sum to 1, got {probs.sum():.8g}")
    x = _to_numpy(samples, "samples")
    if np.issubdtype(x.dtype, np.integer):
        codes = x.reshape(-1).astype(np.int64)
    elif np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_:
        if x.ndim < 1 or 2 ** x.shape[-1] != probs.size:
            raise ValueError(
                f"binary samples of shape {x.shape} have {x.shape[-1] if x.ndim else 0} bits: "
                f"exact_probs needs 2**bits entries, got {probs.size}"
            )
        if not np.all((x == 0) | (x == 1)):
            raise ValueError("binary samples must hold only 0 and 1")
        codes = (x.reshape(-1, x.shape[-1]).astype(np.int64) << np.arange(x.shape[-1])).sum(-1)
    else:
        raise TypeError(f"samples must be integer indices or binary floats, got {x.dtype}")
    if codes.size == 0:
        raise ValueError("samples is empty")
    if codes.min() < 0 or codes.max() >= probs.size:
        raise ValueError(
            f"sample states must lie in [0, {probs.size}), got {codes.min()}..{codes.max()}"
        )
    empirical = np.bincount(codes, minlength=probs.size) / codes.size
    return float(0.5 * np.abs(empirical - probs).sum())


# ------------------------------------------------------------------------ plots and files
def plot_diagnostics(
    idata: InferenceData | Mapping[str, Any],
    path: str | os.PathLike[str],
    var_names: Sequence[str] | None = None,
    *,
    max_components: int = 8,
    max_chains: int = 8,
    max_lag: int = 50,
) -> list[str]:
    """Write trace, rank and autocorrelation plots of the posterior to one PNG file.

    One row per scalar component (the first ``max_components`` of
    :func:`flatten_components`), three panels: the trace of the first ``max_chains``
    chains; their rank histograms (ranks over all chains pooled, one histogram per chain:
    flat when the chains agree); the autocorrelation up to ``max_lag`` averaged over all
    chains. The file is written atomically. Returns the component names plotted.
    """
    max_components = check_positive_int(max_components, "max_components")
    max_chains = check_positive_int(max_chains, "max_chains")
    max_lag = check_positive_int(max_lag, "max_lag")
    components = flatten_components(idata, var_names)
    chosen = dict(list(components.items())[:max_components])
    with atomic_path(path) as tmp:
        plot_components(chosen, tmp, max_chains=max_chains, max_lag=max_lag)
    return list(chosen)


def save(idata: InferenceData, path: str | os.PathLike[str]) -> None:
    """Write ``idata`` (all groups and attributes) to a netCDF4 file, atomically."""
    with atomic_path(path) as tmp:
        _az_to_netcdf(idata, tmp)


def load(path: str | os.PathLike[str]) -> InferenceData:
    """Read a file written by :func:`save` (or any ArviZ netCDF file) into memory."""
    if not os.path.isfile(path):
        raise ValueError(f"path {str(path)!r} does not exist or is not a file")
    return _az_from_netcdf(path)


# ------------------------------------------------------------- ArviZ compatibility layer
# Everything below is the only code that knows which ArviZ is installed. 0.x has
# InferenceData, az.from_dict(posterior=..., ...) and az.ess/rhat/mcse/hdi(hdi_prob=);
# 1.x has xarray.DataTree, az.from_dict({group: {...}}) and the same statistics in
# arviz_stats (hdi takes prob=). Both accept an xarray.Dataset with chain/draw dims. The
# 1.x branches follow the 1.x sources but cannot be exercised here (arviz 0.23).


def _az_is_idata(obj: Any) -> bool:
    if _AZ_MAJOR >= 1:
        return isinstance(obj, xr.DataTree)
    return isinstance(obj, az.InferenceData)


def _az_build(groups: dict[str, dict[str, np.ndarray]], per_chain: dict[str, np.ndarray]) -> Any:
    """InferenceData from ``{group: {name: array}}``; ``per_chain`` arrays get dims (chain,)."""
    groups = {g: v for g, v in groups.items() if v}
    with warnings.catch_warnings():
        # ArviZ warns "more chains than draws" as a likely transposition; many short
        # vectorised chains are exactly that shape on purpose.
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        idata = az.from_dict(groups) if _AZ_MAJOR >= 1 else az.from_dict(**groups)
    if not per_chain:
        return idata
    stats = _az_dataset(idata, "sample_stats")
    if stats is None:  # e.g. Pyro's RandomWalkKernel: an acceptance rate and nothing per draw
        chains = _az_dataset(idata, "posterior")["chain"]
        stats = xr.Dataset(coords={"chain": chains})
    for name, values in per_chain.items():
        stats[name] = xr.DataArray(values, dims=["chain"], coords={"chain": stats["chain"]})
    _az_replace_dataset(idata, "sample_stats", stats)
    return idata


def _az_dataset(idata: Any, group: str) -> xr.Dataset | None:
    if _AZ_MAJOR >= 1:
        return idata[group].to_dataset() if group in idata.children else None
    return getattr(idata, group) if group in idata.groups() else None


def _az_replace_dataset(idata: Any, group: str, dataset: xr.Dataset) -> None:
    if _AZ_MAJOR >= 1:
        idata[group] = xr.DataTree(dataset)
    elif group in idata.groups():
        setattr(idata, group, dataset)
    else:
        idata.add_groups({group: dataset})


def _az_attrs(idata: Any, group: str) -> dict[str, Any]:
    dataset = _az_dataset(idata, group)
    return dict(dataset.attrs) if dataset is not None else {}


def _az_set_attr(idata: Any, key: str, value: int | float | str) -> None:
    for group in ("posterior", "sample_stats"):
        if _AZ_MAJOR >= 1:
            if group in idata.children:
                idata[group].attrs[key] = value
        elif group in idata.groups():
            getattr(idata, group).attrs[key] = value


def _az_group_arrays(idata: Any, group: str) -> dict[str, np.ndarray]:
    dataset = _az_dataset(idata, group)
    if dataset is None:
        raise ValueError(f"idata has no {group!r} group")
    out = {}
    for name, variable in dataset.data_vars.items():
        if variable.dims[:2] != ("chain", "draw"):
            continue  # per-chain statistics and the like: not draws
        out[str(name)] = variable.values
    return out


def _az_stat(draws: np.ndarray, what: str, prob: float | None = None) -> np.ndarray:
    """One statistic of ``(chain, draw, K)`` draws, shape ``(K,)`` (``(K, 2)`` for hdi).

    Goes through an ``xarray.Dataset`` with dims (chain, draw, component), the input both
    ArviZ generations accept with their defaults (e.g. the tail-ESS quantiles).
    """
    dataset = xr.Dataset({"x": (("chain", "draw", "component"), draws)})
    with warnings.catch_warnings():
        # Short or constant chains make ArviZ warn and return NaN; NaN is the answer. It
        # also warns when chains outnumber draws, which many short chains do on purpose.
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        if _AZ_MAJOR >= 1:
            import arviz_stats as stats

            interval = {"prob": prob}
        else:
            stats, interval = az, {"hdi_prob": prob}
        if what == "hdi":
            result = stats.hdi(dataset, **interval)
        elif what.startswith("mcse_"):
            result = stats.mcse(dataset, method=what[5:])
        elif what.startswith("ess_"):
            result = stats.ess(dataset, method=what[4:])
        else:
            result = stats.rhat(dataset)
    return np.asarray(result["x"].transpose("component", ...).values, dtype=np.float64)


def _az_to_netcdf(idata: Any, path: str) -> None:
    # Same call in both: InferenceData.to_netcdf (0.x) and DataTree.to_netcdf (1.x).
    idata.to_netcdf(path, engine="h5netcdf")


def _az_from_netcdf(path: str | os.PathLike[str]) -> Any:
    if _AZ_MAJOR >= 1:
        return xr.open_datatree(path, engine="h5netcdf").load()
    idata = az.from_netcdf(str(path), engine="h5netcdf")
    for group in idata.groups():
        getattr(idata, group).load()  # read now, so that the file may be replaced later
    return idata
