"""The few places where lm-eval 0.4 and 0.5 differ for us, detected by feature, not version."""

from __future__ import annotations

import dataclasses
from typing import Any

from lm_eval.api.instance import Instance

#: 0.5 makes `task_name` and `doc_id` init fields; 0.4 unpacks them from `metadata`.
_INSTANCE_FIELDS = {f.name for f in dataclasses.fields(Instance) if f.init}


def make_instance(
    request_type: str,
    doc: dict[str, Any],
    arguments: tuple,
    idx: int = 0,
    *,
    task_name: str | None = None,
    doc_id: int | None = None,
) -> Instance:
    """A request as a task builds it, on either release (`doc_id` defaults to `idx`)."""
    doc_id = idx if doc_id is None else doc_id
    if "doc_id" in _INSTANCE_FIELDS:
        return Instance(request_type, doc, arguments, task_name, doc_id=doc_id, idx=idx)
    return Instance(request_type, doc, arguments, idx, metadata=(task_name, doc_id, 1))


def task_index(task_manager: Any) -> dict[str, Any]:
    """Name -> index entry (`task_index` on 0.4, `_task_index` on 0.5; both have `yaml_path`)."""
    return getattr(task_manager, "task_index", None) or getattr(task_manager, "_task_index", {})
