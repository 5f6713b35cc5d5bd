r"""The RBM's maths as plain functions: conditionals, energies and the one block-Gibbs sweep.

Every function takes the model first, as an :class:`~pyrogen.rbm.RBM` or as its
:class:`Conditionals` (the parameters read once, detached, for inner loops), then batched
tensors with the units last: ``v`` of shape ``(..., n_visible)``, ``h`` of shape
``(..., n_hidden)``. Nothing is validated here (the :class:`~pyrogen.rbm.RBM` methods validate
and then call these); the notation is that of :mod:`pyrogen.rbm.model`:

.. math:: E(v, h) = q(v) - c^\top h - \tilde v^\top W h, \qquad
          F(v) = q(v) - \sum_j \operatorname{softplus}(c_j + (\tilde v^\top W)_j),

with :math:`q(v) = -b^\top v`, :math:`\tilde v = v` (Bernoulli visible units) or
:math:`q(v) = \lVert v - b\rVert^2 / 2\sigma^2`, :math:`\tilde v = v / \sigma` (Gaussian).

**The sweep at an inverse temperature.** :func:`gibbs_sweep` draws :math:`h \sim P_\beta(h |
v)` then :math:`v' \sim P_\beta(v | h)` for the tempered joint density

.. math:: p_\beta(v, h) \propto p_{base}(v)^{1-\beta}\, e^{-\beta E(v, h)},

with a base of independent visible units whose bias is ``base_bias`` :math:`b_A`
(:math:`p_{base}(v) \propto e^{b_A^\top v}`, or :math:`\mathcal N(b_A, \sigma^2 I)` for
Gaussian units), or no base at all (``base_bias=None``: :math:`p_{base} \propto 1`, the whole
Boltzmann density tempered). Both conditionals stay factorised:

.. math:: P_\beta(h_j = 1 | v) = \sigma\big(\beta (c_j + (\tilde v^\top W)_j)\big), \qquad
          P_\beta(v_i = 1 | h) = \sigma\big((1-\beta) b_{A,i} + \beta (b_i + (W h)_i)\big)

(:math:`b_A = 0` without a base), and for Gaussian units :math:`v | h \sim \mathcal
N((1-\beta) b_A + \beta (b + \sigma W h), \sigma^2 I)` with a base, :math:`\mathcal N(b +
\sigma W h, \sigma^2 / \beta)` without. The sweep leaves :math:`p_\beta(v, h)`, and hence its
:math:`v`-marginal :math:`p_{base}(v)^{1-\beta} \sum_h e^{-\beta E(v, h)}`, invariant. This is
the annealing path of :func:`pyrogen.rbm.ais` (with the base-rate bias), the tempering of
:class:`~pyrogen.infer.ReplicaExchange` and of PT-PCD (without a base), and at
:math:`\beta = 1` the plain sweep of :meth:`RBM.gibbs_step <pyrogen.rbm.RBM.gibbs_step>`.

Example:
    >>> import torch
    >>> from pyrogen.rbm import RBM, functional
    >>> rbm = RBM(6, 3, seed=0)
    >>> v = torch.zeros(4, 6)
    >>> functional.free_energy(rbm, v).shape, functional.hidden_logits(rbm, v).shape
    (torch.Size([4]), torch.Size([4, 3]))
    >>> g = torch.Generator().manual_seed(0)
    >>> v_new, h = functional.gibbs_sweep(rbm, v, g, beta=0.5)
    >>> v_new.shape, h.shape
    (torch.Size([4, 6]), torch.Size([4, 3]))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple, overload

import torch
import torch.nn.functional as F

from pyrogen.distributed import draw_rows

if TYPE_CHECKING:
    from pyrogen.distributed import Shard
    from pyrogen.rbm.model import RBM

__all__ = [
    "Conditionals",
    "conditionals",
    "energy",
    "free_energy",
    "gibbs_sweep",
    "hidden_logits",
    "sample_hidden",
    "sample_visible",
    "scaled_visible",
    "visible_statistic",
    "visible_term",
]


class Conditionals(NamedTuple):
    """What the conditionals read from an RBM, read once instead of at every step.

    ``weight`` ``(n_visible, n_hidden)`` and ``weight_t`` (its transpose, a view) share the
    RBM's storage, as does ``hidden_bias`` ``(n_hidden,)``; ``visible_bias`` ``(n_visible,)``
    includes the evidence log-odds (a new tensor only when there is evidence). ``scale`` is
    sigma for Gaussian units, else 1. Since the tensors share storage, in-place updates of
    the RBM's parameters (as in :func:`pyrogen.rbm.fit`) show through.
    """

    weight: torch.Tensor
    weight_t: torch.Tensor
    hidden_bias: torch.Tensor
    visible_bias: torch.Tensor
    scale: float
    gaussian: bool


def conditionals(
    rbm: RBM, visible_log_odds: torch.Tensor | None = None, *, detach: bool = True
) -> Conditionals:
    r"""The :class:`Conditionals` of ``rbm``, with optional evidence on the visible units.

    ``visible_log_odds`` :math:`a` ``(n_visible,)`` shifts the visible bias to :math:`b + a`
    (the target becomes :math:`P(v, h) e^{a^\top v}`, see :mod:`pyrogen.infer.block_gibbs`).
    ``detach=False`` keeps the parameters in the autograd graph.

    Example:
        >>> from pyrogen.rbm import RBM
        >>> c = conditionals(RBM(5, 2), torch.ones(5))
        >>> c.weight_t.shape, float(c.visible_bias[0]), c.scale
        (torch.Size([2, 5]), 1.0, 1.0)
    """
    # Annotated as tensors: the detached copies are no longer nn.Parameters.
    weight: torch.Tensor = rbm.weight
    b: torch.Tensor = rbm.visible_bias
    c: torch.Tensor = rbm.hidden_bias
    if detach:
        weight, b, c = weight.detach(), b.detach(), c.detach()
    if visible_log_odds is not None:
        b = b + visible_log_odds
    gaussian = rbm.visible == "gaussian"
    scale = float(rbm.sigma) if gaussian else 1.0
    return Conditionals(weight, weight.T, c, b, scale, gaussian)


def _view(rbm: RBM | Conditionals, detach: bool) -> Conditionals:
    return rbm if isinstance(rbm, Conditionals) else conditionals(rbm, detach=detach)


# ------------------------------------------------------------------ deterministic maths
def scaled_visible(rbm: RBM | Conditionals, v: torch.Tensor) -> torch.Tensor:
    r""":math:`\tilde v = v / \sigma` (Gaussian units) or ``v`` itself (Bernoulli), same shape.

    Example:
        >>> from pyrogen.rbm import RBM
        >>> scaled_visible(RBM(2, 1, likelihood="gaussian", sigma=2.0), torch.ones(2))
        tensor([0.5000, 0.5000])
    """
    c = _view(rbm, detach=False)
    return v / c.scale if c.gaussian else v


def _hidden_logits(c: Conditionals, v: torch.Tensor) -> torch.Tensor:
    if v.dim() == 2:
        # alpha = 1 / sigma folds the scaling into the matmul (no extra tensor per step).
        return torch.addmm(c.hidden_bias, v, c.weight, alpha=1.0 / c.scale)
    out = torch.matmul(v, c.weight)
    if c.gaussian:
        out = out * (1.0 / c.scale)
    return out + c.hidden_bias


def hidden_logits(rbm: RBM | Conditionals, v: torch.Tensor) -> torch.Tensor:
    r"""Logits of :math:`P(h_j = 1 | v)`: :math:`c + \tilde v^\top W`, shape ``(..., n_hidden)``.

    Differentiable in the RBM's parameters (when given an RBM).

    Example:
        >>> from pyrogen.rbm import RBM
        >>> rbm = RBM(3, 2)
        >>> torch.equal(hidden_logits(rbm, torch.zeros(3)), rbm.hidden_bias)
        True
    """
    return _hidden_logits(_view(rbm, detach=False), v)


def _visible_statistic(c: Conditionals, h: torch.Tensor) -> torch.Tensor:
    if h.dim() == 2:
        return torch.addmm(c.visible_bias, h, c.weight_t, alpha=c.scale)
    out = torch.matmul(h, c.weight_t)
    if c.gaussian:
        out = out * c.scale
    return out + c.visible_bias


def visible_statistic(rbm: RBM | Conditionals, h: torch.Tensor) -> torch.Tensor:
    r"""The natural statistic of :math:`v | h`, shape ``(..., n_visible)``.

    Bernoulli units: the logits :math:`b + W h` of :math:`P(v_i = 1 | h)`; Gaussian units:
    the mean :math:`b + \sigma W h` of :math:`v | h \sim \mathcal N(\cdot, \sigma^2 I)`.

    Example:
        >>> from pyrogen.rbm import RBM
        >>> rbm = RBM(3, 2)
        >>> torch.equal(visible_statistic(rbm, torch.zeros(2)), rbm.visible_bias)
        True
    """
    return _visible_statistic(_view(rbm, detach=False), h)


def visible_term(rbm: RBM | Conditionals, v: torch.Tensor) -> torch.Tensor:
    r""":math:`q(v)`, the part of the energy that depends on :math:`v` alone, shape
    ``v.shape[:-1]``: :math:`-b^\top v` (Bernoulli) or :math:`\lVert v - b\rVert^2 /
    2\sigma^2` (Gaussian).

    Example:
        >>> from pyrogen.rbm import RBM
        >>> float(visible_term(RBM(2, 1, likelihood="gaussian"), torch.ones(2)))  # b = 0
        1.0
    """
    c = _view(rbm, detach=False)
    if c.gaussian:
        return 0.5 * ((v - c.visible_bias) ** 2).sum(-1) / c.scale**2
    return -(v @ c.visible_bias)


def free_energy(rbm: RBM | Conditionals, v: torch.Tensor) -> torch.Tensor:
    r"""Free energy :math:`F(v) = -\log \sum_h e^{-E(v, h)} = q(v) - \sum_j
    \operatorname{softplus}(c_j + (\tilde v^\top W)_j)`, shape ``v.shape[:-1]``.

    Example:
        >>> from pyrogen.rbm import RBM
        >>> round(float(free_energy(RBM(3, 2), torch.zeros(3))), 4)  # W v = 0: -2 log 2
        -1.3863
    """
    c = _view(rbm, detach=False)
    return visible_term(c, v) - F.softplus(_hidden_logits(c, v)).sum(-1)


def energy(rbm: RBM | Conditionals, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    r"""Joint energy :math:`E(v, h) = q(v) - c^\top h - \tilde v^\top W h`; shape = the
    broadcast batch shape of ``v`` and ``h``.

    Example:
        >>> from pyrogen.rbm import RBM
        >>> rbm, v, h = RBM(3, 2), torch.ones(3), torch.ones(2)
        >>> bool(torch.isclose(energy(rbm, v, h), -(v @ rbm.weight @ h)))  # biases are zero
        True
    """
    c = _view(rbm, detach=False)
    interaction = (torch.matmul(scaled_visible(c, v), c.weight) * h).sum(-1)
    return visible_term(c, v) - h @ c.hidden_bias - interaction


# ------------------------------------------------------------------ the sampling half-steps
def _is_one(beta: float | torch.Tensor) -> bool:
    # Only a number 1 takes the untempered path: a tensor of ones is tempered (exactly).
    return not isinstance(beta, torch.Tensor) and beta == 1


@overload
def _column(beta: torch.Tensor) -> torch.Tensor: ...
@overload
def _column(beta: float) -> float: ...
def _column(beta: float | torch.Tensor) -> float | torch.Tensor:
    """``beta`` against ``(..., units)``: a tensor of the batch shape gains a unit axis."""
    return beta.unsqueeze(-1) if isinstance(beta, torch.Tensor) else beta


def _check_beta(beta: float | torch.Tensor, gaussian: bool, base: bool) -> None:
    if isinstance(beta, torch.Tensor):
        return  # the inner-loop path: the caller owns its ladder
    if isinstance(beta, bool) or not isinstance(beta, (int, float)):
        raise TypeError(f"beta must be a number or a tensor, got {type(beta).__name__}")
    if not math.isfinite(beta) or beta < 0 or (beta == 0 and gaussian and not base):
        low = "> 0 (Gaussian units without base_bias)" if gaussian and not base else ">= 0"
        raise ValueError(f"beta must be a finite number {low}, got {beta}")


def _bernoulli(
    probs: torch.Tensor, generator: torch.Generator | None, rows: Shard | None
) -> torch.Tensor:
    if rows is None:
        return torch.bernoulli(probs, generator=generator)
    return draw_rows(lambda p: torch.bernoulli(p, generator=generator), probs, rows)


def _standard_normal(
    like: torch.Tensor, generator: torch.Generator | None, rows: Shard | None
) -> torch.Tensor:
    def draw(x: torch.Tensor) -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)

    return draw(like) if rows is None else draw_rows(draw, like, rows)


def sample_hidden(
    rbm: RBM | Conditionals,
    v: torch.Tensor,
    generator: torch.Generator | None = None,
    beta: float | torch.Tensor = 1.0,
    hidden_logits: torch.Tensor | None = None,
    *,
    rows: Shard | None = None,
) -> torch.Tensor:
    r"""Draw :math:`h \sim P_\beta(h | v)`: :math:`h_j \sim \operatorname{Bernoulli}(\sigma(
    \beta (c_j + (\tilde v^\top W)_j)))`, shape ``(..., n_hidden)``.

    Args:
        rbm: the model or its :class:`Conditionals` (read detached: draws carry no gradient).
        v: visible states ``(..., n_visible)``.
        generator: the random stream (``None``: torch's global one).
        beta: inverse temperature: a number, or a tensor of the batch shape
            ``v.shape[:-1]`` (one per chain; any shape that broadcasts against it).
        hidden_logits: :math:`c + \tilde v^\top W` at ``v`` when the caller has them already
            (left unchanged).
        rows: in a distributed run, the :class:`~pyrogen.distributed.Shard` of the global
            batch that ``v`` holds: the noise is drawn at the global shape and this rank's rows
            kept (:func:`pyrogen.distributed.draw_rows`), so every row gets the draw it gets
            in one process.

    Example:
        >>> from pyrogen.rbm import RBM
        >>> h = sample_hidden(RBM(4, 3), torch.ones(5, 4), torch.Generator().manual_seed(0))
        >>> h.shape, set(h.unique().tolist()) <= {0.0, 1.0}
        (torch.Size([5, 3]), True)
    """
    c = _view(rbm, detach=True)
    _check_beta(beta, c.gaussian, True)
    if hidden_logits is None:  # a fresh tensor: scaled and squashed in place
        logits = _hidden_logits(c, v)
        if not _is_one(beta):
            logits.mul_(_column(beta))
        return _bernoulli(logits.sigmoid_(), generator, rows)
    if not _is_one(beta):
        hidden_logits = hidden_logits * _column(beta)
    return _bernoulli(torch.sigmoid(hidden_logits), generator, rows)


def sample_visible(
    rbm: RBM | Conditionals,
    h: torch.Tensor,
    generator: torch.Generator | None = None,
    beta: float | torch.Tensor = 1.0,
    base_bias: torch.Tensor | None = None,
    *,
    rows: Shard | None = None,
) -> torch.Tensor:
    r"""Draw :math:`v \sim P_\beta(v | h)` (module docstring), shape ``(..., n_visible)``.

    At ``beta=1``: :math:`v_i \sim \operatorname{Bernoulli}(\sigma(b_i + (W h)_i))` or
    :math:`v \sim \mathcal N(b + \sigma W h, \sigma^2 I)`. ``base_bias`` :math:`b_A`
    ``(n_visible,)``: the bias of the base of the tempered path (``None``: no base, the whole
    Boltzmann density tempered). ``rbm``, ``generator``, ``beta`` and ``rows`` as in
    :func:`sample_hidden`.

    Example:
        >>> from pyrogen.rbm import RBM
        >>> rbm = RBM(4, 3, likelihood="gaussian", sigma=0.5)
        >>> sample_visible(rbm, torch.ones(2, 3), torch.Generator().manual_seed(0)).shape
        torch.Size([2, 4])
    """
    c = _view(rbm, detach=True)
    _check_beta(beta, c.gaussian, base_bias is not None)
    stat = _visible_statistic(c, h)  # a fresh tensor, changed in place below
    tempered = not _is_one(beta)
    if tempered:
        b = _column(beta)
        if base_bias is not None:
            stat.mul_(b).add_((1.0 - b) * base_bias)
        elif not c.gaussian:  # without a base the Gaussian mean stays b + sigma W h
            stat.mul_(b)
    if c.gaussian:
        noise = _standard_normal(stat, generator, rows)
        if not tempered or base_bias is not None:  # precision (1 - beta + beta) / sigma^2
            return stat.add_(noise, alpha=c.scale)
        if isinstance(beta, torch.Tensor):
            return stat.add_(noise.mul_(c.scale / _column(beta).sqrt()))
        return stat.add_(noise, alpha=c.scale / math.sqrt(beta))
    return _bernoulli(stat.sigmoid_(), generator, rows)


def gibbs_sweep(
    rbm: RBM | Conditionals,
    v: torch.Tensor,
    generator: torch.Generator | None = None,
    beta: float | torch.Tensor = 1.0,
    base_bias: torch.Tensor | None = None,
    hidden_logits: torch.Tensor | None = None,
    *,
    rows: Shard | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One block-Gibbs sweep :math:`h \sim P_\beta(h | v)`, :math:`v' \sim P_\beta(v | h)`;
    returns ``(v', h)`` of shapes ``(..., n_visible)`` and ``(..., n_hidden)``.

    Leaves :math:`p_\beta(v, h) \propto p_{base}(v)^{1-\beta} e^{-\beta E(v, h)}` invariant
    (module docstring); at ``beta=1`` (the default) the RBM itself. The random draws are, in
    order, the hidden layer's (one uniform per unit) and the visible layer's (one uniform or
    one standard normal per unit). Pure: no autograd graph, inputs left unchanged.

    Args:
        rbm: the model or its :class:`Conditionals` (with any evidence folded in).
        v: visible states ``(..., n_visible)``, one chain per batch entry.
        generator: the random stream (``None``: torch's global one).
        beta: inverse temperature: a number, or a tensor of the batch shape (one per chain).
        base_bias: bias :math:`b_A` ``(n_visible,)`` of the base of the tempered path
            (:func:`pyrogen.rbm.base_rate_bias`); ``None``: no base.
        hidden_logits: :math:`c + \tilde v^\top W` at ``v`` if already computed.
        rows: distributed runs only, see :func:`sample_hidden`.

    Example:
        >>> from pyrogen.rbm import RBM
        >>> rbm, g = RBM(6, 3, seed=0), torch.Generator().manual_seed(0)
        >>> v = torch.zeros(10, 6)
        >>> for _ in range(5):
        ...     v, h = gibbs_sweep(rbm, v, g)
        >>> v.shape, h.shape
        (torch.Size([10, 6]), torch.Size([10, 3]))
    """
    c = _view(rbm, detach=True)
    h = sample_hidden(c, v, generator, beta, hidden_logits, rows=rows)
    return sample_visible(c, h, generator, beta, base_bias, rows=rows), h
