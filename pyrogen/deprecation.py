"""Renamed arguments: the old spelling keeps working for one release, with a warning."""

from __future__ import annotations

import warnings
from typing import TypeVar

__all__ = ["renamed_argument"]

T = TypeVar("T")


def renamed_argument(
    new: T | None,
    old: T | None,
    new_name: str,
    old_name: str,
    owner: str,
    default: T | None = None,
    stacklevel: int = 3,
) -> T | None:
    """The value of an argument renamed from ``old_name`` to ``new_name``.

    ``old`` given (not ``None``) emits a ``FutureWarning`` naming ``owner`` and the new
    spelling and is used; both given raises ``TypeError``. Neither given: ``default``.
    ``stacklevel`` 3 points the warning at the caller of the function that calls this.

    Example:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     renamed_argument(None, 8, "latent_dim", "z_dim", "VAE")
        8
        >>> caught[0].category.__name__
        'FutureWarning'
    """
    if old is None:
        return default if new is None else new
    if new is not None:
        raise TypeError(
            f"{owner} got both {new_name}= and its old name {old_name}=; pass {new_name}"
        )
    warnings.warn(
        f"{owner}: {old_name}= is deprecated and will be removed in the next release; "
        f"use {new_name}=",
        FutureWarning,
        stacklevel=stacklevel,
    )
    return old
