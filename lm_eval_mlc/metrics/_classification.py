"""Set-based metrics on binary label matrices, plus threshold-free ROC AUC on probabilities.

Inputs are (n_docs, n_labels) matrices; each row is one document's label set. Values follow
scikit-learn with `zero_division=0`, so degenerate inputs (all-zero rows, a label never present,
one doc) give 0 rather than NaN. Only `roc_auc` can be NaN, where AUC is undefined.
"""

from collections.abc import Callable
from typing import Literal

import numpy as np
import sklearn.metrics
from numpy.typing import ArrayLike

from ._checks import check_binary, check_option, check_probs

Average = Literal["micro", "macro", "samples"]
_AVERAGES: tuple[str, ...] = ("micro", "macro", "samples")


def _check_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    true = check_binary("y_true", y_true)
    return true, check_binary("y_pred", y_pred, shape=true.shape)


def _set_score(
    score: Callable[..., float], y_true: np.ndarray, y_pred: np.ndarray, average: str
) -> float:
    """Run an sklearn set score (`f1_score`, `jaccard_score`) in multilabel mode.

    sklearn reads a single-column matrix as binary targets, not multilabel. An all-zero sentinel
    column keeps the input multilabel, and `labels=` drops it from every average.
    """
    n_docs, n_labels = y_true.shape
    sentinel = np.zeros((n_docs, 1), dtype=y_true.dtype)
    return float(
        score(
            np.hstack([y_true, sentinel]),
            np.hstack([y_pred, sentinel]),
            labels=list(range(n_labels)),
            average=average,
            zero_division=0,
        )
    )


def multilabel_f1(y_true: ArrayLike, y_pred: ArrayLike, *, average: Average) -> float:
    """F1 of binary label matrices of shape (n_docs, n_labels), in [0, 1].

    `micro` pools every (doc, label) pair, `macro` is the unweighted mean of per-label F1,
    `samples` the mean of per-doc F1. A label (macro) or doc (samples) with no gold and no
    predicted positives scores 0, as sklearn's `zero_division=0` does: predicting an empty set
    correctly earns nothing here, and `exact_match` is the metric that credits it.
    """
    check_option("average", average, _AVERAGES)
    true, pred = _check_pair(y_true, y_pred)
    return _set_score(sklearn.metrics.f1_score, true, pred, average)


def jaccard(y_true: ArrayLike, y_pred: ArrayLike, *, average: Average = "samples") -> float:
    """Jaccard index |gold ∩ pred| / |gold ∪ pred| of binary label matrices, in [0, 1].

    Averages as in `multilabel_f1`; an empty union scores 0 (sklearn `zero_division=0`).
    """
    check_option("average", average, _AVERAGES)
    true, pred = _check_pair(y_true, y_pred)
    return _set_score(sklearn.metrics.jaccard_score, true, pred, average)


def hamming_loss(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of (doc, label) pairs predicted wrong, in [0, 1]; lower is better."""
    true, pred = _check_pair(y_true, y_pred)
    return float(sklearn.metrics.hamming_loss(true, pred))


def exact_match(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of docs whose whole predicted label set equals the gold set, in [0, 1].

    An empty gold set predicted as empty is a match (sklearn's subset accuracy).
    """
    true, pred = _check_pair(y_true, y_pred)
    return float(sklearn.metrics.accuracy_score(true, pred))


def roc_auc(y_true: ArrayLike, probs: ArrayLike, *, average: Literal["micro", "macro"]) -> float:
    """ROC AUC of per-label probabilities `probs` against binary `y_true`, both (n_docs, n_labels).

    `micro` ranks all (doc, label) pairs together; `macro` is the unweighted mean of per-label
    AUC (sklearn's definition). AUC is undefined for a label whose gold column is constant (all
    0 or all 1), so `macro` leaves such labels out. NaN when nothing is defined: `macro` with
    every column constant, `micro` with `y_true` all 0 or all 1.
    """
    check_option("average", average, ("micro", "macro"))
    true = check_binary("y_true", y_true)
    p = check_probs("probs", probs, shape=true.shape)
    if average == "micro":
        true, p = true.reshape(-1, 1), p.reshape(-1, 1)
    defined = true.min(axis=0) != true.max(axis=0)
    if not defined.any():
        return float("nan")
    columns = zip(true[:, defined].T, p[:, defined].T, strict=True)
    aucs = [sklearn.metrics.roc_auc_score(t, s) for t, s in columns]
    return float(np.mean(aucs))
