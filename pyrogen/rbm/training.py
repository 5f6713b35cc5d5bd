r"""Contrastive-divergence training of an RBM.

The log-likelihood gradient (the lecture's)

.. math::
    \nabla_\theta \ell = \sum_t \mathbb E_{P(h|v^t)}[-\nabla_\theta E(v^t, h)]
                        - n\,\mathbb E_{P(v,h)}[-\nabla_\theta E(v, h)]

equals :math:`-\nabla_\theta \big(\overline{F(v^t)} - \mathbb E_{P(v)} F(v)\big)` per example.
The second expectation is intractable; CD-k replaces it by :math:`F(\tilde v)` at the end of
k block-Gibbs sweeps started at the data (Hinton 2002), PCD by the state of persistent
chains that are never reset (Tieleman 2008). We form the surrogate loss
``mean F(v_data) - mean F(v_model.detach())`` whose autograd gradient is exactly that
estimate (with :math:`P(h|v)` summed out analytically) and hand it to SGD with momentum.

Default hyperparameters were chosen on the binarized digits (64 visible units) by sweeping
learning rate and batch size (three seeds with 16 and 64 hidden units, one with 256), after an
earlier sweep of CD against PCD and of a momentum warm-up: CD-1, batches of 100, learning rate
0.2 decaying linearly to zero, momentum 0.9 from the first step, L2 weight decay 1e-4 on the
weights, visible biases initialised to the data log-odds (Hinton 2010, "A practical guide to
training RBMs", sections 8-10). In 100 epochs
they reach a held-out log-likelihood of about -18.0 nats per image with 16 hidden units
(exact), -16.4 with 64 and -16.1 with 256 (AIS). Batches of 20 at rate 0.04 reach the same
values within 0.1 nat but need 3 times as many updates and 3 to 5 times the wall time: at
this size an update costs about the same whatever the batch, so larger batches are nearly
free. PCD is different: its persistent chains must keep up with the model, so it wants many
small updates, and its defaults are batches of 20 at rate 0.04 (-18.3 with 16 hidden units in
100 epochs; at CD's batch and rate it stalls near the independent-pixel baseline).

At 784 pixels (binarised MNIST, 104 pixels on per image against 18.7 on the digits) the
same rate of 0.2 kills every hidden unit of a 784 x 500 RBM within 40 CD updates: a weight
update moves each hidden input by about the learning rate times the number of active pixels.
The default rate is therefore 3.75 (CD) or 0.75 (PCD) divided by the data's mean
:math:`\lVert \tilde v \rVert^2`, which reproduces 0.2 and 0.04 on the digits and gives
0.036 and 0.0072 on MNIST. Measured on MNIST-5k (4,000 training images, 784 x 500, 20
epochs, bracket of 2,000 temperatures): CD -116.8 to -107.0 and PCD -112.8 to -108.7 nats
per held-out image, where the unscaled PCD default ended at -235 to -115 (AIS alone had
reported an impossible value 46 nats above its certain lower bound).

Gaussian visible units: standardise the data to zero mean and unit variance per unit and keep
``sigma=1``; use about a quarter of the binary learning rate (0.05 at batches of 100), since
the visible statistics are unbounded (Hinton 2010, section 13.2).
"""

from __future__ import annotations

import inspect
import math
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Literal, cast

import torch
import torch.nn.functional as F

from pyrogen import distributed as _dist
from pyrogen._validation import (
    check_choice,
    check_nonnegative_float,
    check_positive_float,
    check_positive_int,
)
from pyrogen.convergence import warn_unreliable
from pyrogen.history import History
from pyrogen.rbm import parallel_tempering
from pyrogen.rbm.ais import ais, base_rate_bias, log_partition_floor
from pyrogen.rbm.functional import (
    free_energy,
    gibbs_sweep,
    hidden_logits,
    scaled_visible,
    visible_statistic,
)
from pyrogen.rbm.model import RBM, enumeration_cost
from pyrogen.seeding import make_generator, resolve_seed
from pyrogen.tempering import equalised_ladder
from pyrogen.training_loop import (
    Callback,
    EpochResult,
    any_rank_stops,
    check_callback,
    keyword_only,
    run_epochs,
)

__all__ = ["fit", "pseudo_log_likelihood", "reconstruction_error", "standardize"]

# Exact log-likelihoods are computed every epoch while exact log Z costs at most this many
# multiply-adds (pyrogen.rbm.model.enumeration_cost): about a second on one CPU thread
# (2**20 states x 64 x 20 units, or 2**16 x 784 x 16).
_EXACT_EVERY_EPOCH_COST = 2**20 * 64 * 20
# Defaults per algorithm (see the module docstring for how they were chosen).
_DEFAULT_BATCH_SIZE = {"cd": 100, "pcd": 20, "pt": 20}
# Default learning rate = this / mean ||v~||^2 of the training data (the number of active
# pixels of a binary image): 0.2 (CD) and 0.04 (PCD) on the binarised digits (18.7 pixels on).
_DEFAULT_LR_TIMES_ACTIVE = {"cd": 3.75, "pcd": 0.75, "pt": 0.75}
# Monitors use at most this many fixed, randomly chosen examples ...
_MONITOR_SIZE = 500
# ... and by default cost at most this share of an epoch's model evaluations.
_MONITOR_BUDGET = 0.1
# A hidden unit whose mean P(h = 1 | v) over the monitored examples is below this (or above
# 1 minus this) is dead (or saturated): it no longer carries information about v.
_DEAD_UNIT_ACTIVATION = 1e-3
# fit warns when at least this share of the hidden units is dead or saturated.
_DEAD_UNIT_SHARE = 0.5
#: The per-update hook of :func:`fit`: ``step_callback(step, rbm, wall_time)``; True stops.
_StepCallback = Callable[[int, RBM, float], bool | None]

_MONITORS: tuple[Literal["pseudo_likelihood", "reconstruction", "exact"], ...] = (
    "pseudo_likelihood",
    "reconstruction",
    "exact",
)


def standardize(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return ``(z, mean, std)`` with ``z = (data - mean) / std`` per column (for Gaussian RBMs).

    Columns with zero spread keep ``std = 1``.
    """
    mean = data.mean(0)
    std = data.std(0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return (data - mean) / std, mean, std


@torch.no_grad()
def reconstruction_error(
    rbm: RBM, v: torch.Tensor, mean_h: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared error per unit between ``v`` and ``E[v | E[h | v]]`` (a 0-dim tensor).

    ``mean_h``: :math:`E[h | v]` when the caller has it already, shape ``(n, n_hidden)``.
    """
    if mean_h is None:
        mean_h = torch.sigmoid(hidden_logits(rbm, v))
    stat = visible_statistic(rbm, mean_h)
    recon = stat if rbm.is_gaussian else torch.sigmoid(stat)
    return ((v - recon) ** 2).mean()


@torch.no_grad()
def pseudo_log_likelihood(
    rbm: RBM,
    v: torch.Tensor,
    batch_size: int = 256,
    coordinates: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Pseudo-log-likelihood :math:`\sum_i \log P(v_i | v_{-i})` per example (binary units).

    :math:`\log P(v_i | v_{-i}) = -\operatorname{softplus}(F(v) - F(v^{(i)}))` where
    :math:`v^{(i)}` is :math:`v` with unit :math:`i` flipped. By default every coordinate is
    flipped (exact; :math:`n_v + 1` free energies per example). With ``coordinates``, an
    integer tensor of shape ``(n, c)``, only those units are flipped and the sum is estimated
    without bias as :math:`\frac{n_v}{c} \sum_{i \in \text{coordinates}} \log P(v_i|v_{-i})`
    (:math:`c + 1` free energies; scikit-learn's ``score_samples`` is the case ``c = 1``).
    Shape ``(n,)``.

    Example:
        >>> rbm = RBM(6, 3)
        >>> v = torch.bernoulli(torch.full((4, 6), 0.5))
        >>> every = torch.arange(6).expand(4, 6)
        >>> full = pseudo_log_likelihood(rbm, v)
        >>> torch.allclose(full, pseudo_log_likelihood(rbm, v, coordinates=every))
        True
    """
    if rbm.is_gaussian:
        raise ValueError("pseudo_log_likelihood is defined here for Bernoulli visible units only")
    if coordinates is not None:
        if not isinstance(coordinates, torch.Tensor) or coordinates.dtype != torch.int64:
            raise TypeError("coordinates must be an int64 tensor of shape (n, c)")
        if coordinates.dim() != 2 or coordinates.shape[0] != v.shape[0]:
            raise ValueError(
                f"coordinates must have shape ({v.shape[0]}, c), got {tuple(coordinates.shape)}"
            )
        if coordinates.numel() and (coordinates.min() < 0 or coordinates.max() >= rbm.n_visible):
            raise ValueError(f"coordinates must lie in [0, {rbm.n_visible})")
    out = []
    eye = torch.eye(rbm.n_visible, dtype=v.dtype, device=v.device)
    for index, chunk in zip(
        torch.arange(v.shape[0], device=v.device).split(batch_size),
        v.split(batch_size),
        strict=True,
    ):
        if coordinates is None:
            flips = eye  # (n_v, n_v): row i flips unit i
            flipped = (chunk.unsqueeze(1) - flips).abs()  # (b, n_v, n_v)
            scale = 1.0
        else:
            cols = coordinates[index].to(v.device)  # (b, c)
            flipped = (chunk.unsqueeze(1) - eye[cols]).abs()  # (b, c, n_v)
            scale = rbm.n_visible / max(cols.shape[1], 1)
        delta = free_energy(rbm, chunk).unsqueeze(1) - free_energy(rbm, flipped)
        out.append(-scale * F.softplus(delta).sum(-1))
    return torch.cat(out)


class _Monitor:
    """Fixed examples (and flipped coordinates) on which fit tracks the model every epoch.

    ``budget`` is the number of free-energy evaluations one monitoring pass may cost; the
    pseudo-likelihood then flips ``c`` fixed random coordinates of ``m`` fixed examples with
    ``m (c + 1) <= budget`` (all coordinates when affordable), so that successive epochs are
    compared on the same terms (common random numbers).
    """

    def __init__(
        self,
        rbm: RBM,
        data: torch.Tensor,
        kind: str | None,
        size: int | None,
        budget: float,
        generator: torch.Generator,
    ) -> None:
        self.kind = kind
        n = data.shape[0]
        m = min(n, _MONITOR_SIZE if size is None else size)
        self.flips = 0
        # Every monitored example costs 3 layer evaluations (reconstruction and activity)
        # plus one free energy per flipped coordinate and one for itself.
        if kind == "pseudo_likelihood" and not rbm.is_gaussian:
            if size is None:
                # Most examples first, then as many coordinates as the budget allows.
                m = int(max(1, min(m, budget // 5)))
                self.flips = int(max(1, min(rbm.n_visible, budget // m - 4)))
            else:
                self.flips = rbm.n_visible
        elif kind in ("reconstruction", "exact") and size is None:
            m = int(max(1, min(m, budget // 3)))
        order = torch.randperm(n, generator=generator)[:m]
        self.data = data[order.to(data.device)]
        self.coordinates = None
        if 0 < self.flips < rbm.n_visible:
            keys = torch.rand(m, rbm.n_visible, generator=generator)
            self.coordinates = keys.argsort(-1)[:, : self.flips]

    def __call__(
        self, rbm: RBM, prefix: str = "", log_z: torch.Tensor | None = None
    ) -> dict[str, float]:
        """The monitor's measures; ``log_z`` (exact, for ``kind="exact"``) is computed by
        the caller once per epoch."""
        if self.kind is None:
            return {}
        v = self.data
        out: dict[str, float] = {}
        mean_h = torch.sigmoid(hidden_logits(rbm, v))
        out[prefix + "reconstruction_error"] = float(reconstruction_error(rbm, v, mean_h))
        if self.kind == "pseudo_likelihood" and not rbm.is_gaussian:
            pl = pseudo_log_likelihood(rbm, v, coordinates=self.coordinates)
            out[prefix + "pseudo_log_likelihood"] = float(pl.mean())
        if self.kind == "exact" and not prefix:
            if log_z is None:
                raise ValueError("log_z (exact log Z) is needed for the 'exact' monitor")
            out["log_likelihood"] = float((-free_energy(rbm, v) - log_z).mean())
        if not prefix:
            activity = mean_h.mean(0)
            dead = (activity < _DEAD_UNIT_ACTIVATION) | (activity > 1 - _DEAD_UNIT_ACTIVATION)
            out["dead_units"] = float(dead.double().mean())
            out["mean_hidden_activation"] = float(activity.mean())
        return out


def _check_data(rbm: RBM, data: torch.Tensor, name: str) -> torch.Tensor:
    rbm.check_visible(data, name)
    if data.dim() != 2:
        raise ValueError(f"{name} must have shape (n, {rbm.n_visible}), got {tuple(data.shape)}")
    if data.dtype != rbm.weight.dtype:
        raise TypeError(
            f"{name} has dtype {data.dtype} but the RBM's parameters are {rbm.weight.dtype}; "
            f"convert one of them explicitly"
        )
    return data.to(rbm.weight.device)


@torch.no_grad()
def _init_visible_bias(rbm: RBM, data: torch.Tensor) -> None:
    rbm.visible_bias.copy_(base_rate_bias(rbm, data))


@keyword_only(
    "algorithm",
    "k",
    "epochs",
    "batch_size",
    "lr",
    "lr_schedule",
    "momentum",
    "weight_decay",
    "num_persistent",
    "seed",
    "validation",
    "progress",
    "init_visible_bias",
    "ais_every",
    "callback",
    "monitor",
    "monitor_size",
    "distributed",
    "num_temperatures",
)
def fit(
    rbm: RBM,
    data: torch.Tensor,
    *,
    epochs: int = 100,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    validation: torch.Tensor | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    algorithm: Literal["cd", "pcd", "pt"] = "cd",
    k: int = 1,
    lr_schedule: Literal["constant", "linear"] = "linear",
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    num_persistent: int = 100,
    init_visible_bias: bool = True,
    ais_every: int | None = 10,
    monitor: Literal["pseudo_likelihood", "reconstruction", "exact"] | None = "pseudo_likelihood",
    monitor_size: int | None = None,
    distributed: bool | None = None,
    num_temperatures: int = 10,
    step_callback: Callable[[int, RBM, float], bool | None] | None = None,
) -> History:
    """Train ``rbm`` in place by CD-k, persistent CD or parallel-tempering PCD; return
    per-epoch :class:`History`.

    ``rbm`` and ``data`` are positional, everything else keyword-only (positional use of
    the old signature still works, with a ``FutureWarning``, until the next release).

    Args:
        rbm: the model; training runs on its device and dtype.
        data: training set, shape ``(n, n_visible)``; binary for Bernoulli units,
            standardised for Gaussian units (a warning is raised otherwise).
        epochs: passes over the data.
        batch_size: examples per update; ``None``: 100 for CD, 20 for PCD.
        lr: initial learning rate; ``None``: 3.75 (CD) or 0.75 (PCD) divided by the mean
            :math:`\\lVert \\tilde v \\rVert^2` of the training data, i.e. by the mean number of
            active pixels of a binary image: 0.2 and 0.04 on the binarised 8x8 digits (18.7
            pixels on), 0.036 and 0.0072 on binarised MNIST (104 on). A weight update moves
            each hidden input by about ``lr`` times that number, so a rate that does not scale
            with it kills every hidden unit at 784 pixels within 40 updates (CD at 0.2 did).
            PCD's persistent chains only track the model when each update moves it little.
        seed: seeds the minibatch order, the Gibbs chains and the AIS runs; the global RNG
            is left untouched. ``None``: a fresh seed drawn from torch's global generator
            (:mod:`pyrogen.seeding`).
        validation: held-out data; adds ``validation_*`` series.
        progress: show a tqdm bar.
        callback: called as ``callback(epoch, rbm, history)`` after every epoch's record
            (``epoch`` counts from 0; ``history`` is the :class:`History` so far), with
            gradients disabled; returning ``True`` stops training after that epoch
            (:func:`pyrogen.training_loop.run_epochs`). In a distributed run it is called on
            every rank, and training stops when any rank's call returns ``True``. A callable
            whose first parameter is named ``step`` is taken for the per-update form of
            earlier releases and passed on as ``step_callback``, with a ``FutureWarning``.
        algorithm: ``"cd"`` (chains restart at the batch), ``"pcd"`` (persistent chains)
            or ``"pt"`` (PT-PCD: each persistent chain with copies at ``num_temperatures``
            inverse temperatures exchanging states, :mod:`pyrogen.rbm.parallel_tempering`;
            Bernoulli units, one process). ``"pt"`` takes PCD's default batch size and rate.
        k: Gibbs sweeps per update.
        lr_schedule: ``"constant"`` or ``"linear"`` (decays to 0 at the last update).
        momentum: momentum of SGD (PyTorch's convention).
        weight_decay: L2 penalty on ``weight`` (not on the biases).
        num_persistent: number of persistent chains for PCD.
        init_visible_bias: set visible biases to the data log-odds (or means) first.
        ais_every: when the exact log-likelihood is too costly, estimate it by AIS every this
            many epochs (and at the last); ``None`` disables it.
        monitor: what is tracked every epoch on a fixed subset of the training data:
            ``"pseudo_likelihood"`` (reconstruction error and pseudo-log-likelihood, binary
            units), ``"reconstruction"``, ``"exact"`` (also the exact log-likelihood; needs an
            affordable exact log Z) or ``None``. The same measures are computed on
            ``validation``.
        monitor_size: examples monitored. ``None`` (default): as many as keep the monitor's
            cost under 10% of an epoch (up to 500); the pseudo-likelihood then flips a fixed
            random subset of coordinates (:func:`pseudo_log_likelihood` with
            ``coordinates``). An explicit size flips every coordinate of that many examples.
        distributed: ``None`` (default): train across the ranks of the open
            ``torch.distributed`` group, if there is one of more than one process;
            ``False``: train alone in this process; ``True``: require a group. Across
            :math:`W` ranks every global batch of ``batch_size`` examples (and the
            ``num_persistent`` PCD chains, which stay on their rank) is split into :math:`W`
            contiguous parts, the CD/PCD statistics are summed over the ranks by one
            ``all_reduce`` per update, the Gibbs noise of each example (or chain) is the
            one a single process would draw (:func:`pyrogen.distributed.draw_rows`), and
            every rank ends with the parameters a single process trains, to rounding. Every
            rank holds the full ``data``, computes the same monitors and returns the same
            history; write files from rank 0 only (:mod:`pyrogen.distributed`).
        num_temperatures: temperatures of ``"pt"``, :math:`\\beta` from 1 to 0 (the
            uniform distribution), evenly spaced at first and re-equalised after every epoch
            so that neighbouring pairs swap about equally often
            (:func:`pyrogen.tempering.equalised_ladder`); each of the ``num_persistent``
            chains has that many copies, and one update costs ``num_temperatures`` times a
            PCD update's sweeps.
        step_callback: called as ``step_callback(step, rbm, wall_time)`` after every
            parameter update (``step`` counts updates from 1; ``wall_time`` is the training
            time so far in seconds, on the clock of the history's ``wall_time``), off that
            clock and with gradients disabled, e.g. to monitor the model more finely than
            once per epoch; returning ``True`` stops training after that update (the epoch
            is recorded as far as it went). Distributed, as ``callback``.
    Returns:
        :class:`~pyrogen.history.History` with the monitor's series
        (``reconstruction_error``, ``pseudo_log_likelihood``, ``log_likelihood``), the hidden
        layer's health (``mean_hidden_activation``, ``dead_units``: the share of units
        whose mean activation is below 1e-3 or above 1 - 1e-3), ``epoch_time`` and
        ``wall_time`` (training only), ``monitor_time`` (monitoring and validation), and for
        ``validation`` the same measures prefixed ``validation_`` plus
        ``validation_log_likelihood`` (mean nats per example: exact when exact log Z costs
        at most about a second, else every ``ais_every`` epochs an AIS estimate with
        ``validation_log_likelihood_stderr``, capped by the floor of
        :func:`~pyrogen.rbm.ais.log_partition_floor`; AIS is optimistic, so report
        :func:`~pyrogen.rbm.log_likelihood_bounds` of the final model instead). Ctrl-C stops
        training cleanly and sets ``history.interrupted``.

    Warns:
        ConvergenceWarning: once, when at least half of the hidden units are dead or
            saturated at the end of an epoch (the model has stopped learning; lower ``lr``).
        FutureWarning: for arguments passed by position beyond ``rbm`` and ``data``, and for
            a ``callback`` of the old per-update form (see ``callback``).
    """
    callback, step_callback = _split_callbacks(callback, step_callback)
    algorithm = check_choice(algorithm, "algorithm", ("cd", "pcd", "pt"))
    check_positive_int(num_temperatures, "num_temperatures", minimum=2)
    if algorithm == "pt" and rbm.is_gaussian:
        raise ValueError("algorithm='pt' needs Bernoulli visible units")
    lr_schedule = check_choice(lr_schedule, "lr_schedule", ("constant", "linear"))
    if monitor is not None:
        monitor = check_choice(monitor, "monitor", _MONITORS)
    if monitor_size is not None:
        check_positive_int(monitor_size, "monitor_size")
    if batch_size is None:
        batch_size = _DEFAULT_BATCH_SIZE[algorithm]
    check_positive_int(k, "k")
    check_positive_int(epochs, "epochs")
    check_positive_int(batch_size, "batch_size")
    check_positive_int(num_persistent, "num_persistent")
    if lr is not None:
        check_positive_float(lr, "lr")
    check_nonnegative_float(momentum, "momentum")
    if momentum >= 1:
        raise ValueError(f"momentum must be < 1, got {momentum}")
    check_nonnegative_float(weight_decay, "weight_decay")
    if ais_every is not None:
        check_positive_int(ais_every, "ais_every")
    data = _check_data(rbm, data, "data")
    if validation is not None:
        validation = _check_data(rbm, validation, "validation")
    if lr is None:
        active = float((scaled_visible(rbm, data) ** 2).sum(-1).mean())
        lr = _DEFAULT_LR_TIMES_ACTIVE[algorithm] / max(active, 1.0)
    exact_cost = enumeration_cost(rbm.n_visible, rbm.n_hidden, rbm.likelihood)
    exact = exact_cost <= _EXACT_EVERY_EPOCH_COST
    if monitor == "exact" and not exact:
        raise ValueError(
            f"monitor='exact' needs exact log Z every epoch, which would cost {exact_cost:.3g} "
            f"multiply-adds (limit {_EXACT_EVERY_EPOCH_COST:.3g}); use 'pseudo_likelihood'"
        )
    if rbm.is_gaussian:
        mean_dev = float(data.mean(0).abs().max())
        spread = data.std(0) if data.shape[0] > 1 else torch.ones_like(data[0])
        # Constant columns cannot be scaled to unit variance; only the others are checked.
        std_dev = float((spread[spread > 0] - 1).abs().max()) if bool((spread > 0).any()) else 0.0
        if mean_dev > 0.1 or std_dev > 0.1:
            warnings.warn(
                "Gaussian-visible RBM trained on data that is not standardised "
                "(per-unit mean 0, sd 1); see pyrogen.rbm.standardize",
                stacklevel=3,  # fit's caller, past the keyword_only wrapper
            )

    device = rbm.weight.device
    sharded = _dist.resolve_distributed(distributed)
    # One seed for the chains (on the model's device), the minibatch order (on the CPU) and
    # the AIS runs; None draws it from torch's global generator (pyrogen.seeding's rule).
    # Distributed, every rank runs with rank 0's seed and starts from rank 0's parameters.
    if sharded and algorithm == "pt":
        raise ValueError("algorithm='pt' runs in one process; use distributed=False")
    if sharded:
        seed = _dist.shared_seed(seed)
        _dist.broadcast_module(rbm)
        progress = progress and _dist.is_main_process()
    else:
        seed = resolve_seed(seed)
    generator = make_generator(seed, device)
    cpu_generator = make_generator(seed)
    if init_visible_bias:
        _init_visible_bias(rbm, data)

    n = data.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    total_steps = epochs * steps_per_epoch
    # Distributed, the Gibbs noise is drawn at the global batch's shape (the rows= of the
    # sweep), so that every row gets the noise it gets in one process; ``chains`` is this
    # rank's share of the persistent chains.
    chains: _dist.Shard | None = None
    persistent = tempered = None
    if algorithm in ("pcd", "pt"):
        with torch.no_grad():
            start = data[torch.randint(n, (num_persistent,), generator=cpu_generator).to(device)]
            if sharded:  # this rank's chains: its rows of the one-process chains
                chains = _dist.shard(num_persistent)
                start = start[chains.slice()]
            persistent = gibbs_sweep(rbm, start, generator, rows=chains)[0]
    betas = rejection_sum = attempts = None
    if algorithm == "pt":
        betas = torch.linspace(1.0, 0.0, num_temperatures, dtype=torch.float64, device=device)
        with torch.no_grad():
            tempered = parallel_tempering.init_chains(rbm, start, num_temperatures, generator)
        rejection_sum = torch.zeros(num_temperatures - 1, dtype=torch.float64, device=device)
        attempts = torch.zeros_like(rejection_sum)
    # Monitors use fixed subsets whose cost, in layer evaluations (one matrix product with
    # the weights), stays within the budget: an epoch costs about 2k + 3 per example (the
    # k sweeps, the data's hidden layer, and the two outer products of the gradient). With
    # validation data the budget is shared.
    budget = _MONITOR_BUDGET * n * (2 * k + 3) / (1 if validation is None else 2)
    tracker = _Monitor(rbm, data, monitor, monitor_size, budget, cpu_generator)
    held_out = (
        _Monitor(rbm, validation, monitor, monitor_size, budget, cpu_generator)
        if validation is not None
        else None
    )
    warned_dead = False

    velocity = [torch.zeros_like(p) for p in (rbm.weight, rbm.visible_bias, rbm.hidden_bias)]
    step = 0
    wall = 0.0  # training time of the finished epochs, the clock step_callback sees

    def train_epoch(epoch: int) -> EpochResult:
        nonlocal step, persistent, tempered
        tic = time.perf_counter()
        paused = 0.0  # time spent in the step callback, kept off the training clock
        stop = False
        order = torch.randperm(n, generator=cpu_generator).to(device)
        for batch_index in order.split(batch_size):
            rate = lr * (1.0 - step / total_steps) if lr_schedule == "linear" else lr
            part = None
            if sharded:  # this rank's rows of the global batch
                part = _dist.shard(batch_index.numel())
                batch_index = batch_index[part.slice()]
            batch = data[batch_index]
            data_logits = hidden_logits(rbm, batch)
            data_h = torch.sigmoid(data_logits)
            if algorithm == "pcd":
                assert persistent is not None  # set above for "pcd"
                chain = persistent
                for _ in range(k):
                    chain = gibbs_sweep(rbm, chain, generator, rows=chains)[0]
                persistent = chain
            elif algorithm == "pt":
                # all set above for "pt"
                assert tempered is not None and betas is not None
                assert rejection_sum is not None and attempts is not None
                for _ in range(k):
                    tempered = parallel_tempering.tempered_sweep(rbm, tempered, betas, generator)
                tempered, swap_prob, proposed = parallel_tempering.exchange(
                    rbm, tempered, betas, step, generator
                )
                rejection_sum.add_(((1 - swap_prob) * proposed).sum(-1).double())
                attempts.add_(proposed.sum(-1).double())
                chain = tempered.visible[0]
            else:
                # CD's first sweep starts from the batch, whose logits are at hand.
                chain = gibbs_sweep(rbm, batch, generator, hidden_logits=data_logits, rows=part)[0]
                for _ in range(k - 1):
                    chain = gibbs_sweep(rbm, chain, generator, rows=part)[0]
            if part is not None:  # sharded
                chain_total = num_persistent if algorithm == "pcd" else part.total
                _sgd_step(
                    rbm,
                    batch,
                    data_h,
                    chain,
                    velocity,
                    rate,
                    momentum,
                    weight_decay,
                    totals=(part.total, chain_total),
                )
            else:
                _sgd_step(rbm, batch, data_h, chain, velocity, rate, momentum, weight_decay)
            step += 1
            if step_callback is not None:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                pause = time.perf_counter()
                stop = bool(step_callback(step, rbm, wall + pause - tic - paused))
                if sharded:  # any rank's stop stops them all, after the same update
                    stop = any_rank_stops(stop, device)
                paused += time.perf_counter() - pause
                if stop:
                    break
        return EpochResult(stop=stop, paused=paused)

    def evaluate(epoch: int, last: bool) -> dict[str, float]:
        nonlocal betas, warned_dead
        tic = time.perf_counter()
        record: dict[str, float] = {}
        if algorithm == "pt":  # the pairs' swap rates this epoch, then a new ladder
            # all set above for "pt"
            assert betas is not None and rejection_sum is not None and attempts is not None
            rejection = rejection_sum / attempts.clamp(min=1)
            record["pt_min_swap_rate"] = float(1 - rejection.max())
            record["pt_mean_swap_rate"] = float(1 - rejection.mean())
            betas = equalised_ladder(betas, rejection)
            rejection_sum.zero_()
            attempts.zero_()
        # Exact log Z, once per epoch, for whichever of the two monitors needs it.
        wants_log_z = exact and (monitor == "exact" or held_out is not None)
        log_z = rbm.log_partition() if wants_log_z else None
        record.update(tracker(rbm, log_z=log_z))
        if held_out is not None and validation is not None:  # one is None iff the other is
            record.update(held_out(rbm, prefix="validation_"))
            record.update(
                _validation_log_likelihood(
                    rbm, validation, data, log_z, epoch, last, ais_every, seed
                )
            )
        record["monitor_time"] = time.perf_counter() - tic
        if (
            not warned_dead
            and monitor is not None
            and record.get("dead_units", 0.0) >= _DEAD_UNIT_SHARE
        ):
            warned_dead = True
            warn_unreliable(
                f"RBM training, epoch {epoch + 1}: {record['dead_units']:.0%} of the hidden "
                f"units are dead or saturated (mean activation "
                f"{record['mean_hidden_activation']:.2g} over the monitored examples); the "
                f"model has stopped learning: lower lr (now {lr:.3g})",
                stacklevel=5,  # evaluate, run_epochs, fit, keyword_only, fit's caller
            )
        return record

    def postfix(record: Mapping[str, float]) -> dict[str, str]:
        if "validation_log_likelihood" in record:
            return {"ll": f"{record['validation_log_likelihood']:.3f}"}
        return {}

    def track_wall(epoch: int, model: RBM, history: History) -> bool | None:
        nonlocal wall
        wall = history.last("wall_time")
        return None if callback is None else callback(epoch, model, history)

    grad_mode = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        return run_epochs(
            rbm,
            epochs,
            train_epoch,
            evaluate=evaluate,
            callback=track_wall if step_callback is not None else callback,
            progress=progress,
            desc="RBM",
            postfix=postfix,
            device=device,
            sharded=sharded and callback is not None,
        )
    finally:
        torch.set_grad_enabled(grad_mode)


def _split_callbacks(
    callback: object, step_callback: object
) -> tuple[Callback | None, _StepCallback | None]:
    """``(callback, step_callback)`` after checking them; an old-style ``callback`` (first
    parameter named ``step``: the per-update form of earlier releases) becomes the
    ``step_callback``, with a ``FutureWarning``."""
    callback = check_callback(callback)
    # check_callback checks that it is callable; its parameters are the caller's to get right.
    step_callback = cast("_StepCallback | None", check_callback(step_callback, "step_callback"))
    if callback is None:
        return None, step_callback
    try:
        first = next(iter(inspect.signature(callback).parameters), None)
    except (TypeError, ValueError):  # builtins without a signature: the new form
        first = None
    if first != "step":
        return callback, step_callback
    if step_callback is not None:
        raise TypeError(
            "callback has the old per-update form callback(step, rbm, wall_time) and "
            "step_callback is given too; pass the per-update hook as step_callback only"
        )
    warnings.warn(
        "pyrogen.rbm.fit: callback(step, rbm, wall_time), called after every update, is "
        "deprecated; pass it as step_callback=..., or use callback(epoch, model, history), "
        "called after every epoch",
        FutureWarning,
        stacklevel=4,  # _split_callbacks, fit, keyword_only: fit's caller
    )
    return None, cast("_StepCallback", callback)


@torch.no_grad()
def _sgd_step(
    rbm: RBM,
    batch: torch.Tensor,
    data_h: torch.Tensor,
    chain: torch.Tensor,
    velocity: list[torch.Tensor],
    lr: float,
    momentum: float,
    weight_decay: float,
    totals: tuple[int, int] | None = None,
) -> None:
    r"""One SGD-with-momentum step along the CD estimate of the log-likelihood gradient.

    ``data_h`` is :math:`P(h = 1 | v)` at the batch, shape ``(batch, n_hidden)``.

    Written out by hand rather than through autograd (3x fewer kernel launches per step):
    with :math:`p = P(h = 1 | v)` and :math:`\tilde v = v / \sigma`,
    :math:`-\partial F / \partial W = \tilde v^\top p`, :math:`-\partial F / \partial c = p`,
    :math:`-\partial F / \partial b = v` (Bernoulli) or :math:`(v - b) / \sigma^2` (Gaussian);
    the update ascends ``mean over batch - mean over chain`` of these. Momentum follows
    PyTorch's SGD convention ``u <- momentum * u + g``, ``theta <- theta + lr * u``.

    ``totals``, in a distributed run: the global ``(batch size, number of chains)``; this
    rank's rows are then summed, divided by those and added up over the ranks by one
    ``all_reduce``, which gives the one-process means.
    """
    model_h = torch.sigmoid(hidden_logits(rbm, chain))
    num_batch, num_chain = (batch.shape[0], chain.shape[0]) if totals is None else totals
    grad_w = torch.addmm(
        scaled_visible(rbm, batch).T @ data_h,
        scaled_visible(rbm, chain).T,
        model_h,
        beta=1.0 / num_batch,
        alpha=-1.0 / num_chain,
    )
    if totals is None:
        grad_b = batch.mean(0) - chain.mean(0)
        grad_c = data_h.mean(0) - model_h.mean(0)
    else:
        grad_b = batch.sum(0) / num_batch - chain.sum(0) / num_chain
        grad_c = data_h.sum(0) / num_batch - model_h.sum(0) / num_chain
        grad_w, grad_b, grad_c = _dist.all_reduce_sum([grad_w, grad_b, grad_c])
    if weight_decay:
        grad_w.add_(rbm.weight, alpha=-weight_decay)
    if rbm.is_gaussian:
        grad_b.div_(rbm.sigma**2)
    for param, buf, grad in zip(
        (rbm.weight, rbm.visible_bias, rbm.hidden_bias),
        velocity,
        (grad_w, grad_b, grad_c),
        strict=True,
    ):
        buf.mul_(momentum).add_(grad)
        param.add_(buf, alpha=lr)


@torch.no_grad()
def _validation_log_likelihood(
    rbm: RBM,
    validation: torch.Tensor,
    data: torch.Tensor,
    log_z: torch.Tensor | None,
    epoch: int,
    last: bool,
    ais_every: int | None,
    seed: int | None,
) -> dict[str, float]:
    """Held-out log-likelihood: exact with ``log_z`` (exact log Z, when affordable), else
    every ``ais_every`` epochs by AIS capped by the floor."""
    out: dict[str, float] = {}
    due = ais_every is not None and ((epoch + 1) % ais_every == 0 or last)
    if log_z is None and not due:
        return out
    mean_neg_f = float((-free_energy(rbm, validation)).double().mean())
    if log_z is not None:
        out["validation_log_likelihood"] = mean_neg_f - float(log_z)
    else:
        result = ais(rbm, num_chains=100, num_temperatures=1000, data=data, seed=seed)
        log_z_ais = float(result.log_z)
        if not rbm.is_gaussian:
            log_z_ais = max(log_z_ais, float(log_partition_floor(rbm, data, validation)))
        out["validation_log_likelihood"] = mean_neg_f - log_z_ais
        out["validation_log_likelihood_stderr"] = float(result.stderr)
    return out
