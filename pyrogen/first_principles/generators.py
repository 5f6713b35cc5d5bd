r"""Uniform and normal random numbers from first principles: an LCG and Box-Muller.

* :class:`LinearCongruential`: the recurrence :math:`x_{n+1} = (a x_n + c) \bmod m`, turned
  into uniforms on (0, 1). A block of values is produced with :math:`O(\log N)` tensor
  operations through the jump-ahead identity
  :math:`x_{n+k} = A_k x_n + C_k \bmod m`, :math:`A_k = a^k`, :math:`C_k = c\,(a^{k-1} +
  \dots + a + 1)`, and gives exactly the values of the sequential recurrence.
* :func:`hull_dobell`: whether ``(a, c, m)`` gives the full period ``m``.
* :func:`box_muller`: two independent standard normals from two independent uniforms.

References:
    W. H. Press et al., *Numerical Recipes* (3rd ed., 2007), section 7.1 (the constants
    ``a = 1664525, c = 1013904223, m = 2**32``). T. E. Hull and A. R. Dobell, "Random number
    generators", SIAM Review 4 (1962) (full-period conditions). G. E. P. Box and M. E. Muller,
    "A note on the generation of random normal deviates", Ann. Math. Stat. 29 (1958).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pyrogen._validation import check_tensor

__all__ = ["LinearCongruential", "box_muller", "hull_dobell"]

# The largest supported modulus: every value and multiplier is then < 2**32, and the split
# multiplication in ``_mulmod`` keeps each partial product below 2**49 < 2**63 (int64).
_MAX_MODULUS = 2**32


def _prime_factors(n: int) -> list[int]:
    factors, p = [], 2
    while p * p <= n:
        if n % p == 0:
            factors.append(p)
            while n % p == 0:
                n //= p
        p += 1
    if n > 1:
        factors.append(n)
    return factors


def hull_dobell(a: int, c: int, m: int) -> bool:
    """Whether ``x -> (a x + c) mod m`` has full period ``m`` for every seed.

    Hull and Dobell (1962): the period is ``m`` if and only if (i) ``c`` and ``m`` are
    coprime, (ii) ``a - 1`` is divisible by every prime factor of ``m``, and (iii) ``a - 1``
    is divisible by 4 when ``m`` is.

    Example:
        >>> hull_dobell(1664525, 1013904223, 2**32), hull_dobell(5, 2, 16), hull_dobell(3, 1, 16)
        (True, False, False)
    """
    if math.gcd(c, m) != 1:
        return False
    if any((a - 1) % p for p in _prime_factors(m)):
        return False
    return not (m % 4 == 0 and (a - 1) % 4)


def _mulmod(a: int, x: torch.Tensor, m: int) -> torch.Tensor:
    """``(a * x) mod m`` for ``0 <= a, x < m <= 2**32`` without int64 overflow.

    A direct product can reach 2**64 and torch integer arithmetic wraps silently, so ``a``
    is split into 16-bit halves: ``a x = (a_hi x) 2**16 + a_lo x`` with every partial result
    below 2**49.
    """
    a_hi, a_lo = a >> 16, a & 0xFFFF
    high = (a_hi * x) % m
    return (high * 65536 + a_lo * x) % m


def _as_shape(shape: int | Sequence[int]) -> tuple[int, ...]:
    if isinstance(shape, int) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, Sequence) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
    ):
        raise ValueError(f"shape must be an int or a sequence of ints >= 0, got {shape!r}")
    return tuple(shape)


class LinearCongruential:
    r"""Linear congruential generator :math:`x_{n+1} = (a x_n + c) \bmod m`, vectorised.

    The defaults are the full-period generator of *Numerical Recipes* (Press et al., 2007,
    section 7.1; also Knuth, TAOCP vol. 2, section 3.3.4, table 1, line 26):
    ``a = 1664525``, ``c = 1013904223``, ``m = 2**32``. Any ``m`` in ``[2, 2**32]`` works;
    arithmetic is exact in int64 (Knuth's 64-bit MMIX constants need ``m = 2**64`` and are
    therefore not supported).

    ``integers(shape)`` returns the next ``prod(shape)`` values of the sequence in row-major
    order, exactly those of the sequential recurrence, and advances the state; drawing 10
    then 20 values equals drawing 30. ``uniform(shape)`` maps them to
    :math:`u = (x + 1/2) / m`, which lies strictly inside (0, 1), so ``log(u)`` is finite.

    This is a teaching generator: power-of-two moduli make the low bits periodic (bit ``k``
    has period :math:`2^{k+1}`), and successive tuples lie on hyperplanes (Marsaglia, 1968).
    Use ``torch.Generator`` for serious work.

    Args:
        seed: the initial value :math:`x_0`, reduced modulo ``m``.
        a, c, m: multiplier, increment and modulus, ``0 < a < m``, ``0 <= c < m``.
        device: where the generated tensors live.

    Example:
        >>> lcg = LinearCongruential(seed=42)
        >>> u = lcg.uniform((2, 3))
        >>> tuple(u.shape), bool(((u > 0) & (u < 1)).all())
        ((2, 3), True)
    """

    def __init__(
        self,
        seed: int = 0,
        a: int = 1664525,
        c: int = 1013904223,
        m: int = 2**32,
        device: torch.device | str | None = None,
    ) -> None:
        for name, value in (("seed", seed), ("a", a), ("c", c), ("m", m)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not 2 <= m <= _MAX_MODULUS:
            raise ValueError(f"m must lie in [2, 2**32] for exact int64 arithmetic, got {m}")
        if not 0 < a < m:
            raise ValueError(f"a must lie in (0, m) = (0, {m}), got {a}")
        if not 0 <= c < m:
            raise ValueError(f"c must lie in [0, m) = [0, {m}), got {c}")
        self.a, self.c, self.m = a, c, m
        self.state = seed % m
        self.device = torch.device(device) if device is not None else torch.device("cpu")

    @property
    def has_full_period(self) -> bool:
        """Whether the Hull-Dobell conditions hold (period ``m`` from every seed)."""
        return hull_dobell(self.a, self.c, self.m)

    def __repr__(self) -> str:
        return (
            f"LinearCongruential(state={self.state}, a={self.a}, c={self.c}, m={self.m}, "
            f"device={self.device})"
        )

    def _next_block(self, n: int) -> torch.Tensor:
        """The next ``n`` values ``x_1..x_n`` after the current state, as int64 ``(n,)``."""
        a, c, m = self.a, self.c, self.m
        values = torch.tensor([(a * self.state + c) % m], dtype=torch.int64, device=self.device)
        # Invariant: values holds x_1..x_L and (mult, inc) = (A_L, C_L), the map that jumps L
        # steps. Doubling: x_{L+1..2L} = A_L x_{1..L} + C_L; A_2L = A_L^2; C_2L = A_L C_L + C_L.
        # Python ints keep the jump constants exact.
        mult, inc = a, c
        while values.numel() < n:
            ahead = (_mulmod(mult, values, m) + inc) % m
            values = torch.cat([values, ahead])
            mult, inc = (mult * mult) % m, (mult * inc + inc) % m
        return values[:n]

    def integers(self, shape: int | Sequence[int] = ()) -> torch.Tensor:
        """The next ``prod(shape)`` values of the sequence, int64 in ``[0, m)``."""
        shape = _as_shape(shape)
        n = math.prod(shape)
        if n == 0:
            return torch.empty(shape, dtype=torch.int64, device=self.device)
        values = self._next_block(n)
        self.state = int(values[-1])
        return values.reshape(shape)

    def uniform(
        self, shape: int | Sequence[int] = (), dtype: torch.dtype = torch.float64
    ) -> torch.Tensor:
        """Uniforms :math:`(x + 1/2) / m` on the open interval (0, 1).

        Computed in float64 (exact for ``m <= 2**32``). In a narrower ``dtype`` the grid is
        rounded to the nearest representable number, and the ends are kept strictly inside
        (0, 1) by clamping to the smallest positive normal / the largest float below one.
        """
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        u = (self.integers(shape).to(torch.float64) + 0.5) / self.m
        if dtype == torch.float64:
            return u
        info = torch.finfo(dtype)
        return u.to(dtype).clamp(min=info.tiny, max=1.0 - info.eps / 2)

    def normal(
        self, shape: int | Sequence[int] = (), dtype: torch.dtype = torch.float64
    ) -> torch.Tensor:
        """Standard normals by :func:`box_muller` on consecutive pairs of uniforms."""
        shape = _as_shape(shape)
        n = math.prod(shape)
        u = self.uniform(2 * ((n + 1) // 2)).reshape(2, -1)
        z1, z2 = box_muller(u[0], u[1])
        return torch.cat([z1, z2])[:n].reshape(shape).to(dtype)


def box_muller(u1: torch.Tensor, u2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Two independent :math:`\mathcal N(0, 1)` tensors from two independent uniforms.

    .. math:: r = \sqrt{-2 \log u_1}, \quad z_1 = r \cos(2\pi u_2), \quad
              z_2 = r \sin(2\pi u_2)

    (Box and Muller, 1958). The pair :math:`(z_1, z_2)` is a standard bivariate normal
    written in polar coordinates: :math:`r^2/2 \sim` Exp(1) and the angle is uniform.

    Args:
        u1: uniforms in (0, 1], any shape (0 would give an infinite radius).
        u2: uniforms in [0, 1], the same shape and dtype as ``u1``.

    Returns:
        ``(z1, z2)``, each of the shape of ``u1``.

    Example:
        >>> z1, z2 = box_muller(torch.tensor([0.5, 1.0]), torch.tensor([0.0, 0.25]))
        >>> [round(z, 5) for z in z1.tolist()], round(float(z2[0]), 5)
        ([1.17741, 0.0], 0.0)
    """
    check_tensor(u1, "u1", allow_empty=True)
    check_tensor(u2, "u2", allow_empty=True)
    if u1.shape != u2.shape or u1.dtype != u2.dtype:
        raise ValueError(
            f"u1 and u2 must have the same shape and dtype, got {tuple(u1.shape)} {u1.dtype} "
            f"and {tuple(u2.shape)} {u2.dtype}"
        )
    if bool(((u1 <= 0) | (u1 > 1) | u1.isnan()).any()):
        raise ValueError("u1 must lie in (0, 1]: log(0) would give an infinite radius")
    if bool(((u2 < 0) | (u2 > 1) | u2.isnan()).any()):
        raise ValueError("u2 must lie in [0, 1]")
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = 2.0 * math.pi * u2
    return radius * torch.cos(angle), radius * torch.sin(angle)
