r"""The restricted Boltzmann machine as an energy model and a Pyro energy factor.

Notation (the lecture's): visible units :math:`v \in \{0,1\}^{n_v}` (or
:math:`\mathbb{R}^{n_v}` for Gaussian units), hidden units :math:`h \in \{0,1\}^{n_h}`,
parameters :math:`\theta = \{b, c, W\}` with ``visible_bias`` :math:`b` (n_v),
``hidden_bias`` :math:`c` (n_h) and ``weight`` :math:`W` (n_v, n_h).

Bernoulli visible units

.. math:: E(v, h) = -b^\top v - c^\top h - v^\top W h

Gaussian visible units with fixed standard deviation :math:`\sigma`

.. math:: E(v, h) = \frac{\lVert v - b\rVert^2}{2\sigma^2} - c^\top h - (v/\sigma)^\top W h

and :math:`P(v, h) = e^{-E(v, h)} / Z`. Summing out :math:`h` gives the free energy

.. math:: F(v) = -\log \sum_h e^{-E(v,h)}
          = q(v) - \sum_j \operatorname{softplus}(c_j + (\tilde v^\top W)_j)

with :math:`q(v) = -b^\top v` (Bernoulli) or :math:`\lVert v-b\rVert^2 / 2\sigma^2`
(Gaussian) and :math:`\tilde v = v` or :math:`v / \sigma`. The conditionals factorise:
:math:`P(h_j = 1 | v) = \sigma(c_j + (\tilde v^\top W)_j)`;
:math:`P(v_i = 1 | h) = \sigma(b_i + (W h)_i)` (Bernoulli) or
:math:`v | h \sim \mathcal N(b + \sigma W h, \sigma^2 I)` (Gaussian).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Literal

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from torch import nn

from pyrogen._validation import (
    check_binary,
    check_choice,
    check_finite,
    check_positive_float,
    check_positive_int,
    check_tensor,
)
from pyrogen.io import load_state, save_module
from pyrogen.rbm import functional
from pyrogen.seeding import check_seed

__all__ = [
    "RBM",
    "MAX_ENUMERATION_BITS",
    "MAX_ENUMERATION_COST",
    "binary_states",
    "enumeration_cost",
]

#: ``log_partition`` enumerates at most ``2 ** MAX_ENUMERATION_BITS`` states.
MAX_ENUMERATION_BITS = 25

#: ... and at most this cost, in multiply-adds (:func:`enumeration_cost`): about a minute on
#: one CPU thread. 2**25 states at 64 x 25 units is the largest such model; at 784 visible
#: units it admits up to 21 hidden units (2**20 states x 784 x 20 take about 18 s).
MAX_ENUMERATION_COST = 2**25 * 64 * 25

# Each block of enumerated states holds at most this many float64 numbers (32 MiB).
_ENUMERATION_BLOCK_NUMBERS = 2**22


def enumeration_cost(n_visible: int, n_hidden: int, visible: str = "bernoulli") -> int:
    """Multiply-adds of exact :math:`\\log Z`: states enumerated x ``n_visible`` x ``n_hidden``.

    The smaller layer is enumerated for Bernoulli units, the hidden layer for Gaussian ones.

    Example:
        >>> enumeration_cost(784, 20) == 2**20 * 784 * 20
        True
    """
    bits = n_hidden if visible == "gaussian" else min(n_visible, n_hidden)
    return 2**bits * n_visible * n_hidden


def binary_states(
    n: int,
    start: int = 0,
    stop: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """All binary vectors of length ``n`` with integer codes in ``[start, stop)``.

    Returns a tensor of shape ``(stop - start, n)``; row ``k`` is the binary expansion of
    ``start + k`` with the least significant bit in column 0.
    """
    stop = 2**n if stop is None else stop
    codes = torch.arange(start, stop, device=device, dtype=torch.int64)
    bits = torch.arange(n, device=device, dtype=torch.int64)
    return ((codes.unsqueeze(-1) >> bits) & 1).to(dtype)


class RBM(nn.Module):
    """Restricted Boltzmann machine with Bernoulli hidden units.

    Args:
        n_visible: number of visible units :math:`n_v`.
        n_hidden: number of hidden units :math:`n_h`.
        likelihood: the observation model of the visible units, ``"bernoulli"`` (binary
            data) or ``"gaussian"`` (real data, fixed variance); the word of
            :class:`~pyrogen.vae.VAE` and Pyro.
        sigma: standard deviation of Gaussian visible units (ignored for Bernoulli units).
        dtype, device: of the parameters; every method follows them.
        seed: seed of the initial weights (0.01 times standard normals; biases start at zero),
            drawn from a private ``torch.Generator``; ``None`` draws them from torch's global
            RNG, as ``torch.nn`` layers do.
        visible: deprecated spelling of ``likelihood`` (a ``FutureWarning``); the attribute
            ``rbm.visible`` stays as an alias of ``rbm.likelihood``.

    All methods take a leading batch dimension: ``v`` has shape ``(..., n_visible)`` and
    ``h`` shape ``(..., n_hidden)``; energies have the batch shape.

    Example:
        >>> rbm = RBM(6, 3)
        >>> v = torch.bernoulli(torch.full((5, 6), 0.5))
        >>> rbm.free_energy(v).shape
        torch.Size([5])
        >>> log_p = rbm.log_prob(v)  # exact: 2**3 hidden states enumerated
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        likelihood: Literal["bernoulli", "gaussian"] = "bernoulli",
        sigma: float = 1.0,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        seed: int | None = None,
        visible: Literal["bernoulli", "gaussian"] | None = None,
    ) -> None:
        super().__init__()
        self.n_visible = check_positive_int(n_visible, "n_visible")
        self.n_hidden = check_positive_int(n_hidden, "n_hidden")
        if visible is not None:
            if likelihood != "bernoulli" and likelihood != visible:
                raise TypeError(
                    "RBM got both likelihood= and its old name visible=; pass likelihood"
                )
            warnings.warn(
                "RBM: visible= is deprecated and will be removed in the next release; "
                "use likelihood=",
                FutureWarning,
                stacklevel=2,
            )
            likelihood = visible
        self.likelihood = check_choice(likelihood, "likelihood", ("bernoulli", "gaussian"))
        self.sigma = check_positive_float(sigma, "sigma")
        if seed is None:
            weight = torch.randn(n_visible, n_hidden, dtype=dtype, device=device)
        else:
            # Drawn in float64 on the CPU, then cast: one seed, the same model in any dtype.
            generator = torch.Generator().manual_seed(check_seed(seed))
            weight = torch.randn(n_visible, n_hidden, generator=generator, dtype=torch.float64)
            weight = weight.to(dtype=dtype, device=device)
        self.weight = nn.Parameter(0.01 * weight)
        self.visible_bias = nn.Parameter(torch.zeros(n_visible, dtype=dtype, device=device))
        self.hidden_bias = nn.Parameter(torch.zeros(n_hidden, dtype=dtype, device=device))

    # ------------------------------------------------------------------ helpers
    @property
    def is_gaussian(self) -> bool:
        return self.likelihood == "gaussian"

    @property
    def visible(self) -> str:
        """Old name of :attr:`likelihood` (kept as an alias)."""
        return self.likelihood

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters."""
        return self.weight.dtype

    def config(self) -> dict[str, object]:
        """Constructor arguments (what :meth:`save` stores besides the weights)."""
        return {
            "n_visible": self.n_visible,
            "n_hidden": self.n_hidden,
            "likelihood": self.likelihood,
            "sigma": self.sigma,
        }

    def extra_repr(self) -> str:
        s = f"n_visible={self.n_visible}, n_hidden={self.n_hidden}, likelihood={self.likelihood!r}"
        return s + (f", sigma={self.sigma}" if self.is_gaussian else "")

    def check_visible(self, v: torch.Tensor, name: str = "v") -> torch.Tensor:
        """Validate a visible batch: float tensor, width ``n_visible``, finite, binary if
        Bernoulli. Returns ``v`` unchanged."""
        check_tensor(v, name, last_dim=self.n_visible)
        return check_binary(v, name) if not self.is_gaussian else check_finite(v, name)

    def check_hidden(self, h: torch.Tensor, name: str = "h") -> torch.Tensor:
        """Validate a hidden batch: float tensor, width ``n_hidden``, binary."""
        check_tensor(h, name, last_dim=self.n_hidden)
        return check_binary(h, name)

    # ------------------------------------------------------------- public maths
    # The maths lives in pyrogen.rbm.functional (unchecked, for inner loops); these methods
    # validate their input and call it.
    def energy(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Joint energy :math:`E(v, h)`; shape = broadcast batch shape of ``v`` and ``h``."""
        self.check_visible(v)
        self.check_hidden(h)
        return functional.energy(self, v, h)

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        r"""Free energy :math:`F(v) = -\log\sum_h e^{-E(v,h)}`, shape ``v.shape[:-1]``."""
        return functional.free_energy(self, self.check_visible(v))

    def hidden_probs(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`P(h_j = 1 | v)`, shape ``(..., n_hidden)``."""
        return torch.sigmoid(functional.hidden_logits(self, self.check_visible(v)))

    def sample_hidden(
        self, v: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw :math:`h \\sim P(h | v)`, shape ``(..., n_hidden)``."""
        return functional.sample_hidden(self, self.check_visible(v), generator)

    def visible_mean(self, h: torch.Tensor) -> torch.Tensor:
        """:math:`E[v | h]`: ``sigmoid(b + W h)`` (Bernoulli) or ``b + sigma W h`` (Gaussian)."""
        stat = functional.visible_statistic(self, self.check_hidden(h))
        return stat if self.is_gaussian else torch.sigmoid(stat)

    def sample_visible(
        self, h: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw :math:`v \\sim P(v | h)`, shape ``(..., n_visible)``."""
        return functional.sample_visible(self, self.check_hidden(h), generator)

    def gibbs_step(
        self, v: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One block-Gibbs sweep ``h ~ P(h|v)``, ``v' ~ P(v|h)``; returns ``(v', h)``.

        Unchecked: for inner loops that already validated their input. The sweep is
        :func:`pyrogen.rbm.functional.gibbs_sweep` at ``beta=1``.
        """
        return functional.gibbs_sweep(self, v, generator)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, *, burn_in: int = 1000
    ) -> torch.Tensor:
        r"""``n`` approximate draws from :math:`P(v)`, shape ``(n, n_visible)``.

        Runs ``n`` independent block-Gibbs chains (:meth:`gibbs_step`), each started from the
        RBM without couplings (:math:`W = 0`: :math:`v_i \sim \operatorname{Bernoulli}(
        \sigma(b_i))`, or :math:`v \sim \mathcal N(b, \sigma^2 I)` for Gaussian units) and
        moved by ``burn_in`` sweeps; the rows are the chains' last visible states. The rows
        are independent of each other, but each is an exact draw only in the limit of many
        sweeps: a strongly coupled (multimodal) RBM may need far more than the default 1000
        to forget its start. Check convergence with :func:`pyrogen.infer.sample` and its
        R-hat, or use :class:`~pyrogen.infer.ReplicaExchange`, when it matters.

        Args:
            n: number of draws (chains).
            generator: the random stream, on the model's device (``None``: torch's global
                one); the same generator state gives the same draws.
            burn_in: block-Gibbs sweeps per chain (``>= 0``; 0 returns the starting states).

        Returns:
            A tensor in the model's dtype and on its device, without autograd graph.

        Example:
            >>> rbm = RBM(6, 3, seed=0)
            >>> v = rbm.sample(100, torch.Generator().manual_seed(0), burn_in=50)
            >>> v.shape, v.dtype
            (torch.Size([100, 6]), torch.float32)
        """
        check_positive_int(n, "n")
        check_positive_int(burn_in, "burn_in", minimum=0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(generator).__name__}"
            )
        c = functional.conditionals(self)
        shape = (n, self.n_visible)
        if self.is_gaussian:
            noise = torch.randn(
                shape, generator=generator, dtype=c.weight.dtype, device=c.weight.device
            )
            v = c.visible_bias + self.sigma * noise
        else:
            v = torch.bernoulli(torch.sigmoid(c.visible_bias).expand(shape), generator=generator)
        for _ in range(burn_in):
            v = functional.gibbs_sweep(c, v, generator)[0]
        return v

    # ----------------------------------------------------------- partition function
    @torch.no_grad()
    def log_partition(self) -> torch.Tensor:
        r"""Exact :math:`\log Z` by enumerating one layer (a 0-dim tensor).

        Bernoulli units: the smaller layer is enumerated and the other summed in closed form,
        :math:`\log Z = \operatorname{logsumexp}_v(-F(v))` or
        :math:`\operatorname{logsumexp}_h(c^\top h + \sum_i \operatorname{softplus}(b_i + (Wh)_i))`.
        Gaussian units: the hidden layer is enumerated and :math:`v` integrated out,
        :math:`\int e^{-E(v,h)} dv = (2\pi\sigma^2)^{n_v/2}
        \exp(c^\top h + b^\top W h / \sigma + \lVert W h\rVert^2 / 2)`.

        Accumulates in float64 whatever the parameter dtype, in blocks of states whose
        memory stays under 32 MiB. Raises ``ValueError`` when more than ``2**25`` states, or
        more than ``MAX_ENUMERATION_COST`` multiply-adds (:func:`enumeration_cost`), would be
        needed; bracket the log-likelihood with :func:`pyrogen.rbm.log_likelihood_bounds`
        then.
        """
        if self.is_gaussian:
            bits = self.n_hidden
        else:
            bits = min(self.n_visible, self.n_hidden)
        cost = enumeration_cost(self.n_visible, self.n_hidden, self.visible)
        if bits > MAX_ENUMERATION_BITS or cost > MAX_ENUMERATION_COST:
            raise ValueError(
                f"exact log_partition needs 2**{bits} states and {cost:.3g} multiply-adds "
                f"(limits 2**{MAX_ENUMERATION_BITS} and {MAX_ENUMERATION_COST:.3g}); estimate "
                f"it with pyrogen.rbm.log_likelihood_bounds or pyrogen.rbm.ais instead"
            )
        w = self.weight.double()
        b = self.visible_bias.double()
        c = self.hidden_bias.double()
        enumerate_visible = not self.is_gaussian and self.n_visible < self.n_hidden
        # The other layer's width: each enumerated state needs a row of that many numbers.
        other = self.n_hidden if enumerate_visible else self.n_visible
        block_bits = (_ENUMERATION_BLOCK_NUMBERS // max(other, bits, 1)).bit_length() - 1
        block = 2 ** max(0, min(bits, block_bits))
        pieces = []
        for start in range(0, 2**bits, block):
            stop = min(start + block, 2**bits)
            states = binary_states(bits, start, stop, dtype=torch.float64, device=w.device)
            if enumerate_visible:
                terms = states @ b + F.softplus(c + states @ w).sum(-1)
            elif self.is_gaussian:
                wh = states @ w.T
                terms = states @ c + wh @ b / self.sigma + 0.5 * (wh**2).sum(-1)
            else:
                terms = states @ c + F.softplus(b + states @ w.T).sum(-1)
            pieces.append(torch.logsumexp(terms, 0))
        log_z = torch.logsumexp(torch.stack(pieces), 0)
        if self.is_gaussian:
            log_z = log_z + 0.5 * self.n_visible * math.log(2 * math.pi * self.sigma**2)
        return log_z.to(self.weight.dtype)

    def log_prob(self, v: torch.Tensor, log_z: torch.Tensor | float | None = None) -> torch.Tensor:
        """Normalised :math:`\\log P(v) = -F(v) - \\log Z`; shape ``v.shape[:-1]``.

        ``log_z`` defaults to the exact :meth:`log_partition`; pass an AIS estimate for
        models too large to enumerate.
        """
        self.check_visible(v)
        if log_z is None:
            log_z = self.log_partition()
        return -functional.free_energy(self, v) - log_z

    # ---------------------------------------------------------------- Pyro models
    def _base_distribution(self) -> dist.TorchDistribution:
        if self.is_gaussian:
            return dist.Normal(self.visible_bias, self.sigma).to_event(1)
        probs = torch.full_like(self.visible_bias, 0.5)
        return dist.Bernoulli(probs=probs).to_event(1)

    def model(self, obs: torch.Tensor | None = None, name: str = "v") -> torch.Tensor:
        r"""Pyro model of :math:`P(v) \propto e^{-F(v)}`: one sample site ``name`` plus a factor.

        The site has a tractable *base* distribution, Bernoulli(1/2) per unit for binary
        units or :math:`\mathcal N(b, \sigma^2 I)` for Gaussian units, and the factor
        ``f"{name}_energy"`` adds :math:`-F(v) - \log p_{base}(v)`, so the site's log joint
        is exactly :math:`-F(v)` (the unnormalised log density; :math:`\log Z` is the
        constant left out). The base makes the site enumerable/samplable for Pyro and
        pyrogen kernels; the factor carries the RBM.

        Composes like any Pyro model: call it inside a larger model as a prior over a
        binary vector, under ``pyro.plate`` for a batch, or with ``obs`` to score data.
        Parameters are not registered with the param store (the RBM is fixed here).

        Returns the value of ``v``, shape ``plate_shape + (n_visible,)``.
        """
        if obs is not None:
            self.check_visible(obs, "obs")
        base = self._base_distribution()
        v = pyro.sample(name, base, obs=obs)
        pyro.factor(f"{name}_energy", -functional.free_energy(self, v) - base.log_prob(v))
        return v

    def joint_model(
        self, obs: torch.Tensor | None = None, name: str = "v", hidden_name: str = "h"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Pyro model of :math:`P(v, h) \propto e^{-E(v, h)}`: sites ``name``, ``hidden_name``.

        Bases as in :meth:`model` for ``v`` and Bernoulli(1/2) for ``h``; the factor
        ``f"{name}_{hidden_name}_energy"`` makes the log joint exactly :math:`-E(v, h)`.
        Returns ``(v, h)``.
        """
        if obs is not None:
            self.check_visible(obs, "obs")
        base_v = self._base_distribution()
        base_h = dist.Bernoulli(probs=torch.full_like(self.hidden_bias, 0.5)).to_event(1)
        v = pyro.sample(name, base_v, obs=obs)
        h = pyro.sample(hidden_name, base_h)
        log_base = base_v.log_prob(v) + base_h.log_prob(h)
        pyro.factor(f"{name}_{hidden_name}_energy", -functional.energy(self, v, h) - log_base)
        return v, h

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write weights and configuration to a safetensors file, atomically."""
        save_module(self, path, "RBM", self.config())

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: torch.device | str | None = None) -> RBM:
        """Load an RBM written by :meth:`save` (no unpickling: safetensors + JSON)."""
        config, state = load_state(path, "RBM")
        if "visible" in config:  # files written before the rename to likelihood
            config["likelihood"] = config.pop("visible")
        dtype = state["weight"].dtype
        rbm = cls(**config, dtype=dtype, device=device)
        rbm.load_state_dict(state)
        return rbm
