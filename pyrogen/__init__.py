"""pyrogen: RBMs, VAEs and GANs as first-class citizens of Pyro."""

from __future__ import annotations

from pyrogen.convergence import ConvergenceWarning

__version__ = "0.1.0"

__all__ = ["ConvergenceWarning", "__version__"]
