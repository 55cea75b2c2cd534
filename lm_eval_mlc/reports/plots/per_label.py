"""Per-label figures by strategy: F1 per label, and predicted vs annotator probability."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lm_eval_mlc import metrics
from lm_eval_mlc.reports.plots.style import grid, subtitle
from lm_eval_mlc.reports.plots.task_data import TaskData, stack

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def per_label_f1(data: TaskData, colors: dict[str, Any]) -> Figure:
    """A bar per label and strategy, the label's gold support in its tick."""
    strategies = list(data.records)
    fig, axes = grid(len(strategies), 3, 3.0, 0.25 * len(data.labels) + 1.3)
    y_true = stack(data.records[strategies[0]], "y_true").astype(int)
    support = y_true.sum(axis=0)
    ticks = [f"{label} (n={int(s)})" for label, s in zip(data.labels, support, strict=True)]
    y = np.arange(len(data.labels))
    for n, (ax, strategy) in enumerate(zip(axes, strategies, strict=True)):
        true = stack(data.records[strategy], "y_true").astype(int)
        pred = stack(data.records[strategy], "y_pred").astype(int)
        f1 = [metrics.multilabel_f1(true[:, [j]], pred[:, [j]], average="micro")
              for j in range(len(data.labels))]  # fmt: skip
        ax.barh(y, f1, color=[colors[label] for label in data.labels], height=0.7)
        # No gold and no predicted docs: F1 is undefined (scored 0 by zero_division=0).
        undefined = (true.sum(axis=0) == 0) & (pred.sum(axis=0) == 0)
        for yy, value, undef in zip(y, f1, undefined, strict=True):
            note = "n/a" if undef else f"{value:.2f}"
            ax.text(value + 0.02, yy, note, va="center", fontsize=6.5, color="#555555")
        ax.set_yticks(y, ticks if n % 3 == 0 else [""] * len(y), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.12)
        macro = float(np.mean(f1))
        ax.set_title(f"{strategy}  (macro F1 {macro:.2f})")
        ax.set_xlabel("F1")
        ax.grid(axis="y", visible=False)
    fig.suptitle(
        subtitle(data, "Per-label F1 by strategy")
        + "\nn = gold docs with the label; n/a = no gold and no predicted docs (counted as 0)"
    )
    return fig


def annotator_scatter(data: TaskData, colors: dict[str, Any]) -> Figure | str:
    """One point per (doc, label) over the docs with raters, or why there are none."""
    first = next(iter(data.records.values()))
    keep = [i for i, row in enumerate(first) if row["annotator_probs"]]
    if not keep:
        return "the docs carry no per-annotator label distribution (align_* are NaN too)"
    fig, axes = grid(len(data.records), 3, 3.1, 3.1)
    for ax, (strategy, rows) in zip(axes, data.records.items(), strict=True):
        rows = [rows[i] for i in keep if i < len(rows) and rows[i]["annotator_probs"]]
        p, q = stack(rows, "probs"), stack(rows, "annotator_probs")
        mae = float(np.mean(np.abs(p - q)))  # align_mae over the docs with raters
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="#999999")
        for j, label in enumerate(data.labels):
            ax.scatter(q[:, j], p[:, j], s=14, color=colors[label], label=label, alpha=0.85,
                       edgecolor="white", linewidth=0.3)  # fmt: skip
        ax.set(xlim=(-0.03, 1.03), ylim=(-0.03, 1.03), aspect="equal")
        ax.set_title(f"{strategy}  (MAE {mae:.3f})")
        ax.set_xlabel("annotators choosing the label (fraction)")
        ax.set_ylabel("predicted P(label)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, title="label",
               markerscale=1.6)  # fmt: skip
    left_out = len(first) - len(keep)
    note = f"; {left_out} docs without rater data left out" if left_out else ""
    fig.suptitle(
        subtitle(data, "Predicted vs annotator probability")
        + f"\none point per (doc, label), {len(keep)} docs with raters{note}"
    )
    return fig
