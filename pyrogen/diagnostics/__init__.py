r"""pyrogen's diagnostics layer: chains from any sampler become an ArviZ 1.x ``DataTree``.

The only part of pyrogen that imports ArviZ. Layers, as in ArviZ itself:

* :mod:`~pyrogen.diagnostics.arrays`: array-likes of shape ``(chain, draw, ...)`` (torch,
  numpy, jax, ...) as numpy arrays, split into scalar components;
* :mod:`~pyrogen.diagnostics.statistics`: R-hat, bulk/tail ESS, MCSE and HDI of such
  arrays through ``arviz_stats`` (Vehtari et al. 2021); :mod:`~pyrogen.diagnostics.exact`:
  total variation against an exact table;
* :mod:`~pyrogen.diagnostics.converters` (:func:`to_inference_data`) and
  :mod:`~pyrogen.diagnostics.pyro_mcmc` (:func:`from_pyro`, what ``arviz.from_pyro`` gave
  on ArviZ 0.x): ``xarray.DataTree`` built by ``arviz_base``, with groups ``posterior``,
  ``sample_stats``, ``log_likelihood``, ``observed_data``;
  :mod:`~pyrogen.diagnostics.datatree`: reading it (and ArviZ 0.x ``InferenceData``);
* :mod:`~pyrogen.diagnostics.summaries` (:func:`summarize`, :func:`worst_case`),
  :mod:`~pyrogen.diagnostics.plots` (:func:`plot_diagnostics`, through ``arviz_plots``) and
  :mod:`~pyrogen.diagnostics.io` (:func:`save`, :func:`load`, netCDF).

Wall time: the sampling time in seconds is the ``"wall_time"`` attribute of the
``posterior`` group (and of ``sample_stats`` when present); :func:`summarize` divides the
effective sample sizes by it.

ArviZ versions: arviz-base, arviz-stats and arviz-plots 0.8 (the ArviZ 1.x packages that
install on Python 3.11) are required. ArviZ 0.23 (``import arviz``) may be installed beside
them: its ``InferenceData`` is accepted everywhere a ``DataTree`` is, and
``arviz.from_pyro`` keeps working on runs of pyrogen's kernels.
"""

from __future__ import annotations

import xarray as xr

from pyrogen.diagnostics.arrays import as_numpy
from pyrogen.diagnostics.converters import to_inference_data
from pyrogen.diagnostics.datatree import is_inference_data, sample_stats_arrays, wall_time_of
from pyrogen.diagnostics.exact import total_variation
from pyrogen.diagnostics.io import load, save
from pyrogen.diagnostics.plots import plot_diagnostics
from pyrogen.diagnostics.pyro_mcmc import from_pyro
from pyrogen.diagnostics.statistics import array_statistic
from pyrogen.diagnostics.summaries import flatten_components, summarize, worst_case

__all__ = [
    "DataTree",
    "InferenceData",
    "array_statistic",
    "as_numpy",
    "flatten_components",
    "from_pyro",
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

#: ArviZ 1.x's container, what every converter here returns.
DataTree = xr.DataTree

#: The name pyrogen's annotations used for ArviZ's container; now ``xarray.DataTree``.
InferenceData = xr.DataTree
