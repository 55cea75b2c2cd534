"""The any-place estimates per label: the `marginal` bracket beside the `sampled` share."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lm_eval_mlc.reports.plots.style import INK, subtitle
from lm_eval_mlc.reports.plots.task_data import TaskData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def any_place(data: TaskData, colors: dict[str, Any]) -> Figure | str:
    """Mean P(label anywhere in the answer) per label: the tree search's bracket
    [marginal, marginal + unexplored] and the sampled share with its Wilson intervals."""
    payloads = [p for p in data.payloads if p]
    marginal = [p for p in payloads if "marginal" in p["strategies"]]
    sampled = [p for p in payloads if "sampled" in p["strategies"]]
    if not marginal and not sampled:
        return "the run has no marginal or sampled strategy (mlc_strategies=...,marginal,sampled)"
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    n = len(data.labels)
    y = np.arange(n)
    fig = Figure(figsize=(6.4, 0.32 * n + 1.8), layout="constrained")
    ax = fig.subplots()
    handles, notes = [], []
    if marginal:
        low = np.array([p["strategies"]["marginal"] for p in marginal], dtype=float)
        unexplored = np.array([p.get("marginal_unexplored", 0.0) for p in marginal], dtype=float)
        high = np.minimum(low + unexplored[:, None], 1.0)
        lo, hi = low.mean(axis=0), high.mean(axis=0)
        label_colors = [colors[label] for label in data.labels]
        ax.barh(y, lo, height=0.6, color=label_colors)
        ax.barh(y, hi - lo, left=lo, height=0.6, color=label_colors, alpha=0.25, hatch="///",
                edgecolor="white", linewidth=0.3)  # fmt: skip
        handles += [
            Patch(color=INK, label="marginal: lower bound"),
            Patch(facecolor=INK, alpha=0.25, hatch="///", label="+ unexplored (upper bound)"),
        ]
        notes.append(f"marginal: {len(marginal)} docs, mean unexplored {unexplored.mean():.3f}")
    if sampled:
        share = np.array([p["strategies"]["sampled"] for p in sampled], dtype=float)
        ci = np.array([p["sampled_ci"] for p in sampled], dtype=float)  # doc x label x (lo, hi)
        mean, ci_lo, ci_hi = share.mean(axis=0), ci[..., 0].mean(axis=0), ci[..., 1].mean(axis=0)
        bars = ax.errorbar(mean, y, xerr=[mean - ci_lo, ci_hi - mean], fmt="o", color=INK,
                           ms=4, capsize=2.5, lw=0.9,
                           label="sampled share, mean 95% Wilson interval")  # fmt: skip
        handles.append(bars)
        samples = sampled[0]["options"].get("samples", "?")
        width = float((ci[..., 1] - ci[..., 0]).mean())
        notes.append(f"sampled: {len(sampled)} docs x {samples} samples, mean CI width {width:.3f}")
    ax.set_yticks(y, data.labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("P(label appears anywhere in the answer), mean over docs")
    ax.grid(axis="y", visible=False)
    ax.legend(handles=handles, loc="lower right", fontsize=7)
    fig.suptitle(subtitle(data, "Any-place estimates") + "\n" + "; ".join(notes))
    return fig
