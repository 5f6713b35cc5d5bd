r"""Block Gibbs sampling of a restricted Boltzmann machine (Geman & Geman, 1984; Hinton, 2002).

Both layers of an RBM are conditionally factorised, so one sweep draws every unit at once:

.. math:: h' \sim P(h \mid v) = \prod_j \sigma(c_j + (\tilde v^\top W)_j)^{h_j} (\dots)^{1-h_j},
          \qquad v' \sim P(v \mid h'),

with :math:`P(v_i = 1 \mid h) = \sigma(b_i + a_i + (W h)_i)` for Bernoulli units and
:math:`v \mid h \sim \mathcal N(b + \sigma W h, \sigma^2 I)` for Gaussian units. The chain on
:math:`(v, h)` leaves :math:`P(v, h) \propto e^{-E(v, h)}` invariant; the chain on :math:`v`
alone (``target="marginal"``, :math:`h` an auxiliary variable) is reversible with respect to
:math:`P(v) \propto e^{-F(v)}`.

**Tempering.** At inverse temperature :math:`\beta` the whole Boltzmann density is tempered,
:math:`P_\beta(v, h) \propto e^{-\beta E(v, h)}` (evidence included: an RBM has no separate
prior): the conditionals stay factorised, with logits :math:`\beta (c + \tilde v^\top W)`
and :math:`\beta (b + a + W h)`, and for Gaussian units
:math:`v \mid h \sim \mathcal N(b + \sigma W h, \sigma^2 / \beta)`. One :math:`\beta` per
chain (``beta`` of :func:`block_gibbs_step`, :attr:`BlockGibbs.beta`) is what
:class:`~pyrogen.infer.ReplicaExchange` runs. With a **base** (``base_bias`` :math:`b_A`,
e.g. :func:`pyrogen.rbm.base_rate_bias` of the training data) the path runs instead from
the independent-units model :math:`p_{base}(v) \propto e^{b_A^\top v}` (or
:math:`\mathcal N(b_A, \sigma^2 I)`) to the RBM, as AIS's does:
:math:`P_\beta(v, h) \propto p_{base}(v)^{1-\beta} e^{-\beta E(v, h)}`, with visible logits
:math:`(1-\beta) b_A + \beta (b + a + W h)`. Its hot end keeps the data's pixel base rates
instead of uniform noise, so the temperatures of a trained model overlap far better. The
sweep itself, tempered or not, is :func:`pyrogen.rbm.functional.gibbs_sweep`; this module
adds the evidence, the transition density and the Pyro kernel.

**Evidence.** Gibbs stays exact for evidence that factorises over visible units. For
Bernoulli units this is any per-unit likelihood :math:`p(y_i \mid v_i)`: it multiplies the
target by :math:`e^{a^\top v}` with log-odds :math:`a_i = \log p(y_i | v_i{=}1) - \log p(y_i |
v_i{=}0)` (``visible_log_odds``), i.e. shifts the visible bias. Examples: Gaussian noise
:math:`y_i \sim \mathcal N(v_i, s^2)` gives :math:`a_i = (2 y_i - 1) / (2 s^2)`; clamping
:math:`v_i = 1` (or 0) is :math:`a_i = +\infty` (or :math:`-\infty`). Other evidence (on
hidden units, non-factorised likelihoods, Gaussian visible units) is not accepted: compose
``rbm.model()`` into a Pyro model and use :class:`~pyrogen.infer.DiscreteGibbs` or
:class:`~pyrogen.infer.MetropolisHastings`.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, NamedTuple

import pyro
import torch
import torch.nn.functional as F

from pyrogen._validation import check_choice, check_positive_int, check_tensor
from pyrogen.infer.base import ChainKernel
from pyrogen.rbm import functional
from pyrogen.rbm.functional import Conditionals, conditionals
from pyrogen.rbm.model import RBM

__all__ = [
    "BlockGibbs",
    "BlockGibbsState",
    "Conditionals",
    "conditionals",
    "block_gibbs_step",
    "hidden_logits",
    "visible_statistic",
    "log_transition_prob",
    "joint_log_density",
    "base_log_density",
]


class BlockGibbsState(NamedTuple):
    """Chains of an RBM: ``visible`` ``(C, n_visible)``, ``hidden`` ``(C, n_hidden)``."""

    visible: torch.Tensor
    hidden: torch.Tensor


def hidden_logits(rbm: RBM, visible: torch.Tensor) -> torch.Tensor:
    r"""Logits of :math:`P(h_j = 1 | v)`: :math:`c + (v / \sigma) W`, shape ``(C, n_hidden)``
    (detached; :func:`pyrogen.rbm.functional.hidden_logits`)."""
    return functional.hidden_logits(conditionals(rbm), visible)


def visible_statistic(
    rbm: RBM, hidden: torch.Tensor, visible_log_odds: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Logits of :math:`P(v_i = 1 | h)` (Bernoulli; plus the evidence log-odds) or the mean
    :math:`b + \sigma W h` of :math:`v | h` (Gaussian); shape ``(C, n_visible)`` (detached;
    :func:`pyrogen.rbm.functional.visible_statistic`)."""
    return functional.visible_statistic(conditionals(rbm, visible_log_odds), hidden)


def joint_log_density(c: Conditionals, state: BlockGibbsState) -> torch.Tensor:
    r""":math:`-E(v, h) + a^\top v`, the untempered log density of each chain's ``(v, h)``
    (with the evidence log-odds :math:`a` folded into ``c.visible_bias``), shape ``(C,)``.

    Units clamped by the evidence (:math:`a_i = \pm\infty`) never change, so their
    (infinite) term is the same constant for every chain and left out."""
    v, h = state.visible, state.hidden
    interaction = (torch.mm(v, c.weight) * h).sum(-1) / c.scale
    hidden_term = h @ c.hidden_bias
    b = c.visible_bias
    if c.gaussian:
        return interaction + hidden_term - 0.5 * ((v - b) ** 2).sum(-1) / c.scale**2
    finite = torch.where(torch.isfinite(b), b, torch.zeros_like(b))
    return interaction + hidden_term + v @ finite


def base_log_density(
    c: Conditionals, visible: torch.Tensor, base_bias: torch.Tensor
) -> torch.Tensor:
    r"""Unnormalised :math:`\log p_{base}(v)` of the tempering base with bias ``base_bias``
    :math:`b_A` ``(n_visible,)``: :math:`b_A^\top v` (Bernoulli units) or
    :math:`-\lVert v - b_A\rVert^2 / 2\sigma^2` (Gaussian); shape ``(C,)``.

    The tempered log density is :math:`\log p_{base}(v) + \beta\,\ell(v, h)` with
    :math:`\ell` = :func:`joint_log_density` minus this: the part that
    :class:`~pyrogen.infer.ReplicaExchange` swaps on."""
    if c.gaussian:
        return -0.5 * ((visible - base_bias) ** 2).sum(-1) / c.scale**2
    return visible @ base_bias


def block_gibbs_step(
    rbm: RBM | Conditionals,
    state: BlockGibbsState,
    generator: torch.Generator,
    visible_log_odds: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    base_bias: torch.Tensor | None = None,
) -> BlockGibbsState:
    """One sweep ``h ~ P(h | v)``, ``v ~ P(v | h)`` for every chain (pure: no autograd).

    ``beta`` ``(C,)``: each chain's inverse temperature (see the module docstring); ``None``
    is 1, the RBM itself. ``base_bias`` ``(n_visible,)``: the base of the tempered path
    (module docstring; ``None``: the whole Boltzmann density tempered). The sweep is
    :func:`pyrogen.rbm.functional.gibbs_sweep`; the old ``hidden`` does not enter.

    ``rbm`` may be given as its :func:`conditionals` (with the evidence already folded in,
    so ``visible_log_odds`` must then be None): a kernel builds them once per run, since at a
    few chains the Python and dispatch cost of each tensor operation, parameter look-ups and
    ``detach`` calls included, is most of the step time.
    """
    if isinstance(rbm, Conditionals):
        if visible_log_odds is not None:
            raise ValueError("visible_log_odds is already part of the given Conditionals")
        c = rbm
    else:
        c = conditionals(rbm, visible_log_odds)
    if beta is None:
        v, h = functional.gibbs_sweep(c, state.visible, generator)
    else:
        v, h = functional.gibbs_sweep(c, state.visible, generator, beta, base_bias)
    return BlockGibbsState(v, h)


def _bernoulli_log_prob(logits: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    # log sigma(l) if x = 1 else log sigma(-l), summed over units; where() rather than a
    # product keeps clamped units (l = +-inf) exact instead of 0 * inf = NaN.
    log_p = torch.where(value > 0, F.logsigmoid(logits), F.logsigmoid(-logits))
    return log_p.sum(-1)


def log_transition_prob(
    rbm: RBM,
    state: BlockGibbsState,
    new_state: BlockGibbsState,
    visible_log_odds: torch.Tensor | None = None,
    beta: torch.Tensor | float = 1.0,
    base_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    r""":math:`\log P(h' | v) + \log P(v' | h')` of the sweep from ``state`` to ``new_state``.

    Uses the conditionals of :func:`block_gibbs_step` at inverse temperature ``beta`` (a
    number or ``(C,)``) and tempering base ``base_bias``; shape ``(C,)``. The old ``hidden``
    does not enter: the sweep starts by redrawing it. For exact transition-matrix tests.
    """
    beta = torch.as_tensor(beta, dtype=rbm.weight.dtype, device=rbm.weight.device)
    b = beta.unsqueeze(-1) if beta.dim() else beta
    with torch.no_grad():
        log_p = _bernoulli_log_prob(b * hidden_logits(rbm, state.visible), new_state.hidden)
        stat = visible_statistic(rbm, new_state.hidden, visible_log_odds)
        if base_bias is not None:
            mean = b * stat + (1 - b) * base_bias
            if rbm.is_gaussian:
                normal = torch.distributions.Normal(mean, rbm.sigma)
                return log_p + normal.log_prob(new_state.visible).sum(-1)
            return log_p + _bernoulli_log_prob(mean, new_state.visible)
        if rbm.is_gaussian:
            normal = torch.distributions.Normal(stat, rbm.sigma / b.sqrt())
            return log_p + normal.log_prob(new_state.visible).sum(-1)
        return log_p + _bernoulli_log_prob(b * stat, new_state.visible)


class BlockGibbs(ChainKernel):
    r"""Block Gibbs kernel for an :class:`~pyrogen.rbm.RBM`: a Pyro ``MCMCKernel`` and a
    :class:`~pyrogen.infer.VectorizedKernel`.

    Args:
        rbm: the (fixed) RBM; Bernoulli or Gaussian visible units. Chains live on its device
            and in its dtype.
        target: which distribution the chains sample: ``"marginal"`` (the default)
            :math:`P(v)`, i.e. ``rbm.model()`` (site ``name`` only; :math:`h` is an auxiliary
            variable drawn and discarded every sweep); ``"joint"`` :math:`P(v, h)`, i.e.
            ``rbm.joint_model()`` (sites ``name`` and ``hidden_name``).
        visible_log_odds: optional evidence on Bernoulli visible units, shape
            ``(n_visible,)``: the target becomes :math:`P(v, h) e^{a^\top v}` (see the module
            docstring for how to write a per-unit likelihood or clamping this way).
        name, hidden_name: site names, as in :meth:`RBM.model` / :meth:`RBM.joint_model`.
        base_bias: optional bias :math:`b_A` ``(n_visible,)`` of the base that tempering runs
            from (module docstring; :func:`pyrogen.rbm.base_rate_bias` of the training data
            is the usual choice). Only tempered chains (:class:`~pyrogen.infer.ReplicaExchange`)
            see it: at :math:`\beta = 1` the kernel is the same with or without it.
        model: deprecated name of ``target`` (a ``DeprecationWarning``); ``kernel.model``
            is the Pyro model, a callable.

    One ``sample``/``step_chains`` call is one sweep (every unit redrawn once). The Pyro model
    the kernel samples is ``kernel.model`` (takes no arguments; ``MCMC.run()``).

    Example:
        >>> from pyro.infer import MCMC
        >>> rbm = RBM(6, 3)
        >>> mcmc = MCMC(BlockGibbs(rbm), num_samples=100, warmup_steps=10,
        ...             disable_progbar=True)
        >>> mcmc.run()
        >>> mcmc.get_samples()["v"].shape
        torch.Size([100, 6])
    """

    def __init__(
        self,
        rbm: RBM,
        target: Literal["joint", "marginal"] | None = None,
        *,
        visible_log_odds: torch.Tensor | None = None,
        name: str = "v",
        hidden_name: str = "h",
        base_bias: torch.Tensor | None = None,
        model: Literal["joint", "marginal"] | None = None,
    ) -> None:
        if not isinstance(rbm, RBM):
            raise TypeError(f"rbm must be a pyrogen.rbm.RBM, got {type(rbm).__name__}")
        self.rbm = rbm
        if model is not None:
            warnings.warn(
                "BlockGibbs(model=...) is deprecated: the string option is now called target "
                "(BlockGibbs(rbm, target='marginal' | 'joint')); kernel.model is the Pyro model",
                DeprecationWarning,
                stacklevel=2,
            )
            model = check_choice(model, "model", ("joint", "marginal"))
            if target is not None and target != model:
                raise ValueError(
                    f"target={target!r} and its deprecated name model={model!r} disagree; "
                    f"pass target only"
                )
            target = model
        #: ``"marginal"`` or ``"joint"``: the distribution the chains sample.
        self.target_kind = check_choice(
            "marginal" if target is None else target, "target", ("joint", "marginal")
        )
        if not isinstance(name, str) or not isinstance(hidden_name, str) or name == hidden_name:
            raise ValueError(
                f"name and hidden_name must be two different strings, got {name!r}, {hidden_name!r}"
            )
        self.name, self.hidden_name = name, hidden_name
        if visible_log_odds is not None:
            if rbm.is_gaussian:
                raise ValueError(
                    "visible_log_odds is evidence for Bernoulli visible units; this RBM has "
                    "Gaussian units. Compose rbm.model() into a Pyro model and use "
                    "MetropolisHastings instead"
                )
            check_tensor(visible_log_odds, "visible_log_odds", ndim=1, last_dim=rbm.n_visible)
            if bool(torch.isnan(visible_log_odds).any()):
                raise ValueError("visible_log_odds contains NaN (use +-inf to clamp units)")
            visible_log_odds = visible_log_odds.to(rbm.weight.dtype)
        self.visible_log_odds = visible_log_odds
        if base_bias is not None:
            check_tensor(base_bias, "base_bias", ndim=1, last_dim=rbm.n_visible)
            if not bool(torch.isfinite(base_bias).all()):
                raise ValueError("base_bias must be finite")
            base_bias = base_bias.detach().to(dtype=rbm.weight.dtype, device=rbm.weight.device)
        #: ``None`` or the bias :math:`b_A` ``(n_visible,)`` of the tempering base.
        self.base_bias = base_bias
        self._conditionals: Conditionals | None = None
        # info["accept_prob"] of every sweep (Gibbs always moves), built by init_chains:
        # a fresh torch.ones per step costs ~15-20% of a 1-4 chain sweep (measured, CPU).
        self._accept_ones: torch.Tensor | None = None
        #: ``None`` or each chain's inverse temperature ``(C,)`` (module docstring); set by
        #: :class:`~pyrogen.infer.ReplicaExchange` while it steps the chains.
        self.beta: torch.Tensor | None = None
        super().__init__()
        self.transforms = {}
        self.model = self._pyro_model

    def _pyro_model(self) -> Any:
        """The Pyro model this kernel samples (the RBM's model plus the evidence factor)."""
        out: torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # v, or (v, h) for "joint"
        if self.target_kind == "joint":
            out = self.rbm.joint_model(name=self.name, hidden_name=self.hidden_name)
            v = out[0]
        else:
            out = v = self.rbm.model(name=self.name)
        if self.visible_log_odds is not None:
            # 0 * inf would be NaN for units the evidence clamps; score them with where().
            a = self.visible_log_odds
            term = torch.where(v > 0, a, torch.zeros_like(a)).sum(-1)
            pyro.factor(f"{self.name}_evidence", term)
        return out

    @property
    def device(self) -> torch.device:
        return self.rbm.weight.device

    def _prepare(self, model_args: tuple[Any, ...], model_kwargs: dict[str, Any]) -> None:
        if model_args or model_kwargs:
            raise ValueError(
                "BlockGibbs samples a fixed RBM: MCMC.run() takes no model arguments, got "
                f"args={model_args!r}, kwargs={model_kwargs!r}"
            )
        self.transforms = {}

    # -------------------------------------------------------- VectorizedKernel
    def init_chains(
        self,
        num_chains: int,
        *,
        generator: torch.Generator,
        initial_params: dict[str, torch.Tensor] | None = None,
    ) -> BlockGibbsState:
        """Start chains from ``initial_params[name]`` (shape ``(C, n_visible)`` or
        ``(n_visible,)``) or from the base distribution (uniform bits / :math:`N(b, \\sigma^2)`);
        the hidden layer is drawn from :math:`P(h | v)`."""
        check_positive_int(num_chains, "num_chains")
        rbm = self.rbm
        shape = (num_chains, rbm.n_visible)
        dtype, device = rbm.weight.dtype, self.device
        initial_params = dict(initial_params or {})
        unknown = set(initial_params) - {self.name, self.hidden_name}
        if unknown:
            raise ValueError(
                f"initial_params has unknown sites {sorted(unknown)}; expected {self.name!r}"
            )
        if self.name in initial_params:
            v = initial_params[self.name]
            rbm.check_visible(v, f"initial_params[{self.name!r}]")
            if v.shape not in (shape, shape[1:]):
                raise ValueError(
                    f"initial_params[{self.name!r}] must have shape {shape} or {shape[1:]}, "
                    f"got {tuple(v.shape)}"
                )
            v = v.detach().to(dtype=dtype, device=device).expand(shape).clone()
        elif rbm.is_gaussian:
            noise = torch.randn(shape, generator=generator, dtype=dtype, device=device)
            v = rbm.visible_bias.detach() + rbm.sigma * noise
        else:
            v = torch.bernoulli(
                torch.full(shape, 0.5, dtype=dtype, device=device), generator=generator
            )
        if self.visible_log_odds is not None:  # clamped units start at their clamped value
            a = self.visible_log_odds
            v = torch.where(a == torch.inf, 1.0, torch.where(a == -torch.inf, 0.0, v))
        # Read once per run: every sweep of these chains uses the same detached tensors.
        self._conditionals = conditionals(rbm, self.visible_log_odds)
        self._accept_ones = torch.ones(num_chains, dtype=dtype, device=device)
        beta = 1.0 if self.beta is None else self.beta
        h = functional.sample_hidden(self._conditionals, v, generator, beta)
        return BlockGibbsState(v, h)

    def step_chains(
        self, state: BlockGibbsState, *, generator: torch.Generator, warmup: bool = False
    ) -> tuple[BlockGibbsState, dict[str, torch.Tensor]]:
        """One sweep of every chain; ``info["accept_prob"]`` is ones (Gibbs always moves)."""
        c = self._chain_conditionals()
        new = block_gibbs_step(c, state, generator, beta=self.beta, base_bias=self.base_bias)
        return new, {"accept_prob": self._ones(new.visible)}

    def _chain_conditionals(self) -> Conditionals:
        """The conditionals built by :meth:`init_chains` (or now, for chains built by hand)."""
        if self._conditionals is None:
            self._conditionals = conditionals(self.rbm, self.visible_log_odds)
        return self._conditionals

    def _ones(self, visible: torch.Tensor) -> torch.Tensor:
        ones = self._accept_ones
        if ones is None or ones.shape[0] != visible.shape[0] or ones.device != visible.device:
            # chains not built by init_chains
            ones = torch.ones(visible.shape[0], dtype=self.rbm.weight.dtype, device=visible.device)
            self._accept_ones = ones
        return ones

    def tempered_log_likelihood(self, state: BlockGibbsState) -> torch.Tensor:
        r"""The part :math:`\ell(v, h)` of each chain's log density that an inverse
        temperature multiplies, shape ``(C,)``: :math:`\log P_\beta = \log p_{base}(v) +
        \beta\,\ell + \text{const}`, so :math:`\ell = -E(v, h) + a^\top v` without a base
        and that minus :func:`base_log_density` with one (module docstring)."""
        c = self._chain_conditionals()
        out = joint_log_density(c, state)
        if self.base_bias is not None:
            out = out - base_log_density(c, state.visible, self.base_bias)
        return out

    @property
    def model_kind(self) -> str:
        """Older name of :attr:`target_kind` (read-only)."""
        return self.target_kind

    def chain_values(self, state: BlockGibbsState) -> dict[str, torch.Tensor]:
        if self.target_kind == "joint":
            return {self.name: state.visible, self.hidden_name: state.hidden}
        return {self.name: state.visible}
