"""Property tests (hypothesis) for the metric core, the bootstrap fast path and step strategies.

The systematic matrix of issue 6: bounds, perfect and complementary predictions, agreement with
scikit-learn / SciPy on random inputs, exactly the documented NaNs on degenerate inputs, and a
`ValueError` naming the argument for every kind of bad array. `tests/test_metrics.py` holds the
hand-worked cases and the row/column permutation property; this file does not repeat them.
"""

import math

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from lm_eval_mlc.core.strategies import (
    STEP_STRATEGIES,
    first_token_renormalised,
    step_records,
    step_strategies,
)
from lm_eval_mlc.harness import records as harness
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
from lm_eval_mlc.metrics._alignment import BCE_EPS
from lm_eval_mlc.metrics._checks import PROB_TOLERANCE
from lm_eval_mlc.reports.bootstrap import _SET_METRICS, _set_metric_draws

pytestmark = pytest.mark.filterwarnings("error")

PROPERTY = settings(max_examples=40, deadline=None)
AVERAGES = ("micro", "macro", "samples")
BINNINGS = ("equal_mass", "equal_width")


# --- strategies ------------------------------------------------------------------------------


@st.composite
def _shapes(draw) -> tuple[int, int]:
    """(n_docs, n_labels): single docs and single labels are frequent at this size."""
    return draw(st.integers(1, 8)), draw(st.integers(1, 6))


def _binary(shape: tuple[int, int]) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.int64, shape, elements=st.integers(0, 1))


def _unit(shape: tuple[int, int], *, subnormal: bool = True) -> st.SearchStrategy[np.ndarray]:
    """Probabilities, often tied at 0, 1/2, 1 (hard predictions) or at the extremes of floats."""
    special = st.sampled_from([0.0, 0.5, 1.0, 1 - 2**-53] + ([5e-324] if subnormal else []))
    return arrays(np.float64, shape, elements=special | st.floats(0, 1, allow_subnormal=subnormal))


@st.composite
def _degenerate(draw, y: np.ndarray) -> np.ndarray:
    """`y` with some of: all-zero rows, columns (a label never present), or all zero / all one."""
    y = y.copy()
    n_docs, n_labels = y.shape
    kind = draw(st.sampled_from(["none", "zero-rows", "zero-cols", "all-zero", "all-one"]))
    if kind == "zero-rows":
        y[draw(st.lists(st.integers(0, n_docs - 1), min_size=1))] = 0
    elif kind == "zero-cols":
        y[:, draw(st.lists(st.integers(0, n_labels - 1), min_size=1))] = 0
    elif kind in ("all-zero", "all-one"):
        y[:] = int(kind == "all-one")
    return y


@st.composite
def _set_problems(draw) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred), each independently degenerate or not; single doc / label included."""
    shape = draw(_shapes())
    return draw(_degenerate(draw(_binary(shape)))), draw(_degenerate(draw(_binary(shape))))


@st.composite
def _prob_problems(draw) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, probs) with possibly degenerate gold."""
    shape = draw(_shapes())
    return draw(_degenerate(draw(_binary(shape)))), draw(_unit(shape))


# --- set metrics -----------------------------------------------------------------------------


def _set_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    out = {"hamming": hamming_loss(y_true, y_pred), "exact": exact_match(y_true, y_pred)}
    for average in AVERAGES:
        out[f"f1_{average}"] = multilabel_f1(y_true, y_pred, average=average)
        out[f"jaccard_{average}"] = jaccard(y_true, y_pred, average=average)
    return out


@PROPERTY
@given(_set_problems())
def test_set_metrics_are_finite_floats_in_unit_interval_on_degenerate_inputs(problem):
    for name, value in _set_metrics(*problem).items():
        assert type(value) is float, name
        assert 0.0 <= value <= 1.0, name


@PROPERTY
@given(_set_problems())
def test_set_metrics_agree_with_sklearn_on_degenerate_inputs(problem):
    y_true, y_pred = problem
    n_labels = y_true.shape[1]
    scores = _set_metrics(y_true, y_pred)
    assert scores["hamming"] == pytest.approx(skm.hamming_loss(y_true.ravel(), y_pred.ravel()))
    if n_labels == 1:
        # sklearn reads one column as binary targets: micro = macro = binary F1 of that column,
        # and each doc's set is {label} or {}, so a doc scores 1 only when both hold the label.
        t, p = y_true[:, 0], y_pred[:, 0]
        for name, ref in (("f1", skm.f1_score), ("jaccard", skm.jaccard_score)):
            binary = ref(t, p, average="binary", zero_division=0)
            assert scores[f"{name}_micro"] == pytest.approx(binary)
            assert scores[f"{name}_macro"] == pytest.approx(binary)
            assert scores[f"{name}_samples"] == pytest.approx(np.mean(t & p))
        assert scores["exact"] == pytest.approx(skm.accuracy_score(t, p))
        return
    for average in AVERAGES:
        f1 = skm.f1_score(y_true, y_pred, average=average, zero_division=0)
        jac = skm.jaccard_score(y_true, y_pred, average=average, zero_division=0)
        assert scores[f"f1_{average}"] == pytest.approx(f1), average
        assert scores[f"jaccard_{average}"] == pytest.approx(jac), average
    assert scores["exact"] == pytest.approx(skm.accuracy_score(y_true, y_pred))


@PROPERTY
@given(_shapes().flatmap(_binary).flatmap(_degenerate))
def test_perfect_prediction_scores_best_under_zero_division_policy(y_true):
    scores = _set_metrics(y_true, y_true.copy())
    assert scores["hamming"] == 0.0
    assert scores["exact"] == 1.0
    # zero_division=0: a label (macro) or doc (samples) with nothing to find scores 0, even
    # when predicted perfectly; micro is 0 only when there is no positive at all.
    expected = {
        "micro": float(y_true.any()),
        "macro": y_true.any(axis=0).mean(),
        "samples": y_true.any(axis=1).mean(),
    }
    for average, value in expected.items():
        assert scores[f"f1_{average}"] == pytest.approx(value), average
        assert scores[f"jaccard_{average}"] == pytest.approx(value), average


@PROPERTY
@given(_shapes().flatmap(_binary).flatmap(_degenerate))
def test_complementary_prediction_scores_worst(y_true):
    scores = _set_metrics(y_true, 1 - y_true)
    assert scores["hamming"] == 1.0
    assert scores["exact"] == 0.0
    for average in AVERAGES:
        assert scores[f"f1_{average}"] == 0.0
        assert scores[f"jaccard_{average}"] == 0.0


# --- calibration and Brier -------------------------------------------------------------------


def _ece(y_true: np.ndarray, probs: np.ndarray, n_bins: int, binning: str) -> float:
    return expected_calibration_error(y_true, probs, n_bins=n_bins, binning=binning)


@PROPERTY
@given(_prob_problems(), st.integers(1, 12), st.sampled_from(BINNINGS))
def test_ece_lies_between_one_bin_gap_and_mean_absolute_error(problem, n_bins, binning):
    # Triangle inequality: |sum_b S_b| <= sum_b |S_b| <= sum |p - y|, S_b = sum_b (p - y).
    y_true, probs = problem
    ece = _ece(y_true, probs, n_bins, binning)
    assert type(ece) is float
    lower = abs(probs.mean() - y_true.mean())
    upper = np.abs(probs - y_true).mean()
    assert lower - 1e-12 <= ece <= upper + 1e-12
    assert 0.0 <= ece <= 1.0


@PROPERTY
@given(_prob_problems(), st.sampled_from(BINNINGS))
def test_ece_one_bin_and_one_pair_per_bin_are_the_bounds(problem, binning):
    y_true, probs = problem
    assert _ece(y_true, probs, 1, binning) == pytest.approx(abs(probs.mean() - y_true.mean()))
    # Equal mass with at least as many bins as pairs gives each position its own bin, and each
    # run of equal p the bin of its first position: one bin per distinct p, never split.
    groups: dict[float, list[float]] = {}
    for p, y in zip(probs.ravel().tolist(), y_true.ravel().tolist(), strict=True):
        groups.setdefault(p, []).append(p - y)
    expected = sum(abs(math.fsum(gaps)) for gaps in groups.values()) / probs.size
    assert _ece(y_true, probs, probs.size, "equal_mass") == pytest.approx(expected, abs=1e-12)
    if len(groups) == probs.size:  # no ties: each pair alone, ECE = mean |p - y|
        mae = np.abs(probs - y_true).mean()
        assert _ece(y_true, probs, probs.size, "equal_mass") == pytest.approx(mae)


@PROPERTY
@given(_prob_problems(), st.integers(1, 12), st.sampled_from(BINNINGS))
def test_rmsce_and_mce_lie_between_their_bounds(problem, n_bins, binning):
    # Within a bin (mean of p - y)^2 <= mean of (p - y)^2, so RMSCE <= sqrt(Brier); a bin's
    # |mean gap| <= its largest |p - y|, so MCE <= max |p - y|. Both are >= ECE >= one-bin gap.
    y_true, probs = problem
    kw = {"n_bins": n_bins, "binning": binning}
    rms = root_mean_square_calibration_error(y_true, probs, **kw)
    mce = maximum_calibration_error(y_true, probs, **kw)
    assert type(rms) is float and type(mce) is float
    ece = _ece(y_true, probs, n_bins, binning)
    assert ece - 1e-12 <= rms <= math.sqrt(np.mean((probs - y_true) ** 2)) + 1e-12
    assert rms - 1e-12 <= mce <= np.abs(probs - y_true).max() + 1e-12
    assert 0.0 <= mce <= 1.0


@PROPERTY
@given(_prob_problems(), st.integers(1, 12), st.randoms(use_true_random=False))
def test_ece_depends_only_on_the_multiset_of_pairs(problem, n_bins, rnd):
    # The docstring promises bins that depend on p only (a run of equal p is never split): so
    # any shuffle of the flattened (p, y) pairs, in any matrix shape, gives the same ECE.
    y_true, probs = problem
    order = rnd.sample(range(probs.size), probs.size)
    shape = rnd.choice([(1, probs.size), (probs.size, 1), probs.shape])
    y2, p2 = y_true.ravel()[order].reshape(shape), probs.ravel()[order].reshape(shape)
    for binning in BINNINGS:
        assert _ece(y2, p2, n_bins, binning) == pytest.approx(
            _ece(y_true, probs, n_bins, binning), abs=1e-12
        ), binning


@PROPERTY
@given(_prob_problems(), st.integers(1, 12))
def test_ece_equal_width_matches_loop_over_float_edges(problem, n_bins):
    # Bin k holds p with k / n_bins <= p < (k + 1) / n_bins, edges as floats, last bin closed.
    y_true, probs = problem
    sums: dict[int, list[float]] = {}
    for p, y in zip(probs.ravel().tolist(), y_true.ravel().tolist(), strict=True):
        k = sum(1 for edge in range(1, n_bins) if edge / n_bins <= p)
        sums.setdefault(k, [0.0, 0.0])
        sums[k][0] += p
        sums[k][1] += y
    expected = sum(abs(sp - sy) for sp, sy in sums.values()) / probs.size
    assert _ece(y_true, probs, n_bins, "equal_width") == pytest.approx(expected, abs=1e-12)


@PROPERTY
@given(_shapes().flatmap(_binary).flatmap(_degenerate), st.integers(1, 12))
def test_ece_and_brier_perfect_and_complementary(y_true, n_bins):
    perfect, wrong = y_true.astype(float), 1.0 - y_true
    for binning in BINNINGS:
        assert _ece(y_true, perfect, n_bins, binning) == 0.0
    assert brier_score(y_true, perfect) == 0.0
    assert brier_score(y_true, wrong) == 1.0
    # Every pair is off by 1; bins can only hide it by mixing pairs, so alone in a bin it shows.
    assert _ece(y_true, wrong, y_true.size, "equal_mass") == 1.0


@PROPERTY
@given(_prob_problems(), st.integers(1, 12), st.randoms(use_true_random=False))
def test_ece_gold_may_move_freely_among_tied_probabilities(problem, n_bins, rnd):
    # A run of equal p lies in one bin whatever its gold labels, so shuffling y among the pairs
    # that share a p leaves every bin's sums, and ECE, unchanged.
    y_true, probs = problem
    p, y = probs.ravel(), y_true.ravel().copy()
    for value in np.unique(p):
        members = np.flatnonzero(p == value).tolist()
        y[members] = y[rnd.sample(members, len(members))]
    for binning in BINNINGS:
        assert _ece(y.reshape(y_true.shape), probs, n_bins, binning) == pytest.approx(
            _ece(y_true, probs, n_bins, binning), abs=1e-12
        ), binning


@PROPERTY
@given(_prob_problems())
def test_brier_agrees_with_sklearn(problem):
    y_true, probs = problem
    brier = brier_score(y_true, probs)
    assert type(brier) is float and 0.0 <= brier <= 1.0
    assert brier == pytest.approx(skm.mean_squared_error(y_true.ravel(), probs.ravel()))


# --- ROC AUC ---------------------------------------------------------------------------------


@PROPERTY
@given(_prob_problems())
def test_roc_auc_agrees_with_sklearn_and_is_nan_exactly_when_undefined(problem):
    y_true, probs = problem
    micro = roc_auc(y_true, probs, average="micro")
    macro = roc_auc(y_true, probs, average="macro")
    assert type(micro) is float and type(macro) is float
    flat = y_true.ravel()
    if flat.min() == flat.max():
        assert math.isnan(micro)
    else:
        assert micro == pytest.approx(skm.roc_auc_score(flat, probs.ravel()))
        assert 0.0 <= micro <= 1.0
    defined = y_true.min(axis=0) != y_true.max(axis=0)
    if not defined.any():
        assert math.isnan(macro)
    else:
        per_label = [skm.roc_auc_score(y_true[:, j], probs[:, j]) for j in np.flatnonzero(defined)]
        assert macro == pytest.approx(np.mean(per_label))
        assert 0.0 <= macro <= 1.0


@PROPERTY
@given(_shapes().flatmap(_binary).flatmap(_degenerate))
def test_roc_auc_perfect_is_one_and_complementary_is_zero(y_true):
    for average in ("micro", "macro"):
        best = roc_auc(y_true, y_true.astype(float), average=average)
        worst = roc_auc(y_true, 1.0 - y_true, average=average)
        if math.isnan(best):  # undefined: checked against the docstring above
            assert math.isnan(worst)
        else:
            assert (best, worst) == (1.0, 0.0)


# --- alignment with annotators ---------------------------------------------------------------


@st.composite
def _alignment_problems(draw, subnormal: bool = True) -> tuple[np.ndarray, np.ndarray]:
    shape = draw(_shapes())
    p, q = draw(_unit(shape, subnormal=subnormal)), draw(_unit(shape, subnormal=subnormal))
    # Empty rows, where align_js has no distribution (align_js_bern has), in either argument.
    for m in (p, q):
        if draw(st.booleans()):
            m[draw(st.lists(st.integers(0, shape[0] - 1), min_size=1))] = 0.0
    return p, q


@PROPERTY
@given(_alignment_problems())
def test_alignment_bounds_and_documented_nan(problem):
    p, q = problem
    scores = alignment_scores(p, q)
    empty = (p.sum(axis=1) == 0) | (q.sum(axis=1) == 0)
    assert scores["align_js_docs"] == int((~empty).sum())
    assert type(scores["align_js_docs"]) is int
    for key in ("align_mae", "align_brier", "align_js_bern"):
        assert 0.0 <= scores[key] <= 1.0, key
    assert 0.0 <= scores["align_bce"] <= -math.log(BCE_EPS) + 1e-9
    # Gibbs: the cross-entropy of q against any p is at least the entropy of q.
    h = np.mean([entropy([a, 1 - a]) for a in q.ravel()])
    assert scores["align_bce"] >= h - 1e-12
    if empty.all():
        assert math.isnan(scores["align_js"])
    else:
        assert 0.0 <= scores["align_js"] <= 1.0


@PROPERTY
@given(_alignment_problems(subnormal=False))
def test_alignment_agrees_with_sklearn_and_scipy(problem):
    p, q = problem
    scores = alignment_scores(p, q)
    assert scores["align_mae"] == pytest.approx(skm.mean_absolute_error(q.ravel(), p.ravel()))
    assert scores["align_brier"] == pytest.approx(skm.mean_squared_error(q.ravel(), p.ravel()))
    # BCE = cross-entropy H(q, p) = H(q) + KL(q || p) per (doc, label), p clipped.
    c = np.clip(p.ravel(), BCE_EPS, 1 - BCE_EPS)
    qs = q.ravel()
    bce = [
        entropy([a, 1 - a]) + entropy([a, 1 - a], [b, 1 - b]) for a, b in zip(qs, c, strict=True)
    ]
    assert scores["align_bce"] == pytest.approx(np.mean(bce))
    with np.errstate(invalid="ignore"):  # SciPy: sqrt of rounding noise below 0 is NaN
        bern = [
            jensenshannon([a, 1 - a], [b, 1 - b], base=2) ** 2
            for a, b in zip(p.ravel(), q.ravel(), strict=True)
        ]
    assert scores["align_js_bern"] == pytest.approx(np.mean(np.nan_to_num(bern)), abs=1e-12)
    kept = (p.sum(axis=1) > 0) & (q.sum(axis=1) > 0)
    assume(kept.any())
    with np.errstate(invalid="ignore"):  # SciPy: sqrt of rounding noise below 0 is NaN
        ref = np.nan_to_num(jensenshannon(p[kept], q[kept], axis=1, base=2)) ** 2
    assert scores["align_js"] == pytest.approx(ref.mean(), abs=1e-12)


@PROPERTY
@given(_alignment_problems())
def test_alignment_perfect_and_complementary(problem):
    p, _ = problem
    same = alignment_scores(p, p.copy())
    assert same["align_mae"] == same["align_brier"] == same["align_js_bern"] == 0.0
    kept = p.sum(axis=1) > 0
    if kept.any():
        assert same["align_js"] == pytest.approx(0.0, abs=1e-12)
    # At p == q the BCE is the mean binary entropy of q, up to the clip of p to [1e-6, 1 - 1e-6]
    # (KL(q || clip(q)) <= -ln(1 - 1e-6) ~ 1e-6 per pair).
    h = np.mean([entropy([a, 1 - a]) for a in p.ravel()])
    assert same["align_bce"] == pytest.approx(h, abs=2 * BCE_EPS)
    # Hard annotators, model says the opposite: every distance is maximal.
    q = (p > 0.5).astype(float)
    worst = alignment_scores(1.0 - q, q)
    assert worst["align_mae"] == worst["align_brier"] == 1.0
    assert worst["align_js_bern"] == pytest.approx(1.0)  # Bern(0) vs Bern(1) on every pair
    disjoint = (q.sum(axis=1) > 0) & ((1 - q).sum(axis=1) > 0)
    if disjoint.any():
        assert worst["align_js"] == pytest.approx(1.0)
    assert worst["align_js_docs"] == int(disjoint.sum())


def test_alignment_js_is_finite_beside_the_smallest_subnormal():
    # Regression: M = (P + Q) / 2 underflows to 0 at [1, 0] vs [1, 5e-324], so Q ln(Q / M) was
    # inf (as it still is in SciPy). The true divergence is of the order of 5e-324, i.e. 0.
    assert math.isinf(jensenshannon([1.0, 0.0], [1.0, 5e-324], base=2))
    assert alignment_scores([[1.0, 0.0]], [[1.0, 5e-324]])["align_js"] == pytest.approx(0.0)
    # The same beside 0 and 1 for the per-label Bernoulli divergence, in either argument.
    for p, q in ((0.0, 5e-324), (5e-324, 0.0), (1.0, 1 - 2**-53), (5e-324, 1.0)):
        bern = alignment_scores([[p]], [[q]])["align_js_bern"]
        assert math.isfinite(bern) and 0.0 <= bern <= 1.0
    assert alignment_scores([[5e-324]], [[1.0]])["align_js_bern"] == pytest.approx(1.0)


# --- validation ------------------------------------------------------------------------------

_BAD_BINARY = st.sampled_from([np.nan, np.inf, -np.inf, 2.0, -1.0, 0.5, 1 + 1e-12])
_BAD_PROB = (
    st.sampled_from([np.nan, np.inf, -np.inf])
    | st.floats(1 + 10 * PROB_TOLERANCE, 1e300)
    | st.floats(-1e300, -10 * PROB_TOLERANCE)
)

#: (call, names of its two array arguments in order); a name ending in `probs` is in [0, 1].
_METRICS = [
    pytest.param(lambda a, b: multilabel_f1(a, b, average="micro"), ("y_true", "y_pred"), id="f1"),
    pytest.param(lambda a, b: jaccard(a, b), ("y_true", "y_pred"), id="jaccard"),
    pytest.param(hamming_loss, ("y_true", "y_pred"), id="hamming"),
    pytest.param(exact_match, ("y_true", "y_pred"), id="exact"),
    pytest.param(expected_calibration_error, ("y_true", "probs"), id="ece"),
    pytest.param(root_mean_square_calibration_error, ("y_true", "probs"), id="rmsce"),
    pytest.param(maximum_calibration_error, ("y_true", "probs"), id="mce"),
    pytest.param(brier_score, ("y_true", "probs"), id="brier"),
    pytest.param(lambda a, b: roc_auc(a, b, average="macro"), ("y_true", "probs"), id="roc"),
    pytest.param(alignment_scores, ("probs", "annotator_probs"), id="alignment"),
]


def _valid(names: tuple[str, ...], shape: tuple[int, int]) -> list[np.ndarray]:
    return [np.zeros(shape) if n.endswith("probs") else np.eye(*shape) for n in names]


@pytest.mark.parametrize(("call", "names"), _METRICS)
@settings(max_examples=10, deadline=None)
@given(shape=_shapes(), data=st.data())
def test_one_bad_entry_raises_value_error_naming_the_argument(call, names, shape, data):
    which = data.draw(st.integers(0, 1))
    args = _valid(names, shape)
    bad = data.draw(_BAD_PROB if names[which].endswith("probs") else _BAD_BINARY)
    at = (data.draw(st.integers(0, shape[0] - 1)), data.draw(st.integers(0, shape[1] - 1)))
    args[which][at] = bad
    with pytest.raises(ValueError, match=rf"^Expected `{names[which]}` to be "):
        call(*args)


@pytest.mark.parametrize(("call", "names"), _METRICS)
@settings(max_examples=10, deadline=None)
@given(shape=_shapes(), other=_shapes())
def test_shape_mismatch_raises_value_error_on_the_second_argument(call, names, shape, other):
    assume(shape != other)
    first, _ = _valid(names, shape)
    _, second = _valid(names, other)
    with pytest.raises(ValueError, match=rf"`{names[1]}` to have shape .* = \({shape[0]}, "):
        call(first, second)


@pytest.mark.parametrize(("call", "names"), _METRICS)
@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(np.zeros(3), id="1-d"),
        pytest.param(np.zeros((2, 2, 2)), id="3-d"),
        pytest.param(np.zeros((0, 2)), id="no-docs"),
        pytest.param(np.zeros((2, 0)), id="no-labels"),
        pytest.param(np.array([[None, 0.0]]), id="object"),
        pytest.param(np.array([[1 + 0j, 0j]]), id="complex"),
    ],
)
def test_non_matrix_first_argument_is_rejected(call, names, bad):
    with pytest.raises(ValueError, match=rf"^Expected `{names[0]}` to "):
        call(bad, bad)


def test_probability_tolerance_boundary():
    # Within PROB_TOLERANCE outside [0, 1] is clipped; ten times further is an error.
    assert brier_score([[1, 0]], [[1 + PROB_TOLERANCE / 2, -PROB_TOLERANCE / 2]]) == 0.0
    with pytest.raises(ValueError, match=r"`probs` to be in \[0, 1\]"):
        brier_score([[1, 0]], [[1 + 10 * PROB_TOLERANCE, 0.0]])


# --- harness aggregations and the bootstrap fast path ----------------------------------------


def _records(y_true: np.ndarray, y_pred: np.ndarray) -> list[dict[str, list[int]]]:
    return [
        {"y_true": t.tolist(), "y_pred": p.tolist()} for t, p in zip(y_true, y_pred, strict=True)
    ]


@settings(max_examples=30, deadline=None)
@given(problem=_set_problems(), data=st.data())
def test_bootstrap_fast_path_equals_harness_aggregation_on_resamples(problem, data):
    items = _records(*problem)
    n = len(items)
    draws = data.draw(
        arrays(np.int64, (data.draw(st.integers(1, 6)), n), elements=st.integers(0, n - 1))
    )
    for name in _SET_METRICS:
        aggregate = getattr(harness, name)
        slow = [aggregate([items[i] for i in idx]) for idx in draws]
        np.testing.assert_allclose(_set_metric_draws(name, items, draws), slow, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(problem=_set_problems())
def test_harness_set_aggregations_are_the_metric_core(problem):
    y_true, y_pred = problem
    items = _records(y_true, y_pred)
    expected = {
        "micro_f1": multilabel_f1(y_true, y_pred, average="micro"),
        "macro_f1": multilabel_f1(y_true, y_pred, average="macro"),
        "samples_f1": multilabel_f1(y_true, y_pred, average="samples"),
        "jaccard": jaccard(y_true, y_pred, average="samples"),
        "exact_match": exact_match(y_true, y_pred),
        "hamming_loss": hamming_loss(y_true, y_pred),
    }
    assert {name: getattr(harness, name)(items) for name in expected} == expected


# --- step distributions ----------------------------------------------------------------------

_LOGP = st.floats(max_value=0.0) | st.just(-np.inf)  # finite or -inf log-probabilities


@st.composite
def _steps(draw):
    """(complete_logp, step_labels, path_logp, n_labels), with empty step lists and -inf rows."""
    n_labels = draw(st.integers(1, 5))
    n_steps = draw(st.integers(0, 4))
    logp = draw(arrays(np.float64, (n_steps, n_labels), elements=_LOGP))
    for k in draw(st.lists(st.integers(0, max(n_steps - 1, 0)), max_size=n_steps)):
        logp[k] = -np.inf  # the model put no mass on any label here
    labels = draw(st.lists(st.integers(-1, n_labels - 1), min_size=n_steps, max_size=n_steps))
    path = draw(st.lists(_LOGP, min_size=n_steps, max_size=n_steps))
    return logp, labels, path, n_labels


def _in_unit(values) -> bool:
    arr = np.asarray(values, dtype=float)
    return bool(np.all(np.isfinite(arr)) and np.all((arr >= 0) & (arr <= 1)))


@settings(max_examples=60, deadline=None)
@given(_steps())
def test_step_strategies_are_probabilities_for_any_log_probabilities(steps):
    logp, labels, path, n_labels = steps
    out = step_strategies(logp, labels, path, n_labels)
    assert set(out) == set(STEP_STRATEGIES)
    for name, probs in out.items():
        assert len(probs) == n_labels and _in_unit(probs), name
    if not labels:
        assert all(p == [0.0] * n_labels for p in out.values())
    joint, conditional = np.asarray(out["joint"]), np.asarray(out["conditional"])
    # joint = P(path) * conditional <= conditional <= max_over_steps, label by label; joint
    # goes through math.exp and the others through np.exp, which differ by an ulp at times.
    assert np.all(joint <= conditional * (1 + 1e-12))
    assert np.all(conditional <= np.asarray(out["max_over_steps"]))
    never = np.setdiff1d(np.arange(n_labels), labels)
    assert not joint[never].any() and not conditional[never].any()


@settings(max_examples=60, deadline=None)
@given(_steps(), st.data())
def test_step_records_probabilities_stay_finite(steps, data):
    logp, labels, _, n_labels = steps
    # Label j starts with token first_tokens[j]; labels sharing a token share its log-prob,
    # read here from column first_tokens[j] of `logp` (all -inf rows stay all -inf).
    first_tokens = data.draw(
        st.lists(st.integers(0, n_labels - 1), min_size=n_labels, max_size=n_labels)
    )
    first = logp[:, first_tokens]
    # A valid step distribution puts mass <= 1 on the labels: renormalise with a "none" outcome.
    complete = logp - np.logaddexp(0.0, np.logaddexp.reduce(logp, axis=1, keepdims=True))
    names = [f"l{j}" for j in range(n_labels)]
    positions = list(range(len(labels)))
    keys = np.tile(first_tokens, (len(labels), 1))
    records = step_records(complete, first, first, keys, labels, positions, names)
    assert len(records) == len(labels)
    for record in records:
        for key in ("probs", "first_token_probs"):
            assert _in_unit(record[key]), key
        assert _in_unit([record["none"], record["top1"]])
        assert math.isfinite(record["entropy_bits"]) and record["entropy_bits"] >= 0


def test_first_token_renormalised_without_mass_is_zero_not_nan():
    # Regression: logaddexp of all -inf is -inf, and -inf - -inf made every entry NaN.
    out = first_token_renormalised(np.array([-np.inf, -np.inf, -np.inf]), [5, 5, 6])
    assert out.tolist() == [0.0, 0.0, 0.0]
