"""Per-step figures from hf-mlc's payloads: P(label) at each label step of a few docs, and
entropy / top-1 mass by step index across the data set."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

from lm_eval_mlc.reports.plots.style import INK, NONE_COLOR, grid, subtitle
from lm_eval_mlc.reports.plots.task_data import TaskData

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def step_distributions(data: TaskData, colors: dict[str, Any], n_docs: int) -> Figure | str:
    """Stacked P(label) per step of `n_docs` docs beside the annotators' distribution, or why
    there is nothing to draw."""
    with_steps = [i for i, steps in enumerate(data.steps) if steps]
    if not with_steps:
        return "no label steps in the samples (a plain-text model, or no label generated)"
    # Prefer docs with several label steps: they show how the mass moves.
    chosen = sorted(with_steps, key=lambda i: -len(data.steps[i]))[:n_docs]
    chosen.sort()
    fig, axes = grid(len(chosen), 2, 4.6, 3.3)
    for ax, i in zip(axes, chosen, strict=True):
        doc, steps = data.docs[i], data.steps[i]
        columns = [np.asarray(step["probs"], dtype=float) for step in steps]
        names = [f"{k + 1}\n{step['label'] or '(none)'}" for k, step in enumerate(steps)]
        nones = [float(step["none"]) for step in steps]
        annotators = np.asarray(doc.get("annotator_probs") or [], dtype=float)
        if annotators.size and annotators.sum() > 0:
            columns.append(annotators / annotators.sum())
            names.append("annotators\n(normalised)")
            nones.append(0.0)
        x = np.arange(len(columns))
        bottom = np.zeros(len(columns))
        for j, label in enumerate(data.labels):
            heights = np.array([c[j] for c in columns])
            ax.bar(x, heights, bottom=bottom, width=0.7, color=colors[label], label=label,
                   edgecolor="white", linewidth=0.3)  # fmt: skip
            bottom += heights
        ax.bar(x, nones, bottom=bottom, width=0.7, color=NONE_COLOR, hatch="///",
               edgecolor="white", linewidth=0.3, label="none / stop / off-label")  # fmt: skip
        if len(columns) > len(steps):
            ax.axvline(len(steps) - 0.5, color=INK, lw=0.6, ls=":")
        ax.set_xticks(x, names, fontsize=7)
        ax.set_xlim(-0.6, max(len(columns), 3) - 0.4)  # keep bars narrow when there are few
        ax.set_ylim(0, 1.0)
        ax.set_ylabel("probability")
        ax.set_xlabel("label step (generated label)")
        text = textwrap.shorten(str(doc.get("text", "")), 110, placeholder="…")
        text = "\n".join(textwrap.wrap(f"“{text}”", 58))
        gold = ", ".join(doc.get("labels") or []) or "none"
        ax.set_title(f"{text}\ngold: {gold}", fontsize=7.5, loc="left")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7, title="label")
    fig.suptitle(subtitle(data, "P(label) at each label step"))
    return fig


def step_uncertainty(data: TaskData) -> Figure | str:
    """Entropy and top-1 mass by label step index over all docs, or why there is none."""
    by_step: dict[int, dict[str, list[float]]] = {}
    for steps in data.steps:
        for k, step in enumerate(s for s in steps if s["label"] is not None):
            entry = by_step.setdefault(k + 1, {"entropy": [], "top1": []})
            entry["entropy"].append(float(step["entropy_bits"]))
            entry["top1"].append(float(step["top1"]))
    if not by_step:
        return "no generated label steps in the samples"
    from matplotlib.figure import Figure

    ks = sorted(by_step)
    fig = Figure(figsize=(8.4, 3.2), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = [("entropy", "entropy over labels + none (bits)"), ("top1", "top-1 label mass")]
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        values = [by_step[k][key] for k in ks]
        ax.boxplot(values, positions=ks, widths=0.5, showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "#cfe0f1", "edgecolor": "#1f4e79"},
                   medianprops={"color": "#1f4e79"})  # fmt: skip
        rng = np.random.default_rng(0)
        for k, v in zip(ks, values, strict=True):
            ax.scatter(k + rng.uniform(-0.12, 0.12, len(v)), v, s=8, color=INK, alpha=0.6, zorder=3)
        ax.plot(ks, [np.mean(v) for v in values], color="#c0392b", marker="D", ms=3, lw=1,
                label="mean")  # fmt: skip
        ax.set_xticks(ks, [f"{k}\nn={len(by_step[k][key])}" for k in ks])
        ax.set_xlabel("label step index (docs reaching it)")
        ax.set_ylabel(ylabel)
        if key == "top1":
            ax.set_ylim(0, 1.02)
        else:
            ax.set_ylim(bottom=0)
    axes[0].legend(loc="upper right", fontsize=7)
    fig.suptitle(subtitle(data, "Uncertainty by label step across the data set"))
    return fig
