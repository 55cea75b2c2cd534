"""Unary prompting: choices, few-shot targets and P(yes) records from log-likelihoods."""

import math

import numpy as np
import pytest

from lm_eval_mlc.harness import records as harness
from lm_eval_mlc.harness.unary import (
    UNARY_METRIC_KEYS,
    doc_to_choice,
    doc_to_target,
    process_results,
    yes_probabilities,
)

DOC = {
    "id": "d1",
    "text": "t",
    "labels": ["joy", "fear"],
    "label_names": ["joy", "anger", "fear"],
    "annotator_probs": [0.5, 0.0, 1.0],
}


def test_two_choices_per_label_in_label_order() -> None:
    assert doc_to_choice(DOC) == [
        "joy? Yes", "joy? No", "anger? Yes", "anger? No", "fear? Yes", "fear? No",
    ]  # fmt: skip


def test_yes_probability_is_the_two_way_softmax() -> None:
    # ll(" joy? Yes") = log P(joy?) + log P(Yes | joy?), and likewise for No: log P(joy?)
    # cancels. P(Yes | .) = 0.6, P(No | .) = 0.2 -> 0.6 / 0.8 = 0.75 whatever P(joy?) is.
    label = math.log(0.01)
    lls = [label + math.log(0.6), label + math.log(0.2)]
    assert yes_probabilities(lls) == pytest.approx([0.75])
    assert yes_probabilities([0.0, 0.0, -1.0, 0.0]) == pytest.approx([0.5, 1 / (1 + math.e)])


def test_record_matches_the_generative_format() -> None:
    # joy: P(yes) = 0.75 -> on; anger: equal lls -> 0.5, on at the >= 0.5 threshold;
    # fear: 0.2 / (0.2 + 0.8) = 0.2 -> off.
    lls = [math.log(0.6), math.log(0.2), -3.0, -3.0, math.log(0.2), math.log(0.8)]
    out = process_results(DOC, [(ll, False) for ll in lls])
    assert set(UNARY_METRIC_KEYS) == set(harness.METRIC_KEYS) - {"invalid_label_rate"}
    assert set(out) == {*UNARY_METRIC_KEYS, "nonfinite_pairs"} and out["nonfinite_pairs"] == 0
    record = out["micro_f1"]
    assert record["y_true"] == [1, 0, 1]
    assert record["y_pred"] == [1, 1, 0]
    assert record["probs"] == pytest.approx([0.75, 0.5, 0.2])
    assert record["annotator_probs"] == [0.5, 0.0, 1.0]
    # The harness aggregations take unary records as they are: TP 1, FP 1, FN 1.
    assert harness.micro_f1([record]) == pytest.approx(0.5)
    assert harness.align_mae([record]) == pytest.approx(np.mean([0.25, 0.5, 0.8]))


def test_wrong_number_of_results() -> None:
    with pytest.raises(ValueError, match="Expected 6 log-likelihoods"):
        process_results(DOC, [(0.0, False)] * 4)


def test_few_shot_target_is_one_answered_question() -> None:
    targets = {doc_to_target({**DOC, "id": f"d{i}"}) for i in range(40)}
    # Gold labels are answered Yes, the missing one No; both kinds occur across docs.
    assert targets == {"joy? Yes", "fear? Yes", "anger? No"}
    assert doc_to_target({**DOC, "labels": []}) in {"joy? No", "anger? No", "fear? No"}
    every = {**DOC, "labels": ["joy", "anger", "fear"]}
    assert doc_to_target(every).endswith("? Yes")
    assert doc_to_target(DOC) == doc_to_target(dict(DOC))  # deterministic
