"""Uncertainty decision rules: scores, choices, threshold fitting, and a validation→test run."""

import math

import numpy as np
import pytest
from scipy.special import digamma

from lm_eval_mlc.core.rules import (
    choose,
    fit_threshold,
    logtoku_aleatoric,
    predict,
    rule_score,
)


def test_logtoku_aleatoric_by_hand():
    # Top-2 of (3, 1, -2): alpha = (3, 1), alpha0 = 4.
    expected = -(0.75 * (digamma(4) - digamma(5)) + 0.25 * (digamma(2) - digamma(5)))
    assert logtoku_aleatoric([3.0, -2.0, 1.0], k=2) == pytest.approx(expected)
    assert logtoku_aleatoric([-1.0, -3.0]) == 0.0  # no evidence at all
    # Evidence split evenly is more ambiguous than evidence on one label.
    assert logtoku_aleatoric([5.0, 5.0], k=2) > logtoku_aleatoric([9.0, 1.0], k=2)


def test_rule_scores_read_the_first_step():
    step = {"probs": [0.6, 0.3, 0.05], "entropy_bits": 1.2, "first_token_logits": [4.0, 2.0, 0.0]}
    assert rule_score(step, "prob") == pytest.approx(0.3)
    assert rule_score(step, "entropy") == 1.2
    assert rule_score(step, "logtoku") == pytest.approx(logtoku_aleatoric([4.0, 2.0, 0.0]))
    with pytest.raises(ValueError, match="`rule`"):
        rule_score(step, "vibes")


def test_choose_takes_the_runner_up_only_when_uncertain():
    assert choose([0.2, 0.7, 0.1], score=0.5, threshold=0.6).tolist() == [0, 1, 0]
    assert choose([0.2, 0.7, 0.1], score=0.6, threshold=0.6).tolist() == [1, 1, 0]


def test_fit_threshold_maximises_micro_f1_on_the_fitting_docs():
    probs = np.array([[0.6, 0.4], [0.9, 0.1], [0.5, 0.45]])
    y = np.array([[1, 1], [1, 0], [1, 1]])
    scores = probs[:, 1]  # the prob rule
    # Threshold 0.4 adds the runner-up to docs 0 and 2 (both right) but not doc 1: F1 = 1.
    assert fit_threshold(probs, scores, y) == pytest.approx(0.4)
    assert predict(probs, scores, 0.4).tolist() == y.tolist()
    # Nobody multi-label: never add a second label.
    assert math.isinf(fit_threshold(probs, scores, np.array([[1, 0], [1, 0], [1, 0]])))


@pytest.mark.slow
def test_rules_fit_on_validation_and_report_on_test(smollm2_lm, data_dir):
    from lm_eval import simple_evaluate

    from lm_eval_mlc.harness.plugin import task_manager
    from lm_eval_mlc.reports.rules import fit_and_report

    def run(split):
        smollm2_lm.batch_size_per_gpu = 4
        meta = {"data_dir": str(data_dir), "eval_split": split}
        out = simple_evaluate(
            model=smollm2_lm, tasks=["goemotions_ml"], limit=4, num_fewshot=2,
            log_samples=True, task_manager=task_manager(metadata=meta),
        )  # fmt: skip
        return [s for s in out["samples"]["goemotions_ml"] if s["filter"] == "generated"]

    validation, test = run("validation"), run("test")
    assert {s["doc"]["id"] for s in validation}.isdisjoint(s["doc"]["id"] for s in test)
    report = fit_and_report(validation, test)
    assert set(report) == {"prob", "entropy", "logtoku"}
    for row in report.values():
        assert 0.0 <= row["micro_f1"] <= 1.0 and row["n_test"] >= 1
    # The thresholds depend on the validation docs only: corrupting test gold changes none.
    for sample in test:
        sample["doc"] = {**sample["doc"], "labels": []}
    again = fit_and_report(validation, test)
    assert {r: v["threshold"] for r, v in again.items()} == {
        r: v["threshold"] for r, v in report.items()
    }
