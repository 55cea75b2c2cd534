"""How lm-eval finds the plugin: startup hook, entry points, task manager, CLI defaults."""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lm_eval_mlc import cli
from lm_eval_mlc._paths import TASKS_DIR
from lm_eval_mlc.cli.run import run_argv
from lm_eval_mlc.harness.plugin import add_task_paths, discovers_our_tasks, with_task_paths

PROBE = """
import json
from lm_eval.api.registry import get_model, model_registry
from lm_eval.tasks import TaskManager
tm = TaskManager()
print(json.dumps({
    "hf": get_model("hf").__name__,
    "hf_mlc": "hf-mlc" in model_registry,
    "tasks": [t for t in tm.all_tasks if t.startswith("goemotions_ml")],
}))
"""


def _probe(**env: str) -> dict:
    """Run the probe in a fresh interpreter, as plain `lm_eval` would start."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_startup_hook_registers_model_and_tasks_in_a_fresh_interpreter():
    found = _probe()
    assert found["hf"] == "HFLM"  # lm-eval's own models still resolve
    assert found["hf_mlc"] is True
    assert set(found["tasks"]) == {
        "goemotions_ml",
        "goemotions_ml_full",
        "goemotions_ml_ekman",
        "goemotions_ml_unary",
    }


def test_startup_hook_can_be_switched_off():
    found = _probe(LM_EVAL_MLC_AUTOLOAD="0")
    assert found == {"hf": "HFLM", "hf_mlc": False, "tasks": []}


def test_entry_points_for_upstream_plugin_discovery_resolve():
    (model,) = importlib.metadata.entry_points(group="lm_eval.models", name="hf-mlc")
    assert model.load().__name__ == "HFMultiLabelLM"
    (tasks,) = importlib.metadata.entry_points(group="lm_eval.tasks", name="lm_eval_mlc")
    assert tasks.value == "lm_eval_mlc.tasks"  # an importable package, upstream's form (#4015)
    folder = Path(tasks.load().__file__).parent
    assert (folder / "goemotions_ml" / "goemotions_ml.yaml").is_file()
    assert folder.resolve() == Path(TASKS_DIR).resolve()


class _Entry:
    def __init__(self, yaml_path):
        self.yaml_path = yaml_path


def _task_manager_cls(discovered: list):
    """A TaskManager stand-in whose lm-eval found `discovered` task files by itself."""

    class TaskManager:
        inits = []

        def __init__(self, include_path=None, include_defaults=True, **kwargs):
            TaskManager.inits.append(include_path)
            self.task_index = {str(i): _Entry(p) for i, p in enumerate(discovered)}

    return TaskManager


def test_task_hook_steps_aside_when_lm_eval_discovers_our_tasks(tmp_path):
    ours = Path(TASKS_DIR, "goemotions_ml", "goemotions_ml.yaml")
    discovering = _task_manager_cls([ours])
    add_task_paths(discovering)
    discovering(include_path=str(tmp_path))
    assert discovering.inits[-1] == str(tmp_path)  # not patched: the user's paths untouched

    plain = _task_manager_cls([tmp_path / "other.yaml"])
    add_task_paths(plain)
    plain(include_path=str(tmp_path))
    assert plain.inits[-1] == [TASKS_DIR, str(tmp_path)]


def test_the_installed_lm_eval_is_probed_not_versioned():
    from lm_eval.tasks import TaskManager

    # Neither 0.4.13 nor 0.5.0.dev1 reads `lm_eval.tasks` entry points: the hook is needed.
    assert discovers_our_tasks(TaskManager) is False


def test_task_paths_are_added_once_and_before_user_paths(tmp_path):
    assert with_task_paths(None) == [TASKS_DIR]
    assert with_task_paths(str(tmp_path)) == [TASKS_DIR, str(tmp_path)]
    assert with_task_paths([TASKS_DIR, str(tmp_path)]) == [TASKS_DIR, str(tmp_path)]


def test_run_defaults_to_hf_mlc_on_the_embedded_model(monkeypatch):
    monkeypatch.setattr(
        "lm_eval_mlc.harness.default_model.default_model_args", lambda: "pretrained=X"
    )
    assert run_argv(["--tasks", "goemotions_ml"]) == [
        "run",
        "--tasks",
        "goemotions_ml",
        "--model",
        "hf-mlc",
        "--model_args",
        "pretrained=X",
        "--apply_chat_template",
    ]
    # Explicit choices are kept; a non-HF backend gets no embedded weights.
    assert run_argv(["--model=vllm", "--tasks", "t"]) == ["run", "--model=vllm", "--tasks", "t"]
    argv = ["--model", "hf", "--model_args", "pretrained=gpt2", "--tasks", "t"]
    assert run_argv(argv) == ["run", *argv]


def test_tasks_dir_subcommand_prints_the_task_folder(capsys):
    cli.main(["tasks-dir"])
    assert capsys.readouterr().out.strip() == TASKS_DIR


def test_unknown_subcommand_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_bad_data_fails_before_the_model_is_loaded(tmp_path):
    # A copy of the small fixture with an empty text and an unknown label id in test.tsv.
    fixture = Path(__file__).parent / "fixtures" / "goemotions_raw"
    data = tmp_path / "goemotions"
    shutil.copytree(fixture, data)
    rows = (data / "test.tsv").read_text().splitlines()
    rows[0] = "\t".join(["   ", *rows[0].split("\t")[1:]])
    rows[1] = "\t".join([rows[1].split("\t")[0], "3,99", rows[1].split("\t")[2]])
    (data / "test.tsv").write_text("\n".join(rows) + "\n")

    cmd = [
        *(sys.executable, "-m", "lm_eval", "--tasks", "goemotions_ml"),
        # No such model: had the harness got as far as loading it, this would fail differently.
        *("--model", "hf-mlc", "--model_args", f"pretrained={tmp_path / 'no-model'}"),
    ]
    env = {**os.environ, "LM_EVAL_MLC_DATA_DIR": str(data), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0
    assert "DataValidationError" in proc.stderr
    assert "test.tsv:1: field 'text'" in proc.stderr
    assert "test.tsv:2: field 'labels'" in proc.stderr
    assert "Initializing hf-mlc model" not in proc.stderr


def test_our_aggregations_are_not_bootstrapped_by_lm_eval():
    import lm_eval.api.metrics as metrics

    from lm_eval_mlc.harness import records
    from lm_eval_mlc.harness.plugin import activate

    activate()
    assert metrics.stderr_for_metric(records.micro_f1, 100_000) is None  # N/A, as on 0.4
    assert metrics.stderr_for_metric(records.brier, 100_000) is None
    # lm-eval's own metrics keep their stderr (mean has a closed form on both releases).
    assert metrics.stderr_for_metric(metrics.mean, 100_000) is not None
