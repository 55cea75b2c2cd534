"""Fit the uncertainty decision rules on a validation run, report them on a test run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lm_eval_mlc import metrics
from lm_eval_mlc.core.parsing import to_indicator
from lm_eval_mlc.core.payload import load_payload
from lm_eval_mlc.core.rules import RULES, fit_threshold, predict, rule_score


def first_steps(samples: Sequence[dict[str, Any]]) -> tuple[np.ndarray, list[dict], np.ndarray]:
    """(gold matrix, first step of each doc, first-step probs) from hf-mlc logged samples.

    Docs whose answer had no label step at all (no '[' either) are skipped: no rule applies.
    """
    gold, steps = [], []
    for sample in samples:
        payload = load_payload(sample["resps"][0][0])
        if payload is None:
            raise ValueError(
                f"Sample of doc {sample['doc_id']} is plain text; decision rules need hf-mlc runs."
            )
        if payload["steps"]:
            doc = sample["doc"]
            gold.append(to_indicator(doc["labels"], doc["label_names"]))
            steps.append(payload["steps"][0])
    return np.array(gold), steps, np.array([s["probs"] for s in steps])


def fit_and_report(
    validation: Sequence[dict[str, Any]], test: Sequence[dict[str, Any]]
) -> dict[str, dict[str, float]]:
    """Per rule: the threshold fitted on `validation` and F1 of its predictions on `test`."""
    y_val, steps_val, probs_val = first_steps(validation)
    y_test, steps_test, probs_test = first_steps(test)
    report = {}
    for rule in RULES:
        scores_val = np.array([rule_score(s, rule) for s in steps_val])
        threshold = fit_threshold(probs_val, scores_val, y_val)
        scores_test = np.array([rule_score(s, rule) for s in steps_test])
        pred = predict(probs_test, scores_test, threshold)
        report[rule] = {
            "threshold": threshold,
            **{
                f"{avg}_f1": metrics.multilabel_f1(y_test, pred, average=avg)
                for avg in ("micro", "macro", "samples")
            },
            "two_label_rate": float((pred.sum(axis=1) == 2).mean()),
            "n_validation": len(steps_val),
            "n_test": len(steps_test),
        }
    return report
