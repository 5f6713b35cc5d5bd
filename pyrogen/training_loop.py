r"""The one epoch loop behind every ``fit`` of pyrogen, and the keyword-only shim.

Every model family (:func:`pyrogen.rbm.fit`, :func:`pyrogen.vae.fit`,
:func:`pyrogen.vae.fit_semisupervised`, :func:`pyrogen.gan.fit`) trains by the same outer
loop, :func:`run_epochs`; a family supplies only what one epoch does
(``train_epoch(epoch) -> EpochResult``, timed) and what is measured after it
(``evaluate(epoch, last) -> dict``, off the clock). The loop owns the rest:

* the tqdm bar (``progress=``) and its postfix;
* timing: ``epoch_time`` is the training time of the epoch in seconds (CUDA synchronised
  before the clock is read, the result's ``paused`` seconds taken off), ``wall_time`` its
  cumulative sum;
* the :class:`~pyrogen.history.History` record, one per epoch;
* the user's ``callback(epoch, model, history) -> bool | None``, called after each record
  (``epoch`` counts from 0, so ``len(history) == epoch + 1``); ``True`` stops training. It
  runs on a fork of torch's global RNG, so whatever it draws leaves the training run as it
  would be without it;
* Ctrl-C: a ``KeyboardInterrupt`` inside the loop sets ``history.interrupted``, leaves the
  model at its last finished update, and the fit returns normally.

The fits take ``(model, data...)`` positionally and everything else by keyword, shared
keywords first in the order ``epochs, batch_size, lr, seed, validation, progress,
callback``. :func:`keyword_only` keeps code written against the old positional signatures
working for one release, with a ``FutureWarning``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import torch
from tqdm.auto import tqdm

from pyrogen import distributed
from pyrogen.history import History

__all__ = [
    "Callback",
    "EpochResult",
    "any_rank_stops",
    "check_callback",
    "keyword_only",
    "run_epochs",
]

F = TypeVar("F", bound=Callable[..., Any])


class Callback(Protocol):
    """``callback(epoch, model, history)``: after each epoch's record; ``True`` stops."""

    def __call__(self, epoch: int, model: Any, history: History) -> bool | None: ...


@dataclass
class EpochResult:
    """What one epoch of training returns to :func:`run_epochs`.

    Attributes:
        values: series recorded for the epoch (e.g. ``{"elbo": -92.1}``), before the timing.
        stop: training asks to stop after this epoch (e.g. a per-update hook returned True).
        paused: seconds of the epoch spent outside training (kept off ``epoch_time``).
    """

    values: dict[str, float] = field(default_factory=dict)
    stop: bool = False
    paused: float = 0.0


def check_callback(callback: object, name: str = "callback") -> Callback | None:
    """Return ``callback`` after checking that it is callable (or ``None``)."""
    if callback is not None and not callable(callback):
        raise TypeError(
            f"{name} must be callable as {name}(epoch, model, history) or None, "
            f"got {type(callback).__name__}"
        )
    return callback


def any_rank_stops(stop: bool, device: torch.device | None = None) -> bool:
    """Whether any rank of the open ``torch.distributed`` group passes ``stop=True``.

    One ``all_reduce`` of a flag on ``device`` (the CPU by default); every rank must call it.
    """
    flag = torch.tensor([float(stop)], device=device)
    return bool(distributed.all_reduce_sum([flag])[0] > 0)


def _synchronize(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _isolated_rng(device: torch.device | None) -> contextlib.AbstractContextManager[None]:
    """A fork of torch's global RNG (CPU, and ``device`` if CUDA), restored on exit.

    The VAE fits draw Pyro's noise from the global stream; a callback that draws from it
    too (``vae.sample(n)`` without a generator) must not change the training run.
    """
    devices: list[int] = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    return torch.random.fork_rng(devices=devices)


def run_epochs(
    model: Any,
    epochs: int,
    train_epoch: Callable[[int], EpochResult],
    *,
    evaluate: Callable[[int, bool], Mapping[str, float]] | None = None,
    callback: Callback | None = None,
    progress: bool = True,
    desc: str = "",
    postfix: Callable[[Mapping[str, float]], dict[str, str]] | None = None,
    device: torch.device | None = None,
    sharded: bool = False,
    on_interrupt: Callable[[], Mapping[str, float] | None] | None = None,
    history: History | None = None,
) -> History:
    """Run ``epochs`` epochs of ``train_epoch`` and return their :class:`History`.

    Per epoch ``e`` (from 0): ``train_epoch(e)`` on the clock; then ``evaluate(e, last)``
    (``last`` is True for the final epoch, or when the epoch asked to stop) off it; one
    record ``{**result.values, "epoch_time", "wall_time", **evaluated}``; then
    ``callback(e, model, history)``. Training stops after the epoch when the result's
    ``stop`` is set or the callback returns ``True``; with ``sharded`` (a distributed run,
    the callback called on every rank) any rank's ``True`` stops every rank after the same
    epoch (:func:`any_rank_stops`).

    A ``KeyboardInterrupt`` sets ``history.interrupted`` and ends the loop normally; when it
    arrives inside ``train_epoch``, ``on_interrupt()`` may return the values of the part
    epoch, which are recorded with its timing. ``history`` continues a given record (else a
    new one).
    """
    history = History() if history is None else history
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    wall = 0.0
    tic = time.perf_counter()
    in_training = False
    try:
        for epoch in bar:
            tic = time.perf_counter()
            in_training = True
            result = train_epoch(epoch)
            _synchronize(device)
            in_training = False
            epoch_time = time.perf_counter() - tic - result.paused
            wall += epoch_time
            record = {**result.values, "epoch_time": epoch_time, "wall_time": wall}
            if evaluate is not None:
                record.update(evaluate(epoch, result.stop or epoch == epochs - 1))
            history.record(**record)
            if progress and postfix is not None:
                bar.set_postfix(**postfix(record))
            stop = result.stop
            if callback is not None:
                with _isolated_rng(device):
                    stop = bool(callback(epoch, model, history)) or stop
                if sharded:
                    stop = any_rank_stops(stop, device)
            if stop:
                break
    except KeyboardInterrupt:
        history.interrupted = True
        if in_training and on_interrupt is not None:
            values = on_interrupt()
            if values is not None:
                epoch_time = time.perf_counter() - tic
                history.record(**values, epoch_time=epoch_time, wall_time=wall + epoch_time)
    finally:
        bar.close()
    return history


def keyword_only(*old_names: str) -> Callable[[F], F]:
    """Make the parameters after the positional ones keyword-only, for one release gently.

    ``fn``'s own signature has its data arguments positional and the rest keyword-only;
    ``old_names`` are the names the old signature took positionally after those, in order.
    A call with extra positional arguments maps them onto those names and emits a
    ``FutureWarning`` naming the function and the keywords to use instead.

    Example:
        >>> @keyword_only("epochs", "lr")
        ... def fit(model, data, *, lr=0.1, epochs=1):
        ...     return epochs, lr
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     fit(None, None, 5)
        (5, 0.1)
        >>> "epochs=" in str(caught[0].message)
        True
    """

    def decorate(fn: F) -> F:
        params = inspect.signature(fn).parameters.values()
        positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)
        name = f"{fn.__module__}.{fn.__qualname__}"

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > positional:
                extra = args[positional:]
                if len(extra) > len(old_names):
                    raise TypeError(
                        f"{name} takes at most {positional + len(old_names)} positional "
                        f"arguments ({positional} from this release), got {len(args)}"
                    )
                names = old_names[: len(extra)]
                for key in names:
                    if key in kwargs:
                        raise TypeError(f"{name} got multiple values for argument {key!r}")
                keywords = ", ".join(f"{key}=..." for key in names)
                warnings.warn(
                    f"passing {', '.join(names)} to {name} positionally is deprecated and "
                    f"will stop working in the next release; pass them as keywords: "
                    f"{keywords}",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs.update(zip(names, extra, strict=True))
                args = args[:positional]
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
