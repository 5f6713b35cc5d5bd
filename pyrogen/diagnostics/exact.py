r"""Distance between draws and an exactly known distribution on a finite state space."""

from __future__ import annotations

from typing import Any

import numpy as np

from pyrogen.diagnostics.arrays import as_numpy
from pyrogen.diagnostics.datatree import group_arrays, is_inference_data

__all__ = ["total_variation"]


def total_variation(samples: Any, exact_probs: Any, *, var_name: str | None = None) -> float:
    r"""Total variation distance between the empirical law of ``samples`` and a table.

    .. math:: \mathrm{TV}(\hat p, p) = \tfrac12 \sum_{k=0}^{K-1} |\hat p_k - p_k|,
              \quad \hat p_k = \#\{s = k\} / n

    Args:
        samples: any array-like (torch, numpy, jax, list), read as either *state indices*:
            integers of any shape whose entries lie in ``[0, K)`` (every entry is one
            draw), or *binary vectors*: floating or bool values of shape ``(..., d)`` in
            {0, 1} with ``K = 2**d``; vector ``x`` is state :math:`\sum_i x_i 2^i` (least
            significant bit first, the order of :func:`pyrogen.rbm.model.binary_states`).
            A ``DataTree`` / ``InferenceData`` gives the ``(chain, draw, ...)`` draws of its
            posterior variable ``var_name`` (which may be omitted when there is only one).
        exact_probs: the exact probabilities, array-like of shape ``(K,)``, non-negative,
            summing to 1.
        var_name: the posterior variable of a ``DataTree`` / ``InferenceData`` source.

    Returns a float in [0, 1]. Even an exact sampler gives TV > 0 with finitely many draws:
    for ``n`` independent draws :math:`E|\hat p_k - p_k| \approx \sqrt{2p_k(1-p_k)/(\pi n)}`,
    so compare against that floor (or against i.i.d. draws), not against zero.

    Example:
        >>> import torch
        >>> total_variation(torch.tensor([0, 1, 1, 1]), torch.tensor([0.25, 0.75]))
        0.0
    """
    probs = as_numpy(exact_probs, "exact_probs").astype(np.float64)
    if probs.ndim != 1 or probs.size == 0:
        raise ValueError(f"exact_probs must have shape (K,), got {probs.shape}")
    if not np.all(np.isfinite(probs)) or np.any(probs < 0):
        raise ValueError("exact_probs must be finite and non-negative")
    if abs(probs.sum() - 1.0) > 1e-6:
        raise ValueError(f"exact_probs must sum to 1, got {probs.sum():.8g}")
    x = _draws_of(samples, var_name)
    if np.issubdtype(x.dtype, np.integer):
        codes = x.reshape(-1).astype(np.int64)
    else:  # floating or bool: binary vectors (as_numpy admits nothing else)
        if x.ndim < 1 or 2 ** x.shape[-1] != probs.size:
            raise ValueError(
                f"binary samples of shape {x.shape} have {x.shape[-1] if x.ndim else 0} bits: "
                f"exact_probs needs 2**bits entries, got {probs.size}"
            )
        if not np.all((x == 0) | (x == 1)):
            raise ValueError("binary samples must hold only 0 and 1")
        codes = (x.reshape(-1, x.shape[-1]).astype(np.int64) << np.arange(x.shape[-1])).sum(-1)
    if codes.size == 0:
        raise ValueError("samples is empty")
    if codes.min() < 0 or codes.max() >= probs.size:
        raise ValueError(
            f"sample states must lie in [0, {probs.size}), got {codes.min()}..{codes.max()}"
        )
    empirical = np.bincount(codes, minlength=probs.size) / codes.size
    return float(0.5 * np.abs(empirical - probs).sum())


def _draws_of(samples: Any, var_name: str | None) -> np.ndarray:
    if not is_inference_data(samples):
        if var_name is not None:
            raise ValueError("var_name applies to a DataTree or InferenceData source only")
        return as_numpy(samples, "samples")
    arrays = group_arrays(samples, "posterior")
    if var_name is None:
        if len(arrays) != 1:
            raise ValueError(f"the posterior holds {list(arrays)}: pass var_name= to pick one")
        (var_name,) = arrays
    if var_name not in arrays:
        raise ValueError(f"var_name {var_name!r} not in the posterior; it holds {list(arrays)}")
    return arrays[var_name]
