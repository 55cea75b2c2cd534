"""The few places where lm-eval 0.4 and 0.5 differ for us, detected by feature, not version.

Imports lm-eval only inside functions: the startup hook imports this package while lm-eval's
own modules are still loading.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any


@functools.cache
def _instance_takes_doc_id() -> bool:
    """0.5's `Instance` has `task_name` and `doc_id` init fields; 0.4 unpacks them from
    `metadata`."""
    from lm_eval.api.instance import Instance

    return any(f.name == "doc_id" and f.init and f.kw_only for f in dataclasses.fields(Instance))


def make_instance(
    request_type: str,
    doc: dict[str, Any],
    arguments: tuple,
    idx: int = 0,
    *,
    task_name: str | None = None,
    doc_id: int | None = None,
) -> Any:
    """A request as a task builds it, on either release (`doc_id` defaults to `idx`)."""
    from lm_eval.api.instance import Instance

    doc_id = idx if doc_id is None else doc_id
    if _instance_takes_doc_id():
        return Instance(request_type, doc, arguments, task_name, doc_id=doc_id, idx=idx)
    return Instance(request_type, doc, arguments, idx, metadata=(task_name, doc_id, 1))


def task_index(task_manager: Any) -> dict[str, Any]:
    """Name -> index entry (`task_index` on 0.4, `_task_index` on 0.5; both have `yaml_path`)."""
    return getattr(task_manager, "task_index", None) or getattr(task_manager, "_task_index", {})


@functools.cache
def filters_keep_repeats() -> bool:
    """Whether a filter's output per doc is a list of repeats (0.5) or one response (0.4).

    Probed on lm-eval's own `take_first` filter, the one our strategy filters stand in for.
    """
    from lm_eval.filters.selection import TakeFirstFilter

    (first,) = list(TakeFirstFilter().apply([["a", "b"]], [{}]))
    return isinstance(first, list)


def gen_prefix(task: Any, doc: dict[str, Any]) -> str | None:
    """The task's `gen_prefix` for `doc` (`doc_to_prefix` on 0.4, `_resolve_field` on 0.5)."""
    if hasattr(task, "doc_to_prefix"):
        return task.doc_to_prefix(doc)
    return task._resolve_field(doc, task.config.gen_prefix)
