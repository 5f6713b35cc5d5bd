r"""One seeding rule for every random function of pyrogen.

Every public function that draws random numbers takes ``seed: int | None`` and follows it:

* ``seed=int``: a private ``torch.Generator`` seeded with it drives every draw
  (:func:`make_generator`); torch's global RNG state is left exactly as it was.
* ``seed=None``: a fresh seed is drawn from torch's global CPU generator, the one that
  ``pyro.set_rng_seed`` and ``torch.manual_seed`` seed (:func:`resolve_seed`), and the call
  goes on as for that int: ``f(seed=None)`` is ``f(seed=draw_seed())``. That *advances* the
  global stream by one draw but never reseeds it, so ``pyro.set_rng_seed(0); f()`` repeats
  exactly, two calls in a row differ, and the caller's later global draws stay a function of
  the caller's own seed.

Code that can only draw from the global generator (Pyro's ``sample`` statements, ``nn.Module``
initialisation, ``pyro.infer.MCMC``) runs under :func:`forked_global_rng`, which saves the
global state (CPU and the given CUDA device), seeds it for the block and restores it on exit.

Calling ``torch.seed()`` is never right in library code: it reseeds the global generator
from the operating system's entropy, so a ``pyro.set_rng_seed`` before the call no longer
determines anything after it.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator
from typing import overload

import torch

__all__ = [
    "DRAWN_SEED_BOUND",
    "check_seed",
    "draw_seed",
    "forked_global_rng",
    "make_generator",
    "resolve_seed",
]

#: Seeds drawn for ``seed=None`` lie in ``[0, DRAWN_SEED_BOUND)``: 62 bits, well inside the
#: int64 range of ``torch.randint`` on every device, far more than any run needs.
DRAWN_SEED_BOUND = 2**62

# torch.Generator.manual_seed takes any value of an unsigned 64-bit integer.
_MAX_SEED = 2**64 - 1


@overload
def check_seed(seed: None, name: str = ...) -> None: ...
@overload
def check_seed(seed: int, name: str = ...) -> int: ...
@overload
def check_seed(seed: object, name: str = ...) -> int | None: ...


def check_seed(seed: object, name: str = "seed") -> int | None:
    """Return ``seed`` as an ``int`` (or ``None``) after checking it.

    Raises:
        TypeError: ``seed`` is a bool or not an integer (``numpy`` integers are accepted).
        ValueError: ``seed`` is negative or above :math:`2^{64} - 1`.
    """
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an int or None, got {type(seed).__name__} ({seed!r})")
    seed = int(seed)
    if not 0 <= seed <= _MAX_SEED:
        raise ValueError(f"{name} must be an int in [0, 2**64 - 1] or None, got {seed}")
    return seed


def draw_seed(generator: torch.Generator | None = None) -> int:
    """One fresh seed in ``[0, 2**62)`` from ``generator`` (torch's global one if None).

    Used to derive the seed of a sub-computation from a run's generator, and for
    ``seed=None`` (where it advances the global stream by one draw, never reseeding it).
    """
    device = "cpu" if generator is None else generator.device
    return int(torch.randint(DRAWN_SEED_BOUND, (1,), generator=generator, device=device))


def resolve_seed(seed: object, name: str = "seed") -> int:
    """``seed`` checked (:func:`check_seed`), or for ``None`` one :func:`draw_seed` from the
    global generator: the int a function then runs with."""
    seed = check_seed(seed, name)
    return draw_seed() if seed is None else seed


def make_generator(seed: int | None, device: torch.device | str | None = None) -> torch.Generator:
    """A private ``torch.Generator`` on ``device`` (CPU by default) seeded by the package rule.

    ``seed=None`` seeds it with :func:`draw_seed` from the global generator (so
    ``pyro.set_rng_seed`` fixes it); an ``int`` seeds it directly and leaves the global state
    alone. Raises ``TypeError``/``ValueError`` as :func:`check_seed`.

    Example:
        >>> a, b = make_generator(0), make_generator(0)
        >>> torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
        True
        >>> before = torch.get_rng_state()
        >>> _ = make_generator(5)  # an int seed: the global state is untouched
        >>> torch.equal(before, torch.get_rng_state())
        True
        >>> _ = torch.manual_seed(1); x = torch.rand(2, generator=make_generator(None))
        >>> _ = torch.manual_seed(1); y = torch.rand(2, generator=make_generator(None))
        >>> torch.equal(x, y)  # seed=None: fixed by the global seed
        True
        >>> make_generator(True)
        Traceback (most recent call last):
            ...
        TypeError: seed must be an int or None, got bool (True)
    """
    seed = resolve_seed(seed)
    return torch.Generator(device="cpu" if device is None else device).manual_seed(seed)


@contextlib.contextmanager
def forked_global_rng(seed: int | None, device: torch.device | str | None = None) -> Iterator[None]:
    """Run the block on torch's global RNG seeded with ``seed``, then restore the old state.

    For code that only draws from the global generator (Pyro's samplers, ``nn.Module``
    initialisers). The CPU generator and, when ``device`` is a CUDA device, that device's
    generator are saved, seeded with ``seed`` and restored on exit (also on an exception);
    other devices' generators are not touched. ``seed=None`` seeds the fork with one
    :func:`draw_seed` from the caller's stream, which that draw advances (the rule for None).

    Example:
        >>> before = torch.get_rng_state()
        >>> with forked_global_rng(3):
        ...     a = torch.rand(2)
        >>> with forked_global_rng(3):
        ...     b = torch.rand(2)
        >>> torch.equal(a, b), torch.equal(before, torch.get_rng_state())
        (True, True)
    """
    seed = resolve_seed(seed)
    device = torch.device("cpu" if device is None else device)
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        # Not torch.manual_seed: that would also reseed every other CUDA device, unrestored.
        torch.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield
