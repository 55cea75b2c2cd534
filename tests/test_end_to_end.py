"""Real runs: plain `lm_eval` with the plugin model, and Python `simple_evaluate` with stock `hf`.

SmolLM2-135M-Instruct on CPU, a few docs of the real GoEmotions test split.
"""

import json
import math
import os
import subprocess
import sys

import pytest

from lm_eval_mlc.harness.records import HIGHER_IS_BETTER

pytestmark = pytest.mark.slow

LIMIT = 6


STEP_STRATEGIES = ("first_step", "max_over_steps", "conditional", "joint")


def _check_task_results(task_results: dict, strategies: tuple[str, ...]) -> None:
    filters = {key.split(",")[1] for key in task_results if "," in key}
    assert filters == {"generated", *strategies}
    for key in HIGHER_IS_BETTER:
        for strategy in ("generated", *strategies):
            _check_value(key, task_results[f"{key},{strategy}"])
    for strategy in ("generated", *strategies):  # the deprecated alias: the same number
        assert task_results[f"ece,{strategy}"] == task_results[f"ece_em10,{strategy}"]


def _check_value(key: str, value: float) -> None:
    if key.startswith("align_"):
        assert math.isnan(value), key  # GoEmotions split files carry no per-rater data
    elif key.startswith("roc_auc"):
        assert math.isnan(value) or 0.0 <= value <= 1.0, key  # NaN if no label varies
    else:
        assert 0.0 <= value <= 1.0, key


@pytest.mark.smoke
def test_plain_lm_eval_cli_runs_goemotions_ml_with_hf_mlc(tmp_path, data_dir, smollm2_args):
    out = tmp_path / "out"
    cmd = [
        *(sys.executable, "-m", "lm_eval"),
        *("--model", "hf-mlc", "--model_args", smollm2_args),
        *("--tasks", "goemotions_ml", "--limit", str(LIMIT), "--num_fewshot", "2"),
        *("--apply_chat_template", "--output_path", str(out), "--log_samples"),
    ]
    env = {**os.environ, "LM_EVAL_MLC_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "micro_f1" in proc.stdout  # the harness' results table

    (results_file,) = out.glob("*/results_*.json")
    results = json.loads(results_file.read_text())
    task_results = results["results"]["goemotions_ml"]
    _check_task_results(task_results, STEP_STRATEGIES)
    assert task_results["label_steps,generated"] >= 0.0  # hf-mlc's step diagnostics
    assert "marginal_unexplored,marginal" not in task_results  # marginal is opt-in
    assert results["n-samples"]["goemotions_ml"]["effective"] == LIMIT

    (samples_file,) = out.glob("*/samples_goemotions_ml_*.jsonl")
    lines = [json.loads(line) for line in samples_file.read_text().splitlines()]
    # The harness logs each doc once per filter (strategy), also where one was not computed.
    assert {s["filter"] for s in lines} == {"generated", *STEP_STRATEGIES, "marginal", "sampled"}
    samples = [s for s in lines if s["filter"] == "generated"]
    assert len(samples) == LIMIT
    record = samples[0]["micro_f1"]
    assert len(record["y_true"]) == len(record["y_pred"]) == 7
    assert samples[0]["resps"][0][0].startswith('{"format": "lm-eval-mlc"')  # the payload
    # The few-shot prompt went through the chat template and shows two demonstrations.
    prompt = samples[0]["arguments"]["gen_args_0"]["arg_0"]
    assert prompt.count("Comment:") == 3 and "<|im_start|>" in prompt


def test_simple_evaluate_with_stock_hf_model_and_our_task_manager(data_dir, smollm2_args):
    from lm_eval import simple_evaluate

    from lm_eval_mlc.harness.plugin import task_manager

    results = simple_evaluate(
        model="hf",
        model_args=smollm2_args,
        tasks=["goemotions_ml_ekman"],
        limit=3,
        device="cpu",
        task_manager=task_manager(metadata={"data_dir": str(data_dir)}),
    )
    # Stock `hf` returns plain text: only the `generated` reading exists, and no step metrics.
    _check_task_results(results["results"]["goemotions_ml_ekman"], ())
    assert "label_steps,generated" not in results["results"]["goemotions_ml_ekman"]
