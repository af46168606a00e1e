"""Drawing value maps and search paths (matplotlib, Agg): one row per (image, annotation), the
image with the best box outlined, then one heat map per box side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avrl_jax.evaluation.value_search import SearchResult


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _outline(ax, box, size: int, colour: str, width: float = 2.0, label: str | None = None):
    from matplotlib.patches import Rectangle

    y0, x0, y1, x1 = (np.asarray(box) * size).tolist()
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, ec=colour, lw=width))
    if label:
        ax.text(x0, y0 - 1, label, color=colour, fontsize=7, va="bottom")


def _extent(fig, ax) -> tuple[float, float, float, float]:
    """Where the image of `ax` landed in the saved PNG: (left, top, right, bottom) pixels."""
    box = ax.images[0].get_window_extent(fig.canvas.get_renderer())
    height = fig.get_size_inches()[1] * fig.dpi
    return (box.x0, height - box.y1, box.x1, height - box.y0)


def plot_value_maps(
    rows: Sequence[dict], sides: Sequence[float], path: str, dpi: int = 100
) -> list[tuple[float, float, float, float]]:
    """rows: dicts with `image` uint8 [S, S, 3], `title`, `values` f32[len(sides), K, K] and
    `best_box` f32[4] (the grid's argmax). Writes one PNG; returns where each row's image was
    drawn in it, (left, top, right, bottom) pixels."""
    plt = _pyplot()
    columns = 1 + len(sides)
    fig, axes = plt.subplots(
        len(rows), columns, figsize=(2.2 * columns, 2.3 * len(rows)), squeeze=False
    )
    for r, row in enumerate(rows):
        image = row["image"]
        ax = axes[r][0]
        ax.imshow(image, interpolation="nearest")
        _outline(ax, row["best_box"], image.shape[0], "yellow")
        ax.set_title(row["title"], fontsize=8)
        vmin, vmax = float(np.min(row["values"])), float(np.max(row["values"]))
        for s, side in enumerate(sides):
            ax = axes[r][1 + s]
            shown = ax.imshow(row["values"][s], vmin=vmin, vmax=vmax, cmap="viridis")
            ax.set_title(f"box side {side:.2f}", fontsize=8)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.set_dpi(dpi)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    extents = [_extent(fig, axes[r][0]) for r in range(len(rows))]
    plt.close(fig)
    return extents


def plot_search_paths(
    rows: Sequence[dict], path: str, dpi: int = 100
) -> list[tuple[float, float, float, float]]:
    """rows: dicts with `image`, `title`, `result` (a SearchResult) and optionally `truth`
    (f32[4], drawn in white). Writes one PNG: each image with its path's boxes, numbered, the
    final one thicker; returns where each image was drawn (as plot_value_maps)."""
    plt = _pyplot()
    cols = min(4, len(rows))
    nrows = (len(rows) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 3.0 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, row in zip(axes.flat, rows, strict=False):
        image, result = row["image"], row["result"]
        assert isinstance(result, SearchResult)
        size = image.shape[0]
        ax.imshow(image, interpolation="nearest")
        colours = plt.cm.autumn(np.linspace(0, 1, len(result.path)))
        for t, box in enumerate(result.path):
            _outline(ax, box, size, colours[t], 1.0 + (t == len(result.path) - 1), str(t))
        if row.get("truth") is not None:
            _outline(ax, row["truth"], size, "white", 1.0)
        ax.set_title(f"{row['title']}\nQ {result.values[0]:.2f} -> {result.value:.2f}", fontsize=7)
    fig.set_dpi(dpi)
    fig.tight_layout(pad=1.2)
    fig.savefig(path, dpi=dpi)
    extents = [_extent(fig, ax) for ax in list(axes.flat)[: len(rows)]]
    plt.close(fig)
    return extents
