"""`calibrate`: fit on a validation run's samples, apply to a test run's, report before/after.

Reads the samples files lm-eval writes with `--log_samples` (one per-doc record per strategy
filter, see `lm_eval_mlc.harness.records`), fits `lm_eval_mlc.core.calibration` on the
validation run only, and scores the test run with the raw and the calibrated outputs. "After"
means: F1 from the fitted per-label thresholds on the raw probabilities; ECE, Brier and
alignment from the Platt-scaled probabilities. "Before" is what the harness reported (its 0/1
predictions, the raw probabilities).

It refuses to report on data it was fitted on: the same samples file, a test run whose docs
all appear in the validation run, or two runs that both evaluated the same split (read from
`configs[task].metadata.eval_split` of the results JSON beside each samples file; no key means
`test`). A partial doc overlap is a warning.

`calibration_inputs` reads and validates the runs, `calibration_fit` fits and checks
independence; this module scores the test run and formats the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lm_eval_mlc import metrics
from lm_eval_mlc.core.calibration import Calibration, CalibrationInputError
from lm_eval_mlc.harness.records import HIGHER_IS_BETTER
from lm_eval_mlc.reports.calibration_fit import check_independent, fit_calibration
from lm_eval_mlc.reports.calibration_inputs import RunSamples, infer_task, read_run
from lm_eval_mlc.reports.runs import filter_sort_key

REPORT_FORMAT = "lm-eval-mlc-calibration-report"
#: Reported beside micro/macro F1, ECE and Brier when every test doc has annotator data
#: (`align_js_docs`, a count, beside the `align_js` it qualifies).
ALIGNMENT = ("align_js_bern", "align_js", "align_js_docs", "align_mae")


@dataclass
class StrategyReport:
    """Before/after scores of one strategy filter on the test run."""

    strategy: str
    n_validation: int
    n_test: int
    before: dict[str, float]
    after: dict[str, float]


@dataclass
class CalibrationReport:
    """Every strategy's before/after scores, with notes and overlap warnings."""

    task: str
    validation: str
    test: str
    rows: list[StrategyReport]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as null)."""

        def clean(values: dict[str, float]) -> dict[str, float | None]:
            return {k: v if math.isfinite(v) else None for k, v in values.items()}

        return {
            "format": REPORT_FORMAT,
            "version": 1,
            "task": self.task,
            "validation": self.validation,
            "test": self.test,
            "strategies": {
                row.strategy: {
                    "n_validation": row.n_validation,
                    "n_test": row.n_test,
                    "before": clean(row.before),
                    "after": clean(row.after),
                }
                for row in self.rows
            },
            "notes": self.notes,
            "warnings": self.warnings,
        }


def scores(
    y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray, annotators: np.ndarray | None
) -> dict[str, float]:
    """The reported metrics of one set of predictions and probabilities."""
    out = {
        "micro_f1": metrics.multilabel_f1(y_true, y_pred, average="micro"),
        "macro_f1": metrics.multilabel_f1(y_true, y_pred, average="macro"),
        "ece_em10": metrics.expected_calibration_error(y_true, probs, n_bins=10),
        "brier": metrics.brier_score(y_true, probs),
    }
    if annotators is not None:
        aligned = metrics.alignment_scores(probs, annotators)
        out |= {key: aligned[key] for key in ALIGNMENT}
    return out


def report(
    calibration: Calibration, test: RunSamples, *, progress: bool = True
) -> CalibrationReport:
    """Before/after scores on the test run of every fitted strategy it has (checked first)."""
    warnings = check_independent(calibration, test)
    notes, rows = [], []
    names = sorted(calibration.strategies, key=filter_sort_key)
    for name in tqdm(names, desc="apply calibration", unit="strategy", disable=not progress):
        records = test.filters.get(name)
        if records is None:
            notes.append(f"{name}: fitted, but the test run has no samples with this filter.")
            continue
        fitted = calibration.strategies[name]
        before = scores(records.y_true, records.y_pred, records.probs, records.annotator_probs)
        after = scores(
            records.y_true,
            fitted.predictions(records.probs),
            fitted.calibrated_probs(records.probs),
            records.annotator_probs,
        )
        rows.append(StrategyReport(name, fitted.n_validation, len(records.probs), before, after))
    if not rows:
        raise CalibrationInputError(
            f"{test.path}: none of the fitted strategies {names} has test samples."
        )
    return CalibrationReport(
        calibration.task, calibration.source, str(test.path), rows, notes, warnings
    )


def format_report(report: CalibrationReport) -> str:
    """A fixed-width before/after table, one line per strategy and metric."""
    header = ("strategy", "n_val", "n_test", "metric", "dir", "before", "after", "delta")
    lines = [header]
    for row in report.rows:
        for metric, before in row.before.items():
            after = row.after[metric]
            lines.append(
                (
                    row.strategy,
                    str(row.n_validation),
                    str(row.n_test),
                    metric,
                    {True: "↑", False: "↓", None: "·"}[HIGHER_IS_BETTER[metric]],
                    f"{before:.4f}",
                    f"{after:.4f}",
                    f"{after - before:+.4f}",
                )
            )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i in (0, 3, 4) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    )


def calibrate(
    validation: str | Path | Calibration,
    test: str | Path,
    *,
    task: str | None = None,
    strategies: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[Calibration, CalibrationReport]:
    """Fit on a validation run (or take a saved `Calibration`), then report on `test`.

    `task` defaults to the calibration's task, else the one task of the validation run. The
    fit reads only the validation run; the test run is read afterwards, for the report.
    """
    notes: list[str] = []
    if isinstance(validation, Calibration):
        calibration = validation
        task = task or calibration.task
        unknown = sorted(set(strategies or ()) - set(calibration.strategies))
        if unknown:
            raise CalibrationInputError(
                f"expected --strategies among the calibration's {sorted(calibration.strategies)},"
                f" but got {unknown}."
            )
        if strategies:
            calibration = replace(
                calibration,
                strategies={k: v for k, v in calibration.strategies.items() if k in strategies},
            )
    else:
        task = task or infer_task(validation)
        calibration, notes = fit_calibration(
            read_run(validation, task), strategies=strategies, progress=progress
        )
    result = report(calibration, read_run(test, task), progress=progress)
    result.notes[:0] = notes
    return calibration, result
