"""netCDF files of chains: what :func:`save` writes, ``pyrogen diagnose`` reads.

A ``DataTree`` is written with one netCDF group per ArviZ group (``posterior``,
``sample_stats``, ...), the layout ArviZ 0.x's ``InferenceData.to_netcdf`` used too, so
:func:`load` reads files from pyrogen, ArviZ 0.x and ArviZ 1.x alike.
"""

from __future__ import annotations

import os
from typing import Any

import xarray as xr

from pyrogen.diagnostics.datatree import is_inference_data, tree_of
from pyrogen.io import atomic_path

__all__ = ["load", "save"]


def save(idata: Any, path: str | os.PathLike[str]) -> None:
    """Write ``idata`` (a ``DataTree`` or ``InferenceData``: all groups and attributes) to
    a netCDF4 file, atomically.

    Example:
        >>> save(to_inference_data({"x": torch.randn(2, 10)}), "chains.nc")  # doctest: +SKIP
    """
    if not is_inference_data(idata):
        raise TypeError(
            "idata must be an xarray.DataTree or arviz InferenceData (see "
            f"pyrogen.diagnostics.to_inference_data), got {type(idata).__name__}"
        )
    with atomic_path(path) as tmp:
        tree_of(idata).to_netcdf(tmp, engine="h5netcdf")


def load(path: str | os.PathLike[str]) -> xr.DataTree:
    """Read a netCDF file of chains (from :func:`save`, ArviZ 0.x or 1.x) into memory.

    Returns:
        ``xarray.DataTree`` with one child per group, fully loaded: the file is closed and
        may be replaced or deleted afterwards.
    """
    if not os.path.isfile(path):
        raise ValueError(f"path {str(path)!r} does not exist or is not a file")
    with xr.open_datatree(path, engine="h5netcdf") as tree:
        return tree.load().copy()
