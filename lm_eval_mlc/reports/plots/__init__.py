"""Figures from a run's output folder: calibration, per-step label distributions, per-label F1,
and the any-place estimates with their bracket and intervals.

Every figure of a task uses one colour per label, keyed by the label's name (`style.label_colors`),
so `joy` has the same colour everywhere. Figures are built on `matplotlib.figure.Figure` (the Agg
canvas, no pyplot state) and saved as PNG and SVG, each file written atomically. One module per
figure family; `plot_run` is the entry point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lm_eval_mlc.reports.plots.any_place import any_place
from lm_eval_mlc.reports.plots.per_label import annotator_scatter, per_label_f1
from lm_eval_mlc.reports.plots.reliability import reliability
from lm_eval_mlc.reports.plots.steps import step_distributions, step_uncertainty
from lm_eval_mlc.reports.plots.style import STYLE, label_colors, save
from lm_eval_mlc.reports.plots.task_data import load_task_data
from lm_eval_mlc.reports.runs import load_run


@dataclass
class PlotReport:
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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
            data = load_task_data(result, name)
            prefix = f"{name}" if len(results) == 1 else f"{_slug(result.model)}_{name}"
            colors = label_colors(data.labels)
            with rc_context(STYLE):
                figures = {
                    "reliability": reliability(data),
                    "step_distributions": step_distributions(data, colors, n_docs),
                    "step_uncertainty": step_uncertainty(data),
                    "per_label_f1": per_label_f1(data, colors),
                    "annotator_scatter": annotator_scatter(data, colors),
                    "any_place": any_place(data, colors),
                }
                for kind, fig in figures.items():
                    if isinstance(fig, str):
                        report.notes.append(f"{name}: {kind} skipped: {fig}")
                        continue
                    report.files += save(fig, out_dir, f"{prefix}_{kind}", formats)
    return report


def _slug(text: str) -> str:
    """`text` with every character but letters, digits and `-_.` replaced by `_`."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
