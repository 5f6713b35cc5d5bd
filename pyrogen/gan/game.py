"""Deprecated: the old home of :class:`~pyrogen.gan.GAN` and :func:`~pyrogen.gan.fit`.

The module held two concepts and was split: the model (the two players, their value
estimate, save/load) is :mod:`pyrogen.gan.model`, the losses and the training loop are
:mod:`pyrogen.gan.training`, and the theory of the minimax game (optimal discriminator,
Jensen-Shannon divergence) was already :mod:`pyrogen.gan.theory`. Importing this module
emits a ``DeprecationWarning``; import from :mod:`pyrogen.gan` instead.
"""

from __future__ import annotations

import warnings

from pyrogen.gan.model import GAN
from pyrogen.gan.training import fit

__all__ = ["GAN", "fit"]

warnings.warn(
    "pyrogen.gan.game is deprecated: import GAN and fit from pyrogen.gan (they live in "
    "pyrogen.gan.model and pyrogen.gan.training)",
    DeprecationWarning,
    stacklevel=2,
)
