"""Argument checks shared by every public entry point.

Each check raises ``ValueError`` or ``TypeError`` naming the argument, what it got and what
was expected. Nothing is coerced silently: a float64 tensor stays float64, a wrong width is an
error, not a reshape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch

__all__ = [
    "check_binary",
    "check_finite",
    "check_positive_int",
    "check_positive_float",
    "check_nonnegative_float",
    "check_probability",
    "check_tensor",
    "check_choice",
]

_T = TypeVar("_T")


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """Return ``value`` if it is an ``int`` (not bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def check_positive_float(value: object, name: str) -> float:
    """Return ``float(value)`` if it is a finite real number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a positive number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_nonnegative_float(value: object, name: str) -> float:
    """Return ``float(value)`` if it is a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number >= 0, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_probability(value: object, name: str) -> float:
    """Return ``float(value)`` if it lies in [0, 1]."""
    value = check_nonnegative_float(value, name)
    if value > 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def check_choice(value: object, name: str, choices: Sequence[_T]) -> _T:
    """Return the entry of ``choices`` equal to ``value`` (typed as the choices are)."""
    for choice in choices:
        if value == choice:
            return choice
    raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | None = None,
    last_dim: int | None = None,
    allow_empty: bool = False,
) -> torch.Tensor:
    """Check that ``x`` is a floating tensor with the given rank / trailing width.

    Returns ``x`` unchanged. ``last_dim`` is the expected size of the final dimension.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have at least one dimension, got a scalar")
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(f"{name} must have last dimension {last_dim}, got shape {tuple(x.shape)}")
    if not allow_empty and x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    return x


def check_finite(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise if ``x`` holds NaN or infinite values."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite values")
    return x


def check_binary(x: torch.Tensor, name: str) -> torch.Tensor:
    """Raise unless every entry of ``x`` is exactly 0 or 1 (Bernoulli data)."""
    check_finite(x, name)
    if not bool(((x == 0) | (x == 1)).all()):
        bad = int(((x != 0) & (x != 1)).sum())
        raise ValueError(
            f"{name} must be binary (only 0 and 1) for a Bernoulli layer; "
            f"{bad} entries are not. Binarize the data first, e.g. load_digits(binarize=True), "
            "load_mnist5k(binarize=True), load_npz(..., binarize=True) or "
            "load_idx(..., binarize=True)"
        )
    return x
