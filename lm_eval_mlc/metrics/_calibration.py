"""Calibration of per-label probabilities against binary gold labels.

Every (doc, label) pair of the (n_docs, n_labels) inputs is one binary prediction with confidence
p = P(label is on), so every metric works on the flattened pairs. None can be NaN. ECE, RMSCE and
MCE share one binning (`_bin_means`): 10 equal-mass bins unless told otherwise.
"""

from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from ._checks import check_binary, check_option, check_positive_int, check_probs


def _bin_ids(p_sorted: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    """Bin index in [0, n_bins) of each confidence of the ascending `p_sorted` (non-decreasing).

    The ids depend on the values of p only, never on the gold labels or the order of the pairs.
    """
    if binning == "equal_width":
        # Count the inner edges k / n_bins at or below p: [0, 1/n_bins), ..., [.., 1] closed at 1.
        return np.searchsorted(np.arange(1, n_bins) / n_bins, p_sorted, side="right")
    # Equal counts by sorted position, with `numpy.array_split` sizes (the first n % n_bins bins
    # hold one more)...
    size, extra = divmod(p_sorted.size, n_bins)
    position_bin = np.repeat(np.arange(n_bins), [size + 1] * extra + [size] * (n_bins - extra))
    # ...then every run of equal p joins the bin of its first position: ordering tied pairs by
    # anything (gold, doc order) and cutting the run at an edge would make ECE depend on it.
    return position_bin[np.searchsorted(p_sorted, p_sorted, side="left")]


Binning = Literal["equal_mass", "equal_width"]


def _bin_means(
    y_true: ArrayLike, probs: ArrayLike, n_bins: int, binning: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n_b, mean p_b, mean y_b) of the non-empty bins, in bin order; the inputs validated.

    The one binning of ECE, RMSCE and MCE; `expected_calibration_error` documents the bins,
    their tie rule and how a bin's mean p is formed.
    """
    check_positive_int("n_bins", n_bins)
    check_option("binning", binning, ("equal_mass", "equal_width"))
    true = check_binary("y_true", y_true)
    p = check_probs("probs", probs, shape=true.shape).ravel()
    order = np.argsort(p, kind="stable")
    p, y = p[order], true.ravel()[order]
    ids = _bin_ids(p, n_bins, binning)
    counts = np.bincount(ids, minlength=n_bins)
    filled = np.flatnonzero(counts)
    n_b = counts[filled]
    low = p[np.searchsorted(ids, filled)]  # ids never decrease: a bin's first pair has its min p
    excess = np.bincount(ids, weights=p - np.repeat(low, n_b), minlength=n_bins)[filled]
    mean_p = np.clip(low + excess / n_b, 0.0, 1.0)
    mean_y = np.bincount(ids, weights=y, minlength=n_bins)[filled] / n_b
    return n_b, mean_p, mean_y


def expected_calibration_error(
    y_true: ArrayLike,
    probs: ArrayLike,
    *,
    n_bins: int = 10,
    binning: Binning = "equal_mass",
) -> float:
    """Expected calibration error over all (doc, label) pairs, in [0, 1]; lower is better.

    ECE = sum over bins b of (n_b / n) * |mean p in b - mean y in b|, n = n_docs * n_labels.
    The default (10 equal-mass bins) is the harness's `ece_em10`.

    - `equal_mass`: sort the pairs by p and cut the sorted positions into `n_bins` runs of equal
      count (`numpy.array_split`: the first n % n_bins hold one more). Pairs with equal p are
      never split: each group of equal p goes whole into the bin its first (lowest) sorted
      position falls in, i.e. an edge that would cut a tie moves up to the end of the tie. Bins
      are then unequal where ties straddle an edge, and later bins may be empty (a constant p
      is one bin: ECE = |p - mean y|, 0 when calibrated).
    - `equal_width`: [0, 1/n_bins), ..., with the last bin closed at 1.

    Bins depend on p only, so ECE is invariant to the order of docs and labels and to how gold
    labels are arranged among tied p (hard 0/1 predictions are two groups). Empty bins (n <
    n_bins, no p in a width bin, bins emptied by ties) are skipped. `n_bins=1` gives
    |mean p - mean y|. A bin's mean p is its lowest p plus the mean excess over it, so a bin of
    one repeated p has mean exactly p and a calibrated constant p gives exactly 0.
    """
    n_b, mean_p, mean_y = _bin_means(y_true, probs, n_bins, binning)
    return float(np.sum(n_b * np.abs(mean_p - mean_y)) / np.sum(n_b))


def root_mean_square_calibration_error(
    y_true: ArrayLike,
    probs: ArrayLike,
    *,
    n_bins: int = 10,
    binning: Binning = "equal_mass",
) -> float:
    """Root-mean-square calibration error over all (doc, label) pairs, in [0, 1]; lower is better.

    RMSCE = sqrt(sum over bins b of (n_b / n) * (mean p in b - mean y in b)^2), on the bins of
    `expected_calibration_error` (same binnings, tie rule and skipped empty bins). The default
    is 10 equal-mass bins, like `ece_em10` (the harness's `rms_ce`). It weighs large per-bin
    gaps more than ECE and is never below it (Jensen): ECE <= RMSCE <= MCE. `n_bins=1` gives
    |mean p - mean y|.
    """
    n_b, mean_p, mean_y = _bin_means(y_true, probs, n_bins, binning)
    return float(np.sqrt(np.sum(n_b * (mean_p - mean_y) ** 2) / np.sum(n_b)))


def maximum_calibration_error(
    y_true: ArrayLike,
    probs: ArrayLike,
    *,
    n_bins: int = 10,
    binning: Binning = "equal_mass",
) -> float:
    """Maximum calibration error over all (doc, label) pairs, in [0, 1]; lower is better.

    MCE = max over non-empty bins b of |mean p in b - mean y in b|, on the bins of
    `expected_calibration_error` (same binnings, tie rule and skipped empty bins). The default
    is 10 equal-mass bins, like `ece_em10` (the harness's `mce`): each bin holds about n / 10
    pairs (more where ties merge), so the worst bin is not a handful of stray pairs, as a
    sparse equal-width bin can be. Never below RMSCE. `n_bins=1` gives |mean p - mean y|.
    """
    _, mean_p, mean_y = _bin_means(y_true, probs, n_bins, binning)
    return float(np.max(np.abs(mean_p - mean_y)))


def brier_score(y_true: ArrayLike, probs: ArrayLike) -> float:
    """Mean over all (doc, label) pairs of (p - y)^2, in [0, 1]; lower is better."""
    true = check_binary("y_true", y_true)
    p = check_probs("probs", probs, shape=true.shape)
    return float(np.mean((p - true) ** 2))
