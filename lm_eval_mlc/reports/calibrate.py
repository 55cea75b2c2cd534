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
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lm_eval_mlc import metrics
from lm_eval_mlc.core.calibration import Calibration, CalibrationInputError, fit_strategy
from lm_eval_mlc.harness.records import HIGHER_IS_BETTER, METRIC_KEYS
from lm_eval_mlc.reports.runs import filter_sort_key, load_results, read_samples, samples_file

REPORT_FORMAT = "lm-eval-mlc-calibration-report"
#: Reported beside micro/macro F1, ECE and Brier when every test doc has annotator data
#: (`align_js_docs`, a count, beside the `align_js` it qualifies).
ALIGNMENT = ("align_js_bern", "align_js", "align_js_docs", "align_mae")


@dataclass(frozen=True)
class Records:
    """One strategy filter's per-doc records of a samples file, stacked (n_docs, n_labels)."""

    y_true: np.ndarray
    y_pred: np.ndarray
    probs: np.ndarray
    annotator_probs: np.ndarray | None  # None unless every doc has a distribution

    @property
    def binary(self) -> bool:
        """Probabilities all 0 or 1 (the `generated` filter): nothing to calibrate."""
        return bool(np.isin(self.probs, (0.0, 1.0)).all())


@dataclass(frozen=True)
class RunSamples:
    """What `calibrate` needs of one run: its records by filter and where its docs came from."""

    path: Path
    task: str
    labels: tuple[str, ...]
    eval_split: str | None  # None: no results JSON beside the samples file
    doc_keys: tuple[str, ...]
    filters: dict[str, Records]


def doc_key(doc: dict[str, Any]) -> str:
    """A short hash of a doc's text (the whole doc when it has none): its identity across runs."""
    text = doc.get("text")
    raw = text if isinstance(text, str) else json.dumps(doc, sort_keys=True)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def infer_task(run: str | Path) -> str:
    """The one task with a samples file under `run` (or of the samples file itself)."""
    path = Path(run)
    files = [path] if path.is_file() else sorted(path.glob("**/samples_*.jsonl"))
    tasks = sorted({f.stem.removeprefix("samples_").rpartition("_")[0] for f in files})
    if len(tasks) != 1:
        found = ", ".join(tasks) if tasks else "none"
        raise CalibrationInputError(
            f"{path}: expected samples of exactly one task (found {found}); pass --task."
        )
    return tasks[0]


def read_run(run: str | Path, task: str) -> RunSamples:
    """Records of every filter of `task` in a run folder or samples file, validated.

    Errors name the file, and the doc and field of a bad record. Docs without a record under
    a filter (the response lacked that strategy) are left out of it, as the harness does.
    """
    path = samples_file(run, task)
    by_filter = read_samples(path)
    first = next(iter(by_filter.values()))[0]
    labels = first.get("doc", {}).get("label_names")
    if not isinstance(labels, list) or not labels:
        raise CalibrationInputError(
            f"{path}: doc {first['doc_id']} has no 'label_names'; not a multi-label task sample."
        )
    keys: set[str] = set()
    filters = {}
    for name, samples in by_filter.items():
        for sample in samples:
            if sample.get("doc", {}).get("label_names") != labels:
                raise CalibrationInputError(
                    f"{path}: doc {sample['doc_id']} (filter '{name}'): field 'doc.label_names' "
                    f"differs from the first doc's {labels}."
                )
            keys.add(doc_key(sample["doc"]))
        records = _records(path, name, samples, len(labels))
        if records is not None:
            filters[name] = records
    return RunSamples(
        path, task, tuple(labels), _eval_split(path, task), tuple(sorted(keys)), filters
    )


def _records(path: Path, name: str, samples: list[dict], n_labels: int) -> Records | None:
    rows: dict[str, list] = {"y_true": [], "y_pred": [], "probs": [], "annotator_probs": []}
    for sample in samples:
        key = next((k for k in METRIC_KEYS if isinstance(sample.get(k), dict)), None)
        if key is None:
            continue
        record, where = sample[key], f"{path}: doc {sample['doc_id']} (filter '{name}')"
        for part in ("y_true", "y_pred", "probs"):
            values = record.get(part)
            binary = part != "probs"
            if not _probabilities(values, n_labels) or (binary and set(values) - {0, 1}):
                allowed = "0/1" if binary else "[0, 1]"
                raise CalibrationInputError(
                    f"{where}: field '{key}.{part}': expected {n_labels} numbers in {allowed} "
                    f"(one per label), but got {str(values)[:80]}."
                )
            rows[part].append(values)
        annotators = record.get("annotator_probs") or None
        if annotators is not None and not _probabilities(annotators, n_labels):
            raise CalibrationInputError(
                f"{where}: field '{key}.annotator_probs': expected {n_labels} numbers in [0, 1] "
                f"or [], but got {str(annotators)[:80]}."
            )
        rows["annotator_probs"].append(annotators)
    if not rows["probs"]:
        return None
    annotators = rows["annotator_probs"]
    return Records(
        y_true=np.array(rows["y_true"], dtype=int),
        y_pred=np.array(rows["y_pred"], dtype=int),
        probs=np.array(rows["probs"]),
        annotator_probs=None if None in annotators else np.array(annotators, dtype=float),
    )


def _probabilities(values: Any, n: int) -> bool:
    """`values` is a list of `n` numbers in [0, 1] (NaN fails the comparison)."""
    return (
        isinstance(values, list)
        and len(values) == n
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        and all(0 <= v <= 1 for v in values)
    )


def _eval_split(samples_path: Path, task: str) -> str | None:
    """The split a run evaluated, from the results JSON written with its samples file."""
    stamp = samples_path.stem.removeprefix(f"samples_{task}_")
    results = samples_path.with_name(f"results_{stamp}.json")
    if not results.is_file():
        return None
    config = (load_results(results).data.get("configs") or {}).get(task)
    if not isinstance(config, dict):
        return None
    return (config.get("metadata") or {}).get("eval_split") or "test"


def fit_calibration(
    validation: RunSamples, *, strategies: Sequence[str] | None = None, progress: bool = True
) -> tuple[Calibration, list[str]]:
    """Fit every calibratable filter of the validation run (or those in `strategies`).

    Returns the calibration and notes on filters left out (0/1 probabilities).
    """
    names = _select(validation, strategies)
    notes = [
        f"{name}: skipped, its probabilities are 0/1 (parsed answers); nothing to calibrate."
        for name in names
        if validation.filters[name].binary
    ]
    names = [name for name in names if not validation.filters[name].binary]
    if not names:
        raise CalibrationInputError(
            f"{validation.path}: no strategy filter with real probabilities to calibrate "
            "(run the model with hf-mlc, or a *_unary task)."
        )
    fitted = {}
    for name in tqdm(names, desc="fit calibration", unit="strategy", disable=not progress):
        records = validation.filters[name]
        fitted[name] = fit_strategy(records.y_true, records.probs)
    calibration = Calibration(
        task=validation.task,
        labels=validation.labels,
        source=str(validation.path),
        eval_split=validation.eval_split,
        doc_keys=validation.doc_keys,
        strategies=fitted,
    )
    return calibration, notes


def _select(run: RunSamples, strategies: Sequence[str] | None) -> list[str]:
    available = sorted(run.filters, key=filter_sort_key)
    unknown = sorted(set(strategies or ()) - set(available))
    if unknown:
        raise CalibrationInputError(
            f"{run.path}: expected --strategies among {available}, but got {unknown}."
        )
    return [name for name in available if not strategies or name in strategies]


def check_independent(calibration: Calibration, test: RunSamples) -> list[str]:
    """Refuse a test run the calibration was fitted on; warnings for a partial doc overlap."""
    where = f"validation {calibration.source} / test {test.path}"
    if Path(calibration.source).resolve() == test.path.resolve():
        raise CalibrationInputError(
            f"{test.path}: the test samples are the validation samples the calibration was "
            "fitted on; pass a separate test run."
        )
    if calibration.task != test.task:
        raise CalibrationInputError(
            f"{where}: calibration of task '{calibration.task}' applied to task '{test.task}'."
        )
    if calibration.labels != test.labels:
        raise CalibrationInputError(
            f"{where}: label sets differ: {list(calibration.labels)} vs {list(test.labels)}."
        )
    if calibration.eval_split is not None and calibration.eval_split == test.eval_split:
        raise CalibrationInputError(
            f"{where}: both runs evaluated the '{test.eval_split}' split, so the fit would be "
            "reported on the data it was fitted on; make the validation run with "
            '--metadata \'{"eval_split": "validation"}\'.'
        )
    shared = set(test.doc_keys) & set(calibration.doc_keys)
    if shared == set(test.doc_keys):
        raise CalibrationInputError(
            f"{where}: every test doc ({len(shared)}) is also a validation doc; the report would "
            "score the data the calibration was fitted on."
        )
    if shared:
        return [
            f"{len(shared)} of {len(test.doc_keys)} test docs also appear in the validation run "
            f"{calibration.source}; their scores are optimistic."
        ]
    return []


@dataclass
class StrategyReport:
    strategy: str
    n_validation: int
    n_test: int
    before: dict[str, float]
    after: dict[str, float]


@dataclass
class CalibrationReport:
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
