"""A CI gate: compare a run's metrics with a baseline file within per-metric tolerances.

A baseline (written by `write_baseline`) is a JSON file::

    {"format": "lm-eval-mlc-baseline", "version": 1, "source": "<results JSON>",
     "model": "...", "limit": 8.0,
     "tasks": {"goemotions_ml": {"version": 1.0, "n_samples": 8,
                                 "metrics": {"micro_f1,generated": {"value": 0.31,
                                                                    "higher_is_better": true}}}}}

A metric regresses when it moves in its worse direction by more than its tolerance; NaN in the
run where the baseline had a number, or a baseline metric missing from the run, also fails.
Metrics with no known direction (step diagnostics such as `step_entropy`) are shown, not gated.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lm_eval_mlc._io import read_json, write_atomic
from lm_eval_mlc.reports.runs import RunResults, filter_sort_key, load_run, metric_sort_key

FORMAT = "lm-eval-mlc-baseline"
VERSION = 1


class GateInputError(ValueError):
    """A baseline, run or tolerance that cannot be compared (the CLI exits with 2)."""


@dataclass(frozen=True)
class GateRow:
    task: str
    metric: str
    filter: str
    baseline: float
    current: float | None  # None: missing from the run
    tolerance: float
    higher_is_better: bool | None

    @property
    def delta(self) -> float:
        return math.nan if self.current is None else self.current - self.baseline

    @property
    def status(self) -> str:
        """`ok`, `improved`, `REGRESSED`, `MISSING`, `n/a` (NaN both) or `info` (not gated)."""
        if self.current is None:
            return "MISSING"
        if self.higher_is_better is None:
            return "info"
        if math.isnan(self.baseline):
            return "n/a" if math.isnan(self.current) else "ok"
        if math.isnan(self.current):
            return "REGRESSED"
        worse = -self.delta if self.higher_is_better else self.delta
        if worse > self.tolerance + 1e-12:
            return "REGRESSED"
        return "improved" if worse < -1e-12 else "ok"

    @property
    def failed(self) -> bool:
        return self.status in ("REGRESSED", "MISSING")


def parse_tolerances(text: str | None) -> dict[str, float]:
    """`micro_f1=0.02,ece,marginal=0.01` -> {"micro_f1": 0.02, "ece,marginal": 0.01}.

    A key is a metric (every filter) or `metric,filter`; the more specific one wins.
    """
    out: dict[str, float] = {}
    if not text:
        return out
    parts = text.split(",")
    i = 0
    while i < len(parts):
        part = parts[i].strip()
        # `ece,marginal=0.01` splits into `ece` and `marginal=0.01`: rejoin the key.
        if "=" not in part and i + 1 < len(parts):
            part = f"{part},{parts[i + 1].strip()}"
            i += 1
        key, sep, value = part.partition("=")
        try:
            tolerance = float(value)
        except ValueError:
            tolerance = math.nan
        if not sep or not key or not math.isfinite(tolerance) or tolerance < 0:
            raise GateInputError(
                f"Expected --tolerance as METRIC=NUMBER[,...] with NUMBER >= 0, but got '{part}'."
            )
        out[key.strip()] = tolerance
        i += 1
    return out


def baseline_of(run: RunResults) -> dict[str, Any]:
    """The baseline document for a run's results (every numeric metric of every task)."""
    tasks = {}
    for task in run.tasks:
        metrics = {
            f"{metric},{filter_name}": {
                "value": None if math.isnan(value) else value,
                "higher_is_better": run.higher_is_better(task, metric),
            }
            for (metric, filter_name), value in sorted(run.metrics(task).items())
        }
        tasks[task] = {
            "version": run.version(task),
            "n_samples": run.n_samples(task),
            "metrics": metrics,
        }
    return {
        "format": FORMAT,
        "version": VERSION,
        "source": str(run.path),
        "model": run.model,
        "limit": run.limit,
        "tasks": tasks,
    }


def write_baseline(run: str | Path, path: str | Path) -> dict[str, Any]:
    """Write the baseline of a run (folder or results JSON) to `path`, atomically."""
    baseline = baseline_of(_single_run(run))
    write_atomic(path, json.dumps(baseline, indent=2) + "\n")
    return baseline


def read_baseline(path: str | Path) -> dict[str, Any]:
    baseline = read_json(path, "baseline", GateInputError)
    if not isinstance(baseline, dict) or baseline.get("format") != FORMAT:
        raise GateInputError(
            f"{path}: not an lm-eval-mlc baseline (write one with --write-baseline)."
        )
    if baseline.get("version") != VERSION or not isinstance(baseline.get("tasks"), dict):
        raise GateInputError(
            f"{path}: expected baseline version {VERSION} with a 'tasks' table; rewrite it."
        )
    return baseline


def gate(
    run: str | Path,
    baseline: str | Path | dict[str, Any],
    *,
    tolerances: dict[str, float] | None = None,
    default_tolerance: float = 0.0,
    metrics: list[str] | None = None,
    allow_mismatch: bool = False,
) -> list[GateRow]:
    """Rows comparing every baseline metric (or those named in `metrics`) with the run.

    Any `row.failed` is a regression. Tolerances are absolute, keyed by `metric` or
    `metric,filter` (the more specific wins), `default_tolerance` elsewhere.

    Raises GateInputError when the run's task versions or `--limit` differ from the
    baseline's (unless `allow_mismatch`): such numbers are not comparable.
    """
    tolerances = tolerances or {}
    base = baseline if isinstance(baseline, dict) else read_baseline(baseline)
    current = _single_run(run)
    if not allow_mismatch:
        _check_comparable(base, current)
    known = {key for entry in base["tasks"].values() for key in entry.get("metrics", {})} | {
        key.partition(",")[0] for entry in base["tasks"].values() for key in entry["metrics"]
    }
    unknown = sorted(set(tolerances) - known) + sorted(set(metrics or ()) - known)
    if unknown:
        raise GateInputError(
            f"Expected metrics of the baseline in --tolerance/--metrics, but got {unknown}."
        )
    rows = []
    for task, entry in sorted(base["tasks"].items()):
        values = current.metrics(task) if task in current.tasks else {}
        for key, spec in sorted(entry.get("metrics", {}).items()):
            metric, _, filter_name = key.partition(",")
            if metrics and metric not in metrics:
                continue
            value = spec.get("value")
            tolerance = tolerances.get(key, tolerances.get(metric, default_tolerance))
            rows.append(
                GateRow(
                    task=task,
                    metric=metric,
                    filter=filter_name,
                    baseline=math.nan if value is None else float(value),
                    current=values.get((metric, filter_name)),
                    tolerance=tolerance,
                    higher_is_better=spec.get("higher_is_better"),
                )
            )
    return sorted(
        rows, key=lambda r: (r.task, filter_sort_key(r.filter), metric_sort_key(r.metric))
    )


def _check_comparable(base: dict[str, Any], run: RunResults) -> None:
    problems = []
    if base.get("limit") != run.limit:
        problems.append(f"--limit {base.get('limit')} vs {run.limit}")
    for task, entry in base["tasks"].items():
        if task in run.tasks and entry.get("version") != run.version(task):
            problems.append(f"{task} version {entry.get('version')} vs {run.version(task)}")
    if problems:
        raise GateInputError(
            f"baseline {base.get('source')} and run {run.path} are not comparable ("
            + "; ".join(problems)
            + "); write a new baseline or pass --allow-mismatch."
        )


def _single_run(run: str | Path) -> RunResults:
    try:
        results = load_run(run)
    except (FileNotFoundError, ValueError) as err:
        raise GateInputError(str(err)) from None
    if len(results) > 1:
        raise GateInputError(
            f"{run}: holds results of {len(results)} models; pass one results JSON instead."
        )
    return results[0]


def format_rows(rows: list[GateRow]) -> str:
    """A fixed-width diff table with a one-line verdict."""
    header = ("task", "metric", "filter", "dir", "baseline", "run", "delta", "tol", "status")
    lines = [header]
    for row in rows:
        direction = {True: "↑", False: "↓", None: "·"}[row.higher_is_better]
        lines.append(
            (
                row.task,
                row.metric,
                row.filter,
                direction,
                _num(row.baseline),
                "—" if row.current is None else _num(row.current),
                "—" if row.current is None else _num(row.delta, signed=True),
                _num(row.tolerance),
                row.status,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        "  ".join(
            cell.ljust(w) if i < 4 or i == 8 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    failed = [row for row in rows if row.failed]
    gated = sum(1 for row in rows if row.higher_is_better is not None)
    verdict = (
        f"FAIL: {len(failed)} of {gated} gated metrics regressed or are missing."
        if failed
        else f"PASS: {gated} gated metrics within tolerance."
    )
    return "\n".join([*text, "", verdict])


def _num(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:+.4f}" if signed else f"{value:.4f}"
