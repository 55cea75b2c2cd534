"""Tests for `lm_eval_mlc.metrics`, each against an independent computation.

References are scikit-learn / SciPy, plain-Python loops written differently from the
implementation, or examples worked on paper in comments.
"""

import math
import re

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import jensenshannon
from sklearn.calibration import calibration_curve

from lm_eval_mlc import metrics
from lm_eval_mlc.metrics import (
    alignment_scores,
    brier_score,
    exact_match,
    expected_calibration_error,
    hamming_loss,
    jaccard,
    maximum_calibration_error,
    multilabel_f1,
    roc_auc,
    root_mean_square_calibration_error,
)

# Our metrics must not warn (e.g. "mean of empty slice") on any input exercised here.
pytestmark = pytest.mark.filterwarnings("error")

AVERAGES = ("micro", "macro", "samples")


def _random_pair(seed: int, n_docs: int, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, (n_docs, n_labels)), rng.integers(0, 2, (n_docs, n_labels))


def _random_probs(seed: int, n_docs: int, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, (n_docs, n_labels)), rng.random((n_docs, n_labels))


def _edge_cases() -> list:
    eye = np.eye(4, dtype=int)
    some_empty = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0], [0, 0, 0]])
    return [
        pytest.param(*_random_pair(0, 20, 5), id="random-seed0"),
        pytest.param(*_random_pair(1, 7, 3), id="random-seed1"),
        pytest.param(*_random_pair(2, 50, 9), id="random-seed2"),
        pytest.param(
            some_empty, np.array([[1, 0, 0], [0, 0, 0], [0, 1, 1], [1, 0, 0]]), id="all-zero-rows"
        ),
        pytest.param(
            np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0]]),
            np.array([[1, 0, 1], [0, 1, 0], [0, 1, 0]]),
            id="label-never-present",
        ),
        pytest.param(np.array([[1, 0, 1, 0]]), np.array([[1, 1, 0, 0]]), id="single-doc"),
        pytest.param(eye, eye.copy(), id="perfect"),
        pytest.param(eye, 1 - eye, id="all-wrong"),
        pytest.param(np.zeros((3, 4), int), np.zeros((3, 4), int), id="all-zero"),
        pytest.param(np.zeros((3, 4), int), np.ones((3, 4), int), id="gold-empty-pred-full"),
    ]


# --- set metrics vs scikit-learn ---------------------------------------------------------


@pytest.mark.parametrize("average", AVERAGES)
@pytest.mark.parametrize(("y_true", "y_pred"), _edge_cases())
def test_f1_and_jaccard_match_sklearn(y_true, y_pred, average):
    f1 = multilabel_f1(y_true, y_pred, average=average)
    jac = jaccard(y_true, y_pred, average=average)
    assert type(f1) is float and type(jac) is float
    assert f1 == pytest.approx(skm.f1_score(y_true, y_pred, average=average, zero_division=0))
    assert jac == pytest.approx(skm.jaccard_score(y_true, y_pred, average=average, zero_division=0))


@pytest.mark.parametrize(("y_true", "y_pred"), _edge_cases())
def test_hamming_and_exact_match_match_sklearn(y_true, y_pred):
    assert hamming_loss(y_true, y_pred) == pytest.approx(skm.hamming_loss(y_true, y_pred))
    assert exact_match(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


def test_jaccard_defaults_to_samples():
    y_true, y_pred = _random_pair(3, 10, 4)
    assert jaccard(y_true, y_pred) == jaccard(y_true, y_pred, average="samples")


def test_single_label_is_multilabel_not_binary():
    # One label; sklearn alone would read a (n, 1) matrix as binary targets.
    # TP = 1 (doc 0), FP = 1 (doc 3), FN = 1 (doc 2), TN = 1 (doc 1).
    # micro = macro F1 = 2TP / (2TP + FP + FN) = 2/4; Jaccard = TP / (TP + FP + FN) = 1/3.
    # samples: per-doc F1 and Jaccard are 1, 0 (empty, zero_division=0), 0, 0 -> 1/4.
    y_true, y_pred = [[1], [0], [1], [0]], [[1], [0], [0], [1]]
    for average, f1, jac in [("micro", 0.5, 1 / 3), ("macro", 0.5, 1 / 3), ("samples", 0.25, 0.25)]:
        assert multilabel_f1(y_true, y_pred, average=average) == pytest.approx(f1)
        assert jaccard(y_true, y_pred, average=average) == pytest.approx(jac)
    assert hamming_loss(y_true, y_pred) == pytest.approx(0.5)
    assert exact_match(y_true, y_pred) == pytest.approx(0.5)


def test_exact_match_hand_worked():
    y_true = [[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 0]]
    y_pred = [[1, 0, 1], [0, 0, 0], [0, 1, 1], [0, 0, 0]]
    # doc 0 equal, doc 1 empty == empty (a match), doc 2 extra label, doc 3 missed both -> 2/4.
    assert exact_match(y_true, y_pred) == 0.5


def test_bool_and_float_binary_inputs_are_accepted():
    y_true, y_pred = _random_pair(4, 12, 5)
    expected = multilabel_f1(y_true, y_pred, average="macro")
    assert multilabel_f1(y_true.astype(bool), y_pred.astype(float), average="macro") == expected


# --- expected calibration error -----------------------------------------------------------


def test_ece_equal_mass_hand_worked():
    # Pairs (p, y) row-major: (.9, 1), (.2, 0), (.4, 0), (.6, 1). Sorted by p: .2 .4 | .6 .9.
    # Bin 0: mean p = .3,  mean y = 0 -> gap .3.   Bin 1: mean p = .75, mean y = 1 -> gap .25.
    # ECE = 2/4 * .3 + 2/4 * .25 = .275.
    y_true, probs = [[1, 0], [0, 1]], [[0.9, 0.2], [0.4, 0.6]]
    assert expected_calibration_error(y_true, probs, n_bins=2) == pytest.approx(0.275)


def test_ece_equal_mass_uneven_split_hand_worked():
    # 5 pairs into 2 bins: array_split gives sizes 3, 2.
    # Bin 0: p .1 .2 .3, y 0 0 1 -> |.2 - 1/3| = 2/15, weight 3/5.
    # Bin 1: p .8 .9,    y 1 1   -> |.85 - 1|  = .15,  weight 2/5.   ECE = .08 + .06 = .14.
    y_true, probs = [[0, 0, 1, 1, 1]], [[0.1, 0.2, 0.3, 0.8, 0.9]]
    assert expected_calibration_error(y_true, probs, n_bins=2) == pytest.approx(0.14)


PROBS_SPARSE = [[0.1, 0.15], [0.9, 1.0]]
Y_SPARSE = [[0, 1], [1, 1]]


def test_ece_equal_width_skips_empty_bins_hand_worked():
    # Bins [0, .25) [.25, .5) [.5, .75) [.75, 1]; the middle two are empty and skipped.
    # Bin 0: p .1 .15, y 0 1 -> |.125 - .5| = .375, weight 2/4.
    # Bin 3: p .9 1.0, y 1 1 -> |.95 - 1|   = .05,  weight 2/4 (1.0 lands in the closed last bin).
    # ECE = .1875 + .025 = .2125.
    ece = expected_calibration_error(Y_SPARSE, PROBS_SPARSE, n_bins=4, binning="equal_width")
    assert ece == pytest.approx(0.2125)


@pytest.mark.parametrize(
    "n_bins", [pytest.param(4, id="one-per-bin"), pytest.param(10, id="n<bins")]
)
def test_ece_equal_mass_with_few_pairs_skips_empty_bins(n_bins):
    # 4 pairs, >= 4 bins: each pair alone, so ECE = mean |p - y| = (.1 + .85 + .1 + 0) / 4.
    ece = expected_calibration_error(Y_SPARSE, PROBS_SPARSE, n_bins=n_bins)
    assert ece == pytest.approx(0.2625)


def test_ece_equal_width_edges_are_exact_fractions():
    # p = k / n_bins opens bin k even where p * n_bins rounds below k (1/49 * 49 < 1 in floats).
    # Width 1/49: bin 0 holds (p=0, y=1), bin 1 holds (p=1/49, y=0): ECE = (1 + 1/49) / 2.
    # Had 1/49 fallen into bin 0, the one bin would give |1/98 - 1/2| = (1 - 1/49) / 2.
    assert (1 / 49) * 49 < 1
    ece = expected_calibration_error([[1, 0]], [[0.0, 1 / 49]], n_bins=49, binning="equal_width")
    assert ece == pytest.approx((1 + 1 / 49) / 2)


@pytest.mark.parametrize("n_bins", [1, 2, 3, 10])
@pytest.mark.parametrize(
    ("p", "n", "k"),
    [
        pytest.param(0.3, 10, 3, id="issue-0.3"),  # binned with ties by y this was 0.42
        pytest.param(0.5, 4, 2, id="half"),
        pytest.param(1 / 49, 49, 1, id="1/49"),  # 1/49 * 49 != 1 in floats
        pytest.param(0.0, 5, 0, id="all-0"),
        pytest.param(1.0, 5, 5, id="all-1"),
    ],
)
def test_ece_constant_calibrated_probability_is_exactly_zero(p, n, k, n_bins):
    # A constant p is one group of ties, so one bin: ECE = |p - k / n|, and p = k / n here.
    y_true = np.zeros((n, 1), int)
    y_true[:k] = 1
    for layout in (y_true, y_true[::-1], y_true.reshape(1, n)):
        probs = np.full(layout.shape, p)
        assert expected_calibration_error(layout, probs, n_bins=n_bins) == 0.0


def test_ece_equal_mass_tie_straddling_an_edge_hand_worked():
    # Sorted p: .1 .2 .2 .2 .8 .9, y: 0 0 1 0 1 1 (the three .2 in any order). 2 bins of 3 by
    # position: 0-2 | 3-5. The .2 run spans positions 1-3 and starts in bin 0, so it goes there
    # whole: bin 0 = {.1, .2, .2, .2}, bin 1 = {.8, .9}.
    # Bin 0: |sum p - sum y| = |.7 - 1| = .3.  Bin 1: |1.7 - 2| = .3.  ECE = (.3 + .3) / 6 = .1.
    # (Ties by y put (.2, 1) in bin 1: |.5 - 0| + |1.9 - 3| = 1.6 -> 0.2667.)
    y_true, probs = [[0, 0, 1, 0, 1, 1]], [[0.1, 0.2, 0.2, 0.2, 0.8, 0.9]]
    assert expected_calibration_error(y_true, probs, n_bins=2) == pytest.approx(0.1)
    # The 1 among the ties moved to another place in the run changes nothing.
    y_moved = [[0, 1, 0, 0, 1, 1]]
    assert expected_calibration_error(y_moved, probs, n_bins=2) == pytest.approx(0.1)


def test_ece_equal_mass_tie_starting_at_an_edge_stays_in_its_bin():
    # Sorted p: .1 .2 | .3 .3 (2 bins of 2): the .3 run starts at position 2, bin 1, unmoved.
    # Bin 0: |.3 - 1| = .7.  Bin 1: |.6 - 1| = .4.  ECE = 1.1 / 4.
    y_true, probs = [[0, 1, 1, 0]], [[0.1, 0.2, 0.3, 0.3]]
    assert expected_calibration_error(y_true, probs, n_bins=2) == pytest.approx(1.1 / 4)


def test_ece_equal_mass_tie_can_empty_a_bin_hand_worked():
    # Sorted p: .1 .4 | .4 .4 | .4 .9 (3 bins of 2). The .4 run starts in bin 0 and takes
    # positions 1-4, so bin 1 is empty and skipped: bin 0 = {.1, .4 x 4}, bin 2 = {.9}.
    # y: .1 -> 0, the .4s -> 1, 0, 1, 0, .9 -> 1.
    # Bin 0: |1.7 - 2| = .3.  Bin 2: |.9 - 1| = .1.  ECE = .4 / 6.
    y_true, probs = [[0, 1, 0, 1, 0, 1]], [[0.1, 0.4, 0.4, 0.4, 0.4, 0.9]]
    assert expected_calibration_error(y_true, probs, n_bins=3) == pytest.approx(0.4 / 6)


def test_ece_equal_mass_hard_predictions_are_two_groups():
    # p in {0, 1}: the 0s are one group (bin 0), the 1s another, in their own bin only if their
    # first sorted position starts a new bin. 10 pairs, 3 bins by position 0-3 | 4-6 | 7-9.
    # Two 0s: the 1s start at position 2, inside bin 0, so all ten pairs share bin 0:
    # ECE = |sum p - sum y| / 10 = |8 - 5| / 10 = .3 (y: the 0s -> 1, 0; the 1s -> four 1s).
    p = np.array([[0, 0, 1, 1, 1, 1, 1, 1, 1, 1]], float)
    y_true = np.array([[1, 0, 1, 1, 1, 1, 0, 0, 0, 0]])
    assert expected_calibration_error(y_true, p, n_bins=3) == pytest.approx(0.3)
    # Four 0s fill bin 0; the 1s start bin 1: ECE = (|0 - 2| + |6 - 3|) / 10 = .5.
    p = np.array([[0, 0, 0, 0, 1, 1, 1, 1, 1, 1]], float)
    y_true = np.array([[1, 1, 0, 0, 1, 1, 1, 0, 0, 0]])
    assert expected_calibration_error(y_true, p, n_bins=3) == pytest.approx(0.5)


def _loop_bins_equal_mass(y_true, probs, n_bins) -> list[list[tuple[float, int]]]:
    """Independent equal-mass bins: Python `sorted` on p, bin sizes by hand, each run of equal p
    in the bin of its first sorted position (`list.index`), then one pass over the pairs."""
    values = sorted(np.ravel(probs).tolist())
    n = len(values)
    position_bin: list[int] = []
    for b in range(n_bins):
        position_bin += [b] * (n // n_bins + (1 if b < n % n_bins else 0))
    bins: dict[int, list] = {}
    for p, y in zip(np.ravel(probs).tolist(), np.ravel(y_true).tolist(), strict=True):
        bins.setdefault(position_bin[values.index(p)], []).append((p, y))
    return list(bins.values())


def _loop_bins_equal_width(y_true, probs, n_bins) -> list[list[tuple[float, int]]]:
    bins: dict[int, list] = {}
    for p, y in zip(np.ravel(probs).tolist(), np.ravel(y_true).tolist(), strict=True):
        bins.setdefault(min(math.floor(p * n_bins), n_bins - 1), []).append((p, y))
    return list(bins.values())


def _loop_scores(chunks) -> tuple[float, float, float]:
    """(ECE, RMSCE, MCE) of non-empty bins of (p, y) pairs, in plain Python."""
    n = sum(len(c) for c in chunks)
    weights, gaps = [], []
    for chunk in chunks:
        mean_p = sum(p for p, _ in chunk) / len(chunk)
        mean_y = sum(y for _, y in chunk) / len(chunk)
        weights.append(len(chunk) / n)
        gaps.append(abs(mean_p - mean_y))
    ece = sum(w * g for w, g in zip(weights, gaps, strict=True))
    rms = math.sqrt(sum(w * g * g for w, g in zip(weights, gaps, strict=True)))
    return ece, rms, max(gaps)


def _ece_loop_equal_mass(y_true, probs, n_bins):
    return _loop_scores(_loop_bins_equal_mass(y_true, probs, n_bins))[0]


def _ece_loop_equal_width(y_true, probs, n_bins):
    return _loop_scores(_loop_bins_equal_width(y_true, probs, n_bins))[0]


@pytest.mark.parametrize(
    ("seed", "shape", "n_bins"),
    [
        pytest.param(0, (30, 5), 10, id="150-pairs-10-bins"),
        pytest.param(1, (7, 3), 4, id="21-pairs-4-bins-uneven"),
        pytest.param(2, (13, 11), 15, id="143-pairs-15-bins"),
        pytest.param(3, (2, 3), 10, id="6-pairs-10-bins"),
    ],
)
def test_ece_matches_loop_reimplementation(seed, shape, n_bins):
    y_true, probs = _random_probs(seed, *shape)
    # Skew p so equal-mass and equal-width bins differ.
    probs = probs**2
    mass = expected_calibration_error(y_true, probs, n_bins=n_bins)
    width = expected_calibration_error(y_true, probs, n_bins=n_bins, binning="equal_width")
    assert mass == pytest.approx(_ece_loop_equal_mass(y_true, probs, n_bins))
    assert width == pytest.approx(_ece_loop_equal_width(y_true, probs, n_bins))


@pytest.mark.parametrize("binning", ["equal_mass", "equal_width"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ece_one_bin_is_gap_of_means(seed, binning):
    y_true, probs = _random_probs(seed, 9, 4)
    ece = expected_calibration_error(y_true, probs, n_bins=1, binning=binning)
    assert ece == pytest.approx(abs(probs.mean() - y_true.mean()))


@pytest.mark.parametrize("binning", ["equal_mass", "equal_width"])
def test_ece_perfect_calibration_is_zero(binning):
    y_true, _ = _random_pair(5, 10, 6)
    assert expected_calibration_error(y_true, y_true.astype(float), binning=binning) == 0.0


# --- RMS and maximum calibration error ----------------------------------------------------

CALIBRATION_METRICS = (
    expected_calibration_error,
    root_mean_square_calibration_error,
    maximum_calibration_error,
)

# Pairs (p, y) row-major: (.1, 0) (.3, 1) (.35, 0) (.7, 0) (.85, 1) (.95, 1), already sorted.
Y_SIX, PROBS_SIX = [[0, 1, 0], [0, 1, 1]], [[0.1, 0.3, 0.35], [0.7, 0.85, 0.95]]


def test_rms_and_max_calibration_error_equal_mass_hand_worked():
    # 3 equal-mass bins of 2 pairs, each weight 1/3:
    #   {.1, .3}:   mean p .2,   mean y .5 -> gap .3
    #   {.35, .7}:  mean p .525, mean y 0  -> gap .525
    #   {.85, .95}: mean p .9,   mean y 1  -> gap .1
    # ECE   = (.3 + .525 + .1) / 3                  = .925 / 3     = .308333...
    # RMSCE = sqrt((.09 + .275625 + .01) / 3)       = sqrt(.125208...) = .353848...
    # MCE   = .525
    args = (Y_SIX, PROBS_SIX)
    assert expected_calibration_error(*args, n_bins=3) == pytest.approx(0.925 / 3)
    assert root_mean_square_calibration_error(*args, n_bins=3) == pytest.approx(
        math.sqrt(0.375625 / 3)
    )
    assert root_mean_square_calibration_error(*args, n_bins=3) == pytest.approx(0.3538479, abs=1e-7)
    assert maximum_calibration_error(*args, n_bins=3) == pytest.approx(0.525)


def test_rms_and_max_calibration_error_equal_width_hand_worked():
    # 2 equal-width bins [0, .5) and [.5, 1], each 3 pairs (weight 1/2):
    #   {.1, .3, .35}:  mean p .75 / 3 = .25,     mean y 1/3 -> gap 1/12
    #   {.7, .85, .95}: mean p 2.5 / 3 = .8333.., mean y 2/3 -> gap 1/6
    # ECE = (1/12 + 1/6) / 2 = .125;  RMSCE = sqrt((1/144 + 1/36) / 2) = sqrt(5/288) = .131762...
    # MCE = 1/6.
    kw = {"n_bins": 2, "binning": "equal_width"}
    assert expected_calibration_error(Y_SIX, PROBS_SIX, **kw) == pytest.approx(0.125)
    rms = root_mean_square_calibration_error(Y_SIX, PROBS_SIX, **kw)
    assert rms == pytest.approx(math.sqrt(5 / 288))
    assert rms == pytest.approx(0.1317616, abs=1e-7)
    assert maximum_calibration_error(Y_SIX, PROBS_SIX, **kw) == pytest.approx(1 / 6)


def test_max_calibration_error_skips_empty_bins_hand_worked():
    # The sparse example of the ECE test above: bins [0, .25) and [.75, 1] hold two pairs each,
    # gaps .375 and .05; the two empty bins between count neither as a gap of 0 nor at all.
    # RMSCE = sqrt((.375^2 + .05^2) / 2) = sqrt(.0715625); MCE = .375.
    kw = {"n_bins": 4, "binning": "equal_width"}
    rms = root_mean_square_calibration_error(Y_SPARSE, PROBS_SPARSE, **kw)
    assert rms == pytest.approx(math.sqrt(0.0715625))
    assert maximum_calibration_error(Y_SPARSE, PROBS_SPARSE, **kw) == pytest.approx(0.375)


def test_rms_and_max_calibration_error_default_to_ten_equal_mass_bins():
    y_true, probs = _random_probs(7, 40, 3)
    probs = probs**3
    for metric in CALIBRATION_METRICS:
        default = metric(y_true, probs)
        assert default == metric(y_true, probs, n_bins=10, binning="equal_mass")
        assert default != metric(y_true, probs, n_bins=10, binning="equal_width")
    assert expected_calibration_error(y_true, probs) == _ece_loop_equal_mass(y_true, probs, 10)


def _histogram_reference(y_true, probs, n_bins) -> tuple[float, float, float]:
    """Equal-width (ECE, RMSCE, MCE): bin counts from `numpy.histogram` (explicit edges k / n,
    the last bin closed), per-bin mean p and mean y from scikit-learn's `calibration_curve`."""
    y, p = np.ravel(y_true), np.ravel(probs)
    counts, _ = np.histogram(p, bins=np.arange(n_bins + 1) / n_bins)
    mean_y, mean_p = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    weights = counts[counts > 0] / p.size
    gaps = np.abs(mean_p - mean_y)
    return (
        float(np.sum(weights * gaps)),
        float(np.sqrt(np.sum(weights * gaps**2))),
        float(gaps.max()),
    )


@pytest.mark.parametrize(
    ("seed", "shape", "n_bins"),
    [
        pytest.param(0, (30, 5), 10, id="150-pairs-10-bins"),
        pytest.param(1, (7, 3), 4, id="21-pairs-4-bins"),
        pytest.param(2, (13, 11), 15, id="143-pairs-15-bins"),
        pytest.param(3, (2, 3), 10, id="6-pairs-10-bins-sparse"),
    ],
)
def test_calibration_errors_match_histogram_and_sklearn_equal_width(seed, shape, n_bins):
    y_true, probs = _random_probs(seed, *shape)
    probs = probs**2  # skewed: some width bins empty, others crowded
    expected = _histogram_reference(y_true, probs, n_bins)
    assert expected == pytest.approx(_loop_scores(_loop_bins_equal_width(y_true, probs, n_bins)))
    got = tuple(m(y_true, probs, n_bins=n_bins, binning="equal_width") for m in CALIBRATION_METRICS)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("seed", "shape", "n_bins"),
    [
        pytest.param(0, (30, 5), 10, id="150-pairs-10-bins"),
        pytest.param(1, (7, 3), 4, id="21-pairs-4-bins-uneven"),
        pytest.param(4, (9, 2), 5, id="18-pairs-5-bins"),
    ],
)
@pytest.mark.parametrize("tied", [False, True], ids=["distinct", "tied"])
def test_calibration_errors_match_loop_reimplementation_equal_mass(seed, shape, n_bins, tied):
    y_true, probs = _random_probs(seed, *shape)
    if tied:  # coarse p: runs of ties straddle the bin edges
        probs = np.round(probs * 4) / 4
    expected = _loop_scores(_loop_bins_equal_mass(y_true, probs, n_bins))
    got = tuple(m(y_true, probs, n_bins=n_bins) for m in CALIBRATION_METRICS)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize("binning", ["equal_mass", "equal_width"])
def test_rms_and_max_calibration_error_one_bin_and_perfect(binning):
    y_true, probs = _random_probs(8, 9, 4)
    for metric in (root_mean_square_calibration_error, maximum_calibration_error):
        assert metric(y_true, probs, n_bins=1, binning=binning) == pytest.approx(
            abs(probs.mean() - y_true.mean())
        )
        assert metric(y_true, y_true.astype(float), binning=binning) == 0.0
        assert metric([[0, 1, 1]], [[2 / 3] * 3], n_bins=3, binning=binning) == 0.0


# --- Brier -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("y_true", "probs"),
    [
        pytest.param(*_random_probs(0, 20, 5), id="random-seed0"),
        pytest.param(*_random_probs(1, 1, 3), id="single-doc"),
        pytest.param(np.zeros((4, 3), int), np.random.default_rng(2).random((4, 3)), id="all-zero"),
        pytest.param(np.ones((2, 2), int), np.full((2, 2), 0.25), id="all-one"),
    ],
)
def test_brier_matches_sklearn(y_true, probs):
    expected = skm.brier_score_loss(np.ravel(y_true), np.ravel(probs), pos_label=1)
    assert brier_score(y_true, probs) == pytest.approx(expected)


# --- alignment with annotators -------------------------------------------------------------


def _alignment_loops(probs, annotator_probs):
    pairs = list(zip(np.ravel(probs).tolist(), np.ravel(annotator_probs).tolist(), strict=True))
    n = len(pairs)
    mae = sum(math.fabs(p - q) for p, q in pairs) / n
    brier = sum((p - q) * (p - q) for p, q in pairs) / n
    bce = 0.0
    for p, q in pairs:
        p = min(max(p, 1e-6), 1 - 1e-6)
        bce -= q * math.log(p) + (1 - q) * math.log(1 - p)
    return mae, brier, bce / n


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_alignment_elementwise_scores_match_loops(seed):
    rng = np.random.default_rng(seed)
    probs, annot = rng.random((12, 5)), rng.random((12, 5))
    probs[0, :2] = [0.0, 1.0]  # exercise the BCE clip
    scores = alignment_scores(probs, annot)
    mae, brier, bce = _alignment_loops(probs, annot)
    assert scores["align_mae"] == pytest.approx(mae)
    assert scores["align_brier"] == pytest.approx(brier)
    assert scores["align_bce"] == pytest.approx(bce)
    expected_js = np.mean(jensenshannon(probs, annot, axis=1, base=2) ** 2)
    assert scores["align_js"] == pytest.approx(expected_js)
    assert scores["align_js_docs"] == 12
    bern = [
        jensenshannon([p, 1 - p], [q, 1 - q], base=2) ** 2
        for p, q in zip(probs.ravel(), annot.ravel(), strict=True)
    ]
    assert scores["align_js_bern"] == pytest.approx(np.mean(bern))


def test_alignment_js_hand_worked():
    # p = [.8, .4, 0] -> P = [2/3, 1/3, 0];  q = [.5, .5, .5] -> Q = [1/3, 1/3, 1/3].
    # M = (P + Q) / 2 = [1/2, 1/3, 1/6].
    # KL(P||M) = 2/3 log2(4/3) + 1/3 log2(1) + 0
    # KL(Q||M) = 1/3 log2(2/3) + 1/3 log2(1) + 1/3 log2(2)
    # JS = (KL(P||M) + KL(Q||M)) / 2
    kl_pm = 2 / 3 * math.log2((2 / 3) / (1 / 2)) + 1 / 3 * math.log2((1 / 3) / (1 / 3))
    kl_qm = sum(1 / 3 * math.log2((1 / 3) / m) for m in (1 / 2, 1 / 3, 1 / 6))
    expected = (kl_pm + kl_qm) / 2
    assert expected == pytest.approx(0.5 * math.log2(4 / 3))
    scores = alignment_scores([[0.8, 0.4, 0.0]], [[0.5, 0.5, 0.5]])
    assert scores["align_js"] == pytest.approx(expected)


def test_alignment_js_skips_docs_with_an_empty_row():
    probs = [[0.0, 0.0, 0.0], [0.8, 0.4, 0.0], [0.2, 0.7, 0.1]]
    annot = [[0.5, 0.5, 0.0], [0.5, 0.5, 0.5], [0.0, 0.0, 0.0]]
    scores = alignment_scores(probs, annot)
    assert scores["align_js_docs"] == 1
    assert type(scores["align_js_docs"]) is int
    assert scores["align_js"] == pytest.approx(0.5 * math.log2(4 / 3))  # only doc 1 counts


def test_alignment_js_is_nan_when_every_doc_is_skipped():
    scores = alignment_scores([[0.0, 0.0], [0.3, 0.1]], [[0.2, 0.4], [0.0, 0.0]])
    assert math.isnan(scores["align_js"])
    assert scores["align_js_docs"] == 0
    finite = ("align_mae", "align_brier", "align_bce", "align_js_bern")
    assert all(math.isfinite(scores[k]) for k in finite)


def test_alignment_identical_is_zero():
    probs = np.random.default_rng(6).random((8, 4))
    scores = alignment_scores(probs, probs.copy())
    assert scores["align_mae"] == scores["align_brier"] == scores["align_js_bern"] == 0.0
    assert scores["align_js"] == pytest.approx(0.0, abs=1e-15)


def test_alignment_js_near_identical_rows_are_not_nan():
    # scipy's jensenshannon takes sqrt of rounding noise below 0 here and returns NaN.
    rng = np.random.default_rng(7)
    probs = rng.random((500, 6))
    annot = np.clip(probs * (1 + rng.normal(0, 1e-15, probs.shape)), 0, 1)
    js = alignment_scores(probs, annot)["align_js"]
    assert 0.0 <= js < 1e-12


# Exactly 0 and 1, subnormals, and values within 1e-16 .. 1e-5 of either end.
_BERN_VALUES = (
    0.0, 1.0, 5e-324, 1e-300, 1e-16, 1e-9, 1e-5, 0.25, 0.3, 0.5,
    1 - 1e-5, 1 - 1e-9, 1 - 2**-53,
)  # fmt: skip


def _bern_js_hand(p: float, q: float) -> float:
    """Base-2 JS between Bern(p) and Bern(q) from the definition, 0 log 0 = 0 (plain floats)."""

    def kl_to_mid(a: list[float], b: list[float]) -> float:
        return sum(x * math.log2(2 * x / (x + y)) for x, y in zip(a, b, strict=True) if x > 0)

    p2, q2 = [p, 1 - p], [q, 1 - q]
    return (kl_to_mid(p2, q2) + kl_to_mid(q2, p2)) / 2


@pytest.mark.parametrize("q", _BERN_VALUES)
@pytest.mark.parametrize("p", _BERN_VALUES)
def test_align_js_bern_matches_scipy_elementwise(p, q):
    ours = alignment_scores([[p]], [[q]])["align_js_bern"]
    assert math.isfinite(ours) and 0.0 <= ours <= 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = jensenshannon([p, 1 - p], [q, 1 - q], base=2) ** 2
    if math.isfinite(ref):
        # SciPy loses ~1e-7 relative near 0 and 1 (its 1 - p); ours is no less exact.
        assert ours == pytest.approx(ref, rel=1e-6, abs=1e-15)
    else:
        # SciPy: sqrt of rounding noise below 0 (NaN), or M underflowing beside 5e-324 (inf),
        # only for near-identical distributions, where the divergence is below 1e-15.
        assert abs(p - q) < 1e-15 and ours <= 1e-15
    assert ours == pytest.approx(_bern_js_hand(p, q), rel=1e-6, abs=1e-15)


def test_align_js_bern_hand_worked():
    # Bern(.5) vs Bern(0): P = [.5, .5], Q = [0, 1], M = [.25, .75].
    # KL(P||M) = .5 log2 2 + .5 log2(2/3) = 1 - .5 log2 3;  KL(Q||M) = log2(4/3) = 2 - log2 3.
    # JS = (3 - 1.5 log2 3) / 2 = 1.5 - .75 log2 3.  Bern(0) vs Bern(1): disjoint, JS = 1.
    # Doc 0 has no label chosen by anyone and by the model: JS 0 for both labels, yet counted.
    probs = [[0.0, 0.0], [0.5, 0.0]]
    annot = [[0.0, 0.0], [0.0, 1.0]]
    scores = alignment_scores(probs, annot)
    assert scores["align_js_bern"] == pytest.approx((1.5 - 0.75 * math.log2(3) + 1.0) / 4)
    assert scores["align_js_docs"] == 1  # align_js sees doc 1 only


# --- ROC AUC -------------------------------------------------------------------------------


@pytest.mark.parametrize("average", ["micro", "macro"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_sklearn(seed, average):
    y_true, probs = _random_probs(seed, 40, 6)
    expected = skm.roc_auc_score(y_true, probs, average=average)
    assert roc_auc(y_true, probs, average=average) == pytest.approx(expected)


def test_roc_auc_macro_excludes_constant_columns():
    y_true, probs = _random_probs(8, 30, 5)
    y_true[:, 1], y_true[:, 3] = 0, 1
    keep = [0, 2, 4]
    expected = skm.roc_auc_score(y_true[:, keep], probs[:, keep], average="macro")
    assert roc_auc(y_true, probs, average="macro") == pytest.approx(expected)
    # Micro pools every pair, constant columns included.
    expected_micro = skm.roc_auc_score(y_true.ravel(), probs.ravel())
    assert roc_auc(y_true, probs, average="micro") == pytest.approx(expected_micro)


def test_roc_auc_macro_single_defined_column_is_binary_auc():
    y_true, probs = _random_probs(9, 20, 3)
    y_true[:, [0, 2]] = 0
    expected = skm.roc_auc_score(y_true[:, 1], probs[:, 1])
    assert roc_auc(y_true, probs, average="macro") == pytest.approx(expected)


@pytest.mark.parametrize(
    ("y_true", "average"),
    [
        pytest.param([[0, 1], [0, 1]], "macro", id="macro-all-columns-constant"),
        pytest.param([[0, 0], [0, 0]], "micro", id="micro-all-zero"),
        pytest.param([[1, 1], [1, 1]], "micro", id="micro-all-one"),
    ],
)
def test_roc_auc_undefined_is_nan(y_true, average):
    assert math.isnan(roc_auc(y_true, [[0.2, 0.9], [0.4, 0.1]], average=average))


# --- validation ----------------------------------------------------------------------------

Y = np.array([[1, 0, 1, 0], [0, 1, 0, 0], [1, 1, 0, 1]])
P = np.full((3, 4), 0.5)


def _with(value, at=(0, 0)):
    out = P.copy()
    out[at] = value
    return out


@pytest.mark.parametrize(
    ("call", "match"),
    [
        pytest.param(
            lambda: multilabel_f1(Y, np.zeros((3, 5)), average="micro"),
            r"`y_pred` to have shape \(n_docs, n_labels\) = \(3, 4\), but got \(3, 5\)",
            id="shape-mismatch",
        ),
        pytest.param(
            lambda: hamming_loss([1, 0, 1], [1, 0, 1]),
            r"`y_true` to have shape \(n_docs, n_labels\) .* but got \(3,\)",
            id="1-d",
        ),
        pytest.param(
            lambda: exact_match(np.zeros((0, 3)), np.zeros((0, 3))),
            r"`y_true` .* n_docs, n_labels >= 1, but got \(0, 3\)",
            id="no-docs",
        ),
        pytest.param(
            lambda: jaccard([[1, 0], [1]], [[1, 0], [1, 0]]), r"`y_true` .* ragged", id="ragged"
        ),
        pytest.param(
            lambda: brier_score([["a", "b"]], [[0.1, 0.2]]),
            r"`y_true` to hold bools or real numbers",
            id="strings",
        ),
        pytest.param(
            lambda: multilabel_f1(Y * 2, Y, average="macro"),
            r"`y_true` to be 0 or 1, but got 2",
            id="y_true-not-binary",
        ),
        pytest.param(
            lambda: hamming_loss(Y, Y * 0.5),
            r"`y_pred` to be 0 or 1, but got 0.5",
            id="y_pred-not-binary",
        ),
        pytest.param(
            lambda: brier_score(Y, _with(1.5)),
            r"`probs` to be in \[0, 1\], but got 1.5",
            id="probs-above-1",
        ),
        pytest.param(
            lambda: expected_calibration_error(Y, _with(-0.1)),
            r"`probs` to be in \[0, 1\], but got -0.1",
            id="probs-below-0",
        ),
        pytest.param(
            lambda: roc_auc(Y, _with(np.nan), average="micro"),
            r"`probs` to be finite, but got nan",
            id="probs-nan",
        ),
        pytest.param(
            lambda: alignment_scores(P, _with(np.inf)),
            r"`annotator_probs` to be finite, but got inf",
            id="annotator-inf",
        ),
        pytest.param(
            lambda: alignment_scores(P, P[:2]),
            r"`annotator_probs` to have shape .* = \(3, 4\), but got \(2, 4\)",
            id="annotator-shape",
        ),
        pytest.param(
            lambda: multilabel_f1(Y, Y, average="weighted"),
            re.escape(
                "Expected argument `average` to be one of "
                "('micro', 'macro', 'samples'), but got 'weighted'."
            ),
            id="f1-average",
        ),
        pytest.param(
            lambda: jaccard(Y, Y, average="binary"), r"argument `average`", id="jaccard-average"
        ),
        pytest.param(
            lambda: roc_auc(Y, P, average="samples"),
            re.escape("`average` to be one of ('micro', 'macro'), but got 'samples'"),
            id="roc-average",
        ),
        pytest.param(
            lambda: expected_calibration_error(Y, P, binning="quantile"),
            r"argument `binning` to be one of \('equal_mass', 'equal_width'\)",
            id="binning",
        ),
        pytest.param(
            lambda: multilabel_f1([[2]], [[0]], average="x"),
            r"argument `average`",
            id="options-checked-before-arrays",
        ),
    ],
)
def test_validation_errors_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("n_bins", [0, -1, 2.5, True, "10", None])
def test_ece_rejects_bad_n_bins(n_bins):
    with pytest.raises(ValueError, match=r"Expected argument `n_bins` to be an int >= 1"):
        expected_calibration_error(Y, P, n_bins=n_bins)


def test_ece_accepts_numpy_int_n_bins():
    assert expected_calibration_error(Y, P, n_bins=np.int64(3)) == expected_calibration_error(
        Y, P, n_bins=3
    )


def test_probs_within_tolerance_are_clipped():
    assert brier_score([[1, 0]], [[1 + 1e-12, -1e-12]]) == 0.0
    with pytest.raises(ValueError, match="`probs` to be in"):
        brier_score([[1, 0]], [[1 + 1e-6, 0.0]])


def test_all_is_sorted_and_complete():
    assert metrics.__all__ == sorted(metrics.__all__)
    assert all(callable(getattr(metrics, name)) for name in metrics.__all__)


# --- properties ----------------------------------------------------------------------------

PROPERTY = settings(max_examples=60, deadline=None)


@st.composite
def _problems(draw, min_labels=1):
    """(y_true, y_pred, probs, annotator_probs) of one random shape."""
    shape = (draw(st.integers(1, 8)), draw(st.integers(min_labels, 6)))
    binary = arrays(np.int64, shape, elements=st.integers(0, 1))
    # Mostly tied values, as with hard predictions, mixed with arbitrary ones.
    unit = arrays(np.float64, shape, elements=st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 1))
    return draw(binary), draw(binary), draw(unit), draw(unit)


def _all_metrics(y_true, y_pred, probs, annot) -> dict[str, float]:
    out: dict[str, float] = {
        "hamming": hamming_loss(y_true, y_pred),
        "exact": exact_match(y_true, y_pred),
        "brier": brier_score(y_true, probs),
        "roc_micro": roc_auc(y_true, probs, average="micro"),
        "roc_macro": roc_auc(y_true, probs, average="macro"),
        **alignment_scores(probs, annot),
    }
    for average in AVERAGES:
        out[f"f1_{average}"] = multilabel_f1(y_true, y_pred, average=average)
        out[f"jaccard_{average}"] = jaccard(y_true, y_pred, average=average)
    for binning in ("equal_mass", "equal_width"):
        for n_bins in (1, 3, 10):
            kw = {"n_bins": n_bins, "binning": binning}
            out[f"ece_{binning}_{n_bins}"] = expected_calibration_error(y_true, probs, **kw)
            out[f"rmsce_{binning}_{n_bins}"] = root_mean_square_calibration_error(
                y_true, probs, **kw
            )
            out[f"mce_{binning}_{n_bins}"] = maximum_calibration_error(y_true, probs, **kw)
    return out


@PROPERTY
@given(_problems())
def test_bounded_metrics_lie_in_unit_interval(problem):
    for name, value in _all_metrics(*problem).items():
        if name.startswith(("f1", "jaccard", "hamming", "exact", "ece", "rmsce", "mce", "brier")):
            assert 0.0 <= value <= 1.0, name


@PROPERTY
@given(_problems(), st.randoms(use_true_random=False))
def test_every_metric_is_invariant_to_permuting_docs_and_labels(problem, rnd):
    n_docs, n_labels = problem[0].shape
    docs, labels = rnd.sample(range(n_docs), n_docs), rnd.sample(range(n_labels), n_labels)
    before = _all_metrics(*problem)
    after = _all_metrics(*(m[docs][:, labels] for m in problem))
    for name, value in before.items():
        assert after[name] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), name


@PROPERTY
@given(_problems(min_labels=2))
def test_set_metrics_agree_with_sklearn(problem):
    y_true, y_pred, _, _ = problem
    for average in AVERAGES:
        expected = skm.f1_score(y_true, y_pred, average=average, zero_division=0)
        assert multilabel_f1(y_true, y_pred, average=average) == pytest.approx(expected)
        expected = skm.jaccard_score(y_true, y_pred, average=average, zero_division=0)
        assert jaccard(y_true, y_pred, average=average) == pytest.approx(expected)
    assert hamming_loss(y_true, y_pred) == pytest.approx(skm.hamming_loss(y_true, y_pred))
    assert exact_match(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))


@PROPERTY
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))),
       st.integers(1, 12), st.randoms(use_true_random=False))  # fmt: skip
def test_ece_constant_calibrated_p_is_zero_in_any_order(n_k, n_bins, rnd):
    n, k = n_k
    y = [1] * k + [0] * (n - k)
    rnd.shuffle(y)
    probs = np.full((1, n), k / n)
    for binning in ("equal_mass", "equal_width"):
        assert expected_calibration_error([y], probs, n_bins=n_bins, binning=binning) == 0.0


@PROPERTY
@given(_problems(), st.integers(1, 12), st.randoms(use_true_random=False))
def test_ece_equal_mass_is_invariant_to_shuffling_pairs(problem, n_bins, rnd):
    # Mostly tied p: bins must follow p alone, not the order pairs come in.
    y_true, _, probs, _ = problem
    order = rnd.sample(range(probs.size), probs.size)
    y2, p2 = y_true.ravel()[order][None, :], probs.ravel()[order][None, :]
    assert expected_calibration_error(y2, p2, n_bins=n_bins) == pytest.approx(
        expected_calibration_error(y_true, probs, n_bins=n_bins), abs=1e-12
    )


@PROPERTY
@given(_problems(), st.integers(1, 12))
def test_ece_equal_mass_agrees_with_loop(problem, n_bins):
    y_true, _, probs, _ = problem
    expected = _ece_loop_equal_mass(y_true, probs, n_bins)
    assert expected_calibration_error(y_true, probs, n_bins=n_bins) == pytest.approx(expected)


@PROPERTY
@given(_problems(), st.integers(1, 12), st.sampled_from(["equal_mass", "equal_width"]))
def test_ece_rmsce_mce_are_ordered(problem, n_bins, binning):
    # Over the same bins with weights n_b / n summing to 1: the weighted mean of the gaps is at
    # most their weighted root mean square (Jensen), which is at most the largest gap.
    y_true, _, probs, _ = problem
    ece, rms, mce = (m(y_true, probs, n_bins=n_bins, binning=binning) for m in CALIBRATION_METRICS)
    assert all(type(v) is float and 0.0 <= v <= 1.0 for v in (ece, rms, mce))
    assert ece <= rms + 1e-12
    assert rms <= mce + 1e-12
    expected = _loop_scores(
        (_loop_bins_equal_mass if binning == "equal_mass" else _loop_bins_equal_width)(
            y_true, probs, n_bins
        )
    )
    # Equal width in plain Python bins by floor(p * n_bins), which may round across an edge
    # k / n_bins that the metric compares exactly: compare only where no p lies near an edge.
    near_edge = np.abs(probs * n_bins - np.round(probs * n_bins)) < 1e-9
    if binning == "equal_mass" or not (near_edge & (probs > 0) & (probs < 1)).any():
        assert (ece, rms, mce) == pytest.approx(expected, abs=1e-12)
