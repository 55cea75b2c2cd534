"""Reliability diagrams: one panel per strategy, binned as the `ece_em10` metric bins."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from lm_eval_mlc import metrics
from lm_eval_mlc.reports.plots.style import grid, subtitle
from lm_eval_mlc.reports.plots.task_data import TaskData, stack

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[np.ndarray]:
    """Equal-mass bins of (doc, label) pairs as the ECE metric forms them, ties merged.

    The metric splits pairs sorted by p (ties by y); a run of bins that all hold one and the
    same p (hard 0/1 predictions) is drawn as one point, whose frequency is then the true one.
    """
    order = np.lexsort((y, p))
    bins = [b for b in np.array_split(order, min(n_bins, p.size)) if b.size]
    merged: list[np.ndarray] = []
    for b in bins:
        if (
            merged
            and np.ptp(p[b]) == 0
            and np.ptp(p[merged[-1]]) == 0
            and p[b[0]] == p[merged[-1][0]]
        ):
            merged[-1] = np.concatenate([merged[-1], b])
        else:
            merged.append(b)
    return merged


def reliability(data: TaskData) -> Figure:
    """Mean predicted P against observed frequency per bin, with each bin's P range and size."""
    fig, axes = grid(len(data.records), 3, 3.1, 3.3)
    for ax, (strategy, rows) in zip(axes, data.records.items(), strict=True):
        true, probs = stack(rows, "y_true"), stack(rows, "probs")
        y, p = true.ravel(), probs.ravel()
        bins = reliability_bins(y, p)
        conf = np.array([p[b].mean() for b in bins])
        freq = np.array([y[b].mean() for b in bins])
        spread = np.array(
            [[c - p[b].min(), p[b].max() - c] for c, b in zip(conf, bins, strict=True)]
        ).T
        counts = [b.size for b in bins]
        ece = metrics.expected_calibration_error(true, probs, n_bins=10, binning="equal_mass")
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="#999999", label="perfect calibration")
        ax.errorbar(conf, freq, xerr=spread, marker="o", ms=4, lw=1.2, elinewidth=0.7, capsize=2,
                    color="#1f4e79", label="bin (bar: its P range)")  # fmt: skip
        last_x = -1.0
        for k, (x, f, c) in enumerate(zip(conf, freq, counts, strict=True)):
            crowded = x - last_x < 0.06  # stagger counts of bins close together
            offset = (0, -11) if crowded and k % 2 else (0, 5)
            ax.annotate(str(c), (x, f), textcoords="offset points", xytext=offset, ha="center",
                        fontsize=6.5, color="#555555")  # fmt: skip
            last_x = x
        ax.set(xlim=(-0.03, 1.03), ylim=(-0.06, 1.08), aspect="equal")
        ax.set_title(f"{strategy}  (ece_em10 {ece:.3f})")
        ax.set_xlabel("mean predicted P(label) in bin")
        ax.set_ylabel("observed frequency of label in bin")
    axes[0].legend(loc="upper left", fontsize=6.5)
    fig.suptitle(
        subtitle(data, "Reliability per strategy")
        + "\n10 equal-mass bins of (doc, label) pairs, tied bins merged; numbers: pairs per bin"
    )
    return fig
