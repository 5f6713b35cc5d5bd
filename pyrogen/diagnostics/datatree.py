"""Building and reading ArviZ 1.x's container, ``xarray.DataTree``, and ArviZ 0.x's.

pyrogen builds every result with ``arviz_base.from_dict``: a ``DataTree`` whose children
are the groups (``posterior``, ``sample_stats``, ``log_likelihood``, ``observed_data``,
...), each an ``xarray`` node with dims ``(chain, draw, ...)`` where it holds draws. The
readers here also take ArviZ 0.x's ``InferenceData`` (recognised by its type, without
importing ``arviz``): :func:`from_legacy` turns it into a ``DataTree`` with the same groups,
so chains saved or built with ArviZ 0.23 go into the same reports. This module is the only
one that knows both containers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import arviz_base
import numpy as np
import xarray as xr

__all__ = [
    "build",
    "dataset",
    "from_legacy",
    "group_arrays",
    "is_inference_data",
    "is_legacy_inference_data",
    "sample_stats_arrays",
    "set_attr",
    "tree_of",
    "wall_time_of",
]


def is_legacy_inference_data(obj: Any) -> bool:
    """Whether ``obj`` is ArviZ 0.x's ``arviz.InferenceData``."""
    cls = type(obj)
    return (
        cls.__name__ == "InferenceData"
        and cls.__module__.split(".")[0] == "arviz"
        and callable(getattr(obj, "groups", None))
    )


def is_inference_data(obj: Any) -> bool:
    """Whether ``obj`` is ArviZ's container: an ``xarray.DataTree`` (ArviZ 1.x, what pyrogen
    returns) or an ArviZ 0.x ``InferenceData``."""
    return isinstance(obj, xr.DataTree) or is_legacy_inference_data(obj)


def from_legacy(idata: Any) -> xr.DataTree:
    """An ArviZ 0.x ``InferenceData`` as a ``DataTree``: one child per group.

    The variables' data are shared with ``idata`` (no copy), the attributes are copied;
    ``idata.attrs`` (ArviZ 0.x's attributes of the whole object) become the root's.
    """
    tree = xr.DataTree.from_dict({group: getattr(idata, group) for group in idata.groups()})
    tree.attrs = dict(getattr(idata, "attrs", None) or {})
    return tree


def tree_of(obj: Any) -> xr.DataTree:
    """``obj`` if it is a ``DataTree``, the converted tree for an ``InferenceData``."""
    if isinstance(obj, xr.DataTree):
        return obj
    if is_legacy_inference_data(obj):
        return from_legacy(obj)
    raise TypeError(f"expected an xarray.DataTree or arviz InferenceData, got {type(obj).__name__}")


def build(
    groups: Mapping[str, Mapping[str, np.ndarray]],
    per_chain: Mapping[str, np.ndarray] | None = None,
    *,
    inference_library: Any = None,
) -> xr.DataTree:
    """A ``DataTree`` from ``{group: {name: array}}`` through ``arviz_base.from_dict``.

    Arrays of the groups that hold draws have shape ``(chain, draw, *shape)``; extra dims
    are named ``<name>_dim_<i>``. ``per_chain`` arrays of shape ``(chain, *shape)`` (an
    acceptance rate, swap rates between temperatures) join ``sample_stats`` with dims
    ``("chain", ...)``; the group is created for them when no per-draw statistic exists.
    Empty groups are left out. Every group gets ArviZ's creation attributes, and
    ``inference_library``/``inference_library_version`` when a module is given.
    """
    groups = {g: dict(v) for g, v in groups.items() if v}
    attrs = arviz_base.make_attrs(inference_library=inference_library)
    with warnings.catch_warnings():
        # "chain dimension longer than draw dimension": many short vectorised chains are
        # that shape on purpose.
        warnings.filterwarnings("ignore", message=".*chain dimension", category=UserWarning)
        tree = arviz_base.from_dict(groups, attrs={g: dict(attrs) for g in groups})
    if not per_chain:
        return tree
    stats = dataset(tree, "sample_stats")
    if stats is None:  # e.g. Pyro's RandomWalkKernel: an acceptance rate, nothing per draw
        stats = xr.Dataset(coords={"chain": tree["posterior"]["chain"]}, attrs=dict(attrs))
    for name, values in per_chain.items():
        dims = ["chain", *(f"{name}_dim_{i}" for i in range(values.ndim - 1))]
        stats[name] = xr.DataArray(values, dims=dims, coords={"chain": stats["chain"]})
    tree["sample_stats"] = xr.DataTree(stats)
    return tree


def dataset(tree: Any, group: str) -> xr.Dataset | None:
    """The ``group`` of a ``DataTree``/``InferenceData`` as an ``xarray.Dataset``, or None."""
    tree = tree_of(tree)
    return tree[group].to_dataset() if group in tree.children else None


def group_arrays(tree: Any, group: str = "posterior") -> dict[str, np.ndarray]:
    """Every ``(chain, draw, ...)`` variable of ``group`` as a numpy array.

    Variables without both sample dims first (per-chain statistics) are left out.
    """
    data = dataset(tree, group)
    if data is None:
        present = list(tree_of(tree).children)
        raise ValueError(f"the chains have no {group!r} group; they hold {present}")
    return {
        str(name): variable.values
        for name, variable in data.data_vars.items()
        if variable.dims[:2] == ("chain", "draw")
    }


def set_attr(tree: xr.DataTree, key: str, value: int | float | str) -> None:
    """Set attribute ``key`` of the ``posterior`` and ``sample_stats`` groups (when present)."""
    for group in ("posterior", "sample_stats"):
        if group in tree.children:
            tree[group].attrs[key] = value


def sample_stats_arrays(idata: Any) -> dict[str, np.ndarray]:
    """Every variable of ``idata``'s ``sample_stats`` group (any dims), or ``{}`` when
    ``idata`` is not ArviZ's container or has no such group."""
    if not is_inference_data(idata):
        return {}
    stats = dataset(idata, "sample_stats")
    if stats is None:
        return {}
    return {str(name): variable.values for name, variable in stats.data_vars.items()}


def wall_time_of(idata: Any) -> float | None:
    """The sampling wall time in seconds stored in ``idata``, or ``None``.

    Read from the ``wall_time`` attribute of ``posterior``, ``sample_stats`` or the whole
    tree (pyrogen's name), or ``sampling_time`` (PyMC's name for it).
    """
    if not is_inference_data(idata):
        return None
    tree = tree_of(idata)
    for group in ("posterior", "sample_stats", None):
        if group is not None and group not in tree.children:
            continue
        attrs = tree.attrs if group is None else tree[group].attrs
        for key in ("wall_time", "sampling_time"):
            if key in attrs:
                return float(attrs[key])
    return None
