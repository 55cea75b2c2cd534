"""The one list of metric keys and strategies; everything else derives from it.

Task YAMLs cannot import Python, so their `metric_list`, `filter_list` and group
`aggregate_metric_list` restate these lists; `tests/test_registry.py` fails when they differ.
Aggregations are named here as functions of :mod:`lm_eval_mlc.harness.records` (a higher layer),
so this module stays importable without lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One key of the results table.

    `record`: the key holds the doc's record and its aggregation scores all records (the scores);
    otherwise a per-doc number (a diagnostic) averaged or summed by `aggregation`.
    `tasks`: the task families that report it; `group`: averaged into group rows;
    `generated_only`: only the `generated` filter has a value (step diagnostics);
    `alias_of`: a deprecated name for another key's number.
    """

    name: str
    higher_is_better: bool | None
    aggregation: str
    record: bool = True
    tasks: tuple[str, ...] = ("generative", "unary")
    group: bool = False
    generated_only: bool = False
    alias_of: str | None = None


def _score(name: str, higher: bool | None, group: bool = True, **kw) -> Metric:
    return Metric(name, higher, aggregation=name, group=group, **kw)


def _diagnostic(name: str, aggregation: str, higher: bool | None = None, **kw) -> Metric:
    return Metric(name, higher, aggregation=aggregation, record=False, **kw)


_GEN = ("generative",)

#: Every metric key, in the order task YAMLs and tables list them.
METRICS: tuple[Metric, ...] = (
    _score("micro_f1", True),
    _score("macro_f1", True),
    _score("samples_f1", True),
    _score("jaccard", True),
    _score("exact_match", True),
    _score("hamming_loss", False),
    _score("ece_em10", False),
    _score("ece_ew10", False),
    _score("ece_1bin", False),
    _score("rms_ce", False),
    _score("mce", False),
    _score("ece", False, alias_of="ece_em10"),
    _score("brier", False),
    _score("roc_auc_micro", True),
    _score("roc_auc_macro", True),
    # Only convabuse_ml has annotator distributions: read align_* on its row, not the group's.
    _score("align_mae", False, group=False),
    _score("align_brier", False, group=False),
    _score("align_bce", False, group=False),
    _score("align_js_bern", False, group=False),
    _score("align_js", False, group=False),
    _score("align_js_docs", None, group=False),
    _score("invalid_label_rate", False, group=False, tasks=_GEN),
    # Step diagnostics (hf-mlc payloads, `generated` filter) and the estimates' own quality.
    _diagnostic("label_steps", "nanmean", tasks=_GEN, generated_only=True),
    _diagnostic("first_step_entropy", "nanmean", tasks=_GEN, generated_only=True),
    _diagnostic("step_entropy", "nanmean", tasks=_GEN, generated_only=True),
    _diagnostic("top1_mass", "nanmean", tasks=_GEN, generated_only=True),
    _diagnostic("top1_top2_ratio", "nanmedian", tasks=_GEN, generated_only=True),
    _diagnostic("suppression_rate", "nanmean", tasks=_GEN, generated_only=True),
    _diagnostic("nonfinite_steps", "total", False, tasks=_GEN, generated_only=True),
    _diagnostic("noncanonical_steps", "total", tasks=_GEN, generated_only=True),
    _diagnostic("marginal_unexplored", "nanmean", False, tasks=_GEN),
    _diagnostic("sampled_ci_width", "nanmean", False, tasks=_GEN),
    _diagnostic("nonfinite_pairs", "total", False, tasks=("unary",)),
)

METRICS_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}

#: Keys holding the doc's record (the scores), in table order.
RECORD_KEYS: tuple[str, ...] = tuple(m.name for m in METRICS if m.record)
#: Deprecated key -> the key whose number it repeats.
DEPRECATED_ALIASES: dict[str, str] = {m.name: m.alias_of for m in METRICS if m.alias_of}


def task_metrics(family: str) -> tuple[Metric, ...]:
    """The metrics a task family (`generative` or `unary`) lists in its `metric_list`."""
    return tuple(m for m in METRICS if family in m.tasks)


@dataclass(frozen=True)
class Strategy:
    """One way of reading P(label): a filter of the generative tasks and a `mlc_strategies` name.

    `source`: what it is computed from (`text`: the parsed answer; `steps`: the per-step label
    distributions of the greedy pass; `search`: the tree search; `samples`: sampled answers).
    `default`: computed unless `mlc_strategies` says otherwise; `quality`: the metric that says
    how far to trust this estimate (None: exact given the generation).
    """

    name: str
    source: str
    default: bool
    quality: str | None = None


#: Every strategy, in the order filters, tables and the README list them.
STRATEGIES: tuple[Strategy, ...] = (
    Strategy("generated", "text", True),
    Strategy("first_step", "steps", True),
    Strategy("max_over_steps", "steps", True),
    Strategy("conditional", "steps", True),
    Strategy("joint", "steps", True),
    Strategy("marginal", "search", False, quality="marginal_unexplored"),
    Strategy("sampled", "samples", False, quality="sampled_ci_width"),
)

STRATEGY_NAMES: tuple[str, ...] = tuple(s.name for s in STRATEGIES)
#: Strategies computed from one greedy pass's step distributions.
STEP_STRATEGIES: tuple[str, ...] = tuple(s.name for s in STRATEGIES if s.source == "steps")
DEFAULT_STRATEGIES: tuple[str, ...] = tuple(s.name for s in STRATEGIES if s.default)
#: Strategy -> the metric that bounds its estimate.
ESTIMATE_QUALITY: dict[str, str] = {s.name: s.quality for s in STRATEGIES if s.quality}
