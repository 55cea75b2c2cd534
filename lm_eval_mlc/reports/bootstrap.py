"""Percentile bootstrap confidence intervals for corpus-level metrics, from logged samples.

lm-eval reports `N/A` stderr for aggregations it does not know (all of ours). Here the docs of a
run are resampled with replacement and each draw is aggregated by the very function the task's
YAML names (the one-liners in `lm_eval_mlc.harness.records` over the pure metrics), so the
point value and the interval come from the same code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lm_eval_mlc.harness import records as harness

Aggregate = Callable[[Sequence[Any]], float]

_DEF = re.compile(r"def\s+(\w+)\s*\(")


def aggregation_for(metric: str, config: dict[str, Any] | None = None) -> Aggregate:
    """The harness aggregation of `metric`.

    Our metric keys (`records.METRIC_KEYS`) are aggregated by the function of that name, whatever
    the results JSON says: lm-eval stores a `!function` aggregation as source text read from the
    file on disk when it saves, so a file edited during a run records another function's text.
    Other keys (the step diagnostics) take the function the task config names (`def
    nanmedian(items): ...`, looked up in `lm_eval_mlc.harness.records`), else the NaN-skipping
    mean.
    """
    if metric in harness.METRIC_KEYS:
        return getattr(harness, metric)
    for entry in (config or {}).get("metric_list", []):
        if entry.get("metric") == metric:
            match = _DEF.search(str(entry.get("aggregation", "")))
            if match and callable(getattr(harness, match.group(1), None)):
                return getattr(harness, match.group(1))
    return harness.nanmean


def bootstrap_ci(
    items: Sequence[Any],
    aggregate: Aggregate,
    *,
    n_draws: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    progress: tqdm | None = None,
) -> tuple[float, float]:
    """(low, high) percentile interval of `aggregate` over docs resampled with replacement.

    Draws whose value is NaN (e.g. ROC-AUC of a draw with one gold class) are left out; the
    interval is (nan, nan) when fewer than half the draws are finite or there are no items.
    The same `seed` gives the same draws, so intervals are reproducible.
    """
    if not items or n_draws < 1:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    n = len(items)
    draws = rng.integers(0, n, size=(n_draws, n))
    name = getattr(aggregate, "__name__", "")
    if getattr(aggregate, "__module__", "") == harness.__name__ and name in _SET_METRICS:
        values = _set_metric_draws(name, items, draws)
        if progress is not None:
            progress.update(n_draws)
    else:
        values = np.empty(n_draws)
        for d, idx in enumerate(draws):
            values[d] = aggregate([items[i] for i in idx])
            if progress is not None:
                progress.update(1)
    finite = values[np.isfinite(values)]
    if finite.size < n_draws / 2:
        return (math.nan, math.nan)
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return (float(low), float(high))


_SET_METRICS = ("micro_f1", "macro_f1", "samples_f1", "jaccard", "exact_match", "hamming_loss")


def _set_metric_draws(name: str, items: Sequence[Any], draws: np.ndarray) -> np.ndarray:
    """All draws of a set metric at once, from how often each doc is drawn.

    Same values as the harness aggregation on each resampled list (the tests check it), in
    one matrix product instead of one scikit-learn call per draw: F1 and friends are sums of
    per-doc (or per-doc-and-label) counts, and zero denominators score 0 as
    `lm_eval_mlc.metrics` documents (`zero_division=0`).
    """
    true = np.asarray([item["y_true"] for item in items], dtype=bool)
    pred = np.asarray([item["y_pred"] for item in items], dtype=bool)
    n_draws, n = draws.shape
    times = np.zeros((n_draws, n))
    np.add.at(times, (np.repeat(np.arange(n_draws), n), draws.ravel()), 1.0)
    tp, fp, fn = (true & pred), (~true & pred), (true & ~pred)
    if name in ("micro_f1", "macro_f1"):
        tp_l, fp_l, fn_l = (times @ m.astype(float) for m in (tp, fp, fn))  # (draws, labels)
        if name == "micro_f1":
            tp_l, fp_l, fn_l = (m.sum(axis=1, keepdims=True) for m in (tp_l, fp_l, fn_l))
        return _ratio(2 * tp_l, 2 * tp_l + fp_l + fn_l).mean(axis=1)
    tp_d, fp_d, fn_d = (m.sum(axis=1).astype(float) for m in (tp, fp, fn))  # per doc
    per_doc = {
        "samples_f1": lambda: _ratio(2 * tp_d, 2 * tp_d + fp_d + fn_d),
        "jaccard": lambda: _ratio(tp_d, tp_d + fp_d + fn_d),
        "exact_match": lambda: (fp_d + fn_d == 0).astype(float),
        "hamming_loss": lambda: (fp_d + fn_d) / true.shape[1],
    }[name]()
    return times @ per_doc / n


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=float), where=den > 0)
