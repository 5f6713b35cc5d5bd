"""Deprecated: this module is now :mod:`pyrogen.data.toy` (synthetic data, apart from real images).

Importing ``pyrogen.datasets`` emits one ``DeprecationWarning`` and gives the same objects as
:mod:`pyrogen.data.toy` (``pyrogen.datasets.ring is pyrogen.data.toy.ring``). Import from the
new module instead.
"""

import warnings

from pyrogen.data.toy import grid, mode_metrics, ring

__all__ = ["grid", "mode_metrics", "ring"]

warnings.warn(
    "pyrogen.datasets is deprecated: import ring, grid and mode_metrics from pyrogen.data.toy "
    "instead",
    DeprecationWarning,
    stacklevel=2,
)
