"""Functional multi-label classification metrics: pure NumPy in, plain Python floats out.

Every function takes (n_docs, n_labels) array-likes: binary gold/predicted label matrices
(`y_true`, `y_pred`), per-label probabilities P(label is on) (`probs`), or the fraction of human
raters who chose each label (`annotator_probs`). Options are keyword-only. Bad arguments raise
`ValueError`. Results are NaN only where a docstring says so (`roc_auc`, `align_js`).
"""

from ._alignment import alignment_scores
from ._calibration import (
    brier_score,
    expected_calibration_error,
    maximum_calibration_error,
    root_mean_square_calibration_error,
)
from ._classification import exact_match, hamming_loss, jaccard, multilabel_f1, roc_auc

__all__ = [
    "alignment_scores",
    "brier_score",
    "exact_match",
    "expected_calibration_error",
    "hamming_loss",
    "jaccard",
    "maximum_calibration_error",
    "multilabel_f1",
    "roc_auc",
    "root_mean_square_calibration_error",
]
