"""Fitting `lm_eval_mlc.core.calibration` on a validation run, and refusing a test run that
is not independent of it (the same file, the same docs, or the same split)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from lm_eval_mlc.core.calibration import Calibration, CalibrationInputError, fit_strategy
from lm_eval_mlc.reports.calibration_inputs import RunSamples
from lm_eval_mlc.reports.runs import filter_sort_key


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
