"""MCMC for Pyro models with discrete and continuous sites (kernels and vectorised chains).

Every kernel is a ``pyro.infer.mcmc.mcmc_kernel.MCMCKernel`` (use it in ``pyro.infer.MCMC``)
and, except :class:`GibbsWithinHMC`, a :class:`VectorizedKernel` whose batched core runs many
chains at once.
"""

from pyrogen.infer.base import VectorizedKernel
from pyrogen.infer.block_gibbs import BlockGibbs
from pyrogen.infer.discrete_gibbs import DiscreteGibbs
from pyrogen.infer.gibbs_within_hmc import GibbsWithinHMC
from pyrogen.infer.metropolis import MetropolisHastings
from pyrogen.infer.vectorized import sample

__all__ = [
    "BlockGibbs",
    "DiscreteGibbs",
    "GibbsWithinHMC",
    "MetropolisHastings",
    "VectorizedKernel",
    "sample",
]
