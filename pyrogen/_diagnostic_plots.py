"""Trace, rank and autocorrelation panels drawn with matplotlib alone.

Private to :mod:`pyrogen.diagnostics` (which owns the public entry point
``plot_diagnostics``). Drawn here rather than with ArviZ's plotting functions because those
were replaced wholesale in ArviZ 1.x (``arviz-plots``); plain matplotlib on ``(chain, draw)``
arrays works with either. Figures are built without ``pyplot``, so no global figure state is
touched and the Agg renderer is used whatever the user's backend.

Rank plots follow Vehtari et al. (2021, Bayesian Analysis, section 4): rank all draws of all
chains together; if the chains sample the same distribution each chain's ranks are uniform.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import rankdata

__all__ = ["autocorrelation", "plot_components"]


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocorrelation of each chain at lags ``0..max_lag`` (FFT), averaged over chains.

    ``x`` has shape ``(chain, draw)``; returns shape ``(min(max_lag, draw - 1) + 1,)``.
    A constant chain has autocorrelation 1 at lag 0 and 0 elsewhere by convention.
    """
    num_draws = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * num_draws - 1).bit_length()  # zero-pad: circular -> linear correlation
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=1)[:, :num_draws]
    var = acov[:, :1]
    acf = np.divide(acov, var, out=np.zeros_like(acov), where=var > 0)
    acf[:, 0] = 1.0
    return acf[:, : min(max_lag, num_draws - 1) + 1].mean(axis=0)


def plot_components(
    components: dict[str, np.ndarray], path: str, *, max_chains: int, max_lag: int
) -> None:
    """Draw one row per ``(chain, draw)`` component and save a PNG to ``path``."""
    rows = max(len(components), 1)
    fig = Figure(figsize=(12, 2.2 * rows), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    for row, (name, draws) in enumerate(components.items()):
        shown = draws[:max_chains]
        trace_ax, rank_ax, acf_ax = axes[row]
        for chain in shown:
            trace_ax.plot(chain, lw=0.6, alpha=0.8)
        trace_ax.set_ylabel(name)
        ranks = rankdata(draws, method="average").reshape(draws.shape)[:max_chains]
        bins = np.linspace(0, draws.size, min(20, max(draws.shape[1] // 5, 2)) + 1)
        for chain_ranks in ranks:
            counts, _ = np.histogram(chain_ranks, bins=bins)
            rank_ax.stairs(counts, bins, lw=0.8)
        rank_ax.axhline(draws.shape[1] / (len(bins) - 1), color="k", ls="--", lw=0.8)
        acf = autocorrelation(draws, max_lag)
        acf_ax.bar(np.arange(acf.size), acf, width=0.8, color="C0")
        acf_ax.set_ylim(min(-0.1, float(acf.min()) - 0.05), 1.05)
        if row == 0:
            trace_ax.set_title(f"trace (first {len(shown)} chains)")
            rank_ax.set_title("rank histograms (uniform = chains agree)")
            acf_ax.set_title(f"autocorrelation (mean over {draws.shape[0]} chains)")
    axes[-1][0].set_xlabel("draw")
    axes[-1][1].set_xlabel("pooled rank")
    axes[-1][2].set_xlabel("lag")
    fig.savefig(path, format="png", dpi=80)
