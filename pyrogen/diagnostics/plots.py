"""Trace, rank, autocorrelation and ESS-evolution plots, drawn by ``arviz_plots``.

:func:`plot_diagnostics` draws each of the four with arviz-plots' matplotlib backend and
stacks them into one PNG file. Rank plots follow Vehtari et al. (2021, Bayesian Analysis,
section 4): the fractional ranks of each chain among all draws are uniform when the chains
sample the same distribution, and arviz-plots draws each chain's ECDF of them with a
simultaneous 99% band. The ESS-evolution panel shows bulk and tail ESS over growing
prefixes of the chains: linear growth means the chains mix at a steady rate.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from pyrogen._validation import check_positive_int
from pyrogen.diagnostics.datatree import build, dataset, is_inference_data
from pyrogen.diagnostics.summaries import flatten_components
from pyrogen.io import atomic_path

__all__ = ["plot_diagnostics"]

#: Resolution of every panel, in dots per inch (the PNG is for reading on a screen).
_DPI = 72


def plot_diagnostics(
    idata: Any,
    path: str | os.PathLike[str],
    var_names: Sequence[str] | None = None,
    *,
    max_components: int = 8,
    max_chains: int = 8,
    max_lag: int = 50,
) -> list[str]:
    """Write trace, rank, autocorrelation and ESS-evolution plots to one PNG file.

    Args:
        idata: anything :func:`~pyrogen.diagnostics.flatten_components` takes.
        path: the PNG file, written atomically (directories are created).
        var_names: the posterior variables to plot (default: all).
        max_components: plot the first ``max_components`` scalar components.
        max_chains: plot the first ``max_chains`` chains (all four panels use the same
            chains, so a rank plot of 1,024 chains stays readable).
        max_lag: largest lag of the autocorrelation panel.

    Returns:
        The component names plotted (:func:`~pyrogen.diagnostics.flatten_components`).
        Divergent transitions (``sample_stats["diverging"]``) are marked on the traces.
    """
    max_components = check_positive_int(max_components, "max_components")
    max_chains = check_positive_int(max_chains, "max_chains")
    max_lag = check_positive_int(max_lag, "max_lag")
    components = flatten_components(idata, var_names)
    chosen = {name: draws[:max_chains] for name, draws in list(components.items())[:max_components]}
    if not chosen:
        raise ValueError("nothing to plot: the posterior has no variables")
    num_draws = next(iter(chosen.values())).shape[1]
    if num_draws < 4:  # as summarize(): fewer draws have no rank or ESS to show
        raise ValueError(f"need at least 4 draws per chain to plot, got {num_draws}")
    groups = {"posterior": chosen}
    stats = dataset(idata, "sample_stats") if is_inference_data(idata) else None
    if stats is not None and "diverging" in stats and stats["diverging"].dims == ("chain", "draw"):
        groups["sample_stats"] = {"diverging": stats["diverging"].values[:max_chains]}
    tree = build(groups)
    panels = _draw_panels(tree, max_lag)
    with atomic_path(path) as tmp:
        _save_stacked(panels, tmp)
    return list(chosen)


def _draw_panels(tree: Any, max_lag: int) -> list[np.ndarray]:
    """Each arviz-plots figure rendered to an RGBA array ``(height, width, 4)``."""
    import matplotlib.image
    import matplotlib.pyplot as plt

    plots = _arviz_plots()
    num_draws = tree["posterior"].sizes["draw"]
    panels = [
        ("trace", plots.plot_trace, {}),
        ("rank ECDF minus uniform (inside the band: chains agree)", plots.plot_rank, {}),
        ("autocorrelation", plots.plot_autocorr, {"max_lag": min(max_lag, num_draws - 1)}),
        (
            "ESS of growing prefixes: bulk (blue), tail (orange), 400 (dashed)",
            plots.plot_ess_evolution,
            {},
        ),
    ]
    images = []
    for title, plot, kwargs in panels:
        with warnings.catch_warnings():
            # Short or constant chains: ArviZ warns and draws NaN, which is the answer.
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", UserWarning)
            collection = plot(tree, backend="matplotlib", **kwargs)
        figure = collection.viz["figure"].item()
        try:
            # Constrained layout makes room for the panel's title above the axes' own.
            figure.set_layout_engine("constrained")
            figure.suptitle(title, fontsize="large", fontweight="bold")
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=_DPI)
        finally:
            plt.close(figure)  # pyplot owns arviz-plots' figures: keep none alive
        buffer.seek(0)
        images.append(matplotlib.image.imread(buffer, format="png"))
    return images


def _save_stacked(images: list[np.ndarray], path: str) -> None:
    """Stack RGBA images top to bottom on a white background and write one PNG."""
    import matplotlib.image

    width = max(image.shape[1] for image in images)
    gap = np.ones((_DPI // 6, width, 4), dtype=np.float32)
    rows = []
    for image in images:
        padded = np.ones((image.shape[0], width, 4), dtype=np.float32)
        padded[:, : image.shape[1]] = image
        rows.extend([padded, gap])
    matplotlib.image.imsave(path, np.concatenate(rows[:-1]), format="png")


def _arviz_plots() -> Any:
    """``arviz_plots``, imported on first use (it loads pyplot, which costs a second).

    arviz-plots 0.8 registers its styles through ``matplotlib.style.core``, a module that
    matplotlib 3.11 no longer imports by itself; importing it first (where it exists) lets
    arviz-plots load on any matplotlib.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecated in matplotlib 3.11
            import matplotlib.style.core  # noqa: F401
    except ImportError:
        pass
    import arviz_plots

    return arviz_plots
