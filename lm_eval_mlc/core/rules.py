"""Uncertainty decision rules: predict the top label, and the runner-up too when uncertain.

Each rule turns the first label step of a generation into an uncertainty score; a doc gets its
top-1 label, plus the top-2 label when the score reaches a threshold. Thresholds are fitted on
a validation run (maximising micro-F1) and only then applied to a test run; `fit_threshold`
never sees the data it is scored on. Scores:

* `prob`: P(runner-up label), exact, at the first step;
* `entropy`: entropy (bits) of the first step's distribution over labels and "none";
* `logtoku`: aleatoric uncertainty from top-k logit evidence (LogTokU, Ma et al. 2025):
  alpha_i = max(z_i, 0) over the k largest label first-token logits z, alpha_0 = sum alpha_i,
  AU = -sum_i (alpha_i / alpha_0) * (digamma(alpha_i + 1) - digamma(alpha_0 + 1)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy.special import digamma

from lm_eval_mlc import metrics

Rule = Literal["prob", "entropy", "logtoku"]
RULES: tuple[Rule, ...] = ("prob", "entropy", "logtoku")


def logtoku_aleatoric(logits: Sequence[float], k: int = 5) -> float:
    """LogTokU aleatoric uncertainty of the k largest logits (0 when no logit is positive, or
    when the step has no first-token logits)."""
    top = np.sort(np.asarray(logits, dtype=float))[::-1][:k]
    alpha = np.maximum(top, 0.0)
    alpha0 = alpha.sum()
    if alpha0 <= 0:
        return 0.0
    return float(-np.sum(alpha / alpha0 * (digamma(alpha + 1) - digamma(alpha0 + 1))))


def rule_score(step: Mapping[str, Any], rule: Rule) -> float:
    """The uncertainty score of one first step (a payload step record)."""
    if rule == "prob":
        return float(np.sort(step["probs"])[-2]) if len(step["probs"]) > 1 else 0.0
    if rule == "entropy":
        return float(step["entropy_bits"])
    if rule == "logtoku":
        logits = [z for z in step["first_token_logits"] or () if z is not None]
        return logtoku_aleatoric(logits)
    raise ValueError(f"Expected argument `rule` to be one of {RULES}, but got {rule!r}.")


def choose(probs: Sequence[float], score: float, threshold: float) -> np.ndarray:
    """0/1 vector: the top label, and the runner-up too when `score >= threshold`."""
    order = np.argsort(-np.asarray(probs, dtype=float), kind="stable")
    out = np.zeros(len(probs), dtype=int)
    out[order[: 2 if score >= threshold and len(probs) > 1 else 1]] = 1
    return out


def predict(first_probs: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """(n_docs, n_labels) predictions of one rule at one threshold."""
    return np.stack([choose(p, s, threshold) for p, s in zip(first_probs, scores, strict=True)])


def fit_threshold(first_probs: np.ndarray, scores: np.ndarray, y_true: np.ndarray) -> float:
    """Threshold maximising micro-F1 on these (validation) docs; ties go to the higher one.

    Candidates are every observed score and +inf (never add a second label).
    """
    candidates = np.append(np.unique(scores), np.inf)
    f1 = [
        metrics.multilabel_f1(y_true, predict(first_probs, scores, t), average="micro")
        for t in candidates
    ]
    best = max(f1)
    return float(max(t for t, v in zip(candidates, f1, strict=True) if v == best))
