"""The task YAMLs restate the registry's metric keys and strategies; these tests fail when they
drift, and print the block to paste."""

from pathlib import Path

import pytest
import yaml

from lm_eval_mlc.core import registry
from lm_eval_mlc.harness import records, unary

TASKS = Path(__file__).parents[1] / "lm_eval_mlc" / "tasks"
RECORDS = "lm_eval_mlc.harness.records."
FILTER = "lm_eval_mlc.harness.filters.StrategyFilter"


class _Loader(yaml.SafeLoader):
    """Reads `!function x.y` as the string `x.y`, without importing anything."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _load(name: str) -> dict:
    return yaml.load((TASKS / name).read_text(), Loader=_Loader)


def _metric_line(m: registry.Metric) -> str:
    hib = {True: "true", False: "false", None: "null"}[m.higher_is_better]
    return (
        f"  - {{metric: {m.name}, aggregation: !function {RECORDS}{m.aggregation}, "
        f"higher_is_better: {hib}}}"
    )


@pytest.mark.parametrize(("template", "family"), [("_mlc_generative_yaml", "generative"),
                                                   ("_mlc_unary_yaml", "unary")])  # fmt: skip
def test_task_metric_lists_are_the_registry(template, family):
    expected = [
        {"metric": m.name, "aggregation": RECORDS + m.aggregation,
         "higher_is_better": m.higher_is_better}
        for m in registry.task_metrics(family)
    ]  # fmt: skip
    block = "\n".join(_metric_line(m) for m in registry.task_metrics(family))
    assert _load(template)["metric_list"] == expected, f"{template} metric_list should be:\n{block}"


def test_generative_filters_are_the_strategies():
    expected = [
        {"name": name, "filter": [{"function": FILTER, "strategy": name}]}
        for name in registry.STRATEGY_NAMES
    ]
    assert _load("_mlc_generative_yaml")["filter_list"] == expected


@pytest.mark.parametrize("group", ["mlc.yaml", "mlc_unary.yaml"])
def test_group_rows_average_the_registry_group_metrics(group):
    rows = _load(group)["aggregate_metric_list"]
    assert [row["metric"] for row in rows] == [m.name for m in registry.METRICS if m.group]
    assert all(row["aggregation"] == "mean" and row["weight_by_size"] is False for row in rows)


def test_every_aggregation_is_a_function_of_records():
    missing = [m.name for m in registry.METRICS if not callable(getattr(records, m.aggregation, 0))]
    assert missing == []
    # Record metrics are aggregated by the function of their own name (bootstrap relies on it).
    assert all(m.aggregation == m.name for m in registry.METRICS if m.record)


def test_aliases_and_qualities_name_registered_keys():
    names = set(registry.METRICS_BY_NAME)
    assert set(registry.DEPRECATED_ALIASES.values()) <= names
    assert set(registry.ESTIMATE_QUALITY.values()) <= names
    assert set(registry.ESTIMATE_QUALITY) <= set(registry.STRATEGY_NAMES)
    assert len(names) == len(registry.METRICS)  # no key twice


def test_process_results_report_exactly_the_registry_keys():
    doc = {"labels": ["joy"], "label_names": ["joy", "anger"], "annotator_probs": [], "id": "d1"}
    step = {"label": 0, "entropy_bits": 0.5, "top1": 0.9, "top1_top2_ratio": 18.0,
            "runner_up_later": False}  # fmt: skip
    view = {"strategy": "generated", "text": '["joy"]', "steps": [step]}
    generative = set(records.process_results(doc, [view]))
    assert generative <= {m.name for m in registry.task_metrics("generative")}
    assert set(records.METRIC_KEYS) <= generative
    pairs = [(-0.1, -2.0), (-3.0, -0.2)]  # (ll_yes, ll_no) per label, in choice order
    results = [(ll, False) for pair in pairs for ll in pair]
    assert set(unary.process_results(doc, results)) == {
        m.name for m in registry.task_metrics("unary")
    }
