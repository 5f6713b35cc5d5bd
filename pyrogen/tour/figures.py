"""Figures of the tour: image grids, filters, embeddings, side-by-side rows.

Built on ``matplotlib.figure.Figure`` directly (no pyplot), so nothing here touches the
user's backend or global figure state and it works without a display.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

from pyrogen.io import atomic_path

__all__ = ["image_grid", "image_rows", "scatter_embedding"]


def _as_images(x: torch.Tensor | np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return array.reshape(-1, *shape)


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def image_grid(
    panels: Sequence[tuple[str, torch.Tensor | np.ndarray]],
    path: str | os.PathLike[str],
    shape: tuple[int, int] = (8, 8),
    columns: int = 8,
    cmap: str = "gray_r",
    symmetric: bool = False,
) -> None:
    """One grid of ``columns``-wide images per ``(title, images)`` panel, side by side.

    ``symmetric`` centres the colour scale on 0 (for filters / weights).
    """
    fig = Figure(figsize=(3.2 * len(panels), 3.4))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (title, images) in zip(axes[0], panels, strict=True):
        imgs = _as_images(images, shape)
        rows = int(np.ceil(len(imgs) / columns))
        canvas = np.full((rows * (shape[0] + 1) - 1, columns * (shape[1] + 1) - 1), np.nan)
        for k, img in enumerate(imgs):
            r, c = divmod(k, columns)
            canvas[
                r * (shape[0] + 1) : r * (shape[0] + 1) + shape[0],
                c * (shape[1] + 1) : c * (shape[1] + 1) + shape[1],
            ] = img
        if symmetric:
            bound = float(np.nanmax(np.abs(canvas))) or 1.0
            ax.imshow(canvas, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        else:
            ax.imshow(canvas, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    _save(fig, path)


def image_rows(
    rows: Sequence[tuple[str, torch.Tensor | np.ndarray]],
    path: str | os.PathLike[str],
    shape: tuple[int, int] = (8, 8),
) -> None:
    """A table of images: one labelled row per ``(label, images)``; column k aligns item k."""
    n = max(len(_as_images(images, shape)) for _, images in rows)
    fig = Figure(figsize=(0.9 * n + 1.4, 1.0 * len(rows)))
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (label, images) in enumerate(rows):
        imgs = _as_images(images, shape)
        for c in range(n):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(imgs):
                ax.imshow(imgs[c], cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        axes[r][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    _save(fig, path)


def scatter_embedding(
    points: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | None,
    path: str | os.PathLike[str],
    title: str = "",
) -> None:
    """2-D points ``(n, 2)`` coloured by integer class label ``(n,)`` (0..9), with a legend;
    ``labels=None`` (unlabelled data) draws them in one colour, without a legend."""
    pts = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    fig = Figure(figsize=(5.2, 4.6))
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab10"]
    if labels is None:
        ax.scatter(pts[:, 0], pts[:, 1], s=7, color=cmap(0), alpha=0.8)
    else:
        lab = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else labels
        lab = np.asarray(lab)
        for k in np.unique(lab):
            sel = lab == k
            color = cmap(int(k) % 10)
            ax.scatter(pts[sel, 0], pts[sel, 1], s=7, color=color, label=str(k), alpha=0.8)
        ax.legend(markerscale=2.5, fontsize=8, ncol=2, title="digit", loc="best")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title(title, fontsize=10)
    _save(fig, path)
