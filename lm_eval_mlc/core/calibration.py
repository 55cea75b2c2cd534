"""Post-hoc calibration of per-label probabilities: Platt scaling and F1-optimal thresholds.

Both are fitted on a validation run's (n_docs, n_labels) probabilities and gold labels, then
applied unchanged to a test run; the fitting functions see only the arrays they are given.

* **Platt scaling**, per label j: p' = sigmoid(a_j * logit(p) + b_j), logit taken of p clipped
  to [1e-6, 1 - 1e-6] (the `conditional` strategy gives exact zeros). (a_j, b_j) come from
  scikit-learn `LogisticRegression` (L2 on a_j with `C=1`, b_j unpenalised), so a label seen
  positive only a few times gets a shrunk slope rather than a step function. A label whose
  validation gold column is constant (never or always on) has nothing to fit: it keeps the
  identity map (a=1, b=0) and its probabilities pass through unchanged.
* **Thresholds**, per label: the candidate t among the label's observed validation
  probabilities whose rule `p >= t` maximises that label's F1; ties go to the highest such t
  (fewest predicted positives). A label never positive in validation has F1 0 at every t and
  keeps `DEFAULT_THRESHOLD` (0.5, the harness's own).

A `Calibration` holds the fitted parameters of every strategy filter with where they came from,
and round-trips through a versioned JSON file (`{"format": "lm-eval-mlc-calibration",
"version": 1, ...}`) that is validated on load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression

from lm_eval_mlc._io import read_json, write_atomic
from lm_eval_mlc.metrics._checks import check_binary, check_probs

FORMAT = "lm-eval-mlc-calibration"
VERSION = 1
#: Probabilities are clipped to [PROB_EPS, 1 - PROB_EPS] before the logit (|logit| <= 13.8).
PROB_EPS = 1e-6
#: Inverse L2 strength of the Platt slope (scikit-learn's default).
PLATT_C = 1.0
#: Threshold of a label with no positive validation doc (the harness's `mlc_threshold`).
DEFAULT_THRESHOLD = 0.5


class CalibrationInputError(ValueError):
    """A calibration file, run or option that cannot be used (the CLI exits with 2)."""


def _check_pair(y_true: ArrayLike, probs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    true = check_binary("y_true", y_true)
    return true, check_probs("probs", probs, shape=true.shape)


def platt_features(probs: np.ndarray) -> np.ndarray:
    """logit(p) with p clipped to [PROB_EPS, 1 - PROB_EPS]: the Platt regressor."""
    return logit(np.clip(probs, PROB_EPS, 1 - PROB_EPS))


def fit_platt(y_true: ArrayLike, probs: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per-label Platt (slope, intercept), each (n_labels,); identity for constant gold columns."""
    true, p = _check_pair(y_true, probs)
    x = platt_features(p)
    slope, intercept = np.ones(true.shape[1]), np.zeros(true.shape[1])
    for j in range(true.shape[1]):
        if true[:, j].min() == true[:, j].max():
            continue  # one class only: nothing to regress on, keep the identity map
        model = LogisticRegression(C=PLATT_C, tol=1e-10, max_iter=1000)
        model.fit(x[:, j : j + 1], true[:, j])
        slope[j], intercept[j] = model.coef_[0, 0], model.intercept_[0]
    return slope, intercept


def apply_platt(probs: ArrayLike, slope: ArrayLike, intercept: ArrayLike) -> np.ndarray:
    """sigmoid(slope * logit(p) + intercept), label by label; same shape as `probs`."""
    p = check_probs("probs", probs)
    return expit(platt_features(p) * np.asarray(slope) + np.asarray(intercept))


def fit_thresholds(y_true: ArrayLike, probs: ArrayLike) -> np.ndarray:
    """Per-label threshold (n_labels,) maximising that label's F1 of `p >= t` (module doc)."""
    true, p = _check_pair(y_true, probs)
    out = np.full(true.shape[1], DEFAULT_THRESHOLD)
    for j in range(true.shape[1]):
        n_pos = int(true[:, j].sum())
        if n_pos == 0:
            continue
        order = np.argsort(p[:, j], kind="stable")
        scores, gold = p[order, j], true[order, j]
        candidates = np.unique(scores)
        first = np.searchsorted(scores, candidates, side="left")  # docs from here on: p >= t
        tail_pos = np.append(np.cumsum(gold[::-1])[::-1], 0)
        f1 = 2 * tail_pos[first] / (len(scores) - first + n_pos)
        out[j] = candidates[np.flatnonzero(f1 == f1.max())[-1]]
    return out


def apply_thresholds(probs: ArrayLike, thresholds: ArrayLike) -> np.ndarray:
    """0/1 int matrix: label j is predicted when p >= thresholds[j]."""
    return (check_probs("probs", probs) >= np.asarray(thresholds)).astype(int)


@dataclass(frozen=True)
class StrategyCalibration:
    """Fitted parameters of one strategy filter, one entry per label."""

    slope: tuple[float, ...]
    intercept: tuple[float, ...]
    thresholds: tuple[float, ...]
    n_positive: tuple[int, ...]  # validation docs with the label on (0 or all: fallbacks)
    n_validation: int

    def calibrated_probs(self, probs: ArrayLike) -> np.ndarray:
        return apply_platt(probs, self.slope, self.intercept)

    def predictions(self, probs: ArrayLike) -> np.ndarray:
        return apply_thresholds(probs, self.thresholds)


def fit_strategy(y_true: ArrayLike, probs: ArrayLike) -> StrategyCalibration:
    """Platt parameters and thresholds of one strategy from its validation arrays only."""
    true, p = _check_pair(y_true, probs)
    slope, intercept = fit_platt(true, p)
    return StrategyCalibration(
        slope=tuple(map(float, slope)),
        intercept=tuple(map(float, intercept)),
        thresholds=tuple(map(float, fit_thresholds(true, p))),
        n_positive=tuple(int(n) for n in true.sum(axis=0)),
        n_validation=int(true.shape[0]),
    )


@dataclass(frozen=True)
class Calibration:
    """A fit on one validation run: per-strategy parameters plus its provenance.

    `doc_keys` are short hashes of the validation docs' texts, and `eval_split` the split the
    validation run evaluated (None: unknown), so a later test run can be checked against them.
    """

    task: str
    labels: tuple[str, ...]
    source: str
    eval_split: str | None
    doc_keys: tuple[str, ...]
    strategies: dict[str, StrategyCalibration]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "task": self.task,
            "labels": list(self.labels),
            "source": self.source,
            "eval_split": self.eval_split,
            "n_validation": len(self.doc_keys),
            "strategies": {
                name: {
                    "n_validation": s.n_validation,
                    "n_positive": list(s.n_positive),
                    "platt": {"slope": list(s.slope), "intercept": list(s.intercept)},
                    "thresholds": list(s.thresholds),
                }
                for name, s in self.strategies.items()
            },
            "doc_keys": list(self.doc_keys),  # last: one line per validation doc
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Calibration:
        """Parse and validate a calibration document; errors name `where` and the field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationInputError(
                f"{where}: not an lm-eval-mlc calibration (write one with calibrate --save)."
            )
        if data.get("version") != VERSION:
            raise CalibrationInputError(
                f"{where}: expected calibration version {VERSION}, but got "
                f"{data.get('version')!r}; fit it again."
            )
        labels = _strings(data, "labels", where)
        doc_keys = _strings(data, "doc_keys", where)
        task, source = data.get("task"), data.get("source")
        split = data.get("eval_split")
        if not isinstance(task, str) or not isinstance(source, str):
            raise CalibrationInputError(f"{where}: fields 'task' and 'source' must be strings.")
        if split is not None and not isinstance(split, str):
            raise CalibrationInputError(f"{where}: field 'eval_split' must be a string or null.")
        strategies = data.get("strategies")
        if not isinstance(strategies, dict) or not strategies:
            raise CalibrationInputError(f"{where}: field 'strategies' must be a non-empty table.")
        return cls(
            task=task,
            labels=labels,
            source=source,
            eval_split=split,
            doc_keys=doc_keys,
            strategies={
                name: _strategy(entry, len(labels), f"{where}: strategies.{name}")
                for name, entry in strategies.items()
            },
        )

    def save(self, path: str | Path) -> None:
        """Write the JSON document to `path` atomically."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        return cls.from_dict(read_json(path, "calibration", CalibrationInputError), str(path))


def _strings(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CalibrationInputError(f"{where}: field '{key}' must be a list of strings.")
    return tuple(value)


def _vector(
    value: Any, n: int, where: str, low: float = -math.inf, high: float = math.inf
) -> tuple[float, ...]:
    """`n` finite numbers in [low, high], else an error naming `where`."""
    ok = (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(v) and low <= v <= high for v in value)
    )
    if not ok:
        raise CalibrationInputError(
            f"{where}: expected {n} finite numbers in [{low}, {high}] (one per label), "
            f"but got {str(value)[:80]}."
        )
    return tuple(float(v) for v in value)


def _strategy(entry: Any, n_labels: int, where: str) -> StrategyCalibration:
    """One strategy's entry of a calibration document, validated."""
    platt = entry.get("platt") if isinstance(entry, dict) else None
    if not isinstance(platt, dict):
        raise CalibrationInputError(f"{where}: expected a table with 'platt' and 'thresholds'.")
    n_validation = entry.get("n_validation")
    if not isinstance(n_validation, int) or isinstance(n_validation, bool) or n_validation < 1:
        raise CalibrationInputError(f"{where}.n_validation: expected an int >= 1.")
    n_positive = _vector(entry.get("n_positive"), n_labels, f"{where}.n_positive", 0, n_validation)
    if any(not n.is_integer() for n in n_positive):
        raise CalibrationInputError(f"{where}.n_positive: expected whole numbers of docs.")
    return StrategyCalibration(
        slope=_vector(platt.get("slope"), n_labels, f"{where}.platt.slope"),
        intercept=_vector(platt.get("intercept"), n_labels, f"{where}.platt.intercept"),
        thresholds=_vector(entry.get("thresholds"), n_labels, f"{where}.thresholds", 0.0, 1.0),
        n_positive=tuple(int(n) for n in n_positive),
        n_validation=n_validation,
    )
