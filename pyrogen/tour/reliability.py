"""One reliability for a tour number made of several checked chain sets (one per image).

A tour number such as the super-resolution PSNR averages over images, each with its own
chains, each checked by :func:`pyrogen.convergence.check_convergence` (quietly). The number
is a result only when every part converged; :func:`combine` makes the one reliability dict
(the JSON form, :meth:`Reliability.as_dict`) that ``metrics.json`` stores and the report
renders, and :func:`warn_combined` emits the one :class:`~pyrogen.ConvergenceWarning` the
number deserves.

An RBM log-likelihood bracket (:func:`pyrogen.rbm.log_likelihood_bounds`) has no chains to
check, but it can be flagged as well (its ends disagree, or it is too wide):
:func:`bracket_reliability` gives it the same dict, so the report marks a flagged bracket
exactly as it marks an unconverged chain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from pyrogen.convergence import ACCEPT_MIN, ESS_MIN, R_HAT_MAX, Reliability, warn_unreliable

__all__ = ["as_mapping", "bracket_reliability", "combine", "describe", "warn_combined"]


def as_mapping(reliability: Reliability | Mapping[str, Any]) -> Mapping[str, Any]:
    """The JSON form of ``reliability`` (a :class:`Reliability` or its ``as_dict()``)."""
    if isinstance(reliability, Reliability):
        return reliability.as_dict()
    if isinstance(reliability, Mapping) and "converged" in reliability and "label" in reliability:
        return reliability
    raise TypeError(
        "reliability must be a pyrogen.convergence.Reliability or its as_dict(), got "
        f"{type(reliability).__name__}"
    )


def bracket_reliability(bounds: Any, quantity: str) -> dict[str, Any]:
    """Reliability dict (the form :func:`combine` returns) of an RBM log-likelihood bracket.

    ``bounds`` is a :class:`pyrogen.rbm.LikelihoodBounds`, its ``as_dict()``, or None for an
    exact log-likelihood (always reliable). The bracket counts as converged when it has no
    problems; otherwise the label names them, e.g.
    ``"unreliable bracket: bracket 5.30 nats wide (> 2)"``, and
    :class:`~pyrogen.tour.report.Estimate` renders the bracket demoted after that label.
    """
    if bounds is None:
        problems: list[str] = []
    else:
        record = bounds.as_dict() if hasattr(bounds, "as_dict") else bounds
        if not isinstance(record, Mapping) or "problems" not in record:
            raise TypeError(
                "bounds must be a pyrogen.rbm.LikelihoodBounds, its as_dict() or None, got "
                f"{type(bounds).__name__}"
            )
        problems = [str(p) for p in record["problems"]]
    label = "unreliable bracket: " + "; ".join(problems) if problems else "reliable"
    return {
        "quantity": quantity,
        "converged": not problems,
        "max_r_hat": None,
        "min_ess_bulk": None,
        "acceptance": None,
        "label": label,
        "parts": 1,
        "failed_parts": int(bool(problems)),
    }


def describe(reliability: Reliability | Mapping[str, Any]) -> str:
    """Report text: the label, with the worst numbers behind a pass, e.g.
    ``"converged (max R-hat 1.004, min bulk ESS 350)"``."""
    r = as_mapping(reliability)
    if not r["converged"]:
        return str(r["label"])
    numbers = [
        f"{name} {r[key]:{spec}}"
        for name, key, spec in (
            ("max R-hat", "max_r_hat", ".3f"),
            ("min bulk ESS", "min_ess_bulk", ".0f"),
        )
        if r.get(key) is not None
    ]
    return "converged" + (f" ({', '.join(numbers)})" if numbers else "")


def combine(parts: Sequence[Reliability | Mapping[str, Any]], quantity: str) -> dict[str, Any]:
    """Reliability dict of one number made of ``parts``: converged when every part is.

    ``max_r_hat``, ``min_ess_bulk`` and ``acceptance`` are the worst over the parts (None
    where no part has one); ``parts`` and ``failed_parts`` count them. The label of a failing
    combination counts the failures and repeats the worst part's problems, e.g.
    ``"not converged (2 of 3): R-hat 2.67, bulk ESS 12"``.
    """
    items = [as_mapping(p) for p in parts]
    if not items:
        raise ValueError(f"{quantity}: no reliability to combine")
    failed = [p for p in items if not p["converged"]]

    def worst(key: str, pick: Any) -> float | None:
        values = [p[key] for p in items if p.get(key) is not None]
        return pick(values) if values else None

    label = "converged"
    if failed:
        # as_dict() stores an infinite R-hat (a degenerate split) as None: the worst case.
        def r_hat(p: Mapping[str, Any]) -> float:
            return math.inf if p.get("max_r_hat") is None else p["max_r_hat"]

        # "not converged: P" or, from an earlier combine, "not converged (k of n): P".
        problems = max(failed, key=r_hat)["label"].split(": ", 1)[-1]
        count = f" ({len(failed)} of {len(items)})" if len(items) > 1 else ""
        label = f"not converged{count}: {problems}"
    return {
        "quantity": quantity,
        "converged": not failed,
        "max_r_hat": worst("max_r_hat", max),
        "min_ess_bulk": worst("min_ess_bulk", min),
        "acceptance": worst("acceptance", min),
        "label": label,
        "parts": len(items),
        "failed_parts": len(failed),
    }


def warn_combined(combined: Mapping[str, Any], stacklevel: int = 2) -> None:
    """Emit one :class:`~pyrogen.ConvergenceWarning` for ``combined`` when it failed."""
    if combined["converged"]:
        return
    warn_unreliable(
        f"{combined['quantity']}: {combined['label']} (thresholds: R-hat <= {R_HAT_MAX}, "
        f"bulk ESS >= {ESS_MIN:g}, acceptance >= {ACCEPT_MIN:g}); the report marks it instead "
        "of presenting it as a result: run longer chains or use a better-mixing sampler",
        stacklevel=stacklevel + 1,
    )
