"""The CLI's own pieces: the one error helper, `run --help`, and the compact summary that ends
`lm-eval-mlc run` in place of lm-eval's every-metric table (plain `lm_eval` keeps its own)."""

import math
import os
import subprocess
import sys
from pathlib import Path

import lm_eval
import lm_eval.utils
import pytest

from lm_eval_mlc.cli import main
from lm_eval_mlc.cli._errors import expected_errors
from lm_eval_mlc.cli.run_table import NO_SAMPLES, CompactTable, compact_tables
from lm_eval_mlc.reports.summary import SUMMARY_METRICS

FIXTURE = Path(__file__).parent / "fixtures" / "goemotions_raw"
TASK = "goemotions_ml"
STRATEGIES = ["generated", "first_step", "max_over_steps", "conditional", "joint", "marginal",
              "sampled"]  # fmt: skip
#: Metrics lm-eval's table lists besides the summary's, as a task of ours reports them.
OTHERS = ["label_steps", "step_entropy", "top1_top2_ratio", "align_js", "align_bce", "ece"]


def _table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of a markdown table (header and separator left out)."""
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in rows[1:]]


def _mlc_results(with_group: bool = True) -> dict:
    """A results dict shaped like lm-eval's for one task of ours (no samples logged)."""
    entry = {"alias": TASK}
    for i, strategy in enumerate(STRATEGIES):
        for metric in (*SUMMARY_METRICS, *OTHERS):
            entry[f"{metric},{strategy}"] = 0.1 + 0.01 * i
            entry[f"{metric}_stderr,{strategy}"] = "N/A"
    results = {
        "results": {TASK: entry},
        "versions": {TASK: 1.0},
        "n-shot": {TASK: 0},
        "higher_is_better": {TASK: {"micro_f1": True, "ece_em10": False}},
        "n-samples": {TASK: {"original": 100, "effective": 2}},
        "config": {"model": "hf-mlc", "model_args": "pretrained=tiny", "limit": 2},
        "configs": {TASK: {}},
    }
    if with_group:
        group = {"alias": "mlc", "micro_f1,generated": 0.25, "micro_f1_stderr,generated": 0.01,
                 "step_entropy,generated": 1.5, "ece,generated": 0.3}  # fmt: skip
        results["results"]["mlc"] = group
        results["groups"] = {"mlc": dict(group)}
        results["group_subtasks"] = {"mlc": [TASK]}
        results["versions"]["mlc"] = 1.0
    return results


def test_our_results_get_one_row_per_strategy_not_lm_evals_table():
    make_table = lm_eval.utils.make_table
    results = _mlc_results()
    full = make_table(results)
    assert full.count("\n") > 90  # what lm-eval prints: every metric of every strategy

    table = CompactTable(make_table, output_path="out/")
    text = table(results)
    rows = _table_rows(text)
    assert [row[2] for row in rows] == STRATEGIES  # one row per strategy, the group left out
    assert {row[1] for row in rows} == {TASK} and rows[0][0] == "pretrained=tiny"
    assert NO_SAMPLES in text and "lm-eval-mlc show out/ --full" in text
    assert "lm-eval-mlc-run-" not in text  # no warning naming the temporary folder
    assert text.count("\n") < 20

    groups = table(results, "groups")  # lm-eval's own group table, summary metrics only
    assert "micro_f1" in groups and "step_entropy" not in groups and "| ece " not in groups
    assert groups == make_table({**results, "groups": {"mlc": {
        "alias": "mlc", "micro_f1,generated": 0.25, "micro_f1_stderr,generated": 0.01}}},
        "groups")  # fmt: skip


def test_results_that_are_not_ours_get_lm_evals_own_tables():
    make_table = lm_eval.utils.make_table
    results = {
        "results": {"arc_easy": {"alias": "arc_easy", "acc,none": 0.5, "acc_stderr,none": 0.02},
                    "sci": {"alias": "sci", "acc,none": 0.5}},
        "groups": {"sci": {"alias": "sci", "acc,none": 0.5}},
        "versions": {"arc_easy": 1.0, "sci": 1.0},
        "n-shot": {"arc_easy": 0},
    }  # fmt: skip
    table = CompactTable(make_table)
    assert table(results) == make_table(results)
    assert table(results, "groups") == make_table(results, "groups")


def test_a_failing_summary_falls_back_to_lm_evals_table(monkeypatch, capsys):
    import lm_eval_mlc.cli.run_table as run_table

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(run_table, "summary", broken)
    results = _mlc_results()
    table = CompactTable(lm_eval.utils.make_table)
    assert table(results) == lm_eval.utils.make_table(results)
    assert table(results, "groups") == lm_eval.utils.make_table(results, "groups")
    assert "no compact summary (KeyError" in capsys.readouterr().err


def test_compact_tables_swaps_make_table_in_and_out():
    make_table, had = lm_eval.utils.make_table, "simple_evaluate" in vars(lm_eval)
    with pytest.raises(RuntimeError), compact_tables() as table:
        from lm_eval.utils import make_table as inside  # as lm-eval's CLI imports it

        assert inside is table and lm_eval.simple_evaluate is not None
        raise RuntimeError("the run failed")
    assert lm_eval.utils.make_table is make_table
    assert ("simple_evaluate" in vars(lm_eval)) == had


def test_a_real_run_with_samples_gets_intervals(tiny_model_dir):
    """A 2-doc run of a tiny random model, as lm-eval's CLI does it: `simple_evaluate` (ours
    inside the block keeps the samples), the samples popped, then `make_table(results)`."""
    from lm_eval_mlc.harness.hf_mlc import HFMultiLabelLM
    from lm_eval_mlc.harness.plugin import task_manager

    lm = HFMultiLabelLM(pretrained=str(tiny_model_dir("llama")), device="cpu", batch_size=2)
    with compact_tables() as _:
        results = lm_eval.simple_evaluate(
            model=lm, tasks=[TASK], limit=2, log_samples=True,
            gen_kwargs="mlc_max_new_tokens=4",  # the default strategies: no marginal, sampled
            task_manager=task_manager(metadata={"data_dir": str(FIXTURE)}),
        )  # fmt: skip
        results.pop("samples")
        from lm_eval.utils import make_table

        text = make_table(results)
    rows = _table_rows(text)
    assert [row[2] for row in rows] == STRATEGIES[:5] and NO_SAMPLES not in text
    assert all(row[3] == "2" for row in rows)  # docs
    reported = results["results"][TASK]
    generated = rows[0][4]  # micro_f1 of `generated`, with its interval
    value = float(generated.split(" [")[0])
    assert value == pytest.approx(reported["micro_f1,generated"], abs=5e-4) or math.isnan(value)
    assert "[" in generated and "--full_table" in text


def test_expected_errors_is_one_line_and_exit_2(capsys):
    with pytest.raises(SystemExit) as info, expected_errors("show"):
        raise FileNotFoundError("out/: no such run folder or results file.")
    assert info.value.code == 2
    assert capsys.readouterr().err == (
        "lm-eval-mlc show: error: out/: no such run folder or results file.\n"
    )
    with pytest.raises(KeyError), expected_errors("show"):  # a bug keeps its traceback
        raise KeyError("x")


def test_run_help_states_our_defaults(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "no --model         hf-mlc" in out and "SmolLM2" in out and "chat template" in out
    assert "--full_table" in out and "--model_args" in out  # then lm-eval's own help


@pytest.mark.slow
@pytest.mark.smoke
def test_lm_eval_mlc_run_ends_with_the_compact_table(tmp_path, data_dir, smollm2_args):
    out = tmp_path / "out"
    cmd = [
        *(sys.executable, "-m", "lm_eval_mlc.cli", "run", "--tasks", TASK, "--limit", "2"),
        *("--gen_kwargs", "mlc_max_new_tokens=8", "--output_path", str(out), "--log_samples"),
    ]
    env = {**os.environ, "LM_EVAL_MLC_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = _table_rows(proc.stdout)
    assert [row[2] for row in rows if row[1] == TASK][:1] == ["generated"]
    assert len(rows) <= len(STRATEGIES) and "step_entropy" not in proc.stdout
    assert f"lm-eval-mlc show {out} --full" in proc.stdout
    (results_file,) = out.glob("*/results_*.json")  # lm-eval still wrote its files
    assert list(out.glob(f"*/samples_{TASK}_*.jsonl"))
