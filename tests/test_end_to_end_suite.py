"""The suite groups run in process on the shared SmolLM2 (`--limit`), offline from local files.

One `mlc` run covers every generative task and one `mlc_unary` run every unary task.
"""

import math

import numpy as np
import pytest

from lm_eval_mlc.harness.plugin import task_manager
from lm_eval_mlc.harness.records import HIGHER_IS_BETTER
from lm_eval_mlc.harness.unary import UNARY_METRIC_KEYS

pytestmark = pytest.mark.slow

LIMIT = 2
GENERATIVE = ("goemotions_ml", "semeval2018_ec_ml", "convabuse_ml", "content_safety_lg3_ml")
UNARY = tuple(f"{task}_unary" for task in GENERATIVE)
GROUP_METRICS = ("micro_f1", "macro_f1", "hamming_loss", "brier", "roc_auc_micro")


def evaluate(lm, data_dir, tasks: list[str]) -> dict:
    from lm_eval import simple_evaluate

    # Only our task folder: indexing lm-eval's thousands of tasks takes ~9 s per manager.
    manager = task_manager(metadata={"data_dir": str(data_dir)}, include_defaults=False)
    return simple_evaluate(model=lm, tasks=tasks, limit=LIMIT, task_manager=manager)


def check_value(key: str, value: float, *, alignment: bool) -> None:
    if key == "align_js" and alignment:
        # Skips docs where nobody chose a type; the first ConvAbuse test docs are such docs.
        assert math.isnan(value) or 0.0 <= value <= 1.0, key
    elif key.startswith("align_"):
        assert math.isnan(value) != alignment, key
        if alignment:
            assert value >= 0.0, key
    elif key.startswith("roc_auc"):
        assert math.isnan(value) or 0.0 <= value <= 1.0, key  # NaN if no label varies
    else:
        assert 0.0 <= value <= 1.0, key


def check_group(results: dict, group: str, tasks: tuple[str, ...], filter_name: str) -> None:
    """A group row is the plain mean of its tasks' rows (NaN-free metrics only here)."""
    row = results["results"][group]
    for metric in GROUP_METRICS:
        key = f"{metric},{filter_name}"
        values = [results["results"][task][key] for task in tasks]
        if not any(math.isnan(v) for v in values):
            assert row[key] == pytest.approx(np.mean(values)), key
    assert set(results["group_subtasks"][group]) == set(tasks)


def test_mlc_group_runs_every_generative_task(smollm2_lm, data_dir) -> None:
    results = evaluate(smollm2_lm, data_dir, ["mlc"])
    for task in GENERATIVE:
        assert results["n-samples"][task]["effective"] == LIMIT, task
        for key in HIGHER_IS_BETTER:
            value = results["results"][task][f"{key},generated"]
            check_value(key, value, alignment=task == "convabuse_ml")
    check_group(results, "mlc", GENERATIVE, "generated")
    assert results["configs"]["convabuse_ml"]["metadata"]["version"] == 1.0
    assert float(results["versions"]["mlc"]) == 1.0


def test_mlc_unary_group_runs_every_unary_task(smollm2_lm, data_dir) -> None:
    results = evaluate(smollm2_lm, data_dir, ["mlc_unary"])
    for task in UNARY:
        task_results = results["results"][task]
        assert results["n-samples"][task]["effective"] == LIMIT, task
        assert "invalid_label_rate,none" not in task_results
        for key in UNARY_METRIC_KEYS:
            check_value(key, task_results[f"{key},none"], alignment=task == "convabuse_ml_unary")
    # P(yes) is a real probability, so unary Brier is not a 0/1 count over the labels.
    brier = results["results"]["semeval2018_ec_ml_unary"]["brier,none"]
    assert brier * LIMIT * 11 != pytest.approx(round(brier * LIMIT * 11))
    check_group(results, "mlc_unary", UNARY, "none")


def test_semeval_paper_subset_task(smollm2_lm, data_dir) -> None:
    results = evaluate(smollm2_lm, data_dir, ["semeval2018_ec_ml_paper"])
    task_results = results["results"]["semeval2018_ec_ml_paper"]
    for key in HIGHER_IS_BETTER:
        check_value(key, task_results[f"{key},generated"], alignment=False)
