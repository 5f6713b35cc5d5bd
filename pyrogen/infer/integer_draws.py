r"""Integer-valued draws under ``pyro.infer.MCMC``: integers for models, floats for summaries.

Pyro's driver stores every step's values in one flat floating-point tensor and applies
``kernel.transforms[name].inv`` to each site's slice when it builds ``mcmc.get_samples()``.
A Categorical site's draws would so reach the user as floats (``0., 1., 2.``), and a model
that indexes with them (``locs[z]``, the pattern of every mixture model) fails in
``pyro.infer.Predictive(model, mcmc.get_samples())`` and in any log-likelihood replay with
"tensors used as indices must be long". Casting to ``long`` would in turn break
``mcmc.summary()`` and ``mcmc.diagnostics()``, which take means and variances of the draws.

pyrogen's choice: draws of integer-valued sites come back with the dtype Pyro's own
distributions give them (``torch.long`` for Categorical; Bernoulli and Binomial, whose
supports are floating point, stay floats), as :class:`IntegerDraws`, a ``torch.Tensor``
subclass that behaves as a plain ``long`` tensor except that an operation which is not
defined for integers (``mean``, ``var``, ``quantile``, ...) is retried on the values cast to
the default float dtype. So ``locs[z]`` indexes, ``z == 2`` compares, and
``mcmc.summary()`` reports a mean of ``z``. The results of operations are plain tensors
unless they are themselves integer-valued. An :class:`IntegerDraws` pickles (``torch.save``,
``torch.load(..., weights_only=True)``) as a plain ``long`` tensor.

:class:`IntegerCast` is the "transform" that does this in ``kernel.transforms``: the
identity on values, from ``long`` to float (``__call__``) and back (``inv``).

Example:
    >>> z = IntegerDraws.of(torch.tensor([0, 2, 2, 1]))
    >>> z.dtype, float(z.mean())
    (torch.int64, 1.25)
    >>> torch.tensor([10.0, 20.0, 30.0])[z]
    tensor([10., 30., 30., 20.])
    >>> IntegerCast().inv(torch.tensor([1.0, 0.0])).tolist()
    [1, 0]
"""

from __future__ import annotations

from typing import Any

import torch
from torch.distributions import constraints
from torch.distributions.transforms import Transform
from torch.utils._pytree import tree_map

__all__ = ["IntegerCast", "IntegerDraws"]


def _plain(x: Any) -> Any:
    """``x`` as a plain tensor if it is an :class:`IntegerDraws`, else unchanged."""
    if isinstance(x, IntegerDraws):
        with torch._C.DisableTorchFunctionSubclass():
            return torch.Tensor.as_subclass(x, torch.Tensor)
    return x


def _as_float(x: Any) -> Any:
    if isinstance(x, IntegerDraws):
        return _plain(x).to(torch.get_default_dtype())
    return x


def _keep_integers(x: Any) -> Any:
    """Outputs stay :class:`IntegerDraws` only when integer-valued (not bool, not float)."""
    if isinstance(x, IntegerDraws) and (
        x.is_floating_point() or x.is_complex() or x.dtype == torch.bool
    ):
        return _plain(x)
    return x


class IntegerDraws(torch.Tensor):
    """A ``long`` tensor of MCMC draws whose float-only operations run on float values."""

    @staticmethod
    def of(values: torch.Tensor) -> IntegerDraws:
        """``values`` (exact integers, any dtype) as an ``IntegerDraws`` of dtype ``long``."""
        return _plain(values).long().as_subclass(IntegerDraws)

    @classmethod
    def __torch_function__(
        cls, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None
    ) -> Any:
        kwargs = kwargs or {}
        try:
            out = super().__torch_function__(func, types, args, kwargs)
        except RuntimeError as error:
            try:
                with torch._C.DisableTorchFunctionSubclass():
                    out = func(*tree_map(_as_float, args), **tree_map(_as_float, kwargs))
            except Exception:
                raise error from None
            return out
        return tree_map(_keep_integers, out)

    def __format__(self, format_spec: str) -> str:
        # torch formats only plain 0-dim tensors as numbers ("{:.2f}" in mcmc.summary()).
        return _plain(self).__format__(format_spec)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Saved (and loaded with weights_only=True) as the plain long tensor it holds.
        return _plain(self).__reduce_ex__(protocol)


class IntegerCast(Transform):
    """Identity on integers: ``long`` -> default float, ``inv`` float -> :class:`IntegerDraws`.

    Used in ``kernel.transforms`` for integer-valued discrete sites (module docstring);
    ``log_abs_det_jacobian`` is 0, as for any relabelling of a discrete value.
    """

    domain = constraints.integer_interval(-(2**62), 2**62)
    codomain = constraints.real
    bijective = True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IntegerCast)

    def __hash__(self) -> int:
        return hash(IntegerCast)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        return _plain(x).to(torch.get_default_dtype())

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        return IntegerDraws.of(y.round())

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(_plain(y), dtype=torch.get_default_dtype())


def integer_transforms(sites: Any) -> dict[str, IntegerCast]:
    """:class:`IntegerCast` for every site (with a ``support`` tensor) whose values are
    integers in Pyro's own dtype (not floating point, not bool)."""
    return {
        s.name: IntegerCast()
        for s in sites
        if not s.support.is_floating_point() and s.support.dtype != torch.bool
    }
