"""The bottom layer: array-likes of shape ``(chain, draw, ...)`` as numpy arrays.

Everything above it (converters, statistics, plots) takes its draws through
:func:`as_numpy`, so a torch tensor (on any device, with or without gradients), a numpy
array, a jax array, a list, or anything else ``numpy.asarray`` understands can be compared
in the same report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["as_numpy", "check_draws", "split_components"]

#: numpy dtype kinds that hold numbers a statistic can use: bool, signed/unsigned int, float.
_NUMERIC_KINDS = "biuf"


def as_numpy(value: Any, name: str) -> np.ndarray:
    """``value`` as a numpy array of numbers (bool, integer or floating).

    Torch tensors are detached and copied to the host; every other array-like (numpy, jax,
    CuPy with ``__array__``, nested lists) goes through ``numpy.asarray``.

    Raises:
        TypeError: naming ``name``, when ``value`` does not convert to an array of numbers
            (a string, a dict, ``None``, ragged lists, complex values).
    """
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16; float32 holds it exactly
            tensor = tensor.float()
        if tensor.is_complex():
            raise TypeError(f"{name} must hold real numbers, got a {tensor.dtype} tensor")
        return tensor.numpy()
    if isinstance(value, (str, bytes, Mapping)) or value is None:
        raise TypeError(
            f"{name} must be an array-like of numbers (torch, numpy, jax, ...), got "
            f"{type(value).__name__}"
        )
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged lists, objects numpy cannot read
        raise TypeError(
            f"{name} must be an array-like of numbers, got {type(value).__name__} ({err})"
        ) from None
    if array.dtype.kind not in _NUMERIC_KINDS:
        raise TypeError(
            f"{name} must be an array-like of numbers (torch, numpy, jax, ...), got "
            f"{type(value).__name__} of dtype {array.dtype}"
        )
    return array


def check_draws(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` itself if it has at least the two leading dimensions ``(chain, draw)``."""
    if array.ndim < 2:
        raise ValueError(f"{name} must have shape (chain, draw, ...), got {tuple(array.shape)}")
    return array


def split_components(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Split each ``(chain, draw, *shape)`` array into ``(chain, draw)`` float64 components.

    Component names follow ArviZ's labels: ``"x"`` for a scalar site, ``"v[3]"`` and
    ``"w[1, 2]"`` for vector and matrix sites, indices in C order.

    Example:
        >>> parts = split_components({"w": np.zeros((2, 5, 2)), "s": np.ones((2, 5))})
        >>> list(parts), parts["s"].shape
        (['w[0]', 'w[1]', 's'], (2, 5))
    """
    out: dict[str, np.ndarray] = {}
    for name, array in arrays.items():
        array = np.asarray(check_draws(array, str(name)), dtype=np.float64)
        if array.ndim == 2:
            out[str(name)] = array
            continue
        for index in np.ndindex(*array.shape[2:]):
            out[f"{name}[{', '.join(map(str, index))}]"] = array[(slice(None), slice(None), *index)]
    return out
