"""Figures from a run's output folder: calibration, per-step label distributions, per-label F1,
and the any-place estimates with their bracket and intervals.

Every figure of a task uses one colour per label, keyed by the label's name (`label_colors`), so
`joy` has the same colour everywhere. Figures are built on `matplotlib.figure.Figure` (the Agg
canvas, no pyplot state) and saved as PNG and SVG, each file written atomically.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lm_eval_mlc import metrics
from lm_eval_mlc._io import atomic_path
from lm_eval_mlc.core.payload import load_payload
from lm_eval_mlc.reports.runs import RunResults, filter_sort_key, load_run, read_samples

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


@dataclass
class PlotReport:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _TaskData:
    task: str
    model: str
    labels: list[str]
    records: dict[str, list[dict[str, Any]]]  # filter -> per-doc records, doc order
    docs: list[dict[str, Any]]
    steps: list[list[dict[str, Any]]]  # per doc, [] for plain-text responses
    payloads: list[dict[str, Any] | None]  # per doc, None for plain-text responses


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


def plot_run(
    run: str | Path,
    *,
    task: str | None = None,
    out: str | Path | None = None,
    n_docs: int = 4,
    formats: Sequence[str] = ("png", "svg"),
) -> PlotReport:
    """Write every figure of every task (or `task`) of a run to `out` (default RUN/plots).

    Raises FileNotFoundError / ValueError naming a missing or broken input file, and
    ValueError when `task` is not in the run or the run has no logged samples.
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError(
            "lm-eval-mlc plot needs matplotlib: pip install 'lm-eval-mlc[plot]'"
        ) from None
    from matplotlib import rc_context

    report = PlotReport()
    results = load_run(run)
    out_dir = (
        Path(out) if out else (Path(run) if Path(run).is_dir() else Path(run).parent) / "plots"
    )
    for result in results:
        tasks = [task] if task else result.tasks
        if task and task not in result.tasks:
            raise ValueError(
                f"{result.path}: no task '{task}'; it has {', '.join(result.tasks) or 'none'}."
            )
        for name in tasks:
            data = _task_data(result, name)
            prefix = f"{name}" if len(results) == 1 else f"{_slug(result.model)}_{name}"
            colors = label_colors(data.labels)
            with rc_context(STYLE):
                figures = {
                    "reliability": _reliability(data),
                    "step_distributions": _step_distributions(data, colors, n_docs),
                    "step_uncertainty": _step_uncertainty(data),
                    "per_label_f1": _per_label_f1(data, colors),
                    "annotator_scatter": _annotator_scatter(data, colors),
                    "any_place": _any_place(data, colors),
                }
                for kind, fig in figures.items():
                    if isinstance(fig, str):
                        report.notes.append(f"{name}: {kind} skipped: {fig}")
                        continue
                    for ext in formats:
                        path = out_dir / f"{prefix}_{kind}.{ext}"
                        with atomic_path(path) as tmp:
                            fig.savefig(tmp, format=ext, dpi=200, bbox_inches="tight")
                        report.files.append(path)
    return report


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def _task_data(result: RunResults, task: str) -> _TaskData:
    path = result.samples_path(task)
    if path is None:
        raise ValueError(
            f"{result.path}: no samples file for {task}; plot needs a run with --log_samples."
        )
    samples = read_samples(path)
    records = {
        name: [s["micro_f1"] for s in rows if isinstance(s.get("micro_f1"), dict)]
        for name, rows in sorted(samples.items(), key=lambda kv: filter_sort_key(kv[0]))
    }
    records = {name: rows for name, rows in records.items() if rows}
    if not records:
        raise ValueError(f"{path}: no per-doc records (is this an lm-eval-mlc task?).")
    first = samples.get("generated") or next(iter(samples.values()))
    docs = [s["doc"] for s in first]
    steps, payloads = [], []
    for sample in first:
        response = sample["resps"][0][0] if sample.get("resps") else ""
        try:
            payload = load_payload(response) if isinstance(response, str) else None
        except ValueError as err:
            raise ValueError(f"{path}: doc {sample['doc_id']}: {err}") from None
        steps.append(payload["steps"] if payload else [])
        payloads.append(payload)
    labels = list(docs[0]["label_names"])
    return _TaskData(task, result.model, labels, records, docs, steps, payloads)


def _stack(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.asarray([row[key] for row in rows], dtype=float)


def _grid(n: int, max_cols: int, width: float, height: float):
    from matplotlib.figure import Figure

    cols = min(n, max_cols)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _subtitle(data: _TaskData, what: str) -> str:
    return f"{what} — {data.task}, {data.model} ({len(data.docs)} docs, {len(data.labels)} labels)"


def _reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> list[np.ndarray]:
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


def _reliability(data: _TaskData):
    fig, axes = _grid(len(data.records), 3, 3.1, 3.3)
    for ax, (strategy, rows) in zip(axes, data.records.items(), strict=True):
        true, probs = _stack(rows, "y_true"), _stack(rows, "probs")
        y, p = true.ravel(), probs.ravel()
        bins = _reliability_bins(y, p)
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
        _subtitle(data, "Reliability per strategy")
        + "\n10 equal-mass bins of (doc, label) pairs, tied bins merged; numbers: pairs per bin"
    )
    return fig


def _step_distributions(data: _TaskData, colors: dict[str, Any], n_docs: int):
    with_steps = [i for i, steps in enumerate(data.steps) if steps]
    if not with_steps:
        return "no label steps in the samples (a plain-text model, or no label generated)"
    # Prefer docs with several label steps: they show how the mass moves.
    chosen = sorted(with_steps, key=lambda i: -len(data.steps[i]))[:n_docs]
    chosen.sort()
    fig, axes = _grid(len(chosen), 2, 4.6, 3.3)
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
    fig.suptitle(_subtitle(data, "P(label) at each label step"))
    return fig


def _step_uncertainty(data: _TaskData):
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
    fig.suptitle(_subtitle(data, "Uncertainty by label step across the data set"))
    return fig


def _per_label_f1(data: _TaskData, colors: dict[str, Any]):
    strategies = list(data.records)
    fig, axes = _grid(len(strategies), 3, 3.0, 0.25 * len(data.labels) + 1.3)
    y_true = _stack(data.records[strategies[0]], "y_true").astype(int)
    support = y_true.sum(axis=0)
    ticks = [f"{label} (n={int(s)})" for label, s in zip(data.labels, support, strict=True)]
    y = np.arange(len(data.labels))
    for n, (ax, strategy) in enumerate(zip(axes, strategies, strict=True)):
        true = _stack(data.records[strategy], "y_true").astype(int)
        pred = _stack(data.records[strategy], "y_pred").astype(int)
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
        _subtitle(data, "Per-label F1 by strategy")
        + "\nn = gold docs with the label; n/a = no gold and no predicted docs (counted as 0)"
    )
    return fig


def _annotator_scatter(data: _TaskData, colors: dict[str, Any]):
    first = next(iter(data.records.values()))
    keep = [i for i, row in enumerate(first) if row["annotator_probs"]]
    if not keep:
        return "the docs carry no per-annotator label distribution (align_* are NaN too)"
    fig, axes = _grid(len(data.records), 3, 3.1, 3.1)
    for ax, (strategy, rows) in zip(axes, data.records.items(), strict=True):
        rows = [rows[i] for i in keep if i < len(rows) and rows[i]["annotator_probs"]]
        p, q = _stack(rows, "probs"), _stack(rows, "annotator_probs")
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
        _subtitle(data, "Predicted vs annotator probability")
        + f"\none point per (doc, label), {len(keep)} docs with raters{note}"
    )
    return fig


def _any_place(data: _TaskData, colors: dict[str, Any]):
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
    fig.suptitle(_subtitle(data, "Any-place estimates") + "\n" + "; ".join(notes))
    return fig
