"""The look every figure shares: label colours, rc style, subplot grids, titles, saving.

Kept in one place so `joy` has the same colour, and every figure the same fonts and title
line, whichever module draws it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lm_eval_mlc._io import atomic_path
from lm_eval_mlc.reports.plots.task_data import TaskData

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NONE_COLOR = "#d9d9d9"  # the "none / stop" mass of a step
INK = "#333333"
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "svg.fonttype": "none",  # text stays text in SVG
}


def label_colors(labels: Sequence[str]) -> dict[str, Any]:
    """One colour per label name, in the task's label order (qualitative palettes)."""
    from matplotlib import colormaps

    if len(labels) <= 10:
        palette = list(colormaps["tab10"].colors)
    elif len(labels) <= 20:
        palette = list(colormaps["tab20"].colors)
    else:
        palette = [c for name in ("tab20", "tab20b", "tab20c") for c in colormaps[name].colors]
    if len(labels) > len(palette):
        palette = [colormaps["hsv"](i / len(labels)) for i in range(len(labels))]
    return {label: palette[i] for i, label in enumerate(labels)}


def grid(n: int, max_cols: int, width: float, height: float) -> tuple[Figure, Sequence[Axes]]:
    """A figure of `n` panels, at most `max_cols` a row, each `width` x `height` inches."""
    from matplotlib.figure import Figure

    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def subtitle(data: TaskData, what: str) -> str:
    """A figure's title line: what it shows, for which task, model and data size."""
    return f"{what} — {data.task}, {data.model} ({len(data.docs)} docs, {len(data.labels)} labels)"


def save(fig: Figure, out_dir: Path, name: str, formats: Sequence[str]) -> list[Path]:
    """Write `fig` as OUT_DIR/NAME.EXT per format, each file atomically."""
    paths = []
    for ext in formats:
        path = out_dir / f"{name}.{ext}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=ext, dpi=200, bbox_inches="tight")
        paths.append(path)
    return paths
