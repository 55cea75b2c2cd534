"""Make lm-eval aware of this plugin: the `hf-mlc` model and the task folder.

Used by the startup hook (`_startup.py`), by `lm-eval-mlc run`, and from Python::

    from lm_eval import simple_evaluate
    from lm_eval_mlc.plugin import task_manager

    simple_evaluate(model="hf-mlc", model_args="pretrained=...", tasks=["goemotions_ml"],
                    task_manager=task_manager())
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from lm_eval_mlc._paths import TASKS_DIR

MODEL_NAME = "hf-mlc"
MODEL_TARGET = "lm_eval_mlc.models.hf_mlc:HFMultiLabelLM"


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


def add_task_paths(task_manager_cls: type) -> None:
    """Patch `TaskManager.__init__` so every instance also indexes our tasks (idempotent)."""
    init = task_manager_cls.__init__
    if getattr(init, "_lm_eval_mlc", False):
        return

    @functools.wraps(init)
    def __init__(self, *args: Any, include_path: Any = None, **kwargs: Any) -> None:
        init(self, *args, include_path=with_task_paths(include_path), **kwargs)

    __init__._lm_eval_mlc = True  # type: ignore[attr-defined]
    task_manager_cls.__init__ = __init__


def register_model() -> None:
    """Register `hf-mlc` lazily, after lm-eval's own models (so `hf` and friends stay known)."""
    import lm_eval.models  # noqa: F401  (fills the registry with the built-in placeholders)
    from lm_eval.api.registry import model_registry

    if MODEL_NAME not in model_registry:
        model_registry.register(MODEL_NAME, target=MODEL_TARGET)


def task_manager(include_path: Any = None, metadata: dict | None = None, **kwargs: Any):
    """A `lm_eval.tasks.TaskManager` that indexes lm-eval's tasks, ours and `include_path`."""
    from lm_eval.tasks import TaskManager

    register_model()
    return TaskManager(include_path=with_task_paths(include_path), metadata=metadata, **kwargs)
