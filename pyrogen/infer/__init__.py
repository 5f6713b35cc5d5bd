"""MCMC for Pyro models with discrete and continuous sites (kernels and vectorised chains).

Every kernel is a ``pyro.infer.mcmc.mcmc_kernel.MCMCKernel`` (use it in ``pyro.infer.MCMC``)
and, except :class:`GibbsWithinHMC`, a :class:`VectorizedKernel` whose batched core
:func:`sample` runs as thousands of chains at once.

Several chains under ``pyro.infer.MCMC(kernel, ..., num_chains=n)``: Pyro forks one process
per chain when the machine has more than ``n`` CPUs (``mp_context`` picks the start method;
``"spawn"`` needs a picklable, module-level model), and otherwise draws the chains one after
another with the same kernel object, with a warning. pyrogen kernels work both ways (both are
tested); on a 2-core machine every ``n > 1`` is sequential. ``pyro.set_rng_seed(s)`` before
``run`` makes all chains reproducible. For many chains, :func:`sample` is far faster.

Draws of integer-valued sites (Categorical) come out of ``mcmc.get_samples()`` as ``long``
:class:`IntegerDraws`, as Pyro's distributions produce them: they index models
(``Predictive(model, mcmc.get_samples())``) and still average in ``mcmc.summary()``.
"""

from pyrogen.infer.base import VectorizedKernel
from pyrogen.infer.block_gibbs import BlockGibbs
from pyrogen.infer.discrete_gibbs import DiscreteGibbs
from pyrogen.infer.discrete_langevin import DiscreteLangevin
from pyrogen.infer.gibbs_within_hmc import GibbsWithinHMC
from pyrogen.infer.integer_draws import IntegerDraws
from pyrogen.infer.locally_balanced import GibbsWithGradients, LocallyBalanced
from pyrogen.infer.metropolis import MetropolisHastings
from pyrogen.infer.replica_exchange import ReplicaExchange
from pyrogen.infer.tempered_mala import replica_exchange_mala
from pyrogen.infer.vectorized import sample

__all__ = [
    "BlockGibbs",
    "DiscreteGibbs",
    "DiscreteLangevin",
    "GibbsWithGradients",
    "GibbsWithinHMC",
    "IntegerDraws",
    "LocallyBalanced",
    "MetropolisHastings",
    "ReplicaExchange",
    "VectorizedKernel",
    "replica_exchange_mala",
    "sample",
]
