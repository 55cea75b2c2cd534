"""Building a leaderboard: one row per model x task x strategy filter, with bootstrap CIs.

Point values come from each results JSON; 95% intervals from resampling the docs in the samples
file written beside it (`lm_eval_mlc.reports.bootstrap`). Runs whose task versions, `--limit`, shot
count or doc count differ are flagged, in each row of that task and in `warnings`. Each row also
keeps its any-place estimate's own uncertainty (`quality`), which `render` shows.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from lm_eval_mlc.core.registry import DEPRECATED_ALIASES, ESTIMATE_QUALITY
from lm_eval_mlc.reports.bootstrap import aggregation_for, bootstrap_ci
from lm_eval_mlc.reports.runs import (
    RunResults,
    filter_sort_key,
    load_run,
    metric_sort_key,
    read_samples,
    reported_metrics,
)

# A marginal whose unexplored mass is at least this is flagged: it bounds little.
UNEXPLORED_FLAG = 0.5


@dataclass
class Row:
    """One model x task x strategy filter: point values, intervals and flags by metric."""

    model: str
    task: str
    filter: str
    n_docs: int | None
    values: dict[str, float]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    quality: float = math.nan  # the filter's ESTIMATE_QUALITY metric, NaN where none


@dataclass
class Leaderboard:
    """The rows in display order, the metric columns, and warnings over the runs."""

    metrics: list[str]
    rows: list[Row]
    warnings: list[str]
    level: float = 0.95


def build_leaderboard(
    runs: list[str | Path],
    *,
    metrics: list[str],
    sort: str | None = None,
    n_draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    progress: bool = True,
) -> Leaderboard:
    """Read every run (folder or results JSON), compute intervals, sort best first by `sort`.

    Rows are grouped by task; within a task `sort` (default: the first metric) orders them best
    first by its direction, NaN last.
    Raises FileNotFoundError / ValueError naming a missing or broken file.
    """
    if not metrics:
        raise ValueError("Expected at least one metric in `metrics`, but got none.")
    sort = sort or metrics[0]
    if sort not in metrics:
        raise ValueError(f"Expected `sort` to be one of {metrics}, but got '{sort}'.")
    results = [result for run in runs for result in load_run(run)]
    reported = reported_metrics(results)
    unknown = [m for m in metrics if m not in reported]
    if unknown:
        raise ValueError(
            f"Expected metrics the runs report, but got {unknown}; "
            f"they report: {', '.join(sorted(reported, key=metric_sort_key))}."
        )
    names = _model_names(results)
    differing = _mismatches(results, names)
    warnings = [
        f"task {task}: {setting} differs between runs ({seen})"
        for task, settings in differing.items()
        for setting, seen in settings.items()
    ]
    rows: list[Row] = []
    jobs = []
    for result in results:
        for task in result.tasks:
            values = result.metrics(task)
            filters = sorted({f for (m, f) in values if m in metrics}, key=filter_sort_key)
            samples_path = result.samples_path(task)
            if samples_path is None and filters:
                warnings.append(
                    f"{result.path}: no samples file for {task} (run with --log_samples); "
                    "no confidence intervals."
                )
            samples = read_samples(samples_path) if samples_path else {}
            for filter_name in filters:
                row = Row(
                    model=names[result.path],
                    task=task,
                    filter=filter_name,
                    n_docs=len(samples.get(filter_name, [])) or result.n_samples(task),
                    values={m: values.get((m, filter_name), math.nan) for m in metrics},
                )
                quality = ESTIMATE_QUALITY.get(filter_name)
                row.quality = values.get((quality, filter_name), math.nan)
                if filter_name == "marginal" and row.quality >= UNEXPLORED_FLAG:
                    row.flags.append(
                        f"marginal is a lower bound: {row.quality:.0%} of the mass unexplored"
                    )
                rows.append(row)
                config = (result.data.get("configs") or {}).get(task)
                for metric in metrics:
                    items = _metric_items(samples.get(filter_name, []), metric)
                    if items:
                        jobs.append((row, metric, items, aggregation_for(metric, config)))
    total = len(jobs) * n_draws
    with tqdm(total=total, desc="bootstrap", unit="draw", disable=not progress) as bar:
        for row, metric, items, aggregate in jobs:
            row.ci[metric] = bootstrap_ci(
                items, aggregate, n_draws=n_draws, level=level, seed=seed, progress=bar
            )
    for row in rows:
        if row.task in differing:
            row.flags.append(", ".join(differing[row.task]) + " differ between runs")
    rows.sort(key=lambda r: _sort_key(r, sort, results[0].higher_is_better))
    return Leaderboard(metrics=list(metrics), rows=rows, warnings=warnings, level=level)


def _metric_items(samples: list[dict], metric: str) -> list:
    """The per-doc items logged under `metric`; in a run from before the metric was renamed,
    those of its deprecated alias (`ece_em10` reads `ece`: the same record)."""
    items = [s[metric] for s in samples if metric in s]
    if not items:
        alias = next((a for a, name in DEPRECATED_ALIASES.items() if name == metric), None)
        items = [s[alias] for s in samples if alias in s] if alias else []
    return items


def _sort_key(row: Row, metric: str, direction: Callable[[str, str], bool | None]) -> tuple:
    """Within each task: best first by `metric`'s direction, NaN last, then model and filter."""
    value = row.values.get(metric, math.nan)
    rank = (
        math.inf
        if math.isnan(value)
        else -value
        if direction(row.task, metric) is not False
        else value
    )
    return (row.task, rank, row.model, filter_sort_key(row.filter))


def _model_names(results: list[RunResults]) -> dict[Path, str]:
    """Model names, with the run folder added where two runs share a model name."""
    counts = Counter(result.model for result in results)
    names = {}
    for result in results:
        name = result.model
        if counts[name] > 1:
            name = f"{name} [{_run_folder(result)}]"
        names[result.path] = name
    return names


def _run_folder(result: RunResults) -> str:
    # <output_path>/<model_name_sanitized>/results_*.json: the output folder names the run.
    return result.path.parent.parent.name or str(result.path.parent)


def _mismatches(results: list[RunResults], names: dict[Path, str]) -> dict[str, dict[str, str]]:
    """task -> setting -> "value in runs; ..." for every setting whose value differs."""
    by_task: dict[str, dict[str, dict[str, list[str]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for result in results:
        shots = result.data.get("n-shot") or {}
        for task in result.tasks:
            settings = {
                "version": result.version(task),
                "--limit": result.limit,
                "num_fewshot": shots.get(task),
                "docs": result.n_samples(task),
            }
            for setting, value in settings.items():
                by_task[task][setting][repr(value)].append(names[result.path])
    out: dict[str, dict[str, str]] = {}
    for task, settings in sorted(by_task.items()):
        for setting, values in settings.items():
            if len(values) > 1:
                seen = "; ".join(f"{v} in {', '.join(who)}" for v, who in values.items())
                out.setdefault(task, {})[setting] = seen
    return out
