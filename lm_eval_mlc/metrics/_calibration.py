"""Calibration of per-label probabilities against binary gold labels.

Every (doc, label) pair of the (n_docs, n_labels) inputs is one binary prediction with confidence
p = P(label is on), so both metrics work on the flattened pairs. Neither can be NaN.
"""

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ._checks import check_binary, check_option, check_positive_int, check_probs


def _bin_ids(p: np.ndarray, y: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    """Bin index in [0, n_bins) of each flattened (confidence, gold) pair."""
    if binning == "equal_width":
        # Count the inner edges k / n_bins at or below p: [0, 1/n_bins), ..., [.., 1] closed at 1.
        return np.searchsorted(np.arange(1, n_bins) / n_bins, p, side="right")
    ids = np.empty(p.size, dtype=np.intp)
    # Sort by p, ties by y: pairs equal in both are interchangeable, so bins don't depend on order.
    for b, members in enumerate(np.array_split(np.lexsort((y, p)), n_bins)):
        ids[members] = b
    return ids


def expected_calibration_error(
    y_true: ArrayLike,
    probs: ArrayLike,
    *,
    n_bins: int = 10,
    binning: Literal["equal_mass", "equal_width"] = "equal_mass",
) -> float:
    """Expected calibration error over all (doc, label) pairs, in [0, 1]; lower is better.

    ECE = sum over bins b of (n_b / n) * |mean p in b - mean y in b|, n = n_docs * n_labels.
    `equal_mass` sorts the pairs by p (ties by y, 0 before 1) and splits
    them into `n_bins` bins of equal count (`numpy.array_split`: the first n % n_bins bins hold
    one more). `equal_width` uses [0, 1/n_bins), ..., with the last bin closed at 1. Empty bins
    (n < n_bins, or no p in a width bin) are skipped. `n_bins=1` gives |mean p - mean y|.

    Breaking ties in p by y keeps ECE invariant to the order of docs and labels even when many
    p are equal, as with hard 0/1 predictions.
    """
    check_positive_int("n_bins", n_bins)
    check_option("binning", binning, ("equal_mass", "equal_width"))
    true = check_binary("y_true", y_true)
    p = check_probs("probs", probs, shape=true.shape).ravel()
    y = true.ravel()
    ids = _bin_ids(p, y, n_bins, binning)
    # (n_b / n) * |mean p_b - mean y_b| == |sum p_b - sum y_b| / n, so empty bins add 0.
    p_sums = np.bincount(ids, weights=p, minlength=n_bins)
    y_sums = np.bincount(ids, weights=y, minlength=n_bins)
    return float(np.abs(p_sums - y_sums).sum() / p.size)


def brier_score(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Mean over all (doc, label) pairs of (p - y)^2, in [0, 1]; lower is better."""
    true = check_binary("y_true", y_true)
    p = check_probs("probs", probs, shape=true.shape)
    return float(np.mean((p - true) ** 2))
