"""The lm-eval adapters: per-doc records from generations, corpus aggregations over them."""

import logging
import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from lm_eval_mlc import metrics
from lm_eval_mlc.harness import records as harness

NAMES = ["joy", "anger", "fear"]


def _doc(labels, annotator_probs=()):
    return {"labels": labels, "label_names": NAMES, "annotator_probs": list(annotator_probs)}


def _records(docs_and_outputs):
    return [harness.process_results(doc, [out])["micro_f1"] for doc, out in docs_and_outputs]


def test_process_results_builds_one_record_for_every_metric():
    results = harness.process_results(_doc(["joy"]), [' ["Joy", "angr", "banana"]'])
    assert set(results) == set(harness.METRIC_KEYS)
    record = results["micro_f1"]
    assert all(results[key] is record for key in harness.METRIC_KEYS)
    assert record["y_true"] == [1, 0, 0]
    assert record["y_pred"] == [1, 1, 0]  # "angr" is a near miss of anger
    assert record["probs"] == [1.0, 1.0, 0.0]  # plain text: probabilities are the parsed set
    assert (record["n_items"], record["n_invalid"]) == (3, 1)


def test_doc_to_target_is_the_answer_format_the_prompt_asks_for():
    assert harness.doc_to_target(_doc(["joy", "fear"])) == '["joy", "fear"]'
    assert harness.doc_to_target(_doc([])) == "[]"


def test_aggregations_equal_sklearn_on_the_parsed_sets():
    records = _records(
        [
            (_doc(["joy"]), '["joy"]'),
            (_doc(["joy", "anger"]), '["anger", "fear"]'),
            (_doc([]), "none"),
            (_doc(["fear"]), "[]"),
        ]
    )
    y_true = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 1]])
    y_pred = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [0, 0, 0]])
    for average in ("micro", "macro", "samples"):
        expected = f1_score(y_true, y_pred, average=average, zero_division=0)
        assert getattr(harness, f"{average}_f1")(records) == pytest.approx(expected)
    assert harness.exact_match(records) == pytest.approx(2 / 4)
    assert harness.hamming_loss(records) == pytest.approx(3 / 12)
    assert harness.brier(records) == pytest.approx(3 / 12)  # 0/1 probabilities: Brier = Hamming
    assert harness.invalid_label_rate(records) == 0.0


def test_invalid_label_rate_pools_items_over_docs():
    records = _records([(_doc(["joy"]), "joy, banana, kiwi"), (_doc([]), '["fear"]')])
    assert harness.invalid_label_rate(records) == pytest.approx(2 / 4)
    assert harness.invalid_label_rate(_records([(_doc([]), "")])) == 0.0


def test_alignment_is_computed_when_every_doc_has_annotators():
    records = _records(
        [(_doc(["joy"], [0.75, 0.25, 0.0]), '["joy"]'), (_doc([], [0.0, 0.5, 0.0]), "[]")]
    )
    # |p - q| over six pairs: .25 + .25 + 0 + 0 + .5 + 0 = 1.0
    assert harness.align_mae(records) == pytest.approx(1.0 / 6)
    assert harness.align_brier(records) == pytest.approx((0.0625 * 2 + 0.25) / 6)


def test_alignment_without_annotators_is_nan_with_one_warning(caplog):
    harness._warned.clear()
    records = _records([(_doc(["joy"]), '["joy"]'), (_doc([]), "[]")])
    with caplog.at_level(logging.WARNING, logger="lm_eval_mlc.harness.records"):
        values = [getattr(harness, k)(records) for k in harness.METRIC_KEYS if "align" in k]
    assert all(math.isnan(v) for v in values)
    warnings = [r for r in caplog.records if "per-annotator" in r.getMessage()]
    assert len(warnings) == 1
    assert "2 of 2 docs" in warnings[0].getMessage()


CALIBRATION_KEYS = ("ece_em10", "ece_ew10", "ece_1bin", "rms_ce", "mce", "ece")


def _prob_records(seed: int, n_docs: int) -> tuple[list, np.ndarray, np.ndarray]:
    """Records of a probability view (as hf-mlc's strategies give), with their y and p."""
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, (n_docs, len(NAMES)))
    probs = rng.random((n_docs, len(NAMES))) ** 2  # skewed, so the two binnings differ
    records = [
        harness.process_results(
            _doc([name for name, on in zip(NAMES, y, strict=True) if on]),
            [{"strategy": "first_step", "text": "[]", "probs": p.tolist(), "threshold": 0.5}],
        )["ece_em10"]
        for y, p in zip(y_true, probs, strict=True)
    ]
    return records, y_true, probs


@pytest.mark.parametrize(("seed", "n_docs"), [(0, 4), (1, 9), (2, 40)])
def test_calibration_aggregations_equal_the_functional_metrics(seed, n_docs):
    records, y_true, probs = _prob_records(seed, n_docs)
    ece = metrics.expected_calibration_error
    expected = {
        "ece_em10": ece(y_true, probs, n_bins=10, binning="equal_mass"),
        "ece_ew10": ece(y_true, probs, n_bins=10, binning="equal_width"),
        "ece_1bin": ece(y_true, probs, n_bins=1),
        "rms_ce": metrics.root_mean_square_calibration_error(
            y_true, probs, n_bins=10, binning="equal_mass"
        ),
        "mce": metrics.maximum_calibration_error(y_true, probs, n_bins=10, binning="equal_mass"),
    }
    got = {key: getattr(harness, key)(records) for key in CALIBRATION_KEYS}
    for key, value in expected.items():
        assert got[key] == value, key
    assert got["ece"] == got["ece_em10"]  # the deprecated alias: the same number, exactly
    assert got["ece_1bin"] == pytest.approx(abs(probs.mean() - y_true.mean()))
    assert got["ece_em10"] <= got["rms_ce"] <= got["mce"]
    if n_docs >= 9:  # enough pairs for the equal-width bins to differ from the equal-mass ones
        assert got["ece_em10"] != got["ece_ew10"]


def test_calibration_keys_are_listed_lower_is_better_with_ece_as_alias():
    assert all(harness.HIGHER_IS_BETTER[key] is False for key in CALIBRATION_KEYS)
    assert harness.DEPRECATED_ALIASES == {"ece": "ece_em10"}
    assert set(CALIBRATION_KEYS) <= set(harness.METRIC_KEYS)
    assert "deprecated" in harness.ece.__doc__.lower() and "ece_em10" in harness.ece.__doc__
