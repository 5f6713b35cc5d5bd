r"""A held-out RBM log-likelihood with its reliability: the AIS / reverse-AIS bracket.

The mean log-likelihood of held-out examples :math:`v_1, \dots, v_n` is
:math:`\overline{-F(v)} - \log Z`. Everything hard is in :math:`\log Z`, and the two
annealing estimators err in opposite directions:

* forward AIS (:func:`~pyrogen.rbm.ais.ais`) is a stochastic lower bound on :math:`\log Z`,
  so the log-likelihood it gives is *optimistic*; on a peaked model whose runs miss modes it
  is optimistic by tens of nats with a small standard error;
* reverse AIS (RAISE, :func:`~pyrogen.rbm.ais.reverse_ais`), started at the held-out data,
  is a stochastic upper estimate, so its log-likelihood is *conservative*.

A third, deterministic fact caps the optimistic end:
:math:`\log Z \ge \operatorname{logsumexp}_{v \in S}(-F(v))` for any set :math:`S` of
distinct states (:func:`~pyrogen.rbm.ais.log_partition_floor`), here the training and
held-out data and the AIS runs' final states. So

.. math::
    \underbrace{\overline{-F(v)} - \log \hat Z_{\mathrm{RAISE}}}_{\text{lower}}
    \;\lesssim\; \text{log-likelihood} \;\lesssim\;
    \underbrace{\overline{-F(v)} - \max\big(\log \hat Z_{\mathrm{AIS}},
    \operatorname{logsumexp}_S(-F)\big)}_{\text{upper}}

(Burda, Grosse & Salakhutdinov 2015 call the two ends "conservative" and "optimistic"). When
the two ends agree to within a nat or two the number can be reported; when they do not, the
width is the honest error bar and a :class:`~pyrogen.convergence.ConvergenceWarning` says so.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import torch

from pyrogen._validation import check_positive_float, check_positive_int
from pyrogen.convergence import ConvergenceWarning, warn_unreliable
from pyrogen.rbm.ais import ESS_FRACTION_MIN, AISResult, ais, reverse_ais
from pyrogen.rbm.model import RBM
from pyrogen.seeding import resolve_seed

__all__ = ["MAX_BRACKET_WIDTH", "LikelihoodBounds", "log_likelihood_bounds"]

#: :func:`log_likelihood_bounds` warns when the bracket is wider than this (nats per example).
MAX_BRACKET_WIDTH = 2.0


@dataclass(frozen=True)
class LikelihoodBounds:
    """The bracket returned by :func:`log_likelihood_bounds` (mean nats per example).

    Attributes:
        lower: conservative end, from reverse AIS.
        upper: optimistic end, from AIS capped by the floor.
        lower_stderr, upper_stderr: standard errors of the two ends.
        forward, reverse: the two :class:`~pyrogen.rbm.ais.AISResult`.
        log_z_floor: the deterministic lower bound on :math:`\\log Z` used for the cap.
        mean_neg_free_energy: :math:`\\overline{-F(v)}` over the held-out examples.
        num_examples: number of held-out examples.
        problems: why the bracket is not a trustworthy estimate (empty when it is).
        forward_seconds, reverse_seconds: wall time of the two estimators.
    """

    lower: float
    upper: float
    lower_stderr: float
    upper_stderr: float
    forward: AISResult = field(repr=False)
    reverse: AISResult = field(repr=False)
    log_z_floor: float
    mean_neg_free_energy: float
    num_examples: int
    problems: tuple[str, ...] = ()
    forward_seconds: float = 0.0
    reverse_seconds: float = 0.0

    @property
    def width(self) -> float:
        """``upper - lower``; negative only by noise (or when the estimates disagree)."""
        return self.upper - self.lower

    @property
    def reliable(self) -> bool:
        """No problem was found: the bracket may be reported as the log-likelihood."""
        return not self.problems

    @property
    def midpoint(self) -> float:
        return 0.5 * (self.lower + self.upper)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary (floats, the problems as a list)."""
        return {
            "lower": self.lower,
            "upper": self.upper,
            "lower_stderr": self.lower_stderr,
            "upper_stderr": self.upper_stderr,
            "width": self.width,
            "log_z_ais": float(self.forward.log_z),
            "log_z_reverse_ais": float(self.reverse.log_z),
            "log_z_floor": self.log_z_floor,
            "ais_ess_fraction": self.forward.ess_fraction,
            "num_examples": self.num_examples,
            "forward_seconds": self.forward_seconds,
            "reverse_seconds": self.reverse_seconds,
            "reliable": self.reliable,
            "problems": list(self.problems),
        }

    def __str__(self) -> str:
        flag = "" if self.reliable else "  [UNRELIABLE: " + "; ".join(self.problems) + "]"
        return (
            f"{self.lower:.2f} (+/- {self.lower_stderr:.2f}) <= log-likelihood <= "
            f"{self.upper:.2f} (+/- {self.upper_stderr:.2f}) nats per example, "
            f"width {self.width:.2f}{flag}"
        )


@torch.no_grad()
def log_likelihood_bounds(
    rbm: RBM,
    test: torch.Tensor,
    train: torch.Tensor | None = None,
    num_chains: int = 100,
    num_temperatures: int | None = None,
    betas: torch.Tensor | None = None,
    seed: int | None = None,
    max_width: float = MAX_BRACKET_WIDTH,
    progress: bool = False,
) -> LikelihoodBounds:
    r"""Bracket the mean held-out log-likelihood of a binary RBM between reverse AIS and AIS.

    Args:
        rbm: a Bernoulli-visible RBM.
        test: held-out examples, shape ``(n, n_visible)``, binary.
        train: training examples (fits the base rate of both runs and joins the floor);
            default: ``test``.
        num_chains: runs of each estimator (reverse runs start at that many test examples).
        num_temperatures, betas: the schedule, as in :func:`~pyrogen.rbm.ais.ais` (default:
            Salakhutdinov & Murray's 14,501 inverse temperatures).
        seed: one seed for both estimators (forward uses ``seed``, reverse ``seed + 1``);
            ``None`` draws one from torch's global generator.
        max_width: a bracket wider than this many nats is flagged.
        progress: tqdm bars over the temperatures.

    Returns:
        :class:`LikelihoodBounds`; ``str(bounds)`` prints the bracket, ``bounds.as_dict()``
        gives it for JSON.

    Warns:
        ConvergenceWarning: when the AIS weights' effective sample size is below 10% of the
            runs, the AIS estimate lies below the floor (it is then replaced by the floor in
            ``upper``), the reverse estimate lies below the floor, the two ends
            contradict each other by more than 3 standard errors, or the bracket is wider
            than ``max_width``.

    Example:
        >>> rbm = RBM(10, 6)
        >>> v = torch.bernoulli(torch.full((40, 10), 0.3))
        >>> b = log_likelihood_bounds(rbm, v, num_chains=40, num_temperatures=200, seed=0)
        >>> exact = float(rbm.log_prob(v).mean())
        >>> b.lower - 3 * b.lower_stderr < exact < b.upper + 3 * b.upper_stderr
        True
    """
    if rbm.is_gaussian:
        raise ValueError("log_likelihood_bounds needs Bernoulli visible units")
    check_positive_int(num_chains, "num_chains")
    check_positive_float(max_width, "max_width")
    rbm.check_visible(test, "test")
    if test.dim() != 2 or test.shape[0] == 0:
        raise ValueError(
            f"test must have shape (n, {rbm.n_visible}) with n >= 1, got {tuple(test.shape)}"
        )
    if train is not None:
        rbm.check_visible(train, "train")
    seed = resolve_seed(seed)
    base_data = test if train is None else train
    # The estimators' own warnings (low ESS, below the floor) reappear in ``problems`` and in
    # the one warning below, so they are not emitted twice.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tic = time.perf_counter()
        forward = ais(
            rbm,
            data=base_data,
            seed=seed,
            progress=progress,
            num_chains=num_chains,
            num_temperatures=num_temperatures,
            betas=betas,
        )
        forward_seconds = time.perf_counter() - tic
        tic = time.perf_counter()
        reverse = reverse_ais(
            rbm,
            test,
            train=train,
            seed=seed + 1,
            progress=progress,
            num_chains=num_chains,
            num_temperatures=num_temperatures,
            betas=betas,
        )
        reverse_seconds = time.perf_counter() - tic
    # Each floor is a valid bound; their sets overlap (both hold train), so take the larger.
    floor = max(float(forward.log_z_floor), float(reverse.log_z_floor))
    mean_neg_f = float((-rbm.free_energy(test.to(rbm.weight.detach()))).double().mean())
    log_z_ais, se_ais = float(forward.log_z), float(forward.stderr)
    log_z_rev, se_rev = float(reverse.log_z), float(reverse.stderr)

    problems = []
    if not forward.ess_fraction >= ESS_FRACTION_MIN:
        problems.append(
            f"AIS weights' effective sample size is {forward.ess_fraction:.1%} of the runs "
            f"(< {ESS_FRACTION_MIN:.0%}): its standard error is unreliable"
        )
    if log_z_ais + 3.0 * se_ais < floor:
        problems.append(
            f"AIS log Z {log_z_ais:.4g} is below the certain lower bound {floor:.4g} "
            f"(upper end capped there)"
        )
    upper = mean_neg_f - max(log_z_ais, floor)
    upper_se = se_ais if log_z_ais >= floor else 0.0
    if log_z_rev + 3.0 * se_rev < floor:
        problems.append(
            f"reverse-AIS log Z {log_z_rev:.4g} is below the certain lower bound {floor:.4g}"
        )
    lower = mean_neg_f - log_z_rev
    joint_se = math.sqrt(upper_se**2 + se_rev**2)
    if lower > upper + 3.0 * joint_se:
        problems.append(
            f"the conservative end ({lower:.2f}) exceeds the optimistic end ({upper:.2f}) by "
            f"more than 3 standard errors"
        )
    if upper - lower > max_width:
        problems.append(f"bracket {upper - lower:.2f} nats wide (> {max_width:g})")
    bounds = LikelihoodBounds(
        lower=lower,
        upper=upper,
        lower_stderr=se_rev,
        upper_stderr=upper_se,
        forward=forward,
        reverse=reverse,
        log_z_floor=floor,
        mean_neg_free_energy=mean_neg_f,
        num_examples=int(test.shape[0]),
        problems=tuple(problems),
        forward_seconds=forward_seconds,
        reverse_seconds=reverse_seconds,
    )
    if problems:
        warn_unreliable(
            f"held-out log-likelihood bracket {lower:.2f} .. {upper:.2f} nats: "
            + "; ".join(problems)
            + "; report the bracket, not one number, or rerun with more temperatures",
            stacklevel=3,
        )
    return bounds
