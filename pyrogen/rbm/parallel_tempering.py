r"""Parallel tempering for the negative phase of RBM training (PT-PCD).

Persistent chains stay near the modes they found, and a sharply multimodal RBM (784 pixels,
PCD-trained) leaves the model statistics of PCD biased towards those modes. Parallel
tempering (Desjardins, Courville, Bengio, Vincent & Delalleau 2010, AISTATS; Cho, Raiko &
Ilin 2010) keeps, for every persistent chain, copies at inverse temperatures
:math:`1 = \beta_0 > \dots > \beta_R \ge 0` of the tempered Boltzmann distribution

.. math:: p_\beta(v, h) \propto e^{-\beta E(v, h)}, \qquad
          E(v, h) = -b^\top v - c^\top h - v^\top W h,

each moved by block Gibbs with the conditionals :math:`P_\beta(h_j = 1 \mid v) =
\sigma(\beta(c_j + (W^\top v)_j))` and :math:`P_\beta(v_i = 1 \mid h) = \sigma(\beta(b_i +
(W h)_i))` (:math:`\beta = 0` is the uniform distribution, which mixes at once), and
exchanges the joint states of neighbouring temperatures :math:`r, r + 1` with probability

.. math:: \min\bigl\{1, \exp[(\beta_r - \beta_{r+1})(E(v_r, h_r) - E(v_{r+1}, h_{r+1}))]\bigr\},

proposed in the deterministic even-odd order (:func:`pyrogen.tempering.swap_pairs`). Both
moves leave :math:`\prod_r p_{\beta_r}` invariant, so the :math:`\beta = 1` copies are
persistent chains of the model that receive states found at flatter temperatures. The
ladder is re-equalised (:func:`pyrogen.tempering.equalised_ladder`) from the pairs'
rejection rates as the model changes. Bernoulli visible units only.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from pyrogen.rbm.functional import gibbs_sweep, sample_hidden
from pyrogen.rbm.model import RBM
from pyrogen.tempering import swap_index, swap_log_accept_ratio, swap_pairs

__all__ = ["TemperedChains", "exchange", "init_chains", "tempered_sweep"]


class TemperedChains(NamedTuple):
    """Joint states of ``P`` chains at ``R + 1`` temperatures: ``visible`` ``(R + 1, P,
    n_visible)``, ``hidden`` ``(R + 1, P, n_hidden)``, row ``r`` at ``betas[r]``."""

    visible: torch.Tensor
    hidden: torch.Tensor


@torch.no_grad()
def tempered_sweep(
    rbm: RBM, chains: TemperedChains, betas: torch.Tensor, generator: torch.Generator
) -> TemperedChains:
    r"""One block-Gibbs sweep at every temperature: :math:`h \sim P_\beta(h \mid v)`, then
    :math:`v \sim P_\beta(v \mid h)`; ``betas`` ``(R + 1,)``.

    The sweep is :func:`pyrogen.rbm.functional.gibbs_sweep` without a base, one ``beta`` per
    row of chains."""
    beta = betas.reshape(-1, 1).to(rbm.weight.dtype)  # against the batch shape (R + 1, P)
    visible, hidden = gibbs_sweep(rbm, chains.visible, generator, beta)
    return TemperedChains(visible, hidden)


@torch.no_grad()
def exchange(
    rbm: RBM,
    chains: TemperedChains,
    betas: torch.Tensor,
    step: int,
    generator: torch.Generator,
) -> tuple[TemperedChains, torch.Tensor, torch.Tensor]:
    """The swap phase: even pairs on even ``step``, odd pairs on odd ones.

    Returns the chains, the exchange acceptance probabilities ``(R, P)`` and which pairs
    were proposed ``(R, P)`` (bool).
    """
    num_pairs, num_chains = betas.numel() - 1, chains.visible.shape[1]
    device = chains.visible.device
    if num_pairs == 0:
        empty = torch.zeros(0, num_chains, dtype=chains.visible.dtype, device=device)
        return chains, empty, empty.bool()
    # log p_beta = -beta E: the "likelihood" whose power is beta is exp(-E).
    log_l = -rbm.energy(chains.visible, chains.hidden)  # (R + 1, P)
    ratio = swap_log_accept_ratio(betas.to(log_l.dtype), log_l)
    u = torch.rand(ratio.shape, generator=generator, dtype=ratio.dtype, device=device)
    proposed = swap_pairs(step, num_pairs, num_chains, "deo", generator, device)
    swapped = (torch.log(u) < ratio) & proposed
    index = swap_index(swapped)

    def move(x: torch.Tensor) -> torch.Tensor:
        return x.gather(0, index.unsqueeze(-1).expand_as(x))

    prob = ratio.clamp(max=0.0).exp()
    return TemperedChains(move(chains.visible), move(chains.hidden)), prob, proposed


@torch.no_grad()
def init_chains(
    rbm: RBM, start: torch.Tensor, num_temperatures: int, generator: torch.Generator
) -> TemperedChains:
    """Every temperature's copy starts at ``start`` ``(P, n_visible)``, hidden units drawn at
    :math:`\\beta = 1`."""
    visible = start.unsqueeze(0).expand(num_temperatures, *start.shape).clone()
    return TemperedChains(visible, sample_hidden(rbm, visible, generator))
