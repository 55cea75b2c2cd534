"""Thin lm-eval adapters around the metric core: per-doc records and corpus aggregations.

`process_results` turns one generation into a *record* (plain lists, JSON-serialisable so
`--log_samples` keeps it); every metric key of a task holds the same record and its
aggregation stacks the records into arrays and calls a pure function from
:mod:`lm_eval_mlc.metrics`. Task YAMLs point at these with `!function`, so the tasks run on any
generating model (`hf`, `vllm`, API models), not only on `hf-mlc`.

Each response reaches `process_results` through one strategy filter (`lm_eval_mlc.harness.filters`):
the `generated` view scores the parsed answer, whose probabilities are the parsed set (0/1), so
ECE and Brier measure the hard predictions; the other views (from `hf-mlc` payloads) carry
real P(label), thresholded into the predicted set. The `generated` view of a payload also yields
per-step diagnostics (entropy, top-1 mass, suppression), aggregated over docs.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lm_eval_mlc import metrics
from lm_eval_mlc.core import registry
from lm_eval_mlc.core.parsing import parse_labels, to_indicator

logger = logging.getLogger(__name__)

Record = dict[str, Any]

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        logger.warning(message)


def doc_to_target(doc: Mapping[str, Any]) -> str:
    """The gold answer in the format the prompt asks for: a JSON list of label names."""
    return json.dumps(list(doc["labels"]))


def process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """The doc's record for every metric, plus step diagnostics, under one strategy view.

    `results[0]` is a view from `StrategyFilter`, None when the response lacks that strategy
    (no metrics then), or plain text when a task uses no strategy filters.
    """
    view = results[0]
    if view is None:
        return {}
    if isinstance(view, str):
        view = {"strategy": "generated", "text": view}
    names = list(doc["label_names"])
    parsed = parse_labels(view["text"], names)
    if "probs" in view:
        probs = np.clip(np.nan_to_num(np.asarray(view["probs"], dtype=float)), 0.0, 1.0)
        y_pred = (probs >= view["threshold"]).astype(int)
    else:
        y_pred = to_indicator(parsed.labels, names).astype(int)
        probs = y_pred.astype(float)
    record: Record = {
        "y_true": to_indicator(doc["labels"], names).tolist(),
        "y_pred": y_pred.tolist(),
        "probs": probs.tolist(),
        "annotator_probs": list(doc.get("annotator_probs") or []),
        "n_items": parsed.n_items,
        "n_invalid": len(parsed.invalid),
    }
    out: dict[str, Any] = dict.fromkeys(METRIC_KEYS, record)
    if "steps" in view:
        out |= step_diagnostics(view["steps"])
        out["nonfinite_steps"] = view.get("nonfinite_steps", 0)
        # Steps whose written tokens are not the tokenizer's own split (still scored as written).
        out["noncanonical_steps"] = sum(
            1 for step in view["steps"] if step.get("generated_tokens_match") is False
        )
    if "unexplored" in view:
        out["marginal_unexplored"] = view["unexplored"]
    if "ci" in view:  # `sampled`: mean width of the labels' 95 % intervals
        out["sampled_ci_width"] = float(np.mean([hi - lo for lo, hi in view["ci"]]))
    return out


def step_diagnostics(steps: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per-doc summaries of the label steps (NaN where the doc has no generated label).

    label_steps: labels generated; step_entropy / top1_mass: means over those steps;
    first_step_entropy: at the first step (virtual if no label was generated);
    top1_top2_ratio: median over steps; suppression_rate: share of steps (all but the last)
    whose runner-up label is generated at a later step.
    """
    real = [step for step in steps if step["label"] is not None]
    ratios = [step["top1_top2_ratio"] for step in real if step["top1_top2_ratio"] is not None]
    earlier = real[:-1]
    return {
        "label_steps": float(len(real)),
        "first_step_entropy": steps[0]["entropy_bits"] if steps else math.nan,
        "step_entropy": _mean([step["entropy_bits"] for step in real]),
        "top1_mass": _mean([step["top1"] for step in real]),
        "top1_top2_ratio": float(np.median(ratios)) if ratios else math.nan,
        "suppression_rate": _mean([float(step["runner_up_later"]) for step in earlier]),
    }


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def nanmean(items: Sequence[float]) -> float:
    """Mean over docs that have a value (NaN when none has)."""
    values = [v for v in items if not math.isnan(v)]
    return _mean(values)


def nanmedian(items: Sequence[float]) -> float:
    """Median over docs that have a value (NaN when none has)."""
    values = [v for v in items if not math.isnan(v)]
    return float(np.median(values)) if values else math.nan


def total(items: Sequence[float]) -> float:
    """Sum over docs (counts such as non-finite steps)."""
    return float(sum(items))


def _stack(items: Sequence[Record], key: str) -> np.ndarray:
    return np.asarray([item[key] for item in items])


def micro_f1(items: Sequence[Record]) -> float:
    return metrics.multilabel_f1(_stack(items, "y_true"), _stack(items, "y_pred"), average="micro")


def macro_f1(items: Sequence[Record]) -> float:
    return metrics.multilabel_f1(_stack(items, "y_true"), _stack(items, "y_pred"), average="macro")


def samples_f1(items: Sequence[Record]) -> float:
    y_true, y_pred = _stack(items, "y_true"), _stack(items, "y_pred")
    return metrics.multilabel_f1(y_true, y_pred, average="samples")


def jaccard(items: Sequence[Record]) -> float:
    return metrics.jaccard(_stack(items, "y_true"), _stack(items, "y_pred"))


def hamming_loss(items: Sequence[Record]) -> float:
    return metrics.hamming_loss(_stack(items, "y_true"), _stack(items, "y_pred"))


def exact_match(items: Sequence[Record]) -> float:
    return metrics.exact_match(_stack(items, "y_true"), _stack(items, "y_pred"))


def _gold_and_probs(items: Sequence[Record]) -> tuple[np.ndarray, np.ndarray]:
    return _stack(items, "y_true"), _stack(items, "probs")


def ece_em10(items: Sequence[Record]) -> float:
    """ECE over all (doc, label) pairs, 10 equal-mass bins (a run of equal p is never split)."""
    y_true, probs = _gold_and_probs(items)
    return metrics.expected_calibration_error(y_true, probs, n_bins=10, binning="equal_mass")


def ece_ew10(items: Sequence[Record]) -> float:
    """ECE over all (doc, label) pairs, 10 equal-width bins [0, .1), ..., [.9, 1]."""
    y_true, probs = _gold_and_probs(items)
    return metrics.expected_calibration_error(y_true, probs, n_bins=10, binning="equal_width")


def ece_1bin(items: Sequence[Record]) -> float:
    """1-bin ECE, |mean p - mean y| (HELM reports it beside the 10-bin one)."""
    y_true, probs = _gold_and_probs(items)
    return metrics.expected_calibration_error(y_true, probs, n_bins=1)


def rms_ce(items: Sequence[Record]) -> float:
    """Root-mean-square calibration error on the bins of `ece_em10` (10 equal-mass)."""
    y_true, probs = _gold_and_probs(items)
    return metrics.root_mean_square_calibration_error(
        y_true, probs, n_bins=10, binning="equal_mass"
    )


def mce(items: Sequence[Record]) -> float:
    """Maximum calibration error over the non-empty bins of `ece_em10` (10 equal-mass)."""
    y_true, probs = _gold_and_probs(items)
    return metrics.maximum_calibration_error(y_true, probs, n_bins=10, binning="equal_mass")


def ece(items: Sequence[Record]) -> float:
    """Deprecated alias of `ece_em10` (the same number), kept for one release; use `ece_em10`.

    Upstream lm-eval's bare `ece` uses equal-width bins (our `ece_ew10`), so the bare name is
    ambiguous across harnesses.
    """
    return ece_em10(items)


def brier(items: Sequence[Record]) -> float:
    return metrics.brier_score(*_gold_and_probs(items))


def roc_auc_micro(items: Sequence[Record]) -> float:
    """ROC-AUC over all (doc, label) pairs; NaN when the gold pairs are all 0 or all 1."""
    return metrics.roc_auc(*_gold_and_probs(items), average="micro")


def roc_auc_macro(items: Sequence[Record]) -> float:
    """Mean per-label ROC-AUC over labels whose gold column is not constant."""
    return metrics.roc_auc(*_gold_and_probs(items), average="macro")


def invalid_label_rate(items: Sequence[Record]) -> float:
    """Share of answer items that matched no label (0 when the model answered nothing)."""
    n_items = sum(item["n_items"] for item in items)
    return sum(item["n_invalid"] for item in items) / max(n_items, 1)


def _alignment(items: Sequence[Record], key: str) -> float:
    """One alignment score, or NaN (with one warning) when docs lack annotator distributions."""
    missing = sum(1 for item in items if not item["annotator_probs"])
    if missing:
        _warn_once(
            "alignment",
            f"Alignment metrics (align_*) are NaN: {missing} of {len(items)} docs have no "
            "per-annotator label distribution (this data source has aggregated labels only; "
            "for GoEmotions use the Hub 'raw' config or goemotions_*.csv files).",
        )
        return math.nan
    return metrics.alignment_scores(_stack(items, "probs"), _stack(items, "annotator_probs"))[key]


def align_mae(items: Sequence[Record]) -> float:
    return _alignment(items, "align_mae")


def align_brier(items: Sequence[Record]) -> float:
    return _alignment(items, "align_brier")


def align_bce(items: Sequence[Record]) -> float:
    return _alignment(items, "align_bce")


def align_js_bern(items: Sequence[Record]) -> float:
    """Per-label Bernoulli Jensen-Shannon divergence, defined on every doc and label."""
    return _alignment(items, "align_js_bern")


def align_js(items: Sequence[Record]) -> float:
    """Jensen-Shannon over labels renormalised per doc; read it beside `align_js_docs`."""
    return _alignment(items, "align_js")


def align_js_docs(items: Sequence[Record]) -> float:
    """How many docs `align_js` averaged over (both p and q sum to > 0); a count, not a score."""
    return _alignment(items, "align_js_docs")


#: Record metric key -> higher is better (None: a count), in table order (from the registry).
HIGHER_IS_BETTER: dict[str, bool | None] = {
    m.name: m.higher_is_better for m in registry.METRICS if m.record
}
METRIC_KEYS: tuple[str, ...] = registry.RECORD_KEYS
DEPRECATED_ALIASES: dict[str, str] = registry.DEPRECATED_ALIASES
