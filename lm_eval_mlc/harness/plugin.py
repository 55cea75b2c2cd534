"""Make lm-eval aware of this plugin: the `hf-mlc` model and the task folder.

Used by the startup hook (`_startup.py`), by `lm-eval-mlc run`, and from Python::

    from lm_eval import simple_evaluate
    from lm_eval_mlc.harness.plugin import task_manager

    simple_evaluate(model="hf-mlc", model_args="pretrained=...", tasks=["goemotions_ml"],
                    task_manager=task_manager())
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from lm_eval_mlc._paths import TASKS_DIR
from lm_eval_mlc.harness.compat import task_index

MODEL_NAME = "hf-mlc"
MODEL_TARGET = "lm_eval_mlc.harness.hf_mlc:HFMultiLabelLM"


def with_task_paths(include_path: Any) -> list[str | Path]:
    """`include_path` as a list with this package's task folder first (once)."""
    if include_path is None:
        paths: list[str | Path] = []
    elif isinstance(include_path, (list, tuple)):
        paths = list(include_path)
    else:
        paths = [include_path]
    if not any(Path(p).resolve() == Path(TASKS_DIR).resolve() for p in paths):
        paths.insert(0, TASKS_DIR)
    return paths


def _in_tasks_dir(entry: Any) -> bool:
    path = getattr(entry, "yaml_path", None)
    return path is not None and Path(TASKS_DIR).resolve() in Path(path).resolve().parents


def discovers_our_tasks(task_manager_cls: type) -> bool:
    """True when lm-eval itself indexes our tasks (its `lm_eval.tasks` entry-point discovery).

    Probed, not read from a version: a `TaskManager` without lm-eval's own folder indexes only
    what lm-eval discovers by itself, in microseconds; on releases without the feature, nothing.
    """
    init = task_manager_cls.__init__
    init = getattr(init, "__wrapped__", init) if getattr(init, "_lm_eval_mlc", False) else init
    probe = task_manager_cls.__new__(task_manager_cls)
    init(probe, include_defaults=False)  # lm-eval's own __init__, never our patch
    return any(_in_tasks_dir(entry) for entry in task_index(probe).values())


def add_task_paths(task_manager_cls: type) -> None:
    """Patch `TaskManager.__init__` so every instance also indexes our tasks (idempotent).

    Steps aside when lm-eval already discovers them (see :func:`discovers_our_tasks`).
    """
    init = task_manager_cls.__init__
    if getattr(init, "_lm_eval_mlc", False) or discovers_our_tasks(task_manager_cls):
        return

    @functools.wraps(init)
    def __init__(self, *args: Any, include_path: Any = None, **kwargs: Any) -> None:
        init(self, *args, include_path=with_task_paths(include_path), **kwargs)

    __init__._lm_eval_mlc = True  # type: ignore[attr-defined]
    task_manager_cls.__init__ = __init__


def register_model() -> None:
    """Register `hf-mlc` lazily, after lm-eval's own models (so `hf` and friends stay known).

    Nothing to do when lm-eval has found it already (its `lm_eval.models` entry points).
    """
    import lm_eval.models  # noqa: F401  (fills the registry with the built-in placeholders)
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


def _is_ours(task_manager: Any, name: str) -> bool:
    """A task or group of this package, or a user's task built on our loaders (its template)."""
    entry = task_index(task_manager).get(name)
    if _in_tasks_dir(entry):
        return True
    cfg = getattr(entry, "cfg", None) or {}
    return "lm_eval_mlc." in str(cfg.get("custom_dataset", ""))


def check_task_data(task_names: Any, task_manager: Any) -> None:
    """Build our selected tasks now, so a bad data file fails before any model is loaded.

    lm-eval loads the model first and the data afterwards; our loaders validate whole files and
    raise one `DataValidationError` naming every bad file, row and field.
    """
    names = [name for name in task_names or [] if isinstance(name, str)]
    ours = [name for name in names if _is_ours(task_manager, name)]
    if ours:
        loaded = task_manager.load(ours)
        for task in loaded["tasks"].values():
            # lm-eval 0.4 reads data when it builds a task; 0.5 on first use of `dataset`.
            _ = task.dataset


def add_data_check(evaluator_config_cls: type) -> None:
    """Patch `EvaluatorConfig.process_tasks` (the CLI's task resolution) to run the data check."""
    process_tasks = evaluator_config_cls.process_tasks
    if getattr(process_tasks, "_lm_eval_mlc", False):
        return

    @functools.wraps(process_tasks)
    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = process_tasks(self, *args, **kwargs)
        check_task_data(self.tasks, manager)
        return manager

    wrapped._lm_eval_mlc = True  # type: ignore[attr-defined]
    evaluator_config_cls.process_tasks = wrapped


def skip_our_bootstrap(metrics_module: Any) -> None:
    """Give our aggregations no lm-eval stderr ("N/A"), as lm-eval 0.4 does (idempotent).

    lm-eval 0.5 bootstraps the stderr of every aggregation it does not know (100,000 resamples
    by default, in a process pool): for our ~30 keys x 7 filters that is hours. Probed, not
    versioned: patched only where lm-eval would bootstrap ours. `compare` and `show` give
    bootstrap intervals from the logged samples instead.
    """
    from lm_eval_mlc.harness import records

    stderr_for_metric = metrics_module.stderr_for_metric
    if getattr(stderr_for_metric, "_lm_eval_mlc", False):
        return
    if stderr_for_metric(records.micro_f1, 1) is None:
        return

    @functools.wraps(stderr_for_metric)
    def wrapped(metric: Any, bootstrap_iters: int) -> Any:
        if getattr(metric, "__module__", None) == records.__name__:
            return None
        return stderr_for_metric(metric, bootstrap_iters)

    wrapped._lm_eval_mlc = True  # type: ignore[attr-defined]
    metrics_module.stderr_for_metric = wrapped


def activate() -> None:
    """Everything the startup hook does, done now (for `lm-eval-mlc run` and Python users)."""
    import lm_eval.api.metrics
    from lm_eval.api.model import CachingLM
    from lm_eval.config.evaluate_config import EvaluatorConfig
    from lm_eval.tasks import TaskManager

    from lm_eval_mlc.harness.cache_key import key_cache_by_model

    register_model()
    add_task_paths(TaskManager)
    add_data_check(EvaluatorConfig)
    key_cache_by_model(CachingLM)
    skip_our_bootstrap(lm_eval.api.metrics)


def task_manager(include_path: Any = None, metadata: dict | None = None, **kwargs: Any):
    """A `lm_eval.tasks.TaskManager` that indexes lm-eval's tasks, ours and `include_path`."""
    from lm_eval.tasks import TaskManager

    register_model()
    return TaskManager(include_path=with_task_paths(include_path), metadata=metadata, **kwargs)
