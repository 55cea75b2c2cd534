"""Unary prompting: one yes/no question per label, scored from log-likelihoods.

The `*_unary` tasks ask, for each label, whether it is reasonable for the text, and read
P(yes | label) from the model's log-likelihoods, so they run on any backend that gives
log-likelihoods (`hf`, `hf-mlc`, vLLM, `local-completions`). They are lm-eval
`multiple_choice` tasks with one context (instructions + text + question) shared by all labels
and two continuations per label, `" <label>? Yes"` and `" <label>? No"`. The label tokens are
a common prefix of both continuations, so they cancel::

    ll_yes - ll_no = log P(Yes | ctx, label?) - log P(No | ctx, label?)
    P(yes | label) = sigmoid(ll_yes - ll_no) = P(Yes) / (P(Yes) + P(No))

(renormalised over the two answers). Every request of a doc starts with the same context, but
the backends do not share it: `hf` reuses a context's pass only for one-token continuations, and
vLLM skips its prefix cache when prompt log-probabilities are requested.

`process_results` turns the 2 x n_labels results into the same per-doc record as
:func:`lm_eval_mlc.harness.records.process_results` (predicted set: P(yes) >= 0.5), so the same
aggregations apply. `invalid_label_rate` has no meaning here and is not reported;
`nonfinite_pairs` counts label questions whose log-likelihoods were NaN/inf (P(yes) = 0 there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from lm_eval_mlc.core import registry
from lm_eval_mlc.core.parsing import to_indicator

ANSWERS = ("Yes", "No")
THRESHOLD = 0.5

#: The record metrics a unary task reports (the generative ones minus invalid_label_rate).
UNARY_METRIC_KEYS: tuple[str, ...] = tuple(
    m.name for m in registry.task_metrics("unary") if m.record
)


def doc_to_choice(doc: Mapping[str, Any]) -> list[str]:
    """`"<label>? Yes"`, `"<label>? No"` for every label, in label-set order."""
    return [f"{name}? {answer}" for name in doc["label_names"] for answer in ANSWERS]


def doc_to_target(doc: Mapping[str, Any]) -> str:
    """One answered question about the doc, shown when it is a few-shot demonstration.

    A doc with gold labels shows one of them with "Yes" on about half of the docs and a label
    it lacks with "No" otherwise (picked by a hash of the id, so runs are reproducible); a doc
    without labels, or with all of them, shows the one answer it can.
    """
    names = list(doc["label_names"])
    gold = [name for name in names if name in set(doc["labels"])]
    other = [name for name in names if name not in set(doc["labels"])]
    pick = int(hashlib.sha256(str(doc["id"]).encode("utf-8")).hexdigest(), 16)
    if gold and (not other or pick % 2 == 0):
        return f"{gold[pick // 2 % len(gold)]}? {ANSWERS[0]}"
    return f"{other[pick // 2 % len(other)]}? {ANSWERS[1]}"


def yes_probabilities(loglikelihoods: Sequence[float]) -> np.ndarray:
    """P(yes) per label from the (yes, no) log-likelihood pairs, in `doc_to_choice` order.

    A pair with no defined difference (NaN from a broken checkpoint, or both -inf) gives 0:
    the label is not predicted; `nonfinite_pairs` counts such pairs.
    """
    pairs = np.asarray(loglikelihoods, dtype=float).reshape(-1, 2)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(expit(pairs[:, 0] - pairs[:, 1]), nan=0.0)


def nonfinite_pairs(loglikelihoods: Sequence[float]) -> int:
    """How many (yes, no) pairs hold a NaN or infinite log-likelihood."""
    pairs = np.asarray(loglikelihoods, dtype=float).reshape(-1, 2)
    return int((~np.isfinite(pairs)).any(axis=1).sum())


def process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """The doc's record for every metric; `results` are (loglikelihood, is_greedy) per choice."""
    names = list(doc["label_names"])
    if len(results) != 2 * len(names):
        raise ValueError(
            f"Expected {2 * len(names)} log-likelihoods (yes and no per label), "
            f"but got {len(results)}."
        )
    loglikelihoods = [ll for ll, _ in results]
    probs = yes_probabilities(loglikelihoods)
    record = {
        "y_true": to_indicator(doc["labels"], names).tolist(),
        "y_pred": (probs >= THRESHOLD).astype(int).tolist(),
        "probs": probs.tolist(),
        "annotator_probs": list(doc.get("annotator_probs") or []),
        "n_items": 0,
        "n_invalid": 0,
    }
    return dict.fromkeys(UNARY_METRIC_KEYS, record) | {
        "nonfinite_pairs": nonfinite_pairs(loglikelihoods)
    }
