"""Deprecated: :class:`ChainKernel` and :func:`new_generator` now live in :mod:`pyrogen.infer.base`.

Importing ``pyrogen.infer.chain_kernel`` emits one ``DeprecationWarning`` and gives the same
objects (``pyrogen.infer.chain_kernel.ChainKernel is pyrogen.infer.base.ChainKernel``), next
to the :class:`~pyrogen.infer.base.VectorizedKernel` protocol they implement.
"""

import warnings

from pyrogen.infer.base import ChainKernel, new_generator

__all__ = ["ChainKernel", "new_generator"]

warnings.warn(
    "pyrogen.infer.chain_kernel is deprecated: import ChainKernel and new_generator from "
    "pyrogen.infer.base instead",
    DeprecationWarning,
    stacklevel=2,
)
